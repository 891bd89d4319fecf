//! `[knowledge]` in aiops.toml: which engine holds the knowledge graph and the audit log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{AuditLog, KnowledgeResult, KnowledgeStore, SqliteKnowledgeStore};

/// The variant picks the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum KnowledgeConfig {
    /// One SQLite file in the data directory (default).
    Sqlite(SqliteConfig),
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self::Sqlite(SqliteConfig::default())
    }
}

/// Settings of the SQLite engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    /// Database file. Default: `<data_dir>/aiops.db` (shared with the registry).
    pub path: Option<PathBuf>,
    /// Embedding dimension of the store; must match the embedder. Default: 384.
    pub dimensions: usize,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self { path: None, dimensions: 384 }
    }
}

/// The opened knowledge backends.
#[derive(Debug, Clone)]
pub struct Knowledge {
    /// The graph.
    pub store: Arc<dyn KnowledgeStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
}

impl KnowledgeConfig {
    /// The database file the embedded engine uses (other embedded parts share it).
    pub fn sqlite_path(&self, data_dir: &Path) -> PathBuf {
        match self {
            Self::Sqlite(cfg) => cfg.path.clone().unwrap_or_else(|| data_dir.join("aiops.db")),
        }
    }

    /// Opens the configured engine and applies migrations.
    ///
    /// # Errors
    /// When the database cannot be opened or its schema is newer than this binary.
    pub async fn build(&self, data_dir: &Path) -> KnowledgeResult<Knowledge> {
        match self {
            Self::Sqlite(cfg) => {
                let store = Arc::new(SqliteKnowledgeStore::open(&self.sqlite_path(data_dir), cfg.dimensions).await?);
                Ok(Knowledge { store: store.clone(), audit: store })
            }
        }
    }
}
