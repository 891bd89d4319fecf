//! SLO burn-rate alerts: multi-window, multi-burn-rate, as in Google's SRE workbook
//! ("Alerting on SLOs", recommendation 5).
//!
//! The objective says what share of requests must be good (not 5xx, and when `latency_ms` is
//! set, not slower than it). The error budget is `1 - objective`; the burn rate of a window is
//! its bad share divided by the budget. A pair fires when both its long and its short window
//! burn at least its factor: 1 h and 5 min at 14.4 (2% of a 30-day budget in an hour), 6 h and
//! 30 min at 6 (5% in six hours). The short window makes the alert stop soon after the burn
//! stops. A pair counts only once the service has been watched for its short window and its
//! long window holds `min_requests` requests, so a new or quiet service is not paged for its
//! first errors (the error-ratio and error-template detectors cover those).
//!
//! Memory: per service one (good, bad) counter per minute of the longest window (360).

use std::collections::{BTreeMap, HashMap, VecDeque};

use aiops_model::{ProblemKind, Severity};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Detector, Finding, Observation};

/// Settings of [`BurnRateDetector`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BurnRateConfig {
    /// Share of requests that must be good, e.g. 0.999. Default: 0.999.
    pub objective: f64,
    /// A request slower than this (milliseconds) is bad too; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Requests a long window needs before it counts. Default: 100.
    pub min_requests: u64,
}

impl Default for BurnRateConfig {
    fn default() -> Self {
        Self { objective: 0.999, latency_ms: None, min_requests: 100 }
    }
}

/// (long window minutes, short window minutes, burn-rate factor), from the SRE workbook.
const PAIRS: [(i64, i64, f64); 2] = [(60, 5, 14.4), (360, 30, 6.0)];
const LONGEST_MINUTES: i64 = 360;

#[derive(Debug, Default)]
struct ServiceBurn {
    /// The first minute the service was seen in (since its last reset).
    since: Option<i64>,
    /// (minute, good, bad), oldest first.
    minutes: VecDeque<(i64, u64, u64)>,
    firing: bool,
}

impl ServiceBurn {
    /// (good, bad) over the last `minutes` minutes up to `now_minute`.
    fn totals(&self, now_minute: i64, minutes: i64) -> (u64, u64) {
        self.minutes
            .iter()
            .filter(|(minute, _, _)| *minute > now_minute - minutes)
            .fold((0, 0), |(g, b), (_, good, bad)| (g + good, b + bad))
    }
}

/// Finds SLO burn per service.
#[derive(Debug)]
pub struct BurnRateDetector {
    config: BurnRateConfig,
    services: HashMap<String, ServiceBurn>,
}

impl BurnRateDetector {
    /// A detector with `config`.
    pub fn new(config: BurnRateConfig) -> Self {
        Self { config, services: HashMap::new() }
    }

    fn budget(&self) -> f64 {
        (1.0 - self.config.objective).max(1e-9)
    }
}

