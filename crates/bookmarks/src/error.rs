//! `BookmarksError`, and the one place that turns it into an HTTP status and JSON body.
//!
//! Variants say what the caller does next: fix the input (4xx), retry later (503), or treat
//! it as a bug (500). 5xx bodies stay generic; the cause goes to the log and, through an
//! [`aiops_model::ServiceError`] in the response's extensions, to the AI-Ops core (the
//! request-tracking layer of `aiops-client` reports it).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Result alias of this crate.
pub type BookmarksResult<T> = Result<T, BookmarksError>;

/// Everything that can go wrong serving bookmarks.
#[derive(Debug, thiserror::Error)]
pub enum BookmarksError {
    /// No bookmark has this id. Answers 404.
    #[error("bookmark {id} not found")]
    NotFound {
        /// The id asked for.
        id: i64,
    },
    /// No route matches the request. Answers 404.
    #[error("no route for {path}")]
    NoRoute {
        /// The path asked for.
        path: String,
    },
    /// The input is well-formed but not acceptable. Answers 422 with `code`.
    #[error("{message}")]
    Invalid {
        /// Machine-friendly reason, e.g. `invalid_url` or `invalid_body`.
        code: &'static str,
        /// What is wrong, for humans.
        message: String,
    },
    /// The request cannot be parsed (broken JSON, bad query string or path). Answers 400.
    #[error("{message}")]
    Malformed {
        /// What could not be parsed.
        message: String,
    },
    /// The body is larger than the limit. Answers 413.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not declared as JSON. Answers 415.
    #[error("expected a request with content-type application/json")]
    UnsupportedMediaType,
    /// An admin endpoint (or, with an API token, the API) was called without the right bearer
    /// token. Answers 401.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The database cannot serve right now (pool timeout, closed pool, busy database).
    /// Worth retrying later. Answers 503.
    #[error("database unavailable")]
    Unavailable {
        /// What the database layer said.
        #[source]
        source: sqlx::Error,
    },
    /// Any other database failure; treat it as a bug or corruption. Answers 500.
    #[error("database failed")]
    Database {
        /// What the database layer said.
        #[source]
        source: sqlx::Error,
    },
    /// A cross-origin preflight from an origin CORS does not allow. Answers 403; the cause is
    /// reported, since the page itself only sees a blocked call.
    #[error("{message}")]
    Cors {
        /// Which origin, and why.
        message: String,
    },
    /// A service this one depends on failed; its cause is reported to the AI-Ops core.
    /// Answers 502.
    #[error("dependency {service} unavailable: {message}")]
    Dependency {
        /// The dependency's service name.
        service: &'static str,
        /// What calling it gave.
        message: String,
    },
    /// An injected fault broke the request (see `faults.rs`); its cause is reported to the
    /// AI-Ops core like any internal error. Answers 500.
    #[error("{message}")]
    Fault {
        /// What broke: `release`, `disk`, `memory` or `config`.
        kind: &'static str,
        /// The cause, as the service would log it.
        message: String,
    },
    /// Starting or running the server failed on I/O (binding, serving, creating folders).
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The AI-Ops client could not start (a bad `aiops_url`).
    #[error("starting the aiops client failed")]
    Aiops(#[source] aiops_client::ClientError),
}

impl From<sqlx::Error> for BookmarksError {
    fn from(source: sqlx::Error) -> Self {
        if is_transient(&source) {
            Self::Unavailable { source }
        } else {
            Self::Database { source }
        }
    }
}

/// Whether retrying later can help: the pool had no connection to give, or SQLite was busy.
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db_err) => {
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6); extended codes keep the primary code in
            // the low byte.
            let primary = db_err.code().and_then(|code| code.parse::<i32>().ok()).map(|code| code & 0xff);
            matches!(primary, Some(5 | 6))
        }
        _ => false,
    }
}

impl BookmarksError {
    /// The HTTP status this error answers with. `Io` and `Aiops` happen only at start-up and
    /// map to 500 should they ever reach a response.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } | Self::NoRoute { .. } => StatusCode::NOT_FOUND,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Malformed { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Dependency { .. } => StatusCode::BAD_GATEWAY,
            Self::Cors { .. } => StatusCode::FORBIDDEN,
            Self::Database { .. } | Self::Io { .. } | Self::Aiops(_) | Self::Fault { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The machine-friendly `code` of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } | Self::NoRoute { .. } => "not_found",
            Self::Invalid { code, .. } => code,
            Self::Malformed { .. } => "malformed_request",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unauthorized => "unauthorized",
            Self::Unavailable { .. } => "unavailable",
            Self::Dependency { .. } => "dependency_unavailable",
            Self::Cors { .. } => "cors_refused",
            Self::Database { .. } | Self::Io { .. } | Self::Aiops(_) | Self::Fault { .. } => "internal",
        }
    }
}

impl IntoResponse for BookmarksError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Unavailable { source } => {
                tracing::warn!(error = %source, "Database unavailable.");
                "the database is unavailable, retry later".to_owned()
            }
            Self::Database { source } => {
                tracing::error!(error = %source, "Database failed.");
                "internal error".to_owned()
            }
            Self::Io { .. } | Self::Aiops(_) | Self::Fault { .. } => {
                tracing::error!(error = %self, "Internal error.");
                "internal error".to_owned()
            }
            _ => self.to_string(),
        };
        let body = json!({ "error": { "code": self.code(), "message": message } });
        let mut response = (status, Json(body)).into_response();
        if status.is_client_error() {
            response.extensions_mut().insert(aiops_model::RequestRejection(message.clone()));
        }
        if let Some(message) = self.cause() {
            let kind = match &self {
                Self::Fault { kind, .. } => kind,
                Self::Dependency { .. } => "dependency",
                Self::Cors { .. } => "cors",
                _ => "database",
            };
            response.extensions_mut().insert(aiops_model::ServiceError { kind: kind.to_owned(), message, route: None });
        }
        response
    }
}

impl BookmarksError {
    /// The internal cause reported to the AI-Ops core (never put in the response body).
    pub(crate) fn cause(&self) -> Option<String> {
        match self {
            Self::Unavailable { source } | Self::Database { source } => Some(source.to_string()),
            Self::Fault { message, .. } => Some(message.clone()),
            Self::Dependency { .. } | Self::Cors { .. } => Some(self.to_string()),
            _ => None,
        }
    }
}
