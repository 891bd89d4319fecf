//! Streaming anomaly scores for one metric: a value in, a score in [0, 1] out, learning online
//! with no look-ahead and bounded memory per series.
//!
//! Three stages:
//! 1. **Surprise.** The value's distance from an exponentially weighted mean, in exponentially
//!    weighted standard deviations, at three speeds (fast, slow, very slow baselines); the
//!    largest counts. A spike surprises all; a level shift or a drift keeps surprising the
//!    slower ones for a while. When the value's time is known ([`AnomalyDetector::score_at`]),
//!    seasonal baselines have their say too: one exponentially weighted mean per hour of the
//!    day, and per hour of the week (by default), updated by every value seen in that hour
//!    with a heavy weight on the newest. When an hour begins, its baseline still holds how the
//!    same hour went a day (a week) earlier; within the hour it follows the latest values. A
//!    value that is usual for its hour (the morning rise of a daily cycle, the quiet of a
//!    Sunday) is only as surprising as it is against that hour's baseline: the smallest of the
//!    surprises counts. (Folding each hour in once per day instead scored 64.6 on NAB, against
//!    69.5 for this.)
//! 2. **Novelty.** A surprise counts in full only when it beats every surprise of the last
//!    `novelty_window` points by at least one standard deviation, and in proportion below
//!    that. A sustained anomaly is reported when it starts, not on every point it lasts, and a
//!    jumpy series has to jump further than usual. The point's score is `z / (z + 4)` of the
//!    result: monotone, so any threshold works, and it does not saturate, so a threshold can
//!    still tell a 10-sigma event from a 40-sigma one.
//! 3. **Shape** ([`shape`]): a second opinion on the last few points taken together, for what
//!    no single point shows (usual spikes coming more often, a broken rhythm). The score is
//!    the larger of the two, the shape's weighted by `shape_weight`.
//!
//! The first `warmup` points only learn and score 0.
//!
//! The defaults were chosen on the NAB data in `../shared/bench/nab` (24 series); scores on
//! other series are the real test. There the surprise alone scores 69.5 (standard profile),
//! and with the shape 75.5; the README has the neighbouring settings.

mod shape;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use shape::{ShapeDetector, ShapeSettings};

/// Settings; the defaults are the one configuration used for every series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyConfig {
    /// Weights of the baselines' exponential averages. Default: [0.1, 0.01, 0.001].
    pub baseline_alphas: Vec<f64>,
    /// Points whose surprises a new one must beat to count in full. Default: 150.
    pub novelty_window: usize,
    /// Points that only learn. Default: 100.
    pub warmup: usize,
    /// Width of the seasonal baselines' buckets, in seconds; 0 turns them off. Default: 3600.
    pub seasonal_bucket_secs: u64,
    /// The seasons, in seconds, each a whole number of buckets. Default: a day and a week
    /// (192 buckets, about 6 KiB per series).
    pub seasonal_periods_secs: Vec<u64>,
    /// Weight of the newest value in its bucket's average. Default: 0.75.
    pub seasonal_alpha: f64,
    /// Weight of the shape detector's score against the surprise's; 0 turns it off.
    /// Default: 0.75.
    pub shape_weight: f64,
    /// Points per downsampled value of the shape detector. Default: 2.
    pub shape_step: usize,
    /// Downsampled values the shape detector learns from as one batch; it reports nothing
    /// until twice as many have passed. Default: 84.
    pub shape_warmup: usize,
    /// Most shape categories kept per series, each 144 bytes; 0 turns the shape detector off.
    /// Default: 128 (18 KiB).
    pub shape_categories: usize,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            baseline_alphas: vec![0.1, 0.01, 0.001],
            novelty_window: 150,
            warmup: 100,
            seasonal_bucket_secs: 3600,
            seasonal_periods_secs: vec![86_400, 7 * 86_400],
            seasonal_alpha: 0.75,
            shape_weight: 0.75,
            shape_step: 2,
            shape_warmup: 84,
            shape_categories: 128,
        }
    }
}

#[derive(Debug, Clone)]
struct Ewm {
    alpha: f64,
    mean: f64,
    var: f64,
}

