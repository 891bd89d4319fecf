//! `[agents]` in aiops.toml: thresholds and limits of each agent.

use aiops_model::RiskLevel;
use aiops_patterns::WindowConfig;
use serde::{Deserialize, Serialize};

/// Settings of all agents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// The Monitor.
    pub monitor: MonitorConfig,
    /// The Diagnostic agent.
    pub diagnostic: DiagnosticConfig,
    /// The Healing agent.
    pub healing: HealingConfig,
}

/// Monitor settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Sliding window of the request detectors.
    pub window: WindowConfig,
    /// Share of 5xx responses that is a problem, 0..1. Default: 0.2.
    pub error_ratio_threshold: f64,
    /// p95 latency that is a problem, in milliseconds. Default: 2000.
    pub latency_p95_ms: f64,
    /// How often health checks are looked at, in milliseconds. Default: 250.
    pub tick_ms: u64,
    /// After an escalation, how long a service's symptoms are not reported again, in
    /// milliseconds. Default: 60000.
    pub escalation_quiet_ms: u64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            window: WindowConfig::default(),
            error_ratio_threshold: 0.2,
            latency_p95_ms: 2000.0,
            tick_ms: 250,
            escalation_quiet_ms: 60_000,
        }
    }
}

/// Diagnostic settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiagnosticConfig {
    /// Past problems at least this similar (cosine) inform the diagnosis. Default: 0.7.
    pub similar_min_score: f32,
    /// Most similar past problems looked at. Default: 5.
    pub similar_k: usize,
}

impl Default for DiagnosticConfig {
    fn default() -> Self {
        Self { similar_min_score: 0.7, similar_k: 5 }
    }
}

/// Healing settings: the safety limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealingConfig {
    /// Most remediation actions on one service per window. Default: 6.
    pub max_actions_per_service: u32,
    /// The rate-limit window, in seconds. Default: 600.
    pub window_secs: u64,
    /// Most candidates tried on one problem before escalating. Default: 3.
    pub max_attempts_per_problem: u32,
    /// Riskiest action taken without a human's approval. Default: medium.
    pub max_auto_risk: RiskLevel,
    /// Time between verification probes, in milliseconds. Default: 200.
    pub probe_interval_ms: u64,
    /// Run tools in dry-run mode only (nothing is changed; nothing is verified). Default: false.
    pub dry_run: bool,
}

impl Default for HealingConfig {
    fn default() -> Self {
        Self {
            max_actions_per_service: 6,
            window_secs: 600,
            max_attempts_per_problem: 3,
            max_auto_risk: RiskLevel::Medium,
            probe_interval_ms: 200,
            dry_run: false,
        }
    }
}
