//! Shape novelty: whether the last few points, taken together, trace a shape this series has
//! not traced before. It catches what a per-point surprise cannot: spikes of a usual height
//! that come more often than usual, a rhythm that breaks, an oscillation within the usual
//! range.
//!
//! The design follows ARTime (Mark Hampton, 2021; the ARTime detector of NAB): the series is
//! downsampled to one value per `step` points (the most extreme one when it stands out), each
//! value is placed on a grid of 80 levels of the range seen so far, values near the running
//! median snap to it, and the last [`WINDOW`] values make a feature vector: their Haar
//! wavelet transform (the shape, whatever the level) and the levels themselves. A fuzzy ART
//! network with dual vigilance clusters those vectors online:
//! - a vector that resonates with a category (match at least the upper vigilance) refines it;
//! - one that matches between the two vigilances starts a category in the same cluster;
//! - one below the lower vigilance starts a new cluster: a shape not seen before, and a
//!   candidate anomaly. It is reported unless masked: for [`MASK`] downsampled points after a
//!   report, and after a new cluster or a change of vigilances until [`MASK`] points in a row
//!   started none; a match far below the last report's breaks through either mask.
//!
//! Both vigilances follow the series: the upper one the mean match, the lower one the lowest
//! matches of the last half trend window, rising slowly and falling with the shortfalls.
//!
//! Where this departs from ARTime, so that it needs no look-ahead and bounded memory:
//! - The range is the one seen so far, not the file's minimum and maximum given in advance.
//!   When it widens, every category's level bounds are mapped onto the new range (fuzzy ART
//!   categories are boxes, and an affine map keeps a box a box), so what was learned is kept.
//!   It forgets what is older than the previous epoch of [`RANGE_EPOCH`] values, so that one
//!   absurd value does not flatten every later shape for good.
//! - The warm-up is a fixed number of downsampled points, not 15% of a file's known length,
//!   and a second one as long follows in which the detector runs but reports nothing.
//! - The median is a running estimate that moves by a small step of the range, not a count
//!   of every value ever seen.
//! - At most `capacity` categories: when full, a new one replaces the least recently used.

use std::collections::VecDeque;

/// Downsampled values per feature vector (a power of two, for the Haar transform).
const WINDOW: usize = 8;
/// Features per vector: the wavelet coefficients, then the levels.
const FEATURES: usize = 2 * WINDOW;
/// Complement-coded width of a vector or category: features, then one minus each.
const WIDTH: usize = 2 * FEATURES;
/// The feature that is the newest level, and its complement; their match is the "energy".
const NEWEST: usize = FEATURES - 1;
const NEWEST_COMPLEMENT: usize = WIDTH - 1;
/// Levels of the range.
const LEVELS: f64 = 80.0;
/// A value within this fraction of the range from the median is taken as the median.
const SNAP: f64 = 0.075;
/// How far the running median moves per value, as a fraction of the range.
const MEDIAN_STEP: f64 = 0.003;
/// Downsampled points after a report (or a new category) during which others are masked.
const MASK: usize = 12;
/// Downsampled values per epoch of the range: the range spans what the current epoch and the
/// one before it saw, so that one absurd value flattens later shapes for three epochs at most.
const RANGE_EPOCH: u32 = 5_000;
/// Vigilance while warming up.
const INITIAL_VIGILANCE: f64 = 0.8;
/// Highest upper vigilance.
const MAX_VIGILANCE: f64 = 0.97;

/// Settings of the shape detector.
#[derive(Debug, Clone, Copy)]
pub(super) struct ShapeSettings {
    /// Points per downsampled value.
    pub step: usize,
    /// Downsampled values learned as one batch, which set the first vigilances; then as many
    /// again are learned one by one, adapting the vigilances, before anything is reported.
    /// Also the trend window of the vigilances.
    pub warmup: usize,
    /// Most categories kept.
    pub capacity: usize,
}

