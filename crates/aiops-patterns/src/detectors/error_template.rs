//! Error-template spikes: an error message template that suddenly occurs far more often than it
//! used to, or a new one that bursts.
//!
//! Each service's error messages go through a [`LogTemplateMiner`], so `pool timed out after
//! 5012ms` and `pool timed out after 4987ms` count as one template. Per template the detector
//! keeps the event times of the last `window_ms` and a running total. A template spikes when
//! the window holds at least `min_count` of it and at least `spike_factor` times what its
//! earlier rate predicts for one window (a template never seen before predicts zero). It is
//! reported once, then again only after its window count fell below half of `min_count`.
//! Memory: at most `max_templates` templates per service, and per template one counter per
//! second of the window (counts are exact at a one-second resolution, whatever the rate).

use std::collections::{BTreeMap, HashMap, VecDeque};

use aiops_model::{ProblemKind, Severity};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Detector, Finding, LogTemplate, LogTemplateMiner, MinerConfig, Observation};

/// Settings of [`ErrorTemplateDetector`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErrorTemplateConfig {
    /// The window, in milliseconds. Default: 10,000.
    pub window_ms: u64,
    /// Occurrences in the window below which nothing is reported. Default: 10.
    pub min_count: usize,
    /// How many times the template's earlier rate the window must hold. Default: 5.
    pub spike_factor: f64,
    /// Templates kept per service. Default: 500.
    pub max_templates: usize,
}

impl Default for ErrorTemplateConfig {
    fn default() -> Self {
        Self { window_ms: 10_000, min_count: 10, spike_factor: 5.0, max_templates: 500 }
    }
}

#[derive(Debug)]
struct TemplateHistory {
    /// (second, occurrences in it), oldest first, for the seconds of the window.
    recent: VecDeque<(i64, u64)>,
    total: u64,
    first_seen: DateTime<Utc>,
    example: String,
    reported: bool,
}

#[derive(Debug)]
struct ServiceLogs {
    miner: LogTemplateMiner,
    templates: HashMap<u64, TemplateHistory>,
    /// Templates learned or changed since the last [`ErrorTemplateDetector::take_changed`].
    changed: std::collections::HashSet<u64>,
}

/// Finds error-template spikes per service.
#[derive(Debug)]
pub struct ErrorTemplateDetector {
    config: ErrorTemplateConfig,
    services: HashMap<String, ServiceLogs>,
}

fn miner_config(config: &ErrorTemplateConfig) -> MinerConfig {
    MinerConfig { max_templates: config.max_templates, ..MinerConfig::default() }
}

impl ErrorTemplateDetector {
    /// A detector with `config`.
    pub fn new(config: ErrorTemplateConfig) -> Self {
        Self { config, services: HashMap::new() }
    }

    /// The templates of each service learned or changed since the last call, to be saved.
    pub fn take_changed(&mut self) -> Vec<(String, Vec<LogTemplate>)> {
        let mut changed = Vec::new();
        for (service, logs) in &mut self.services {
            if logs.changed.is_empty() {
                continue;
            }
            let templates: Vec<LogTemplate> =
                logs.changed.drain().filter_map(|id| logs.miner.template(id).cloned()).collect();
            changed.push((service.clone(), templates));
        }
        changed
    }

    /// Starts a service's miner from saved templates (after a restart): the same messages get
    /// the same template ids. Their rates start afresh.
    pub fn restore(&mut self, service: &str, templates: Vec<LogTemplate>) {
        let miner = LogTemplateMiner::restore(miner_config(&self.config), templates);
        self.services.insert(
            service.to_owned(),
            ServiceLogs { miner, templates: HashMap::new(), changed: std::collections::HashSet::new() },
        );
    }
}

