//! Errors of the registry.

/// Result of registry operations.
pub type RegistryResult<T> = Result<T, RegistryError>;

/// What went wrong, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No such instance. The API answers 404.
    #[error("service instance {0} is not registered")]
    NotFound(String),
    /// A bad registration; the message names the field. The API answers 422.
    #[error("invalid registration: {0}")]
    Invalid(String),
    /// The storage failed.
    #[error("registry storage failed")]
    Storage(#[source] aiops_knowledge::KnowledgeError),
}

impl From<sqlx::Error> for RegistryError {
    fn from(err: sqlx::Error) -> Self {
        Self::Storage(aiops_knowledge::KnowledgeError::Backend { backend: "sqlite", source: err.into() })
    }
}