#[derive(Debug, Clone)]
struct Category {
    /// Lower bounds of the box, then one minus its upper bounds.
    weights: [f32; WIDTH],
    /// The sum of the weights.
    size: f32,
    last_used: u64,
}

impl Category {
    fn new(weights: [f32; WIDTH], last_used: u64) -> Self {
        let mut category = Self { weights, size: 0.0, last_used };
        category.refresh_size();
        category
    }

    fn refresh_size(&mut self) {
        self.size = sum_of_smaller(&self.weights, &self.weights);
    }
}

/// The points of the downsampled value being gathered.
#[derive(Debug, Clone)]
struct Group {
    count: usize,
    /// Sum of each value divided by the step, so that no sum of finite values overflows.
    mean: f64,
    min: f64,
    max: f64,
}

impl Group {
    const EMPTY: Self = Self { count: 0, mean: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY };
}

/// The lowest match around each report: their sum and count, and the latest report's.
#[derive(Debug, Clone, Default)]
struct ReportMatches {
    sum: f64,
    count: u64,
    latest: f64,
}

/// How a vector was learned.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Learned {
    /// It refined a category.
    Resonant,
    /// It started a category in a known cluster.
    NewCategory,
    /// It started a new cluster: a shape not seen before.
    NewCluster,
}

/// The shape detector of one series.
#[derive(Debug, Clone)]
pub(super) struct ShapeDetector {
    settings: ShapeSettings,
    group: Group,
    /// Exponential average of the group means, each new one weighing half.
    moving_average: Option<f64>,
    low: f64,
    high: f64,
    /// Lowest and highest value of this epoch and of the one before, and this epoch's length.
    epoch: (f64, f64),
    previous_epoch: (f64, f64),
    epoch_length: u32,
    median: Option<f64>,
    recent: VecDeque<f64>,
    /// Vectors of the warm-up, learned together when it ends (then there are categories).
    warming: Vec<[f32; WIDTH]>,
    categories: Vec<Category>,
    /// Vectors learned, the clock of least recent use.
    clock: u64,
    lower_vigilance: f64,
    upper_vigilance: f64,
    /// Running mean of every best match, and how many.
    mean_match: (f64, u64),
    /// Downsampled points since the batch warm-up.
    since_warm_up: i64,
    last_report: i64,
    last_report_match: f64,
    last_vigilance_update: i64,
    /// Set by a new cluster and by a change of vigilances; cleared after [`MASK`] points in a
    /// row without a new cluster.
    masked_by_new_cluster: bool,
    since_new_cluster: usize,
    report_matches: ReportMatches,
    recent_matches: VecDeque<f64>,
    recent_shortfalls: VecDeque<f64>,
}

impl ShapeDetector {
    pub(super) fn new(settings: ShapeSettings) -> Self {
        let settings = ShapeSettings { step: settings.step.max(1), warmup: settings.warmup.max(2), ..settings };
        Self {
            settings,
            group: Group::EMPTY,
            moving_average: None,
            low: f64::INFINITY,
            high: f64::NEG_INFINITY,
            epoch: (f64::INFINITY, f64::NEG_INFINITY),
            previous_epoch: (f64::INFINITY, f64::NEG_INFINITY),
            epoch_length: 0,
            median: None,
            recent: VecDeque::with_capacity(WINDOW),
            warming: Vec::new(),
            categories: Vec::new(),
            clock: 0,
            lower_vigilance: INITIAL_VIGILANCE,
            upper_vigilance: INITIAL_VIGILANCE,
            mean_match: (0.0, 0),
            since_warm_up: 0,
            last_report: i64::MIN / 2,
            last_report_match: 0.0,
            last_vigilance_update: 0,
            masked_by_new_cluster: false,
            since_new_cluster: 0,
            report_matches: ReportMatches::default(),
            recent_matches: VecDeque::new(),
            recent_shortfalls: VecDeque::new(),
        }
    }

    /// Categories held (at most the capacity).
    #[cfg(test)]
    pub(super) fn categories(&self) -> usize {
        self.categories.len()
    }

