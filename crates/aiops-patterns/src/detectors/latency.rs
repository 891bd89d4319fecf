//! A latency percentile over a sliding window.

use std::collections::BTreeMap;

use aiops_model::{ProblemKind, Severity};
use chrono::{DateTime, Utc};

use super::window::{Sample, Windows};
use super::WindowConfig;
use crate::{Detector, Finding, Observation};

/// Fires when the 95th percentile of request durations in the window reaches `threshold_ms`;
/// clears when it falls below 80% of it.
#[derive(Debug)]
pub struct LatencyDetector {
    window: WindowConfig,
    threshold_ms: f64,
    windows: Windows,
}

impl LatencyDetector {
    /// A detector firing when p95 reaches `threshold_ms`.
    pub fn new(window: WindowConfig, threshold_ms: f64) -> Self {
        Self { window, threshold_ms, windows: Windows::default() }
    }
}

fn p95(samples: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = samples.collect();
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64) * 0.95).ceil() as usize;
    values.get(rank.saturating_sub(1)).copied().unwrap_or(0.0)
}

impl Detector for LatencyDetector {
    fn name(&self) -> &'static str {
        "latency_p95"
    }

    fn observe(&mut self, observation: &Observation) -> Option<Finding> {
        let Observation::Request { service, at, record } = observation else { return None };
        let sample = Sample { at: *at, status: record.status, duration_ms: record.duration_ms };
        let (samples, firing) = self.windows.push(&self.window, service, sample);
        if samples.len() < self.window.min_requests {
            return None;
        }
        let p95 = p95(samples.iter().map(|s| s.duration_ms));
        if *firing {
            if p95 < self.threshold_ms * 0.8 {
                *firing = false;
            }
            return None;
        }
        if p95 < self.threshold_ms {
            return None;
        }
        *firing = true;
        let first_seen = samples.iter().find(|s| s.duration_ms >= self.threshold_ms).map_or(*at, |s| s.at);
        Some(Finding {
            service: service.clone(),
            kind: ProblemKind::HttpLatency,
            severity: if p95 >= self.threshold_ms * 3.0 { Severity::Error } else { Severity::Warning },
            summary: format!(
                "{service}: p95 latency {p95:.0}ms over {} requests (threshold {:.0}ms)",
                samples.len(),
                self.threshold_ms
            ),
            metrics: BTreeMap::from([
                ("p95_ms".to_owned(), p95),
                ("requests".to_owned(), samples.len() as f64),
                ("threshold_ms".to_owned(), self.threshold_ms),
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
