//! The knowledge graph: problems, solutions, patterns, insights and tools, linked by typed,
//! weighted edges, embedded for similarity search, with the success statistics of every
//! solution. It is what lets the core fix a repeat incident on the first try.
//!
//! Boundaries: [`KnowledgeStore`] (the graph) and [`AuditLog`] (the append-only record of
//! every action). Backends:
//! - [`SqliteKnowledgeStore`] (default): one SQLite file with an in-process vector index that
//!   is rebuilt from the file at start, so it survives restarts.
//! - [`PgKnowledgeStore`]: PostgreSQL with pgvector (HNSW, cosine), shared by several instances.
//!
//! The [`conformance`] suite states what every backend must do.

mod config;
mod error;
mod model;
mod postgres;
mod search;
mod sqlite;
mod store;
mod transfer;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use config::{Database, Knowledge, KnowledgeConfig, PostgresConfig, SqliteConfig, VectorIndexConfig};
pub use error::{BoxError, KnowledgeError, KnowledgeResult};
pub use model::{
    AuditEntry, Direction, Edge, Node, NodeKind, Outcome, Reached, Relation, ScoredNode, SimilarityQuery, SolutionStats,
};
pub use postgres::{apply_pg_migrations, PgKnowledgeStore};
pub use sqlite::{apply_migrations, open_sqlite_pool, SqliteKnowledgeStore};
pub use store::{AuditLog, KnowledgeStore};
pub use transfer::{export, import, Record, TransferCounts};