    /// Scores a finite value: 0 on every point but the last of each downsampled group, and
    /// there how new the shape ending with it is, in [0, 1].
    pub(super) fn score(&mut self, value: f64) -> f64 {
        let group = &mut self.group;
        group.count += 1;
        group.mean += value / self.settings.step as f64;
        group.min = group.min.min(value);
        group.max = group.max.max(value);
        if group.count < self.settings.step {
            return 0.0;
        }
        let Group { mean, min, max, .. } = std::mem::replace(group, Group::EMPTY);
        let value = self.downsample(mean, min, max);
        self.update_range(value);
        let value = self.snap_to_median(value);
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(value);
        if self.recent.len() < WINDOW {
            return 0.0;
        }
        let features = self.features();
        if self.categories.is_empty() {
            self.warming.push(features);
            if self.warming.len() == self.settings.warmup {
                self.learn_warm_up();
            }
            return 0.0;
        }
        self.detect(&features)
    }

    /// The group's extreme farther from the moving average when it departs from the group's
    /// mean by at least 10% of that mean (a spike, up or down, survives downsampling), else the
    /// mean. (So near zero the extreme is nearly always taken.)
    fn downsample(&mut self, mean: f64, min: f64, max: f64) -> f64 {
        let average = self.moving_average.get_or_insert(mean);
        *average = *average / 2.0 + mean / 2.0;
        let average = *average;
        let extreme = if (max - average).abs() < (min - average).abs() { min } else { max };
        if (extreme - mean).abs() < 0.1 * mean.abs() {
            mean
        } else {
            extreme
        }
    }

    /// Widens the range to `value`, and at the end of an epoch narrows it to the last two
    /// epochs, mapping every category onto the new range. (Widths are computed in halves, so
    /// that the range of any finite values stays finite.)
    fn update_range(&mut self, value: f64) {
        self.epoch = (self.epoch.0.min(value), self.epoch.1.max(value));
        self.epoch_length += 1;
        let (mut low, mut high) = (self.low.min(value), self.high.max(value));
        if self.epoch_length == RANGE_EPOCH {
            (low, high) = (self.epoch.0.min(self.previous_epoch.0), self.epoch.1.max(self.previous_epoch.1));
            self.previous_epoch = std::mem::replace(&mut self.epoch, (f64::INFINITY, f64::NEG_INFINITY));
            self.epoch_length = 0;
        }
        if (low, high) == (self.low, self.high) {
            return;
        }
        let (old_half_span, new_half_span) = (self.half_span(), high / 2.0 - low / 2.0);
        // A flat range maps onto the new one too: its single level becomes a point of it.
        if old_half_span >= 0.0 && new_half_span > 0.0 {
            // A level x on the old range is scale * x + shift on the new one; a box's lower
            // bound maps the same way, and its stored complement 1 - u to 1 - (scale * u + shift).
            // Narrowing may push a bound past an end of the range: it stops there.
            let scale = (old_half_span / new_half_span) as f32;
            let shift = ((self.low / 2.0 - low / 2.0) / new_half_span) as f32;
            for category in &mut self.categories {
                for weight in &mut category.weights[WINDOW..FEATURES] {
                    *weight = (scale * *weight + shift).clamp(0.0, 1.0);
                }
                for weight in &mut category.weights[FEATURES + WINDOW..] {
                    *weight = (1.0 - scale * (1.0 - *weight) - shift).clamp(0.0, 1.0);
                }
                category.refresh_size();
            }
        }
        (self.low, self.high) = (low, high);
    }

    /// Half the width of the range (negative before the first value).
    fn half_span(&self) -> f64 {
        self.high / 2.0 - self.low / 2.0
    }

    /// Where `value` lies on the range, from 0 to 1 (0 while the range is flat).
    fn position(&self, value: f64) -> f64 {
        let half_span = self.half_span();
        if half_span > 0.0 {
            unit((value / 2.0 - self.low / 2.0) / half_span)
        } else {
            0.0
        }
    }