impl Ewm {
    /// How many of its standard deviations `x` is from its mean.
    fn surprise(&self, x: f64) -> f64 {
        let spread = self.var.sqrt() + 1e-9 * (1.0 + self.mean.abs());
        (x - self.mean).abs() / spread
    }

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
    /// Per season, per bucket of it: the bucket's average and how many values it has seen
    /// (no seasons when turned off).
    seasons: Vec<(i64, Vec<(Ewm, u32)>)>,
    shape: Option<ShapeDetector>,
}

/// Values a seasonal bucket must have seen before it is asked.
const SEASONAL_MIN_SEEN: u32 = 2;

impl AnomalyDetector {
    /// A detector that has seen nothing.
    pub fn new(config: AnomalyConfig) -> Self {
        let baselines = config.baseline_alphas.iter().map(|&alpha| Ewm { alpha, mean: 0.0, var: 0.0 }).collect();
        let width = config.seasonal_bucket_secs;
        let empty = (Ewm { alpha: config.seasonal_alpha, mean: 0.0, var: 0.0 }, 0);
        let seasons = match width {
            0 => Vec::new(),
            width => config
                .seasonal_periods_secs
                .iter()
                .filter(|&&period| period >= width)
                .map(|&period| (period as i64, vec![empty.clone(); period.div_ceil(width) as usize]))
                .collect(),
        };
        let shape = (config.shape_weight > 0.0 && config.shape_categories > 0).then(|| {
            ShapeDetector::new(ShapeSettings {
                step: config.shape_step,
                warmup: config.shape_warmup,
                capacity: config.shape_categories,
            })
        });
        Self { config, baselines, recent: VecDeque::new(), seen: 0, seasons, shape }
    }

    /// Scores `value` observed at `at_secs` (Unix seconds), with the seasonal baseline; see
    /// [`Self::score`].
    pub fn score_at(&mut self, at_secs: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let width = self.config.seasonal_bucket_secs.max(1) as i64;
        let mut seasonal: Option<f64> = None;
        for (period, buckets) in &mut self.seasons {
            let last = buckets.len() - 1;
            let (bucket, seen) = &mut buckets[((at_secs.rem_euclid(*period) / width) as usize).min(last)];
            if *seen == 0 {
                bucket.mean = value;
            }
            if *seen >= SEASONAL_MIN_SEEN {
                let surprise = bucket.surprise(value);
                seasonal = Some(seasonal.map_or(surprise, |s| s.min(surprise)));
            }
            bucket.update(value);
            *seen = seen.saturating_add(1);
        }
        self.score_with(value, seasonal)
    }

    /// Scores `value` (then learns it): 0 is normal, near 1 is anomalous. A value that is not a
    /// finite number scores 0 and is not learned.
    pub fn score(&mut self, value: f64) -> f64 {
        self.score_with(value, None)
    }