impl Detector for ErrorTemplateDetector {
    fn name(&self) -> &'static str {
        "error_template"
    }

    fn observe(&mut self, observation: &Observation) -> Option<Finding> {
        let Observation::Error { service, at, message } = observation else { return None };
        let config = &self.config;
        let logs = self.services.entry(service.clone()).or_insert_with(|| ServiceLogs {
            miner: LogTemplateMiner::new(miner_config(config)),
            templates: HashMap::new(),
            changed: std::collections::HashSet::new(),
        });
        let parsed = logs.miner.add(message);
        logs.changed.insert(parsed.template_id);
        // Histories of templates the miner evicted go with them.
        if parsed.is_new && logs.templates.len() >= config.max_templates {
            let live: std::collections::HashSet<u64> = logs.miner.templates().iter().map(|t| t.id).collect();
            logs.templates.retain(|id, _| live.contains(id));
        }
        let history = logs.templates.entry(parsed.template_id).or_insert_with(|| TemplateHistory {
            recent: VecDeque::new(),
            total: 0,
            first_seen: *at,
            example: message.chars().take(300).collect(),
            reported: false,
        });
        history.total += 1;
        let second = at.timestamp();
        match history.recent.back_mut() {
            Some((last, count)) if *last >= second => *count += 1, // late or same-second events
            _ => history.recent.push_back((second, 1)),
        }
        let window = chrono::Duration::milliseconds(config.window_ms as i64);
        let window_start = *at - window;
        let first_second = window_start.timestamp();
        while history.recent.front().is_some_and(|(s, _)| *s < first_second) {
            history.recent.pop_front();
        }
        let in_window = history.recent.iter().map(|(_, count)| *count).sum::<u64>() as usize;
        // The template's rate before this window, per window length.
        let before = history.total.saturating_sub(in_window as u64) as f64;
        let history_span = (window_start - history.first_seen).num_milliseconds().max(0) as f64;
        let expected = if history_span > 0.0 { before * config.window_ms as f64 / history_span } else { 0.0 };
        if history.reported {
            // Cleared once the window is quiet, or back near what the template's history
            // predicts (a burst that became the new normal).
            if in_window * 2 < config.min_count || (in_window as f64) < config.spike_factor / 2.0 * expected {
                history.reported = false;
            }
            return None;
        }
        if in_window < config.min_count || (in_window as f64) < config.spike_factor * expected {
            return None;
        }
        history.reported = true;
        let template = logs.miner.template(parsed.template_id).map(|t| t.text()).unwrap_or_default();
        let is_new = before == 0.0;
        let summary = if is_new {
            format!("{service}: a new error appeared {in_window} times in {} s: {template}", config.window_ms / 1000)
        } else {
            format!(
                "{service}: an error occurred {in_window} times in {} s, {:.0}x its usual rate: {template}",
                config.window_ms / 1000,
                in_window as f64 / expected.max(f64::MIN_POSITIVE)
            )
        };
        let mut metrics = BTreeMap::new();
        metrics.insert("count_in_window".to_owned(), in_window as f64);
        metrics.insert("expected_in_window".to_owned(), expected);
        Some(Finding {
            service: service.clone(),
            kind: ProblemKind::LogErrorSpike,
            severity: Severity::Error,
            summary: if template.contains(crate::WILDCARD) {
                format!("{summary} (e.g. {})", history.example)
            } else {
                summary
            },
            metrics,
            first_seen: history
                .recent
                .front()
                .and_then(|(second, _)| DateTime::<Utc>::from_timestamp(*second, 0))
                .unwrap_or(*at),
        })
    }

    fn reset(&mut self, service: &str) {
        if let Some(logs) = self.services.get_mut(service) {
            // Templates stay learned; their counts start afresh, so that the same error
            // bursting again after a fix counts as a new burst, not as its own baseline.
            logs.templates.clear();
        }
    }

    /// A reported template is still there while it occurred within the window before `now`;
    /// one that stopped occurring has cleared, even though no new message said so.
    fn active(&self, service: &str, now: DateTime<Utc>) -> bool {
        let since = now.timestamp() - (self.config.window_ms / 1000) as i64;
        self.services.get(service).is_some_and(|logs| {
            logs.templates
                .values()
                .any(|history| history.reported && history.recent.back().is_some_and(|(second, _)| *second >= since))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(detector: &mut ErrorTemplateDetector, at_ms: i64, message: &str) -> Option<Finding> {
        let at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000 + at_ms).unwrap();
        detector.observe(&Observation::Error { service: "bookmarks".into(), at, message: message.into() })
    }

    #[test]
    fn a_steady_error_never_fires_and_a_burst_of_a_new_one_fires_once() {
        let mut detector = ErrorTemplateDetector::new(ErrorTemplateConfig::default());
        // One cache miss warning every 2 s for 10 minutes: 5 per window, under min_count.
        for i in 0..300 {
            assert!(error(&mut detector, i * 2_000, &format!("cache miss for key user:{i}")).is_none());
        }
        let start = 600_000;
        let mut findings = Vec::new();
        for i in 0..40 {
            let message = format!("database: pool timed out after {}ms", 5_000 + i);
            findings.extend(error(&mut detector, start + i * 100, &message));
        }
        assert_eq!(findings.len(), 1, "reported once while it lasts");
        let finding = &findings[0];
        assert_eq!(finding.kind, ProblemKind::LogErrorSpike);
        assert!(finding.summary.contains("a new error appeared 10 times"), "{}", finding.summary);
        assert!(finding.summary.contains("database: pool timed out after <*>"), "{}", finding.summary);
    }

    #[test]
    fn a_known_error_fires_at_five_times_its_rate_and_again_after_it_cleared() {
        let mut detector = ErrorTemplateDetector::new(ErrorTemplateConfig::default());
        // Baseline: 4 per 10 s for 5 minutes.
        for i in 0..120 {
            assert!(error(&mut detector, i * 2_500, &format!("upstream 502 from 10.0.0.{}", i % 9)).is_none());
        }
        // 3x the rate: 12 per window, over min_count but under 5x.
        let mut t = 300_000;
        for i in 0..36 {
            assert!(error(&mut detector, t + i * 833, "upstream 502 from 10.0.0.1").is_none(), "3x is no spike");
        }
        t += 30_000;
        // 25 per window: more than 5x the (now slightly higher) baseline.
        let fired: Vec<Finding> =
            (0..50).filter_map(|i| error(&mut detector, t + i * 400, "upstream 502 from 10.0.0.2")).collect();
        assert_eq!(fired.len(), 1);
        assert!(fired[0].summary.contains("its usual rate"), "{}", fired[0].summary);
        // Quiet for a while, then the same burst: reported again.
        t += 60_000;
        let again: Vec<Finding> =
            (0..50).filter_map(|i| error(&mut detector, t + i * 200, "upstream 502 from 10.0.0.3")).collect();
        assert_eq!(again.len(), 1, "cleared, then a new spike");
    }

    #[test]
    fn saved_templates_give_the_same_ids_after_a_restore() {
        let mut detector = ErrorTemplateDetector::new(ErrorTemplateConfig::default());
        error(&mut detector, 0, "disk write failed: errno 28");
        error(&mut detector, 10, "disk write failed: errno 5");
        let saved = detector.take_changed();
        assert_eq!(saved.len(), 1);
        assert!(detector.take_changed().is_empty(), "only what changed since the last call");
        let (service, templates) = saved.into_iter().next().unwrap();
        assert_eq!(templates[0].text(), "disk write failed: errno <*>");

        let mut restarted = ErrorTemplateDetector::new(ErrorTemplateConfig::default());
        restarted.restore(&service, templates.clone());
        let logs = &mut restarted.services.get_mut(&service).unwrap().miner;
        let parsed = logs.add("disk write failed: errno 13");
        assert_eq!((parsed.template_id, parsed.is_new), (templates[0].id, false));
    }

    #[test]
    fn a_busy_template_still_spikes_at_five_times_its_rate() {
        let mut detector = ErrorTemplateDetector::new(ErrorTemplateConfig::default());
        // 20 per 10 s for 5 minutes (above min_count: a chronic error). Its first 10 are a new
        // error bursting; after that it is the normal.
        let chronic = (0..600).filter_map(|i| error(&mut detector, i * 500, "retrying request id 1234")).count();
        assert_eq!(chronic, 1, "reported when new, then normal");
        // 150 per 10 s: 7.5x.
        let fired = (0..300).filter_map(|i| error(&mut detector, 300_000 + i * 66, "retrying request id 99")).count();
        assert_eq!(fired, 1);
    }

    #[test]
    fn reset_starts_the_counts_afresh() {
        let mut detector = ErrorTemplateDetector::new(ErrorTemplateConfig::default());
        let burst = |detector: &mut ErrorTemplateDetector, from: i64| -> usize {
            (0..20)
                .filter_map(|i| error(detector, from + i * 100, &format!("disk write failed: errno {}", 28 + i % 2)))
                .count()
        };
        assert_eq!(burst(&mut detector, 0), 1);
        detector.reset("bookmarks");
        assert_eq!(burst(&mut detector, 20_000), 1, "a recurrence after a fix is a new burst");
    }
}
