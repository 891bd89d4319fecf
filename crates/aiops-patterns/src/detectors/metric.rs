//! Metric series a service reports (`metric.sample`): each series (service, metric name) is
//! scored against its own history by an [`AnomalyDetector`], and checked against the static
//! bounds configured for its name.
//!
//! A bound is crossed when a sample is above `above` (or below `below`); it is reported once,
//! and again only after a sample back inside the bound. An anomaly is a sample scoring at
//! least `anomaly_threshold`; it is reported once, and again only after a sample scoring below
//! half of it. Memory: one detector of constant size per series, at most `max_series` series
//! (samples of further series are not scored: see [`MetricDetector::ignored_series`]).

use std::collections::{BTreeMap, HashMap};

use aiops_model::{ProblemKind, Severity};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AnomalyConfig, AnomalyDetector, Detector, Finding, Observation};

/// Settings of [`MetricDetector`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricConfig {
    /// Anomaly score (0 to 1) from which a sample is reported. Default: 0.7, about 9 standard
    /// deviations from every baseline and beyond anything of the last `novelty_window`, or a
    /// shape clearly not seen before (its score, at most `shape_weight`, is 0.75 at the most).
    pub anomaly_threshold: f64,
    /// The anomaly detector's settings (one configuration for every series).
    pub anomaly: AnomalyConfig,
    /// Most series watched at once. Default: 10,000.
    pub max_series: usize,
    /// Static bounds by metric name.
    pub bounds: BTreeMap<String, MetricBound>,
}

impl Default for MetricConfig {
    fn default() -> Self {
        Self { anomaly_threshold: 0.7, anomaly: AnomalyConfig::default(), max_series: 10_000, bounds: BTreeMap::new() }
    }
}

/// A static bound on a metric: a sample above `above` or below `below` is reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricBound {
    /// Highest acceptable value.
    #[serde(default)]
    pub above: Option<f64>,
    /// Lowest acceptable value.
    #[serde(default)]
    pub below: Option<f64>,
}

impl MetricBound {
    /// The side and the bound `value` crossed, if it crossed one.
    fn crossed(&self, value: f64) -> Option<(&'static str, f64)> {
        if let Some(above) = self.above.filter(|above| value > *above) {
            return Some(("above", above));
        }
        self.below.filter(|below| value < *below).map(|below| ("below", below))
    }
}

#[derive(Debug)]
struct Series {
    anomaly: AnomalyDetector,
    anomalous: bool,
    out_of_bounds: bool,
}

/// Finds anomalies and bound crossings in reported metrics.
#[derive(Debug)]
pub struct MetricDetector {
    config: MetricConfig,
    series: HashMap<(String, String), Series>,
    ignored: u64,
}

impl MetricDetector {
    /// A detector that has seen nothing.
    pub fn new(config: MetricConfig) -> Self {
        Self { config, series: HashMap::new(), ignored: 0 }
    }

    /// Samples not scored because `max_series` series were already watched.
    pub fn ignored_series(&self) -> u64 {
        self.ignored
    }
}

