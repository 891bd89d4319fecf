//! Typed payloads carried in [`crate::Envelope::data`] by the core's own event types.
//!
//! Agents exchange these through the mesh; keeping them here gives every part one definition.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Severity;

/// One HTTP request a service handled (`http.request`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Route template, e.g. `/api/bookmarks/{id}`, never the raw path (keeps cardinality low).
    pub route: String,
    /// Response status code.
    pub status: u16,
    /// Time to produce the response, in milliseconds.
    pub duration_ms: f64,
    /// W3C trace id, when the request carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Why the service refused the request (a 4xx: a validation error, a missing token), as
    /// it told the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

/// A response extension a service sets on a request it refuses (4xx), with what it told the
/// caller; the client library's request layer records it with the request
/// ([`RequestRecord::rejected`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRejection(pub String);

/// An error a service reports about itself (`service.error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceError {
    /// A short machine-friendly class, e.g. `database`.
    pub kind: String,
    /// The error message, as logged.
    pub message: String,
    /// Route template the error happened on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

/// A gauge a service reports about itself (`metric.sample`): a queue length, memory in use,
/// connections in a pool, ... The Monitor scores each series (service, name) for anomalies
/// and checks it against configured bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSample {
    /// The metric's name, e.g. `db_pool_in_use` (`[a-z0-9_.:]`, at most 100 bytes).
    pub name: String,
    /// Its value now.
    pub value: f64,
}

impl MetricSample {
    /// Longest metric name accepted.
    pub const MAX_NAME_LEN: usize = 100;

    /// Checks the name's form and that the value is a finite number.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= Self::MAX_NAME_LEN
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:".contains(&b));
        if !name_ok {
            return Err(format!(
                "metric name {:?} must be 1 to {} characters of [a-z0-9_.:]",
                self.name,
                Self::MAX_NAME_LEN
            ));
        }
        if !self.value.is_finite() {
            return Err(format!("metric {} has a value that is not a finite number", self.name));
        }
        Ok(())
    }
}

/// Health of a registered service instance, as Consul names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// All checks pass.
    Passing,
    /// Degraded.
    Warning,
    /// Failing or gone silent.
    Critical,
}

impl HealthStatus {
    /// The lowercase name used in JSON and SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passing => "passing",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "passing" => Some(Self::Passing),
            "warning" => Some(Self::Warning),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }
}

/// A service instance changed health (`service.health_changed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthChange {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub instance_id: String,
    /// Status before.
    pub from: HealthStatus,
    /// Status now.
    pub to: HealthStatus,
    /// Why, e.g. `GET /health returned 503` or `no heartbeat for 5s`.
    pub reason: String,
    /// Whether the instance's process is presumed dead: its heartbeat TTL expired, or its
    /// health URL refused the connection (nothing listens there any more).
    #[serde(default)]
    pub heartbeat_lost: bool,
}

/// How `GET /v1/services/{name}/pick` chooses among a service's healthiest instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PickStrategy {
    /// Each in turn.
    #[default]
    RoundRobin,
    /// The one with the fewest picks not yet released.
    LeastOutstanding,
    /// At random, in proportion to each instance's `weight`.
    WeightedRandom,
    /// The same key goes to the same instance while it stays healthy; when instances come or
    /// go, only the keys of the changed instance move (rendezvous hashing).
    ConsistentHash,
}

impl PickStrategy {
    /// Every strategy.
    pub const ALL: [Self; 4] = [Self::RoundRobin, Self::LeastOutstanding, Self::WeightedRandom, Self::ConsistentHash];

