//! Streaming anomaly scores for one metric: a value in, a score in [0, 1] out, learning online
//! with no look-ahead and constant memory per series.
//!
//! Two stages:
//! 1. **Surprise.** The value's distance from an exponentially weighted mean, in exponentially
//!    weighted standard deviations, at three speeds (fast, slow, very slow baselines); the
//!    largest counts. A spike surprises all; a level shift or a drift keeps surprising the
//!    slower ones for a while.
//! 2. **Novelty.** A surprise counts in full only when it beats every surprise of the last
//!    `novelty_window` points by at least one standard deviation, and in proportion below
//!    that. A sustained anomaly is reported when it starts, not on every point it lasts, and a
//!    jumpy series has to jump further than usual.
//!
//! The score is `z / (z + 4)` of the result: monotone, so any threshold works, and it does not
//! saturate, so a threshold can still tell a 10-sigma event from a 40-sigma one. The first
//! `warmup` points only learn and score 0.
//!
//! The defaults were chosen on the NAB data in `../shared/bench/nab` (24 series); scores on
//! other series are the real test.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Settings; the defaults are the one configuration used for every series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Weights of the baselines' exponential averages. Default: [0.1, 0.01, 0.001].
    pub baseline_alphas: Vec<f64>,
    /// Points whose surprises a new one must beat to count in full. Default: 200.
    pub novelty_window: usize,
    /// Points that only learn. Default: 100.
    pub warmup: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self { baseline_alphas: vec![0.1, 0.01, 0.001], novelty_window: 200, warmup: 100 }
    }
}

#[derive(Debug, Clone)]
struct Ewm {
    alpha: f64,
    mean: f64,
    var: f64,
}

impl Ewm {
    fn update(&mut self, x: f64) {
        let delta = x - self.mean;
        self.mean += self.alpha * delta;
        self.var = (1.0 - self.alpha) * (self.var + self.alpha * delta * delta);
    }
}

/// The detector for one series.
#[derive(Debug, Clone)]
pub struct AnomalyDetector {
    config: AnomalyConfig,
    baselines: Vec<Ewm>,
    /// Surprises of the window as a decreasing monotonic queue of (point number, surprise), so
    /// that the window's maximum is at the front.
    recent: VecDeque<(usize, f64)>,
    seen: usize,
}

impl AnomalyDetector {
    /// A detector that has seen nothing.
    pub fn new(config: AnomalyConfig) -> Self {
        let baselines = config.baseline_alphas.iter().map(|&alpha| Ewm { alpha, mean: 0.0, var: 0.0 }).collect();
        Self { config, baselines, recent: VecDeque::new(), seen: 0 }
    }

    /// Scores `value` (then learns it): 0 is normal, near 1 is anomalous. A value that is not a
    /// finite number scores 0 and is not learned.
    pub fn score(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        self.seen += 1;
        if self.seen == 1 {
            for baseline in &mut self.baselines {
                baseline.mean = value;
            }
        }
        let mut surprise: f64 = 0.0;
        for baseline in &mut self.baselines {
            let spread = baseline.var.sqrt() + 1e-9 * (1.0 + baseline.mean.abs());
            surprise = surprise.max((value - baseline.mean).abs() / spread);
            baseline.update(value);
        }
        // Beyond 50 standard deviations a value is simply off the scale; capping keeps one
        // absurd point from hiding the next real anomaly behind the novelty window.
        let surprise = surprise.min(50.0);

        let oldest = self.seen.saturating_sub(self.config.novelty_window);
        while self.recent.front().is_some_and(|(at, _)| *at <= oldest) {
            self.recent.pop_front();
        }
        let recent_max = self.recent.front().map_or(0.0, |(_, s)| *s);
        while self.recent.back().is_some_and(|(_, s)| *s <= surprise) {
            self.recent.pop_back();
        }
        self.recent.push_back((self.seen, surprise));

        if self.seen <= self.config.warmup {
            return 0.0;
        }
        let novelty = (surprise - recent_max).clamp(0.0, 1.0);
        let z = surprise * novelty;
        z / (z + 4.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calm(i: usize) -> f64 {
        100.0 + (i as f64 * 0.05).sin() * 5.0 + ((i * 7919) % 13) as f64 * 0.1
    }

    #[test]
    fn a_calm_series_scores_low_a_spike_high_and_its_aftermath_low_again() {
        let mut detector = AnomalyDetector::new(AnomalyConfig::default());
        let calm_scores: Vec<f64> = (0..2_000).map(|i| detector.score(calm(i))).collect();
        assert!(
            calm_scores[1_000..].iter().all(|s| *s < 0.5),
            "max {:?}",
            calm_scores.iter().cloned().fold(0.0, f64::max)
        );
        let spike = detector.score(400.0);
        assert!(spike > 0.8, "{spike}");
        // The same level again right away is no longer news.
        let again = detector.score(400.0);
        assert!(again < spike / 2.0, "{again} vs {spike}");
    }

    #[test]
    fn scores_are_in_range_and_bad_values_are_ignored() {
        let mut detector = AnomalyDetector::new(AnomalyConfig { warmup: 5, ..AnomalyConfig::default() });
        for i in 0..500 {
            let score = detector.score(if i % 50 == 0 { 1e300 } else { i as f64 });
            assert!((0.0..1.0).contains(&score), "{score}");
        }
        assert_eq!(detector.score(f64::NAN), 0.0);
        assert_eq!(detector.score(f64::INFINITY), 0.0);
    }

    #[test]
    fn the_window_maximum_is_the_true_maximum() {
        let mut detector =
            AnomalyDetector::new(AnomalyConfig { novelty_window: 3, warmup: 0, ..AnomalyConfig::default() });
        for value in [1.0, 50.0, 2.0, 3.0, 4.0, 5.0] {
            detector.score(value);
            let max = detector.recent.front().unwrap().1;
            assert!(detector.recent.iter().all(|(_, s)| *s <= max));
            assert!(detector.recent.len() <= 3);
        }
    }
}
