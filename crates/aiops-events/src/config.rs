//! `[events]` in aiops.toml: which event mesh backend, and its settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{EmbeddedEventBus, EventBus, EventsResult, RedisConfig, RedisEventBus};

/// The variant picks the engine; nothing else in the program changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventsConfig {
    /// Durable log files in the data directory (default).
    Embedded(EmbeddedConfig),
    /// Redis Streams, shared by several instances.
    Redis(RedisConfig),
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self::Embedded(EmbeddedConfig::default())
    }
}

/// Settings of the embedded log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Directory of the log files. Default: `<data_dir>/events`.
    pub dir: Option<PathBuf>,
    /// Deliveries of one event to a group before it goes to the dead-letter stream. Default: 5.
    pub max_deliveries: u32,
    /// Time a consumer may hold an event before it is delivered again, in milliseconds. Default: 30000.
    pub visibility_timeout_ms: u64,
    /// Most events accepted in one publish call. Default: 1000.
    pub max_batch: usize,
    /// Size at which a segment file is sealed and a new one started, in bytes. Default: 67108864.
    pub segment_max_bytes: u64,
    /// Hard bound of one stream on disk, in bytes; publishing beyond it fails. Default: 17179869184.
    pub max_bytes: u64,
    /// Events kept per stream at least; older whole segments that every group is done with
    /// are deleted beyond it. Default: 5000000.
    pub retention_max_events: Option<u64>,
    /// Age after which whole segments that every group is done with are deleted, in seconds.
    /// Default: 604800 (7 days).
    pub retention_max_age_secs: Option<u64>,
    /// Unacknowledged deliveries one group may hold. Default: 10000.
    pub max_pending: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_deliveries: 5,
            visibility_timeout_ms: crate::bus::default_visibility().as_millis() as u64,
            max_batch: 1000,
            segment_max_bytes: 64 * 1024 * 1024,
            max_bytes: 16 * 1024 * 1024 * 1024,
            retention_max_events: Some(5_000_000),
            retention_max_age_secs: Some(7 * 24 * 3600),
            max_pending: 10_000,
        }
    }
}

impl EventsConfig {
    /// Opens the configured backend. `data_dir` is where the embedded default keeps its files.
    ///
    /// # Errors
    /// When the backend cannot be opened (unwritable directory, corrupt log head).
    pub async fn build(&self, data_dir: &Path) -> EventsResult<Arc<dyn EventBus>> {
        Ok(match self {
            Self::Embedded(cfg) => {
                let dir = cfg.dir.clone().unwrap_or_else(|| data_dir.join("events"));
                Arc::new(EmbeddedEventBus::open(&dir, cfg.clone()).await?)
            }
            Self::Redis(cfg) => Arc::new(RedisEventBus::connect(cfg).await?),
        })
    }
}