    fn score_with(&mut self, value: f64, seasonal: Option<f64>) -> f64 {
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
            surprise = surprise.max(baseline.surprise(value));
            baseline.update(value);
        }
        if let Some(seasonal) = seasonal {
            surprise = surprise.min(seasonal);
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

        let shape = self.shape.as_mut().map_or(0.0, |shape| shape.score(value));
        if self.seen <= self.config.warmup {
            return 0.0;
        }
        let novelty = (surprise - recent_max).clamp(0.0, 1.0);
        let z = surprise * novelty;
        let shape = if shape > 0.0 { (self.config.shape_weight * shape).min(1.0) } else { 0.0 };
        (z / (z + 4.0)).max(shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [0, 1) from a multiplicative hash of `i`.
    pub(super) fn noise(i: u64) -> f64 {
        (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64 / (1u64 << 24) as f64
    }

    fn calm(i: usize) -> f64 {
        100.0 + (i as f64 * 0.05).sin() * 5.0 + ((i * 7919) % 13) as f64 * 0.1
    }

    #[test]
    fn a_calm_series_scores_low_a_spike_high_and_its_aftermath_low_again() {
        // The surprise alone: the shape detector reports a spike once its downsampled point is
        // complete, which may be the point after it.
        let mut detector = AnomalyDetector::new(AnomalyConfig { shape_weight: 0.0, ..AnomalyConfig::default() });
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
    fn with_the_shape_detector_too_a_spike_is_news_and_the_calm_after_it_is_not() {
        let threshold = crate::MetricConfig::default().anomaly_threshold;
        let mut detector = AnomalyDetector::new(AnomalyConfig::default());
        let calm_scores: Vec<f64> = (0..2_000).map(|i| detector.score(calm(i))).collect();
        assert!(calm_scores[1_000..].iter().all(|s| *s < threshold));
        assert!(detector.score(400.0) >= threshold);
        let after: Vec<f64> = (2_001..2_300).map(|i| detector.score(calm(i))).collect();
        // The pair holding the spike may be reported as a shape on its second point.
        assert!(after[1..].iter().all(|s| *s < threshold), "{:?}", &after[..20]);
    }

    /// Every 5 minutes for `days`, shaped like NAB's `art_daily` series: about 20 at night and
    /// 80 by day, ramping up from 08:00 and down from 18:00, with noise of ±5.
    fn daily(days: i64) -> impl Iterator<Item = (i64, f64)> {
        (0..days * 288).map(|i| {
            let hour = ((i * 5) % 1440) as f64 / 60.0;
            let level = 20.0 + 60.0 * ((hour - 8.0).clamp(0.0, 1.0) - (hour - 18.0).clamp(0.0, 1.0));
            let noise = ((i * 7919 + 13) % 101) as f64 / 10.0 - 5.0;
            (1_700_006_400 + i * 300, level + noise)
        })
    }

    #[test]
    fn a_daily_cycle_learned_by_the_hour_raises_fewer_alarms_and_a_break_in_it_still_stands_out() {
        let mut plain = AnomalyDetector::new(AnomalyConfig::default());
        let mut seasonal = AnomalyDetector::new(AnomalyConfig::default());
        let (mut plain_alarms, mut seasonal_alarms) = (0, 0);
        for (n, (at, value)) in daily(14).enumerate() {
            let (p, s) = (plain.score(value), seasonal.score_at(at, value));
            if n >= 3 * 288 {
                plain_alarms += usize::from(p > 0.3);
                seasonal_alarms += usize::from(s > 0.3);
            }
        }
        assert!(seasonal_alarms < plain_alarms, "{seasonal_alarms} vs {plain_alarms}");
        // Day 15, 03:00: the day's level in the middle of the night.
        let at = 1_700_006_400 + 14 * 86_400 + 3 * 3_600;
        let broken = seasonal.score_at(at, 80.0);
        assert!(broken > 0.5, "{broken}");
    }

    /// A square wave between 20 and 80 (noise of 2 from a hash) that holds each level for
    /// `half` points, from point `from` to `to`.
    fn square(from: usize, to: usize, half: usize) -> impl Iterator<Item = f64> {
        (from..to).map(move |i| {
            let noise = noise(i as u64);
            if (i / half).is_multiple_of(2) {
                20.0 + 2.0 * noise
            } else {
                80.0 + 2.0 * noise
            }
        })
    }

    #[test]
    fn a_rhythm_that_quickens_within_the_usual_levels_is_news_to_the_shape_only() {
        let threshold = crate::MetricConfig::default().anomaly_threshold;
        let with_shape = AnomalyConfig::default();
        let without = AnomalyConfig { shape_weight: 0.0, ..with_shape.clone() };
        for (config, expect_news) in [(with_shape, true), (without, false)] {
            let mut detector = AnomalyDetector::new(config);
            let usual: Vec<f64> = square(0, 4_000, 40).map(|value| detector.score(value)).collect();
            let quicker: Vec<f64> = square(4_000, 4_200, 4).map(|value| detector.score(value)).collect();
            let most = |scores: &[f64]| scores.iter().copied().fold(0.0, f64::max);
            assert!(most(&usual[1_000..]) < threshold, "the usual rhythm: {}", most(&usual[1_000..]));
            assert_eq!(most(&quicker) >= threshold, expect_news, "the quicker rhythm: {}", most(&quicker));
        }
    }

    #[test]
    fn without_buckets_a_timed_score_is_the_plain_score() {
        let config = AnomalyConfig { seasonal_bucket_secs: 0, ..AnomalyConfig::default() };
        let (mut timed, mut plain) = (AnomalyDetector::new(config.clone()), AnomalyDetector::new(config));
        for (at, value) in daily(3) {
            assert_eq!(timed.score_at(at, value), plain.score(value));
        }
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
