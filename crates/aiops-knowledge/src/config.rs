//! `[knowledge]` in aiops.toml: which engine holds the knowledge graph and the audit log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{AuditLog, KnowledgeError, KnowledgeResult, KnowledgeStore, PgKnowledgeStore, SqliteKnowledgeStore};

/// The variant picks the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum KnowledgeConfig {
    /// One SQLite file in the data directory (default).
    Sqlite(SqliteConfig),
    /// PostgreSQL with pgvector, shared by several instances.
    Postgres(PostgresConfig),
}

/// Settings of the PostgreSQL engine. The connection URL (which may hold a password) comes
/// from an environment variable or a file, never from the config text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// Environment variable holding the URL (`postgres://user:pass@host:5432/db`).
    /// Default: `AIOPS_KNOWLEDGE_URL`.
    pub url_env: String,
    /// File holding the URL; used instead of `url_env` when set.
    pub url_file: Option<PathBuf>,
    /// Embedding dimension of the store; must match the embedder. Default: 384.
    pub dimensions: usize,
    /// Connections in the pool. Default: 8.
    pub max_connections: u32,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self { url_env: "AIOPS_KNOWLEDGE_URL".into(), url_file: None, dimensions: 384, max_connections: 8 }
    }
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
    /// The in-process vector index.
    pub vector_index: VectorIndexConfig,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self { path: None, dimensions: 384, vector_index: VectorIndexConfig::default() }
    }
}

/// `[knowledge.vector_index]`: how the SQLite engine's in-process vector index searches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorIndexConfig {
    /// Up to this many vectors every search is an exact scan; beyond, the vectors are
    /// partitioned into about √n lists. Default: 20,000 (a scan of a few milliseconds).
    pub exact_up_to: usize,
    /// Share of the lists a partitioned search scans (at least 8 lists): more finds more of
    /// the true nearest neighbours and takes longer. Within (0, 1]. Default: 0.05.
    pub probe_share: f64,
}

impl Default for VectorIndexConfig {
    fn default() -> Self {
        Self { exact_up_to: 20_000, probe_share: 0.05 }
    }
}

/// The opened knowledge backends.
#[derive(Debug, Clone)]
pub struct Knowledge {
    /// The graph.
    pub store: Arc<dyn KnowledgeStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// The database itself, for the other parts that keep their tables beside the graph
    /// (the registry).
    pub database: Database,
}

/// The connection pool of the knowledge database.
#[derive(Debug, Clone)]
pub enum Database {
    /// The embedded SQLite file.
    Sqlite(sqlx::SqlitePool),
    /// A PostgreSQL server.
    Postgres(sqlx::PgPool),
}

impl KnowledgeConfig {
    /// The SQLite file of the embedded engine.
    pub fn sqlite_path(&self, data_dir: &Path) -> PathBuf {
        match self {
            Self::Sqlite(cfg) => cfg.path.clone().unwrap_or_else(|| data_dir.join("aiops.db")),
            Self::Postgres(_) => data_dir.join("aiops.db"),
        }
    }

    /// Embedding dimension of the store.
    pub fn dimensions(&self) -> usize {
        match self {
            Self::Sqlite(cfg) => cfg.dimensions,
            Self::Postgres(cfg) => cfg.dimensions,
        }
    }

    /// Opens the configured engine and applies migrations. `env` looks up environment
    /// variables (the caller decides where they come from).
    ///
    /// # Errors
    /// When the database cannot be opened, its URL is not configured, or its schema is newer
    /// than this binary.
    pub async fn build(&self, data_dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> KnowledgeResult<Knowledge> {
        match self {
            Self::Sqlite(cfg) => {
                let store = Arc::new(
                    SqliteKnowledgeStore::open_with(
                        &self.sqlite_path(data_dir),
                        cfg.dimensions,
                        cfg.vector_index.clone(),
                    )
                    .await?,
                );
                let database = Database::Sqlite(store.pool().clone());
                Ok(Knowledge { store: store.clone(), audit: store, database })
            }
            Self::Postgres(cfg) => {
                let url = match &cfg.url_file {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|err| {
                            KnowledgeError::Invalid(format!(
                                "knowledge.url_file {} cannot be read: {err}",
                                path.display()
                            ))
                        })?
                        .trim()
                        .to_owned(),
                    None => env(&cfg.url_env).ok_or_else(|| {
                        KnowledgeError::Invalid(format!(
                            "environment variable {} (knowledge.url_env) is not set",
                            cfg.url_env
                        ))
                    })?,
                };
                let store = Arc::new(PgKnowledgeStore::connect(&url, cfg.dimensions, cfg.max_connections).await?);
                let database = Database::Postgres(store.pool().clone());
                Ok(Knowledge { store: store.clone(), audit: store, database })
            }
        }
    }
}
