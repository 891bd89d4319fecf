//! The one place where errors become HTTP statuses and JSON bodies.
//!
//! 5xx bodies stay generic; the detail goes to the log with the request.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (broken JSON, bad query).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid (unknown field, invalid envelope).
    #[error("{0}")]
    Invalid(String),
    /// Body too large.
    #[error("{0}")]
    TooLarge(String),
    /// Wrong content type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No valid token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// Token lacks the scope.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request contradicts the current state (e.g. deciding an approval twice).
    #[error("{0}")]
    Conflict(String),
    /// A bound was hit; retry later.
    #[error("{0}")]
    Overloaded(String),
    /// A backend is down; retry later.
    #[error("{0} is unavailable")]
    Unavailable(String),
    /// A bug or corruption.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Overloaded(_) => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "Request failed.");
        }
        let body = serde_json::json!({ "error": { "code": code, "message": self.to_string() } });
        (status, Json(body)).into_response()
    }
}

impl From<aiops_events::EventsError> for ApiError {
    fn from(err: aiops_events::EventsError) -> Self {
        use aiops_events::EventsError as E;
        match err {
            E::Invalid(msg) => Self::Invalid(msg),
            E::Overloaded(msg) => Self::Overloaded(msg),
            E::Unavailable { backend, source } => {
                tracing::error!(backend, error = %source, "Event mesh unavailable.");
                Self::Unavailable("the event mesh".into())
            }
            E::Corrupt { .. } => Self::Internal(err.to_string()),
        }
    }
}

impl From<aiops_knowledge::KnowledgeError> for ApiError {
    fn from(err: aiops_knowledge::KnowledgeError) -> Self {
        use aiops_knowledge::KnowledgeError as K;
        match err {
            K::NotFound { .. } => Self::NotFound(err.to_string()),
            K::DimensionMismatch { .. } | K::Invalid(_) => Self::Invalid(err.to_string()),
            K::Unavailable { .. } => Self::Unavailable("the knowledge store".into()),
            K::SchemaTooNew { .. } | K::Backend { .. } => {
                Self::Internal(format!("{err}: {:?}", std::error::Error::source(&err)))
            }
        }
    }
}

impl From<aiops_registry::RegistryError> for ApiError {
    fn from(err: aiops_registry::RegistryError) -> Self {
        use aiops_registry::RegistryError as R;
        match err {
            R::NotFound(_) => Self::NotFound(err.to_string()),
            R::Invalid(_) => Self::Invalid(err.to_string()),
            R::Storage(inner) => inner.into(),
        }
    }
}
