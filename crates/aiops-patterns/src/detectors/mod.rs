//! The built-in detectors: over a per-service sliding window of requests (error ratio, latency),
//! over per-minute request counts (SLO burn rate),
//! over the templates of a service's error messages (error-template spikes), and over the
//! metrics a service reports (anomalies against each series' history, static bounds).

mod burn_rate;
mod error_ratio;
mod error_template;
mod latency;
mod metric;
mod window;

pub use burn_rate::{BurnRateConfig, BurnRateDetector};
pub use error_ratio::ErrorRatioDetector;
pub use error_template::{ErrorTemplateConfig, ErrorTemplateDetector};
pub use latency::LatencyDetector;
pub use metric::{MetricBound, MetricConfig, MetricDetector};
pub use window::WindowConfig;

#[cfg(test)]
mod tests;
