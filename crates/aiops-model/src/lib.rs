//! The shared nouns of AI-Ops Core.
//!
//! Every part speaks in these types: the CloudEvents-shaped [`Envelope`] that travels on the
//! event mesh, the [`event_type`] names, [`Severity`], and the payloads that agents exchange
//! ([`Problem`], [`Diagnosis`], [`ActionOutcome`], ...).
//!
//! This crate does no I/O, has no async code and depends on no other workspace crate, so that
//! every other crate (and any service using the client library) can share it cheaply.

mod browser;
mod envelope;
pub mod event_type;
mod payload;
mod severity;

pub use browser::{
    BrowserBatch, BrowserError, BrowserEvent, BrowserPageLoad, BrowserRequest, MAX_BROWSER_BATCH, MAX_BROWSER_STACK,
    MAX_BROWSER_TEXT,
};
pub use envelope::{Envelope, EnvelopeError, MAX_DATA_BYTES};
pub use payload::{
    ActionOutcome, ActionStarted, ApprovalDecision, ApprovalRequest, CandidateAction, Diagnosis, DiagnosisSource,
    Escalation, HealthChange, HealthStatus, Hypothesis, HypothesisSource, KillSwitch, LlmReview, MetricSample,
    PickStrategy, Problem, ProblemKind, ProblemResolved, RequestRecord, RequestRejection, RiskLevel,
    ServiceDeregistered, ServiceError, ServiceRegistered, TrustLevel,
};
pub use severity::Severity;

/// Capabilities that let the core run programs on its own machine for a service (a command
/// tool that names its target, e.g. `systemctl start {target.service}`) start with this.
/// Advertising one, like registering a command check, takes the admin scope.
pub const HOST_CAPABILITY_PREFIX: &str = "host.";

/// Creates a new time-ordered unique id (UUID v7) as a string.
///
/// Time ordering keeps ids of one run sortable by creation, which helps when reading logs.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
