//! Turns heartbeats and active HTTP checks into health statuses.
//!
//! Flap damping follows Consul's thresholds: an instance becomes critical only after
//! `failures_before_critical` failed checks in a row, and passing again only after
//! `successes_before_passing` good ones. A lost heartbeat (silence longer than the TTL) is
//! critical at once: there is no check to repeat.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aiops_model::{HealthChange, HealthStatus};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::{Registry, RegistryResult, ServiceInstance, ServiceQuery};

/// Settings of the health checker (`[registry]` in aiops.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckerConfig {
    /// Time between checks of one instance, in milliseconds. Default: 1000.
    pub interval_ms: u64,
    /// Timeout of one HTTP check, in milliseconds. Default: 1000.
    pub timeout_ms: u64,
    /// Failed checks in a row before an instance turns critical. Default: 2.
    pub failures_before_critical: u32,
    /// Good checks in a row before a failing instance is passing again. Default: 1.
    pub successes_before_passing: u32,
}

impl Default for HealthCheckerConfig {
    fn default() -> Self {
        Self { interval_ms: 1000, timeout_ms: 1000, failures_before_critical: 2, successes_before_passing: 1 }
    }
}

#[derive(Debug, Default)]
struct Streak {
    failures: u32,
    successes: u32,
    last_checked: Option<tokio::time::Instant>,
}

/// Runs the checks that are due and records status changes in the registry.
#[derive(Debug)]
pub struct HealthChecker {
    config: HealthCheckerConfig,
    http: reqwest::Client,
    streaks: Mutex<HashMap<String, Streak>>,
}

enum Verdict {
    Good,
    Bad(String),
    HeartbeatLost(String),
}

impl HealthChecker {
    /// A checker using `http` for its HTTP checks.
    pub fn new(config: HealthCheckerConfig, http: reqwest::Client) -> Self {
        Self { config, http, streaks: Mutex::new(HashMap::new()) }
    }

    /// Checks every instance whose interval has passed; returns the status changes made.
    ///
    /// # Errors
    /// When the registry cannot be read or written. A failing check is not an error.
    pub async fn run_due(&self, registry: &dyn Registry) -> RegistryResult<Vec<HealthChange>> {
        let now = tokio::time::Instant::now();
        let interval = Duration::from_millis(self.config.interval_ms);
        let instances = registry.instances(&ServiceQuery::default()).await?;
        let due: Vec<ServiceInstance> = {
            let mut streaks = self.lock();
            streaks.retain(|id, _| instances.iter().any(|i| i.registration.instance_id == *id));
            instances
                .into_iter()
                .filter(|instance| {
                    let streak = streaks.entry(instance.registration.instance_id.clone()).or_default();
                    let due = streak.last_checked.is_none_or(|at| now.duration_since(at) >= interval);
                    if due {
                        streak.last_checked = Some(now);
                    }
                    due
                })
                .collect()
        };
        // Checks are I/O bound: run them together so that their timeouts do not add up.
        let verdicts = futures_util::future::join_all(due.iter().map(|instance| self.check(instance))).await;
        let mut changes = Vec::new();
        for (instance, verdict) in due.iter().zip(verdicts) {
            let id = &instance.registration.instance_id;
            let (status, reason, heartbeat_lost) = {
                let mut streaks = self.lock();
                let streak = streaks.entry(id.clone()).or_default();
                match verdict {
                    Verdict::HeartbeatLost(reason) => {
                        streak.successes = 0;
                        streak.failures = self.config.failures_before_critical;
                        (Some(HealthStatus::Critical), reason, true)
                    }
                    Verdict::Bad(reason) => {
                        streak.successes = 0;
                        streak.failures += 1;
                        let status = if streak.failures >= self.config.failures_before_critical {
                            Some(HealthStatus::Critical)
                        } else {
                            None
                        };
                        (status, reason, false)
                    }
                    Verdict::Good => {
                        streak.failures = 0;
                        streak.successes += 1;
                        let recovering = instance.status != HealthStatus::Passing;
                        let status = if !recovering || streak.successes >= self.config.successes_before_passing {
                            Some(HealthStatus::Passing)
                        } else {
                            None
                        };
                        (status, "all checks pass".to_owned(), false)
                    }
                }
            };
            if let Some(status) = status {
                // One instance's storage error must not lose the changes of the others.
                let changed = match registry.set_status(id, status, &reason).await {
                    Ok(changed) => changed,
                    Err(err) => {
                        tracing::warn!(instance = %id, error = %err, "Recording a health status failed; the next check retries.");
                        continue;
                    }
                };
                if let Some(mut change) = changed {
                    change.heartbeat_lost = heartbeat_lost;
                    tracing::info!(service = %change.service, instance = %id, from = change.from.as_str(), to = change.to.as_str(), reason = %change.reason, "Service health changed.");
                    changes.push(change);
                }
            }
        }
        Ok(changes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Streak>> {
        self.streaks.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn check(&self, instance: &ServiceInstance) -> Verdict {
        let reg = &instance.registration;
        if let (Some(ttl), Some(last)) = (reg.ttl_secs, instance.last_heartbeat) {
            let silent_ms = (Utc::now() - last).num_milliseconds();
            if silent_ms > (ttl * 1000) as i64 {
                return Verdict::HeartbeatLost(format!(
                    "no heartbeat for {:.1}s (ttl {ttl}s)",
                    silent_ms as f64 / 1000.0
                ));
            }
        }
        let Some(url) = &reg.health_url else { return Verdict::Good };
        let request = self.http.get(url).timeout(Duration::from_millis(self.config.timeout_ms));
        match request.send().await {
            Ok(response) if response.status().is_success() => Verdict::Good,
            Ok(response) => Verdict::Bad(format!("GET {url} returned {}", response.status().as_u16())),
            Err(err) if err.is_timeout() => {
                Verdict::Bad(format!("GET {url} timed out after {}ms", self.config.timeout_ms))
            }
            Err(err) if err.is_connect() => Verdict::Bad(format!("GET {url}: connection refused")),
            Err(err) => Verdict::Bad(format!("GET {url} failed: {err}")),
        }
    }
}
