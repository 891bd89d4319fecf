//! Errors of the knowledge graph, grouped by what the caller does next.

/// Result of knowledge operations.
pub type KnowledgeResult<T> = Result<T, KnowledgeError>;

/// Boxed cause of a backend failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// Not there. The API answers 404.
    #[error("node {id} not found")]
    NotFound {
        /// The missing node.
        id: String,
    },
    /// An embedding of the wrong size. The API answers 422.
    #[error("embedding has {actual} dimensions, the store uses {expected}")]
    DimensionMismatch {
        /// The store's dimension.
        expected: usize,
        /// What was given.
        actual: usize,
    },
    /// Other invalid input (unknown relation, malformed node data). Nothing was written.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The stored schema is newer than this binary understands.
    #[error(
        "the database schema of `{component}` is version {found}, this binary knows up to {supported}: upgrade aiops"
    )]
    SchemaTooNew {
        /// Which set of tables.
        component: String,
        /// Version in the database.
        found: i64,
        /// Newest version this binary knows.
        supported: i64,
    },
    /// Worth retrying with backoff: locked database, pool timeout.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// Any other engine failure; treat as a bug or corruption.
    #[error("{backend} failed: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The cause.
        #[source]
        source: BoxError,
    },
}