impl Detector for MetricDetector {
    fn name(&self) -> &'static str {
        "metric"
    }

    fn observe(&mut self, observation: &Observation) -> Option<Finding> {
        let Observation::Metric { service, at, name, value } = observation else { return None };
        if !value.is_finite() {
            return None;
        }
        let key = (service.clone(), name.clone());
        if !self.series.contains_key(&key) && self.series.len() >= self.config.max_series {
            self.ignored += 1;
            return None;
        }
        let anomaly_config = &self.config.anomaly;
        let series = self.series.entry(key).or_insert_with(|| Series {
            anomaly: AnomalyDetector::new(anomaly_config.clone()),
            anomalous: false,
            out_of_bounds: false,
        });
        // Scored even when a bound is crossed, so the series' history stays whole.
        let score = series.anomaly.score_at(at.timestamp(), *value);
        let metrics = |extra: (&str, f64)| {
            BTreeMap::from([
                ("value".to_owned(), *value),
                ("anomaly_score".to_owned(), score),
                (extra.0.to_owned(), extra.1),
            ])
        };

        let crossed = self.config.bounds.get(name).and_then(|bound| bound.crossed(*value));
        match (crossed, series.out_of_bounds) {
            (Some((side, bound)), false) => {
                series.out_of_bounds = true;
                return Some(Finding {
                    service: service.clone(),
                    kind: ProblemKind::MetricThreshold,
                    severity: Severity::Error,
                    summary: format!("{service}: {name} is {value} ({side} {bound})"),
                    metrics: metrics(("bound", bound)),
                    first_seen: *at,
                });
            }
            (None, true) => series.out_of_bounds = false,
            _ => {}
        }

        let threshold = self.config.anomaly_threshold;
        if series.anomalous {
            if score < threshold / 2.0 {
                series.anomalous = false;
            }
            return None;
        }
        if score < threshold {
            return None;
        }
        series.anomalous = true;
        Some(Finding {
            service: service.clone(),
            kind: ProblemKind::MetricAnomaly,
            severity: Severity::Warning,
            summary: format!("{service}: {name} = {value} is anomalous for this series (score {score:.2})"),
            metrics: metrics(("threshold", threshold)),
            first_seen: *at,
        })
    }

    fn active(&self, service: &str, _now: DateTime<Utc>) -> bool {
        self.series.iter().any(|((owner, _), series)| owner == service && (series.anomalous || series.out_of_bounds))
    }

    fn reset(&mut self, service: &str) {
        // The history stays (it is what "normal" means for the series); only the reported
        // states start afresh, so a recurrence is reported again.
        for ((owner, _), series) in &mut self.series {
            if owner == service {
                series.anomalous = false;
                series.out_of_bounds = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;

    fn sample(name: &str, n: i64, value: f64) -> Observation {
        Observation::Metric {
            service: "api".into(),
            at: Utc.timestamp_opt(1_700_000_000, 0).unwrap() + Duration::seconds(n),
            name: name.into(),
            value,
        }
    }

    /// A queue length that wanders between 40 and 60 with a daily-like wave.
    fn calm(n: i64) -> f64 {
        50.0 + 8.0 * (n as f64 / 60.0).sin() + ((n * 7919) % 5) as f64
    }

    #[test]
    fn a_jump_after_a_calm_history_is_reported_once_and_again_after_it_cleared() {
        let mut detector = MetricDetector::new(MetricConfig::default());
        for n in 0..1_000 {
            assert_eq!(detector.observe(&sample("queue_length", n, calm(n))), None, "calm point {n}");
        }
        let finding = detector.observe(&sample("queue_length", 1_000, 400.0)).expect("a jump to 400 is reported");
        assert_eq!(finding.kind, ProblemKind::MetricAnomaly);
        assert_eq!(finding.metrics["value"], 400.0);
        assert!(finding.metrics["anomaly_score"] >= MetricConfig::default().anomaly_threshold);
        assert!(finding.summary.contains("queue_length"), "{}", finding.summary);
        // Staying high is the same anomaly, not a new one.
        for n in 1_001..1_010 {
            assert_eq!(detector.observe(&sample("queue_length", n, 400.0 + n as f64 % 3.0)), None);
        }
        // Back to normal, then a far bigger jump: a new report.
        for n in 1_010..1_400 {
            detector.observe(&sample("queue_length", n, calm(n)));
        }
        assert!(detector.observe(&sample("queue_length", 1_400, 5_000.0)).is_some());
    }

    #[test]
    fn series_are_kept_apart_and_bounded_in_number() {
        let mut detector = MetricDetector::new(MetricConfig { max_series: 2, ..MetricConfig::default() });
        for n in 0..300 {
            detector.observe(&sample("a", n, calm(n)));
            detector.observe(&sample("b", n, calm(n) * 1_000.0));
            detector.observe(&sample("c", n, calm(n)));
        }
        assert_eq!(detector.series.len(), 2);
        assert_eq!(detector.ignored_series(), 300);
        // `b` lives around 50,000: a value of 400 is a drop there, not a normal value of `a`.
        assert!(detector.observe(&sample("b", 300, 400.0)).is_some());
        assert!(detector.observe(&sample("a", 300, calm(300))).is_none());
    }

    #[test]
    fn a_bound_is_reported_at_once_even_without_history_and_rearms_inside_it() {
        let bounds = BTreeMap::from([("disk_used_ratio".to_owned(), MetricBound { above: Some(0.9), below: None })]);
        let mut detector = MetricDetector::new(MetricConfig { bounds, ..MetricConfig::default() });
        assert_eq!(detector.observe(&sample("disk_used_ratio", 0, 0.5)), None);
        let finding = detector.observe(&sample("disk_used_ratio", 1, 0.95)).expect("above the bound");
        assert_eq!(finding.kind, ProblemKind::MetricThreshold);
        assert_eq!(finding.metrics["bound"], 0.9);
        assert!(finding.summary.contains("above 0.9"), "{}", finding.summary);
        assert_eq!(detector.observe(&sample("disk_used_ratio", 2, 0.97)), None, "still the same crossing");
        assert_eq!(detector.observe(&sample("disk_used_ratio", 3, 0.6)), None);
        assert!(detector.observe(&sample("disk_used_ratio", 4, 0.99)).is_some(), "crossed again");
        // Other metrics have no bound.
        assert_eq!(detector.observe(&sample("other", 5, 1e9)), None);
    }

    #[test]
    fn reset_rearms_a_service_without_forgetting_its_history() {
        let bounds = BTreeMap::from([("free_bytes".to_owned(), MetricBound { above: None, below: Some(100.0) })]);
        let mut detector = MetricDetector::new(MetricConfig { bounds, ..MetricConfig::default() });
        assert!(detector.observe(&sample("free_bytes", 0, 10.0)).is_some());
        assert_eq!(detector.observe(&sample("free_bytes", 1, 10.0)), None);
        detector.reset("api");
        assert!(detector.observe(&sample("free_bytes", 2, 10.0)).is_some(), "reported again after a reset");
    }
}
