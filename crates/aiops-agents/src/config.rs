//! `[agents]` in aiops.toml: thresholds and limits of each agent.

use aiops_model::RiskLevel;
use aiops_patterns::{BurnRateConfig, ErrorTemplateConfig, MetricConfig, WindowConfig};
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
    /// After a problem is healed, how long a service's reports are left out of the detectors,
    /// in milliseconds: requests that were in flight during the fix still end in its error
    /// (a slow query started before the index came back), and would open a second problem.
    /// Default: 2000.
    pub settle_ms: u64,
    /// Spikes of an error message template (new, or far above its usual rate).
    pub error_templates: ErrorTemplateConfig,
    /// The availability (and optionally latency) objective whose burn rate pages.
    pub slo: BurnRateConfig,
    /// Times an instance's process ends (a lost heartbeat, a refused health check, a new
    /// process registering) within `crash_loop_window_ms` that make a crash loop. Default: 3.
    pub crash_loop_restarts: u32,
    /// The crash-loop window, in milliseconds. Default: 300000.
    pub crash_loop_window_ms: u64,
    /// Failures of one front-end call (same method, path and status, seen in the browser)
    /// within `browser_window_ms` that make an `integration_failure` problem. Default: 3.
    pub browser_min_failures: u32,
    /// The window for `browser_min_failures`, in milliseconds. Default: 30000.
    pub browser_window_ms: u64,
    /// Metrics services report (`metric.sample`): anomaly scoring and static bounds.
    pub metrics: MetricConfig,
    /// How long a metric anomaly waits for a stronger symptom of its service, in
    /// milliseconds. A symptom that comes (an error spike, a failing check) opens the problem
    /// with the anomaly as evidence; if none comes, the anomaly becomes a `metric_anomaly`
    /// problem of its own. Default: 30000.
    pub metric_anomaly_hold_ms: u64,
    /// A problem the detectors watch (error ratio, latency, burn rate, error templates,
    /// metrics) that no fix was started for is resolved as cleared by itself once none of
    /// them reports its symptom any more, but not before it has been open this long, in
    /// milliseconds. Default: 10000.
    pub clear_after_ms: u64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            window: WindowConfig::default(),
            error_ratio_threshold: 0.2,
            latency_p95_ms: 2000.0,
            tick_ms: 250,
            escalation_quiet_ms: 60_000,
            settle_ms: 2_000,
            error_templates: ErrorTemplateConfig::default(),
            slo: BurnRateConfig::default(),
            crash_loop_restarts: 3,
            crash_loop_window_ms: 300_000,
            browser_min_failures: 3,
            browser_window_ms: 30_000,
            metrics: MetricConfig::default(),
            metric_anomaly_hold_ms: 30_000,
            clear_after_ms: 10_000,
        }
    }
}

/// Diagnostic settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiagnosticConfig {
    /// Past problems at least this similar (cosine) inform the diagnosis. Default: 0.85: below
    /// that, two different faults reported in the same words ("a new error appeared ...") look
    /// alike to the embedding model.
    pub similar_min_score: f32,
    /// Most similar past problems looked at. Default: 5.
    pub similar_k: usize,
    /// How a configured language model is consulted.
    pub llm: LlmDiagnosisConfig,
}

impl Default for DiagnosticConfig {
    fn default() -> Self {
        Self { similar_min_score: 0.85, similar_k: 5, llm: LlmDiagnosisConfig::default() }
    }
}

/// Bounds of one consultation of the language model (used only when `[ai.provider]` is set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmDiagnosisConfig {
    /// Ask the model at all. Default: true.
    pub enabled: bool,
    /// Model calls per problem, the last one without tools. Default: 4.
    pub max_steps: u32,
    /// Output tokens per call. Default: 1024.
    pub max_tokens: u32,
    /// The whole consultation, after which the rule-based diagnosis is used. Default: 60 s.
    pub timeout_ms: u64,
}

impl Default for LlmDiagnosisConfig {
    fn default() -> Self {
        Self { enabled: true, max_steps: 4, max_tokens: 1024, timeout_ms: 60_000 }
    }
}

/// Healing settings: the safety limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealingConfig {
    /// Most remediation actions on one service per window. Default: 6.
    pub max_actions_per_service: u32,
    /// Most remediation actions on all services together per window. Default: 20.
    pub max_actions_total: u32,
    /// The rate-limit window, in seconds. Default: 600.
    pub window_secs: u64,
    /// Most candidates tried on one problem before escalating. Default: 3.
    pub max_attempts_per_problem: u32,
    /// Riskiest fix trusted to run alone from the start; riskier ones start at `approve`.
    /// Default: medium.
    pub max_auto_risk: RiskLevel,
    /// Verified successes in a row after which an approved fix (pattern × tool) runs alone.
    /// Default: 3.
    pub promote_after: u32,
    /// How long a request for approval can be answered, in seconds. Default: 900.
    pub approval_ttl_secs: u64,
    /// Time between verification probes, in milliseconds. Default: 200.
    pub probe_interval_ms: u64,
    /// Run tools in dry-run mode only (nothing is changed; nothing is verified). Default: false.
    pub dry_run: bool,
    /// Where escalations are posted as JSON (a chat or paging webhook). Default: none.
    pub escalation_webhook: Option<WebhookConfig>,
}

/// A webhook that hears about escalations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL, `http(s)://...`.
    pub url: String,
    /// An environment variable holding a bearer token for it, if it needs one.
    #[serde(default)]
    pub token_env: Option<String>,
}

impl Default for HealingConfig {
    fn default() -> Self {
        Self {
            max_actions_per_service: 6,
            max_actions_total: 20,
            window_secs: 600,
            max_attempts_per_problem: 3,
            max_auto_risk: RiskLevel::Medium,
            promote_after: 3,
            approval_ttl_secs: 900,
            probe_interval_ms: 200,
            dry_run: false,
            escalation_webhook: None,
        }
    }
}
