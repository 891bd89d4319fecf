//! Runs the checks that are due and turns their results into damped health statuses.
//!
//! Flap damping follows Consul's thresholds: a check changes to warning or critical only
//! after `failures_before_critical` bad runs in a row, and passes again only after
//! `successes_before_passing` good ones. A lost heartbeat (silence longer than the TTL) is
//! critical at once: there is no run to repeat.
//!
//! The schedule and the damping state live in the registry, not here: every core instance
//! sharing a registry runs a `HealthChecker`, each due check is leased to one of them, and a
//! dead instance's leases run out and go to the others.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aiops_model::{HealthChange, HealthStatus};
use serde::{Deserialize, Serialize};

use crate::probe::{self, ProbeContext};
use crate::{CheckRecord, CheckState, Clock, DueCheck, Registry, RegistryResult, ServiceInstance, SystemClock};

/// Settings of the registry (`[registry]` in aiops.toml): defaults for checks that do not
/// set their own, and where registrations are read from at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Default time between runs of one check, in milliseconds. Default: 1000.
    pub interval_ms: u64,
    /// Default timeout of one run, in milliseconds. Default: 1000.
    pub timeout_ms: u64,
    /// Default bad runs in a row before a check changes status. Default: 2.
    pub failures_before_critical: u32,
    /// Default good runs in a row before a failing check passes again. Default: 1.
    pub successes_before_passing: u32,
    /// How long a core instance holds the checks it claimed, in milliseconds; when it dies,
    /// its checks move to another instance after this long. Runs are cut at half of it.
    /// Default: 10000.
    pub lease_ms: u64,
    /// Most output kept from one run (command output, reasons), in bytes. Default: 4096.
    pub max_output_bytes: usize,
    /// Most checks one instance runs per round. Default: 256.
    pub max_checks_per_round: usize,
    /// A directory of registrations (`*.toml` or `*.json`, one instance per file) registered
    /// at start. Default: none.
    pub services_dir: Option<PathBuf>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1000,
            timeout_ms: 1000,
            failures_before_critical: 2,
            successes_before_passing: 1,
            lease_ms: 10_000,
            max_output_bytes: 4096,
            max_checks_per_round: 256,
            services_dir: None,
        }
    }
}

impl RegistryConfig {
    /// What is wrong with these settings, one line per problem.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(100..=86_400_000).contains(&self.interval_ms) {
            problems.push("registry.interval_ms must be within 100..=86400000".to_owned());
        }
        if self.timeout_ms == 0 || self.timeout_ms > crate::MAX_TIMEOUT_MS {
            problems.push(format!("registry.timeout_ms must be within 1..={}", crate::MAX_TIMEOUT_MS));
        }
        if self.failures_before_critical == 0 || self.successes_before_passing == 0 {
            problems.push("registry.failures_before_critical and successes_before_passing must be at least 1".into());
        }
        if self.lease_ms < 1000 {
            problems.push("registry.lease_ms must be at least 1000".to_owned());
        }
        if self.max_output_bytes == 0 || self.max_checks_per_round == 0 {
            problems.push("registry.max_output_bytes and max_checks_per_round must be at least 1".to_owned());
        }
        problems
    }
}

/// What one round of checks changed.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Status changes of instances, each reported once across all core instances.
    pub changes: Vec<HealthChange>,
    /// Instances deregistered after being critical too long.
    pub deregistered: Vec<ServiceInstance>,
}

/// Runs due checks for one core instance (`owner`).
#[derive(Debug)]
pub struct HealthChecker {
    config: RegistryConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    owner: String,
}

/// The damped outcome of a run: (status, failures, successes).
pub(crate) fn damp(
    state: &CheckState,
    probe: HealthStatus,
    immediate: bool,
    failures_before: u32,
    successes_before: u32,
) -> (HealthStatus, u32, u32) {
    if probe == HealthStatus::Passing {
        let successes = state.successes.saturating_add(1);
        let status = if state.status == HealthStatus::Passing || successes >= successes_before {
            HealthStatus::Passing
        } else {
            state.status
        };
        (status, 0, successes)
    } else {
        let failures = state.failures.saturating_add(1);
        let status = if immediate || failures >= failures_before { probe } else { state.status };
        (status, failures, 0)
    }
}

impl HealthChecker {
    /// A checker that claims checks as `owner` (unique per core instance) and reads the wall clock.
    pub fn new(config: RegistryConfig, http: reqwest::Client, owner: impl Into<String>) -> Self {
        Self { config, http, clock: Arc::new(SystemClock), owner: owner.into() }
    }

    /// The same checker reading `clock` (tests use a [`crate::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Who this checker claims checks as.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims the due checks, runs them, records their damped results, and deregisters
    /// instances that stayed critical too long.
    ///
    /// # Errors
    /// When the registry cannot be read. A failing check is not an error, and one check's
    /// storage error does not lose the others' results.
    pub async fn run_due(&self, registry: &dyn Registry) -> RegistryResult<CheckReport> {
        let lease = Duration::from_millis(self.config.lease_ms);
        let due = registry.claim_due_checks(&self.owner, lease, self.config.max_checks_per_round).await?;
        // Checks are I/O bound: run them together so that their timeouts do not add up.
        let results = futures_util::future::join_all(due.iter().map(|check| self.run_one(check))).await;
        let mut report = CheckReport::default();
        for record in results {
            match registry.record_check(&self.owner, record.clone()).await {
                Ok(Some(change)) => {
                    tracing::info!(service = %change.service, instance = %change.instance_id, from = change.from.as_str(), to = change.to.as_str(), reason = %change.reason, "Service health changed.");
                    report.changes.push(change);
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(instance = %record.instance_id, check = %record.check_id, error = %err, "Recording a check result failed; its lease runs out and the check runs again.");
                }
            }
        }
        report.deregistered = registry.reap_critical().await?;
        for gone in &report.deregistered {
            tracing::warn!(service = %gone.registration.name, instance = %gone.registration.instance_id, since = %gone.status_since, "Deregistered an instance that stayed critical too long.");
        }
        Ok(report)
    }

    async fn run_one(&self, due: &DueCheck) -> CheckRecord {
        let check = &due.definition;
        let timeout = Duration::from_millis(check.timeout_ms.unwrap_or(self.config.timeout_ms))
            .min(Duration::from_millis(self.config.lease_ms / 2));
        let ctx = ProbeContext {
            http: &self.http,
            timeout,
            max_output_bytes: self.config.max_output_bytes,
            now: self.clock.now(),
        };
        let mut probe = probe::run(&ctx, &due.instance, check).await;
        truncate_utf8(&mut probe.output, self.config.max_output_bytes);
        let (status, failures, successes) = damp(
            &due.state,
            probe.status,
            probe.heartbeat_lost,
            check.failures_before_critical.unwrap_or(self.config.failures_before_critical),
            check.successes_before_passing.unwrap_or(self.config.successes_before_passing),
        );
        let interval = Duration::from_millis(check.interval_ms.unwrap_or(self.config.interval_ms));
        CheckRecord {
            instance_id: due.instance.registration.instance_id.clone(),
            check_id: due.state.id.clone(),
            status,
            output: probe.output,
            failures,
            successes,
            next_due: self.clock.now() + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX),
            heartbeat_lost: probe.heartbeat_lost || probe.refused,
        }
    }
}

fn truncate_utf8(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}
