//! The names of the event types the core produces and understands.
//!
//! Names follow `<subject>.<what happened>`. Services may publish any other type too; the
//! agents simply ignore what they do not understand.

/// A service handled an HTTP request (data: [`crate::RequestRecord`]).
pub const HTTP_REQUEST: &str = "http.request";
/// A service reports an error it hit (data: [`crate::ServiceError`]).
pub const SERVICE_ERROR: &str = "service.error";
/// A service reports a gauge's value (data: [`crate::MetricSample`]).
pub const METRIC_SAMPLE: &str = "metric.sample";
/// A page's failed or slow call to its API, seen in the browser ([`crate::BrowserRequest`]).
pub const BROWSER_REQUEST: &str = "browser.request";
/// An uncaught error or unhandled rejection in a page ([`crate::BrowserError`]).
pub const BROWSER_ERROR: &str = "browser.error";
/// A page load and how long it took ([`crate::BrowserPageLoad`]).
pub const BROWSER_PAGE_LOAD: &str = "browser.page_load";
/// A service instance registered itself or was registered (data: the instance as
/// `GET /v1/services` shows it).
pub const SERVICE_REGISTERED: &str = "service.registered";
/// A service instance was removed from the registry (data: [`crate::ServiceDeregistered`]).
pub const SERVICE_DEREGISTERED: &str = "service.deregistered";
/// A service instance changed health status (data: [`crate::HealthChange`]).
pub const SERVICE_HEALTH_CHANGED: &str = "service.health_changed";
/// The Monitor found a problem (data: [`crate::Problem`]).
pub const PROBLEM_DETECTED: &str = "problem.detected";
/// A problem was healed and verified (data: [`crate::ProblemResolved`]).
pub const PROBLEM_RESOLVED: &str = "problem.resolved";
/// Healing gave up or was not allowed to act; a human must look (data: [`crate::Escalation`]).
pub const PROBLEM_ESCALATED: &str = "problem.escalated";
/// The Diagnostic agent ranked hypotheses for a problem (data: [`crate::Diagnosis`]).
pub const DIAGNOSIS_COMPLETED: &str = "diagnosis.completed";
/// The Healing agent started a remediation (data: [`crate::ActionStarted`]).
pub const ACTION_STARTED: &str = "action.started";
/// A remediation finished, verified or not (data: [`crate::ActionOutcome`]).
pub const ACTION_COMPLETED: &str = "action.completed";
/// A fix waits for a human's approval (data: [`crate::ApprovalRequest`]).
pub const APPROVAL_REQUESTED: &str = "approval.requested";
/// A human approved or denied a fix (data: [`crate::ApprovalDecision`]).
pub const APPROVAL_DECIDED: &str = "approval.decided";
/// The healing kill switch was engaged or released (data: [`crate::KillSwitch`]).
pub const HEALING_KILL_SWITCH: &str = "healing.kill_switch";
/// The Learning agent updated the knowledge graph from an outcome.
pub const KNOWLEDGE_UPDATED: &str = "knowledge.updated";
/// Someone proposed a new remediation tool (data: the tool spec as TOML text in `spec`).
pub const TOOL_PROPOSED: &str = "tool.proposed";
/// The Builder agent validated and registered a tool.
pub const TOOL_REGISTERED: &str = "tool.registered";
/// The Builder agent rejected a proposed tool (data: `name`, `reason`).
pub const TOOL_REJECTED: &str = "tool.rejected";
/// An agent panicked or failed while handling an event; the coordinator restarted it.
pub const AGENT_FAILED: &str = "agent.failed";

/// Whether `event_type` matches `pattern`, where a pattern is an exact type, `*`, or a prefix
/// followed by `.*` (`problem.*` matches `problem.detected` but not `problems.x`).
pub fn matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => event_type.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.')),
        None => pattern == event_type,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcard_matches_only_whole_segments() {
        assert!(matches("problem.*", "problem.detected"));
        assert!(matches("*", "anything.at_all"));
        assert!(!matches("problem.*", "problems.detected"));
        assert!(!matches("problem.*", "problem"));
        assert!(matches("http.request", "http.request"));
        assert!(!matches("http.request", "http.requests"));
    }
}
