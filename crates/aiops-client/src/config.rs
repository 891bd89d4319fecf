//! `ClientConfig`: who the service is and how hard the client works to reach the core.

use std::collections::BTreeMap;
use std::time::Duration;

/// Largest batch the core accepts in one `POST /v1/events/batch`.
pub(crate) const CORE_MAX_BATCH: usize = 500;

/// Settings of an [`crate::AiopsClient`]. Build one with [`ClientConfig::new`] and adjust the
/// public fields; every field has a sensible default except the three `new` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base URL of the AI-Ops core, e.g. `http://127.0.0.1:7400`.
    pub core_url: String,
    /// Service name, e.g. `bookmarks`; the subject of every event.
    pub service: String,
    /// This instance's id, unique within the service. Default: `{service}-{uuid v7}`.
    ///
    /// A stable id (derived from the listen address, say) lets a restarted instance take over
    /// its previous registration instead of leaving a dead one behind until its TTL expires.
    pub instance_id: String,
    /// This instance's base URL as the core should reach it, e.g. `http://127.0.0.1:8080`.
    pub address: String,
    /// Remediation capabilities the instance offers, e.g. `db.reset_pool`.
    pub capabilities: Vec<String>,
    /// Free-form tags for the registry.
    pub tags: Vec<String>,
    /// Free-form key/value metadata for the registry.
    pub metadata: BTreeMap<String, String>,
    /// Names of what the service depends on, e.g. `sqlite`.
    pub dependencies: Vec<String>,
    /// Path of the health endpoint under `address`. Default: `/health`.
    pub health_path: String,
    /// Heartbeat TTL the core enforces; the client sends a heartbeat every `ttl_secs / 3`.
    /// Default: 5.
    pub ttl_secs: u64,
    /// How often buffered events are shipped, in milliseconds. Default: 200.
    pub flush_interval_ms: u64,
    /// Most events per batch; a full batch is shipped without waiting for the interval.
    /// Clamped to 1..=500 (the core's limit). Default: 200.
    pub max_batch: usize,
    /// Most events held in memory; beyond it the oldest are dropped and counted. Default: 10 000.
    pub max_buffered: usize,
    /// How long [`crate::AiopsClient::shutdown`] keeps trying to ship what is buffered before it
    /// deregisters and gives up, in milliseconds. Default: 2000.
    pub shutdown_timeout_ms: u64,
}

impl ClientConfig {
    /// A config with the defaults for everything but the core's URL, the service's name and
    /// the address at which the core reaches this instance.
    pub fn new(core_url: impl Into<String>, service: impl Into<String>, address: impl Into<String>) -> Self {
        let service = service.into();
        Self {
            core_url: core_url.into(),
            instance_id: format!("{service}-{}", aiops_model::new_id()),
            service,
            address: address.into(),
            capabilities: Vec::new(),
            tags: Vec::new(),
            metadata: BTreeMap::new(),
            dependencies: Vec::new(),
            health_path: "/health".to_owned(),
            ttl_secs: 5,
            flush_interval_ms: 200,
            max_batch: 200,
            max_buffered: 10_000,
            shutdown_timeout_ms: 2_000,
        }
    }

    /// The URL the core probes for health: `address` joined with `health_path`.
    pub fn health_url(&self) -> String {
        let base = self.address.trim_end_matches('/');
        if self.health_path.starts_with('/') {
            format!("{base}{}", self.health_path)
        } else {
            format!("{base}/{}", self.health_path)
        }
    }

    /// The CloudEvents `source` of this instance's events: `{service}/{instance_id}`.
    pub fn source(&self) -> String {
        format!("{}/{}", self.service, self.instance_id)
    }

    pub(crate) fn heartbeat_interval(&self) -> Duration {
        (Duration::from_secs(self.ttl_secs) / 3).max(Duration::from_millis(100))
    }

    pub(crate) fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms.max(1))
    }

    pub(crate) fn batch_limit(&self) -> usize {
        self.max_batch.clamp(1, CORE_MAX_BATCH)
    }

    pub(crate) fn buffer_limit(&self) -> usize {
        self.max_buffered.max(1)
    }

    pub(crate) fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}