    fn snap_to_median(&mut self, value: f64) -> f64 {
        let half_span = self.half_span().max(0.0);
        let median = self.median.get_or_insert(value);
        *median += 2.0 * MEDIAN_STEP * half_span * sign(value - *median);
        if half_span > 0.0 && (value / 2.0 - *median / 2.0).abs() < SNAP * half_span {
            *median
        } else {
            value
        }
    }

    /// The complement-coded feature vector of the window: the Haar transform of its shape
    /// (scaled to [0, 1]), then its levels on the range.
    fn features(&self) -> [f32; WIDTH] {
        let mut levels = [0.0; WINDOW];
        for (level, value) in levels.iter_mut().zip(&self.recent) {
            *level = (self.position(*value) * LEVELS).round_ties_even() / LEVELS;
        }
        let mut shape = levels;
        to_unit_range(&mut shape);
        let mut shape = haar(shape);
        to_unit_range(&mut shape);
        let mut features = [0.0f32; WIDTH];
        for (i, value) in shape.iter().chain(&levels).enumerate() {
            features[i] = *value as f32;
            features[FEATURES + i] = 1.0 - *value as f32;
        }
        features
    }

    fn learn_warm_up(&mut self) {
        let warming = std::mem::take(&mut self.warming);
        self.categories.push(Category::new(warming[0], 0));
        let matches: Vec<f64> = warming[1..].iter().map(|features| self.learn(features).1).collect();
        let later = &matches[matches.len() / 2..];
        let vigilance =
            if later.is_empty() { INITIAL_VIGILANCE } else { later.iter().sum::<f64>() / later.len() as f64 };
        (self.lower_vigilance, self.upper_vigilance) = (vigilance, vigilance);
    }

    /// Learns a vector; returns how, its best match and that category's energy match.
    fn learn(&mut self, features: &[f32; WIDTH]) -> (Learned, f64, f64) {
        let mut best = (0, f64::NEG_INFINITY, 0.0);
        for (index, category) in self.categories.iter().enumerate() {
            let (matched, energy) = matching(category, features);
            if matched > best.1 {
                best = (index, matched, energy);
            }
        }
        let (index, matched, energy) = best;
        let (mean, count) = &mut self.mean_match;
        *count += 1;
        *mean += (matched - *mean) / *count as f64;
        self.clock += 1;
        if matched >= self.upper_vigilance {
            let category = &mut self.categories[index];
            for (weight, feature) in category.weights.iter_mut().zip(features) {
                *weight = weight.min(*feature);
            }
            category.refresh_size();
            category.last_used = self.clock;
            return (Learned::Resonant, matched, energy);
        }
        let new = Category::new(*features, self.clock);
        if self.categories.len() < self.settings.capacity {
            self.categories.push(new);
        } else if let Some(oldest) = self.categories.iter_mut().min_by_key(|category| category.last_used) {
            *oldest = new;
        }
        let learned = if matched >= self.lower_vigilance { Learned::NewCategory } else { Learned::NewCluster };
        (learned, matched, energy)
    }

