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

impl RegistryError {
    /// A storage error of `backend`: unreachable or busy (worth retrying), or anything else.
    pub(crate) fn storage(backend: &'static str, err: sqlx::Error) -> Self {
        use aiops_knowledge::KnowledgeError as K;
        let retryable = matches!(err, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed);
        Self::Storage(if retryable {
            K::Unavailable { backend, source: err.into() }
        } else {
            K::Backend { backend, source: err.into() }
        })
    }
}
