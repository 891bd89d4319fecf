//! The agents: observe → detect → diagnose → heal → learn.
//!
//! Each agent implements [`Agent`]: it names the event types it consumes and handles one
//! event at a time; some also have periodic work ([`Agent::tick`]). Agents talk only through
//! the event mesh and the part traits held in [`AgentContext`], never to each other directly,
//! so the loop can be replayed, audited and spread over several instances.
//!
//! | agent | consumes | emits |
//! |---|---|---|
//! | [`Monitor`] | `http.request`, `service.error`, `problem.resolved`, `problem.escalated`; ticks health checks | `problem.detected`, `service.health_changed` |
//! | [`Diagnostic`] | `problem.detected` | `diagnosis.completed` |
//! | [`Healing`] | `diagnosis.completed` | `action.started`, `action.completed`, `problem.resolved`, `problem.escalated` |
//! | [`Learning`] | `action.completed` | `knowledge.updated` |
//! | [`Builder`] | `tool.proposed` | `tool.registered`, `tool.rejected` |
//!
//! The [`Coordinator`] runs every agent in its own tasks, restarts one that panics, and
//! reports the failure as `agent.failed` while the others go on.

mod agent;
mod builder;
mod clusters;
mod config;
mod consult;
mod coordinator;
mod diagnostic;
mod error;
mod healing;
mod integration;
mod ladder;
mod learning;
mod monitor;
mod oversight;
mod sampling;

pub use agent::{Agent, AgentContext, Streams};
pub use builder::{restore_tools, Builder};
pub use clusters::{candidate_patterns, CANDIDATE_PREFIX, CLUSTER_MIN_SIMILARITY, CLUSTER_READY_AT};
pub use config::{AgentsConfig, DiagnosticConfig, HealingConfig, LlmDiagnosisConfig, MonitorConfig, WebhookConfig};
pub use coordinator::Coordinator;
pub use diagnostic::Diagnostic;
pub use error::{AgentError, AgentResult};
pub use healing::Healing;
pub use ladder::trust_node_id;
pub use learning::{pattern_node_id, record_pattern_versions, source_accuracy, source_insight_id, Learning};
pub use monitor::{Monitor, MAX_CLOCK_SKEW};
pub use oversight::{approvals, kill_switch, Approval};

/// Knowledge id of a solution: the tool and its parameters, so the same fix is one node.
pub fn solution_id(tool: &str, params: &serde_json::Value) -> String {
    if params.as_object().is_none_or(|o| o.is_empty()) {
        format!("solution:{tool}")
    } else {
        format!("solution:{tool}:{params}")
    }
}

/// The knowledge id of running `tool` with `params` on another service than the problem's
/// (`target_service`, a failing dependency): kept apart from the same fix on the service
/// itself, since their records differ.
pub fn solution_id_on(tool: &str, params: &serde_json::Value, target_service: Option<&str>) -> String {
    match target_service {
        Some(service) => format!("{}@{service}", solution_id(tool, params)),
        None => solution_id(tool, params),
    }
}

/// The standard agent set, in the order the coordinator starts them.
pub fn standard_agents(config: &AgentsConfig) -> Vec<std::sync::Arc<dyn Agent>> {
    vec![
        std::sync::Arc::new(Monitor::new(config.monitor.clone())),
        std::sync::Arc::new(Diagnostic::new(config.diagnostic.clone())),
        std::sync::Arc::new(Healing::new(config.healing.clone())),
        std::sync::Arc::new(Learning::new()),
        std::sync::Arc::new(Builder::new()),
    ]
}