    /// The snake_case name used in URLs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastOutstanding => "least_outstanding",
            Self::WeightedRandom => "weighted_random",
            Self::ConsistentHash => "consistent_hash",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A service instance registered (`service.registered`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRegistered {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub instance_id: String,
    /// Where it serves.
    pub address: String,
    /// The instance was registered already and never deregistered: its process ended without
    /// saying goodbye (a crash) and a new one started. The Monitor counts these for crash
    /// loops, as it counts lost heartbeats.
    pub restarted: bool,
}

/// A service instance left the registry (`service.deregistered`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDeregistered {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub instance_id: String,
    /// Why, e.g. `deregistered by the API` or `critical for 60s`.
    pub reason: String,
}

/// What kind of symptom the Monitor saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Too many 5xx responses in the window.
    HttpErrorRatio,
    /// Latency percentile above its threshold.
    HttpLatency,
    /// An active health check fails.
    HealthCheckFailing,
    /// The service's process is gone (no heartbeat, nothing listening) or hangs.
    ServiceDown,
    /// An error message template suddenly occurs far more often than before, or a new one bursts.
    LogErrorSpike,
    /// The service burns its SLO's error budget too fast (multi-window burn rate).
    SloBurn,
    /// An instance keeps going down and coming back: it crashes and its supervisor restarts it.
    CrashLoop,
    /// A front end's calls to the service keep failing in the browser (a renamed route, a
    /// changed field, CORS, auth, ...): seen from the browser, joined with the back end.
    IntegrationFailure,
    /// A metric the service reports crossed a configured bound.
    MetricThreshold,
    /// A metric the service reports moved in a way its own history makes improbable, and no
    /// other symptom explained it.
    MetricAnomaly,
}

impl ProblemKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpErrorRatio => "http_error_ratio",
            Self::HttpLatency => "http_latency",
            Self::HealthCheckFailing => "health_check_failing",
            Self::ServiceDown => "service_down",
            Self::LogErrorSpike => "log_error_spike",
            Self::SloBurn => "slo_burn",
            Self::CrashLoop => "crash_loop",
            Self::IntegrationFailure => "integration_failure",
            Self::MetricThreshold => "metric_threshold",
            Self::MetricAnomaly => "metric_anomaly",
        }
    }
}

/// A detected problem (`problem.detected`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Unique id.
    pub id: String,
    /// The service with the symptom.
    pub service: String,
    /// The instance with the symptom, when it is known (health checks); healing acts on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The symptom.
    pub kind: ProblemKind,
    /// How bad.
    pub severity: Severity,
    /// One line for humans.
    pub summary: String,
    /// When the Monitor decided.
    pub detected_at: DateTime<Utc>,
    /// When the first sign of it arrived (the oldest bad observation in the window).
    pub first_seen: DateTime<Utc>,
    /// Observations that support it, e.g. sampled error messages.
    pub evidence: Vec<String>,
    /// Numbers behind it, e.g. `error_ratio`, `requests`, `p95_ms`.
    pub metrics: BTreeMap<String, f64>,
}

impl Problem {
    /// Text describing the problem's symptom, without ids or times, used to embed it and to
    /// find similar past problems. Numbers are left out so that two occurrences of one fault
    /// read the same.
    pub fn signature(&self) -> String {
        let mut text = format!("service {} symptom {}", self.service, self.kind.as_str());
        for line in &self.evidence {
            text.push_str(" | ");
            text.push_str(&mask_numbers(line));
        }
        text
    }
}

impl Problem {
    /// A short stable id of the problem's [`Problem::signature`]: two occurrences of one fault
    /// share it, so outcomes can be counted per fingerprint and fix.
    pub fn fingerprint(&self) -> String {
        // FNV-1a: stable across processes and releases, unlike the std hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.signature().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }
}

fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// Where a hypothesis came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HypothesisSource {
    /// A shipped or user pattern matched.
    Pattern {
        /// Pattern id.
        pattern_id: String,
        /// Pattern version.
        version: u32,
    },
    /// A similar past problem in the knowledge graph.
    Knowledge {
        /// The past problem's node id.
        problem_id: String,
        /// Cosine similarity of the two problems' signatures.
        similarity: f32,
    },
    /// The registry: a dependency of the service (direct or through others) is failing.
    Registry {
        /// The failing dependency.
        dependency: String,
        /// Its status.
        status: HealthStatus,
        /// The chain from the problem's service to it.
        path: Vec<String>,
    },
    /// A language model asked by the Diagnostic agent, whose answer passed validation.
    Llm {
        /// Provider name, e.g. `anthropic`.
        provider: String,
        /// Model name.
        model: String,
    },
}

/// The three kinds of evidence that propose fixes; the Learning agent records which was right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosisSource {
    /// The pattern library.
    Rules,
    /// Fixes that healed similar past problems.
    Knowledge,
    /// A language model.
    Llm,
}

impl DiagnosisSource {
    /// Every source.
    pub const ALL: [Self; 3] = [Self::Rules, Self::Knowledge, Self::Llm];

