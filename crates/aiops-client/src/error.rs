//! Why a client could not start.
//!
//! Starting a client fails only on a mistake in its setup: once running, the client reports
//! trouble with the core through logs and counters, never through errors, because a failing
//! core must not fail the service. The one exception is a pick ([`crate::PickError`]): the
//! service asked a question and needs the answer.

/// Why a client could not start. Each variant is a setup mistake; retrying won't help.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `core_url` is not an absolute `http://` or `https://` URL.
    #[error("core url {url:?} is not an absolute http(s) url")]
    InvalidCoreUrl {
        /// The configured value.
        url: String,
    },
    /// `start` was called outside a Tokio runtime, so there is nowhere to run the background task.
    #[error("the aiops client must be started inside a tokio runtime")]
    NoRuntime,
    /// The HTTP client could not be built.
    #[error("building the http client failed")]
    Http(#[source] reqwest::Error),
}
