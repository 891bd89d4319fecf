//! Ratio of 5xx responses over a sliding window.

use std::collections::BTreeMap;

use aiops_model::{ProblemKind, Severity};
use chrono::{DateTime, Utc};

use super::window::{Sample, Windows};
use super::WindowConfig;
use crate::{Detector, Finding, Observation};

/// Fires when the share of 5xx responses in the window reaches `threshold`; clears when it
/// falls below half of it.
#[derive(Debug)]
pub struct ErrorRatioDetector {
    window: WindowConfig,
    threshold: f64,
    windows: Windows,
}

impl ErrorRatioDetector {
    /// A detector firing at `threshold` (0..1) over `window`.
    pub fn new(window: WindowConfig, threshold: f64) -> Self {
        Self { window, threshold, windows: Windows::default() }
    }
}

impl Detector for ErrorRatioDetector {
    fn name(&self) -> &'static str {
        "error_ratio"
    }

    fn observe(&mut self, observation: &Observation) -> Option<Finding> {
        let Observation::Request { service, at, record } = observation else { return None };
        let sample = Sample { at: *at, status: record.status, duration_ms: record.duration_ms };
        let (samples, firing) = self.windows.push(&self.window, service, sample);
        if samples.len() < self.window.min_requests {
            return None;
        }
        let errors = samples.iter().filter(|s| s.status >= 500).count();
        let ratio = errors as f64 / samples.len() as f64;
        if *firing {
            if ratio < self.threshold / 2.0 {
                *firing = false;
            }
            return None;
        }
        if ratio < self.threshold {
            return None;
        }
        *firing = true;
        let first_seen = samples.iter().find(|s| s.status >= 500).map_or(*at, |s| s.at);
        let severity = if ratio >= 0.5 { Severity::Critical } else { Severity::Error };
        Some(Finding {
            service: service.clone(),
            kind: ProblemKind::HttpErrorRatio,
            severity,
            summary: format!(
                "{service}: {:.0}% of {} requests failed with 5xx in the last {}s",
                ratio * 100.0,
                samples.len(),
                self.window.window_ms / 1000
            ),
            metrics: BTreeMap::from([
                ("error_ratio".to_owned(), ratio),
                ("requests".to_owned(), samples.len() as f64),
                ("errors".to_owned(), errors as f64),
            ]),
            first_seen,
        })
    }

    fn reset(&mut self, service: &str) {
        self.windows.reset(service);
    }

    fn active(&self, service: &str, _now: DateTime<Utc>) -> bool {
        self.windows.firing(service)
    }
}
