//! The `Detector` trait and what flows through it.

use std::collections::BTreeMap;
use std::fmt;

use aiops_model::{ProblemKind, RequestRecord, Severity};
use chrono::{DateTime, Utc};

/// One thing a service did, as a detector sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A handled request.
    Request {
        /// Service name.
        service: String,
        /// When (event time).
        at: DateTime<Utc>,
        /// The request.
        record: RequestRecord,
    },
    /// An error the service reported.
    Error {
        /// Service name.
        service: String,
        /// When (event time).
        at: DateTime<Utc>,
        /// `kind: message`.
        message: String,
    },
    /// A gauge the service reported.
    Metric {
        /// Service name.
        service: String,
        /// When (event time).
        at: DateTime<Utc>,
        /// The metric's name.
        name: String,
        /// Its value.
        value: f64,
    },
}

impl Observation {
    /// The service observed.
    pub fn service(&self) -> &str {
        match self {
            Self::Request { service, .. } | Self::Error { service, .. } | Self::Metric { service, .. } => service,
        }
    }
}

/// A symptom that crossed its threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Service with the symptom.
    pub service: String,
    /// The symptom.
    pub kind: ProblemKind,
    /// How bad.
    pub severity: Severity,
    /// One line for humans.
    pub summary: String,
    /// Numbers behind it.
    pub metrics: BTreeMap<String, f64>,
    /// Oldest bad observation in the window.
    pub first_seen: DateTime<Utc>,
}

/// Watches observations of many services and reports symptoms.
///
/// # Contract
/// - A detector reports a symptom once when it starts, and not again until it has cleared
///   (hysteresis), or until [`Detector::reset`] for that service.
/// - Time is the observations' event time, never the wall clock, so replaying the same
///   observations gives the same findings.
pub trait Detector: Send + fmt::Debug {
    /// Name for logs, e.g. `error_ratio`.
    fn name(&self) -> &'static str;
    /// Feeds one observation; returns a finding when a symptom starts.
    fn observe(&mut self, observation: &Observation) -> Option<Finding>;
    /// Forgets a service's window, e.g. after its problem was healed.
    fn reset(&mut self, service: &str);
    /// Whether a symptom this detector reported for `service` is still there at event time
    /// `now` (it has not cleared). When the detector cannot tell (no new observations), the
    /// answer is yes: a problem is never closed for lack of news.
    fn active(&self, service: &str, now: DateTime<Utc>) -> bool;
}