    fn detect(&mut self, features: &[f32; WIDTH]) -> f64 {
        self.since_warm_up += 1;
        let now = self.since_warm_up;
        let trend = self.settings.warmup as i64;
        let mask = MASK as i64;
        let since_report = now - self.last_report;
        let update_after_report = since_report == mask;
        let update_for_trend = now - self.last_vigilance_update >= trend / 2;
        let masked_by_report = since_report <= mask;
        if self.masked_by_new_cluster && self.since_new_cluster >= MASK {
            self.masked_by_new_cluster = false;
        }

        let upper_vigilance = self.upper_vigilance;
        let (learned, matched, energy) = self.learn(features);
        self.since_new_cluster = if learned == Learned::NewCluster { 0 } else { self.since_new_cluster + 1 };
        push_bounded(&mut self.recent_matches, matched, self.settings.warmup / 2 + 1);
        push_bounded(&mut self.recent_shortfalls, upper_vigilance - matched, self.settings.warmup + 1);
        let reports = &mut self.report_matches;
        if since_report < mask && reports.count > 0 && matched < reports.latest {
            reports.sum += matched - reports.latest;
            reports.latest = matched;
        }

        let masked = self.masked_by_new_cluster || masked_by_report;
        let far_below_last = matched < self.last_report_match * if masked_by_report { 0.9 } else { 0.7 };
        let mut score = 0.0;
        if learned == Learned::NewCluster && (!masked || far_below_last) {
            score = self.confidence(matched, energy);
            let reports = &mut self.report_matches;
            reports.sum += matched;
            reports.count += 1;
            reports.latest = matched;
            self.last_report_match = matched;
            self.last_report = now;
        }
        self.masked_by_new_cluster |= learned == Learned::NewCluster;

        if update_after_report || update_for_trend {
            self.update_vigilances(now > trend);
            self.last_vigilance_update = now;
            self.masked_by_new_cluster = true;
        }
        // The first trend window only learns: a slow cycle's first round is all new shapes.
        if now <= trend {
            return 0.0;
        }
        score
    }

    /// How far below both vigilances the match fell, and how far the newest level is from
    /// anything the category has held.
    fn confidence(&self, matched: f64, energy: f64) -> f64 {
        let matched = matched.min(0.999);
        let below = |vigilance: f64| ((1.0 - matched) - (1.0 - vigilance)) / (1.0 - matched);
        let score = below(self.upper_vigilance) * 0.35 + below(self.lower_vigilance) * 0.65 + (1.0 - energy) * 1.5;
        score.clamp(0.0, 1.0)
    }

    fn update_vigilances(&mut self, past_first_trend: bool) {
        let upper = self.mean_match.0.min(MAX_VIGILANCE);
        let lowest_recent = self.recent_matches.iter().copied().fold(f64::INFINITY, f64::min);
        let mut lower = self.lower_vigilance;
        if lower <= lowest_recent {
            lower += (lowest_recent - lower) * 0.19;
        } else {
            let (sum, count) = self
                .recent_shortfalls
                .iter()
                .filter(|shortfall| **shortfall > 0.05)
                .fold((0.0, 0), |(sum, count), shortfall| (sum + shortfall.min(0.37), count + 1));
            let decrease = if past_first_trend && count > 0 { sum / count as f64 } else { 0.0 };
            lower -= decrease.max(0.01) / 2.0;
            let reports = &self.report_matches;
            if reports.count > 0 {
                lower = lower.max(reports.sum / reports.count as f64);
            }
        }
        self.lower_vigilance = lower.min(upper);
        self.upper_vigilance = upper;
    }
}

/// The match of a vector to a category (cube of the fuzzy overlap, times the square of the
/// newest level's overlap) and that newest-level overlap alone.
fn matching(category: &Category, features: &[f32; WIDTH]) -> (f64, f64) {
    let weights = &category.weights;
    let size = if category.size == 0.0 { 0.001 } else { category.size };
    let similarity = f64::from(sum_of_smaller(weights, features) / size);
    let newest = f64::from(weights[NEWEST] + weights[NEWEST_COMPLEMENT]);
    let energy = if newest > 0.0 {
        f64::from(
            smaller(weights[NEWEST], features[NEWEST])
                + smaller(weights[NEWEST_COMPLEMENT], features[NEWEST_COMPLEMENT]),
        ) / newest
    } else {
        1.0
    };
    (similarity.powi(3) * energy.powi(2), energy)
}

/// The sum of the element-wise minimum (the size of a box when given it twice), in eight
/// lanes so that it compiles to vector instructions: this loop is most of the detector's time.
fn sum_of_smaller(a: &[f32; WIDTH], b: &[f32; WIDTH]) -> f32 {
    let mut lanes = [0.0f32; 8];
    for (a, b) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for lane in 0..8 {
            lanes[lane] += smaller(a[lane], b[lane]);
        }
    }
    lanes.iter().sum()
}