    /// `rules`, `knowledge` or `llm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rules => "rules",
            Self::Knowledge => "knowledge",
            Self::Llm => "llm",
        }
    }
}

/// What the language model said about a problem, and whether its answer was used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmReview {
    /// Provider name.
    pub provider: String,
    /// Model name.
    pub model: String,
    /// The answer passed validation and informs the diagnosis.
    pub accepted: bool,
    /// Why the answer was not used (provider down, over budget, malformed, a fix that does not
    /// exist, ...).
    #[serde(default)]
    pub rejection: Option<String>,
    /// Root cause it proposed.
    #[serde(default)]
    pub root_cause: Option<String>,
    /// Its confidence, 0..=1.
    #[serde(default)]
    pub confidence: Option<f64>,
    /// Evidence it cited.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// The candidate fix it chose, if any.
    #[serde(default)]
    pub solution_id: Option<String>,
    /// Model calls made.
    pub steps: u32,
    /// Tools it called, in order.
    #[serde(default)]
    pub tool_calls: Vec<String>,
    /// Tokens used over all steps.
    pub input_tokens: u64,
    /// Tokens produced over all steps.
    pub output_tokens: u64,
    /// Wall time of the consultation.
    pub latency_ms: u64,
}

/// One explanation of a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    /// Short title, e.g. `database connection pool exhausted`.
    pub title: String,
    /// The root cause it proposes.
    pub root_cause: String,
    /// 0..=1.
    pub confidence: f64,
    /// Observations supporting it.
    pub evidence: Vec<String>,
    /// Where it came from.
    pub source: HypothesisSource,
}

/// How invasive a remediation is. Ordered from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Cheap and harmless to try (clear a cache).
    Low,
    /// Interrupts some work (reset a pool, restart a worker).
    Medium,
    /// May lose work or change behaviour (restart a service, roll back a deploy).
    High,
}

impl RiskLevel {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// A remediation the Diagnostic agent proposes, with what is known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateAction {
    /// Stable id of this solution in the knowledge graph (tool plus parameters).
    pub solution_id: String,
    /// Tool to run.
    pub tool: String,
    /// Its parameters.
    pub params: serde_json::Value,
    /// How invasive it is.
    pub risk: RiskLevel,
    /// Title of the hypothesis it addresses.
    pub hypothesis: String,
    /// The pattern that proposed it, if any.
    #[serde(default)]
    pub pattern_id: Option<String>,
    /// That pattern's version.
    #[serde(default)]
    pub pattern_version: Option<u32>,
    /// Attempts on similar past problems.
    pub learned_attempts: u32,
    /// Successes on similar past problems.
    pub learned_successes: u32,
    /// Posterior mean of success (Beta(1,1) prior over the similarity-weighted history).
    pub expected_success: f64,
    /// How long verification may take, in milliseconds.
    pub verify_within_ms: u64,
    /// How many health probes in a row must pass.
    pub verify_consecutive_ok: u32,
    /// Tool and parameters that undo this action, if it can be undone.
    #[serde(default)]
    pub rollback: Option<(String, serde_json::Value)>,
    /// The service the fix acts on when it is not the problem's own: a failing dependency
    /// that explains the problem ("fix the dependency, not the dependent").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_service: Option<String>,
    /// Why it is ranked where it is.
    pub rationale: String,
    /// Which sources proposed it.
    #[serde(default)]
    pub proposed_by: Vec<DiagnosisSource>,
}

/// The Diagnostic agent's answer (`diagnosis.completed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Unique id.
    pub id: String,
    /// The problem diagnosed.
    pub problem: Problem,
    /// Ranked, most likely first.
    pub hypotheses: Vec<Hypothesis>,
    /// Remediations in the order Healing should try them.
    pub candidates: Vec<CandidateAction>,
    /// Similar past problems found: (node id, similarity).
    pub similar_problems: Vec<(String, f32)>,
    /// The language model's review, when one is configured.
    #[serde(default)]
    pub llm: Option<LlmReview>,
    /// When it was made.
    pub diagnosed_at: DateTime<Utc>,
}

/// Healing started a remediation (`action.started`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionStarted {
    /// Unique id of this action.
    pub action_id: String,
    /// The problem being healed.
    pub problem_id: String,
    /// Target service.
    pub service: String,
    /// Tool run.
    pub tool: String,
    /// Its parameters.
    pub params: serde_json::Value,
    /// 1 for the first candidate tried on this problem, 2 for the next, ...
    pub attempt: u32,
}

