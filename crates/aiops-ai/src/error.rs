//! Errors of the AI layer.

/// Result of AI layer operations.
pub type AiResult<T> = Result<T, AiError>;

/// What went wrong, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// The request is wrong (empty input, bad schema). Retrying won't help.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A budget or rate limit would be exceeded. Retry later or not at all.
    #[error("over budget: {0}")]
    OverBudget(String),
    /// The provider cannot be reached or failed. Retry with backoff.
    #[error("{provider} is unavailable: {detail}")]
    Unavailable {
        /// Which provider.
        provider: String,
        /// What happened (never contains secrets).
        detail: String,
    },
}
