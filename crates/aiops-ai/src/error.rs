//! Errors of the AI layer.
//!
//! No variant ever carries an API key: details that come from a provider pass through the
//! transport's redaction before they reach an error.

/// Result of AI layer operations.
pub type AiResult<T> = Result<T, AiError>;

/// What went wrong, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// The request or the configuration is wrong (empty input, bad schema, missing key).
    /// Retrying won't help.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A budget would be exceeded; nothing was sent. Retry later or not at all.
    #[error("over budget: {0}")]
    OverBudget(String),
    /// The provider cannot be reached or kept failing: retries are exhausted or its circuit
    /// breaker is open. Retry later.
    #[error("{provider} is unavailable: {detail}")]
    Unavailable {
        /// Which provider.
        provider: String,
        /// What happened.
        detail: String,
    },
    /// The provider refused the request with a client error (bad key, invalid request, request
    /// too large). The same request will fail again.
    #[error("{provider} rejected the request with HTTP {status}: {detail}")]
    Rejected {
        /// Which provider.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's error type and message.
        detail: String,
    },
    /// The provider answered, but not as its wire format or the requested schema says.
    #[error("{provider} sent a malformed answer: {detail}")]
    Malformed {
        /// Which provider.
        provider: String,
        /// What is wrong with it.
        detail: String,
    },
}