/// A remediation finished (`action.completed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// Unique id of this action.
    pub action_id: String,
    /// The problem being healed.
    pub problem: Problem,
    /// Knowledge id of the solution tried.
    pub solution_id: String,
    /// Tool run.
    pub tool: String,
    /// The service it ran on when not the problem's own (a failing dependency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_service: Option<String>,
    /// Its parameters.
    pub params: serde_json::Value,
    /// The pattern that proposed it, if any.
    pub pattern_id: Option<String>,
    /// That pattern's version.
    #[serde(default)]
    pub pattern_version: Option<u32>,
    /// Which attempt on this problem (1 = first).
    pub attempt: u32,
    /// The tool itself ran without error.
    pub executed: bool,
    /// The service was verified healthy within the deadline afterwards.
    pub verified: bool,
    /// A rollback was run after a failed verification.
    pub rolled_back: bool,
    /// Tool run time plus verification time, in milliseconds.
    pub duration_ms: u64,
    /// What happened, for humans.
    pub message: String,
    /// Which sources proposed the fix tried (copied from the candidate).
    #[serde(default)]
    pub proposed_by: Vec<DiagnosisSource>,
}

/// A problem was healed and verified, or cleared by itself before anything was done
/// (`problem.resolved`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemResolved {
    /// The problem.
    pub problem_id: String,
    /// Its service.
    pub service: String,
    /// The action that healed it (empty when it cleared by itself).
    pub action_id: String,
    /// Tool that healed it (empty when it cleared by itself).
    pub tool: String,
    /// From the first bad observation to verified recovery, in milliseconds.
    pub time_to_recover_ms: u64,
    /// The symptom went away with no action taken (the Monitor saw it clear).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cleared_by_itself: bool,
}

/// Healing could not or may not fix a problem (`problem.escalated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// The problem.
    pub problem_id: String,
    /// Its service.
    pub service: String,
    /// Why a human is needed.
    pub reason: String,
}

/// How far a (pattern, tool) pair is trusted to act alone: the healing safety ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustLevel {
    /// Only suggested to a human; never run.
    Suggest,
    /// Run once a human approved it.
    Approve,
    /// Run without asking.
    Auto,
}

impl TrustLevel {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suggest => "suggest",
            Self::Approve => "approve",
            Self::Auto => "auto",
        }
    }
}

/// A fix that waits for a human (`approval.requested`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// Its id, for approving or denying it.
    pub approval_id: String,
    /// The problem it would fix.
    pub problem: Problem,
    /// The fix.
    pub candidate: CandidateAction,
    /// The instance it would run against.
    pub instance_id: String,
    /// Why it needs a human, e.g. `high risk` or `reset_db_pool has not earned trust yet`.
    pub reason: String,
    /// When it was asked.
    pub requested_at: DateTime<Utc>,
    /// After this, a decision is refused and the fix never runs.
    pub expires_at: DateTime<Utc>,
}

/// A human's answer to an approval request (`approval.decided`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    /// The request decided.
    pub request: ApprovalRequest,
    /// Approved or denied.
    pub approved: bool,
    /// Who decided (the API token's name).
    pub by: String,
    /// Why.
    pub reason: String,
    /// When.
    pub decided_at: DateTime<Utc>,
}

/// The healing kill switch (`healing.kill_switch`): while engaged, no tool runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillSwitch {
    /// Engaged (true) or released.
    pub engaged: bool,
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_ignores_numbers_so_repeats_read_the_same() {
        let mut problem = Problem {
            id: "p1".into(),
            service: "bookmarks".into(),
            instance_id: None,
            kind: ProblemKind::HttpErrorRatio,
            severity: Severity::Error,
            summary: "s".into(),
            detected_at: Utc::now(),
            first_seen: Utc::now(),
            evidence: vec!["timed out after 250ms (12 times)".into()],
            metrics: BTreeMap::new(),
        };
        let first = problem.signature();
        problem.evidence = vec!["timed out after 300ms (7 times)".into()];
        assert_eq!(first, problem.signature());
        assert_eq!(first, "service bookmarks symptom http_error_ratio | timed out after #ms (# times)");
    }
}
