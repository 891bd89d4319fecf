//! Errors of the event mesh, grouped by what the caller does next.

/// Result of event mesh operations.
pub type EventsResult<T> = Result<T, EventsError>;

/// What went wrong, and so what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The caller's input is wrong (bad stream name, invalid envelope). Retrying won't help.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A bound was hit (batch too large, backlog full). Retry later, or slower.
    #[error("over capacity: {0}")]
    Overloaded(String),
    /// The backend cannot be reached or cannot make the event durable right now. Retry with backoff.
    #[error("{backend} is unavailable: {source}")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Stored data is unreadable. Treat as corruption until proven otherwise.
    #[error("{backend} holds corrupt data: {detail}")]
    Corrupt {
        /// Which backend.
        backend: &'static str,
        /// What is wrong, where.
        detail: String,
    },
}