impl Detector for BurnRateDetector {
    fn name(&self) -> &'static str {
        "burn_rate"
    }

    fn observe(&mut self, observation: &Observation) -> Option<Finding> {
        let Observation::Request { service, at, record } = observation else { return None };
        let bad = record.status >= 500 || self.config.latency_ms.is_some_and(|limit| record.duration_ms > limit);
        let budget = self.budget();
        let min_requests = self.config.min_requests;
        let burn = self.services.entry(service.clone()).or_default();
        let minute = at.timestamp().div_euclid(60);
        let since = *burn.since.get_or_insert(minute);
        match burn.minutes.back_mut() {
            Some((last, good, bad_count)) if *last >= minute => {
                *if bad { bad_count } else { good } += 1;
            }
            _ => burn.minutes.push_back((minute, u64::from(!bad), u64::from(bad))),
        }
        while burn.minutes.front().is_some_and(|(m, _, _)| *m <= minute - LONGEST_MINUTES) {
            burn.minutes.pop_front();
        }
        let rate =
            |(good, bad): (u64, u64)| if good + bad == 0 { 0.0 } else { bad as f64 / (good + bad) as f64 / budget };
        let mut strongest: Option<(i64, i64, f64, f64, f64)> = None;
        for (long, short, factor) in PAIRS {
            // A window means nothing until the service has been watched for its short part.
            if minute - since < short {
                continue;
            }
            let long_totals = burn.totals(minute, long);
            if long_totals.0 + long_totals.1 < min_requests {
                continue;
            }
            let (long_rate, short_rate) = (rate(long_totals), rate(burn.totals(minute, short)));
            if long_rate >= factor && short_rate >= factor && strongest.is_none() {
                strongest = Some((long, short, factor, long_rate, short_rate));
            }
        }
        if burn.firing {
            // Stops when no pair burns any more (the short windows let it stop soon).
            if strongest.is_none() {
                burn.firing = false;
            }
            return None;
        }
        let (long, short, factor, long_rate, short_rate) = strongest?;
        burn.firing = true;
        let mut metrics = BTreeMap::new();
        metrics.insert("burn_rate_long".to_owned(), long_rate);
        metrics.insert("burn_rate_short".to_owned(), short_rate);
        metrics.insert("objective".to_owned(), self.config.objective);
        Some(Finding {
            service: service.clone(),
            kind: ProblemKind::SloBurn,
            severity: Severity::Error,
            summary: format!(
                "{service}: error budget burning {long_rate:.0}x over {long} min and {short_rate:.0}x over {short} min (objective {:.3}%, alert at {factor}x)",
                self.config.objective * 100.0
            ),
            metrics,
            first_seen: DateTime::<Utc>::from_timestamp((minute - short + 1) * 60, 0).unwrap_or(*at),
        })
    }

    fn reset(&mut self, service: &str) {
        self.services.remove(service);
    }

    fn active(&self, service: &str, _now: DateTime<Utc>) -> bool {
        self.services.get(service).is_some_and(|burn| burn.firing)
    }
}

#[cfg(test)]
mod tests {
    use aiops_model::RequestRecord;

    use super::*;

    fn request(detector: &mut BurnRateDetector, at_s: i64, status: u16) -> Option<Finding> {
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000 + at_s, 0).unwrap();
        let record = RequestRecord {
            method: "GET".into(),
            route: "/".into(),
            status,
            duration_ms: 5.0,
            trace_id: None,
            rejected: None,
        };
        detector.observe(&Observation::Request { service: "bookmarks".into(), at, record })
    }

    #[test]
    fn a_fast_burn_pages_a_slow_trickle_does_not_and_it_stops_with_the_burn() {
        let mut detector = BurnRateDetector::new(BurnRateConfig::default());
        // An hour at 10 requests/s with 0.05% errors: half the budget, no alert.
        for s in 0..3_600 {
            for k in 0..10 {
                let status = if (s * 10 + k) % 2_000 == 0 { 503 } else { 200 };
                assert!(request(&mut detector, s, status).is_none(), "a trickle within budget at {s}");
            }
        }
        // Then 10% errors: 100x the budget.
        let mut fired = Vec::new();
        for s in 3_600..3_900 {
            for k in 0..10 {
                fired.extend(request(&mut detector, s, if k == 0 { 503 } else { 200 }));
            }
        }
        assert_eq!(fired.len(), 1, "paged once");
        assert_eq!(fired[0].kind, ProblemKind::SloBurn);
        // The 6 h / 30 min pair at 6x is the first to hold here (the 1 h window still averages in
        // the calm hour before).
        let metrics = &fired[0].metrics;
        assert!(metrics["burn_rate_long"] >= 6.0 && metrics["burn_rate_short"] >= 6.0, "{metrics:?}");
        // The burn stops; after the short windows pass it can page again for a new burn.
        for s in 3_900..6_300 {
            assert!(request(&mut detector, s, 200).is_none());
        }
        let again =
            (6_300..6_400).flat_map(|s| (0..10).map(move |_| s)).filter_map(|s| request(&mut detector, s, 503)).count();
        assert_eq!(again, 1);
    }

    #[test]
    fn a_quiet_service_is_not_paged_for_a_few_errors() {
        let mut detector = BurnRateDetector::new(BurnRateConfig::default());
        for s in 0..50 {
            assert!(request(&mut detector, s * 10, if s % 5 == 0 { 500 } else { 200 }).is_none());
        }
    }
}
