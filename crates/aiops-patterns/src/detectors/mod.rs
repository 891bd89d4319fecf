//! The built-in detectors, over a per-service sliding window of requests.

mod error_ratio;
mod latency;
mod window;

pub use error_ratio::ErrorRatioDetector;
pub use latency::LatencyDetector;
pub use window::WindowConfig;

#[cfg(test)]
mod tests;
