//! A per-service sliding window of request samples, by event time.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Window settings shared by the request detectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Length of the sliding window, in milliseconds. Default: 10000.
    pub window_ms: u64,
    /// Requests the window must hold before a ratio or percentile means anything. Default: 20.
    pub min_requests: usize,
    /// Most samples kept per service; older ones are dropped first. Default: 10000.
    pub max_samples: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self { window_ms: 10_000, min_requests: 20, max_samples: 10_000 }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at: DateTime<Utc>,
    pub(crate) status: u16,
    pub(crate) duration_ms: f64,
}

/// Samples per service plus whether the symptom is currently reported (firing).
#[derive(Debug, Default)]
pub(crate) struct Windows {
    services: HashMap<String, (VecDeque<Sample>, bool)>,
}

impl Windows {
    /// Adds a sample and drops those older than the window (relative to the newest event).
    pub(crate) fn push(
        &mut self,
        config: &WindowConfig,
        service: &str,
        sample: Sample,
    ) -> (&VecDeque<Sample>, &mut bool) {
        let (samples, firing) = self.services.entry(service.to_owned()).or_default();
        // Events can arrive slightly out of order; keep the window ordered by insertion and
        // trim by the newest time seen.
        samples.push_back(sample);
        let newest = samples.iter().map(|s| s.at).max().unwrap_or(sample.at);
        let horizon = newest - Duration::milliseconds(config.window_ms as i64);
        while samples.front().is_some_and(|s| s.at < horizon) || samples.len() > config.max_samples {
            samples.pop_front();
        }
        (samples, firing)
    }

    pub(crate) fn reset(&mut self, service: &str) {
        self.services.remove(service);
    }

    /// Whether the symptom is reported for `service` and has not cleared.
    pub(crate) fn firing(&self, service: &str) -> bool {
        self.services.get(service).is_some_and(|(_, firing)| *firing)
    }
}