/// The minimum, without `f32::min`'s care for NaN (there is none here), so it is one instruction.
#[inline(always)]
fn smaller(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

fn unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Shifts and scales to span [0, 1] (all zeros when flat).
fn to_unit_range(values: &mut [f64; WINDOW]) {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    values.iter_mut().for_each(|value| *value -= low);
    let high = values.iter().copied().fold(0.0, f64::max);
    if high > 0.0 {
        values.iter_mut().for_each(|value| *value /= high);
    }
}

/// The orthonormal Haar transform, all levels: the overall average, then the details from the
/// coarsest to the finest.
fn haar(mut values: [f64; WINDOW]) -> [f64; WINDOW] {
    let mut out = [0.0; WINDOW];
    let mut n = WINDOW;
    while n > 1 {
        let half = n / 2;
        let mut averages = [0.0; WINDOW];
        for i in 0..half {
            averages[i] = (values[2 * i] + values[2 * i + 1]) * std::f64::consts::FRAC_1_SQRT_2;
            out[half + i] = (values[2 * i] - values[2 * i + 1]) * std::f64::consts::FRAC_1_SQRT_2;
        }
        values = averages;
        n = half;
    }
    out[0] = values[0];
    out
}

fn push_bounded(queue: &mut VecDeque<f64>, value: f64, capacity: usize) {
    if queue.len() == capacity {
        queue.pop_front();
    }
    queue.push_back(value);
}

#[cfg(test)]
mod tests {
    use super::super::tests::noise;
    use super::*;

    #[test]
    fn the_haar_transform_orders_details_from_coarse_to_fine() {
        let out = haar([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        let root8 = 8f64.sqrt();
        assert!((out[0] - 4.0 / root8).abs() < 1e-12);
        assert!((out[1] - 4.0 / root8).abs() < 1e-12, "the coarsest detail holds the step: {out:?}");
        assert!(out[2..].iter().all(|detail| detail.abs() < 1e-12), "{out:?}");
    }

    const SETTINGS: ShapeSettings = ShapeSettings { step: 2, warmup: 84, capacity: 128 };

    #[test]
    fn noise_fills_at_most_the_capacity() {
        let mut detector = ShapeDetector::new(ShapeSettings { capacity: 16, ..SETTINGS });
        for i in 0..20_000 {
            let score = detector.score(1_000.0 * noise(i));
            assert!((0.0..=1.0).contains(&score), "{score}");
        }
        assert_eq!(detector.categories(), 16);
    }

    /// A sawtooth from 0 to 10 over 24 points, with a little noise.
    fn sawtooth(i: u64) -> f64 {
        (i % 24) as f64 * 10.0 / 23.0 + 0.2 * noise(i)
    }

    /// Points `from..to` of the sawtooth that the detector reports.
    fn sawtooth_reports(detector: &mut ShapeDetector, from: u64, to: u64) -> usize {
        (from..to).filter(|&i| detector.score(sawtooth(i)) > 0.0).count()
    }

    #[test]
    fn a_learned_rhythm_raises_nothing_before_or_after_a_spike_that_widens_the_range() {
        let mut detector = ShapeDetector::new(SETTINGS);
        sawtooth_reports(&mut detector, 0, 2_000);
        assert_eq!(sawtooth_reports(&mut detector, 2_000, 4_000), 0, "the sawtooth, learned");
        let categories = detector.categories();
        // One spike ten times the sawtooth's height: news, and the range is now ten times wider.
        let spike: f64 = [detector.score(100.0), detector.score(100.0)].into_iter().sum();
        assert!(spike > 0.5, "{spike}");
        // The same sawtooth, on the wider range: what was learned still matches after a few
        // new categories for the coarser levels.
        sawtooth_reports(&mut detector, 4_000, 4_200);
        assert_eq!(sawtooth_reports(&mut detector, 4_200, 8_000), 0, "the sawtooth after the spike");
        assert!(detector.categories() < categories + 40, "{} then {}", categories, detector.categories());
    }

    #[test]
    fn one_absurd_value_holds_the_range_for_three_epochs_at_most() {
        let mut detector = ShapeDetector::new(SETTINGS);
        sawtooth_reports(&mut detector, 0, 4_000);
        let usual = detector.half_span();
        // A glitch a million times the sawtooth's height: on that range every later window
        // is flat.
        detector.score(1e7);
        detector.score(1e7);
        assert!(detector.half_span() > 1e5 * usual);
        let three_epochs = 3 * u64::from(RANGE_EPOCH) * SETTINGS.step as u64;
        // Once back on the usual range, the finer levels may look new once.
        assert!(sawtooth_reports(&mut detector, 4_002, 4_002 + three_epochs) <= 1);
        assert!((detector.half_span() - usual).abs() < 0.02 * usual, "{} against {usual}", detector.half_span());
        // A spike three times the sawtooth's height is news again.
        let spike: f64 = [detector.score(30.0), detector.score(30.0)].into_iter().sum();
        assert!(spike > 0.5, "{spike}");
    }

    /// A detector whose range is `[low, high]` with one category: the box of values 2 to 6.
    fn holding_two_to_six(low: f64, high: f64) -> ShapeDetector {
        let mut detector = ShapeDetector::new(ShapeSettings { step: 1, warmup: 2, capacity: 4 });
        (detector.low, detector.high) = (low, high);
        let mut weights = [0.0f32; WIDTH];
        let (from, to) = (detector.position(2.0) as f32, detector.position(6.0) as f32);
        weights[WINDOW..FEATURES].fill(from);
        weights[FEATURES + WINDOW..].fill(1.0 - to);
        detector.categories.push(Category::new(weights, 0));
        detector
    }

    /// The levels of the box's bounds on the detector's range now.
    fn bounds(detector: &ShapeDetector) -> (f32, f32) {
        let weights = &detector.categories[0].weights;
        (weights[WINDOW], 1.0 - weights[FEATURES + WINDOW])
    }

    #[test]
    fn a_widened_range_maps_categories_onto_it_exactly() {
        let close = |(a, b): (f32, f32), (c, d): (f32, f32)| (a - c).abs() < 1e-6 && (b - d).abs() < 1e-6;
        // Upward: values 2 to 6 on [0, 20] are levels 0.1 to 0.3.
        let mut detector = holding_two_to_six(0.0, 10.0);
        detector.update_range(20.0);
        assert!(close(bounds(&detector), (0.1, 0.3)), "{:?}", bounds(&detector));
        // Downward: on [-10, 10] they are 0.6 to 0.8.
        let mut detector = holding_two_to_six(0.0, 10.0);
        detector.update_range(-10.0);
        assert!(close(bounds(&detector), (0.6, 0.8)), "{:?}", bounds(&detector));
        // From a flat range at 4 (every value at level 0) to [0, 4]: level 1.
        let mut detector = holding_two_to_six(4.0, 4.0);
        detector.update_range(0.0);
        assert!(close(bounds(&detector), (1.0, 1.0)), "{:?}", bounds(&detector));
    }

    #[test]
    fn the_largest_finite_values_overflow_nothing() {
        let mut detector = ShapeDetector::new(SETTINGS);
        for value in [f64::MAX, f64::MAX, -f64::MAX, -f64::MAX] {
            assert_eq!(detector.score(value), 0.0);
        }
        assert!(detector.moving_average.is_some_and(f64::is_finite));
        assert!(detector.half_span().is_finite() && detector.half_span() > 0.0);
        assert_eq!(detector.position(f64::MAX), 1.0);
        assert_eq!(detector.position(0.0), 0.5);
        // A dip of the group below the (finite) moving average is still its lower extreme.
        detector.score(-1e307);
        detector.score(0.0);
        assert_eq!(detector.recent.back(), Some(&-1e307));
    }
}
