//! The pattern library: what failure looks like, and what to do about it.
//!
//! Three parts:
//! - [`Detector`]s turn a service's stream of observations (requests, errors) into
//!   [`Finding`]s when a symptom crosses its threshold: [`ErrorRatioDetector`],
//!   [`LatencyDetector`], [`BurnRateDetector`], [`ErrorTemplateDetector`], [`MetricDetector`].
//! - [`PatternLibrary`] holds declarative [`Pattern`]s (TOML files shipped with the binary plus
//!   user files) that recognise a problem from its symptom and evidence and say what its root
//!   cause is, how to fix it, how to verify the fix and how risky it is.
//!
//! - [`AnomalyDetector`] scores a metric series point by point (`anomaly.rs`).
//! - [`LogTemplateMiner`] learns log templates online from raw messages (`logs.rs`), so that a
//!   burst of a new or an error template can be noticed.
//!
//! Nothing here does I/O except reading pattern files; detectors are plain state machines
//! driven by event time, so they replay deterministically.

mod anomaly;
mod contract;
mod detector;
mod detectors;
mod error;
mod library;
mod logs;

pub use anomaly::{AnomalyConfig, AnomalyDetector};
pub use contract::ApiContract;
pub use detector::{Detector, Finding, Observation};
pub use detectors::{
    BurnRateConfig, BurnRateDetector, ErrorRatioDetector, ErrorTemplateConfig, ErrorTemplateDetector, LatencyDetector,
    MetricBound, MetricConfig, MetricDetector, WindowConfig,
};
pub use error::{PatternError, PatternResult};
pub use library::{Pattern, PatternLibrary, PatternMatch, Remediation, Signature, Verification};
pub use logs::{LogTemplate, LogTemplateMiner, MinerConfig, ParsedMessage, WILDCARD};
