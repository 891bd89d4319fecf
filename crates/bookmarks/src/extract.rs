//! Extractors that wrap axum's `Json`, `Query` and `Path` so that every rejection answers
//! with the same JSON error body as the handlers' own errors.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use crate::error::BookmarksError;
use crate::BODY_LIMIT_BYTES;

/// `Json<T>` whose rejections are [`BookmarksError`]s: unknown or missing fields and wrong
/// types answer 422, broken JSON 400, a missing JSON content type 415, a too large body 413.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = BookmarksError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> BookmarksError {
    match rejection {
        JsonRejection::JsonDataError(_) => {
            BookmarksError::Invalid { code: "invalid_body", message: rejection.body_text() }
        }
        JsonRejection::MissingJsonContentType(_) => BookmarksError::UnsupportedMediaType,
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            BookmarksError::PayloadTooLarge { limit: BODY_LIMIT_BYTES }
        }
        _ => BookmarksError::Malformed { message: rejection.body_text() },
    }
}

/// `Query<T>` whose rejections answer 400 with the JSON error body.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = BookmarksError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(&rejection)),
        }
    }
}

fn query_rejection(rejection: &QueryRejection) -> BookmarksError {
    BookmarksError::Malformed { message: rejection.body_text() }
}

/// `Path<T>` whose rejections answer 400 with the JSON error body.
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = BookmarksError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> BookmarksError {
    BookmarksError::Malformed { message: rejection.body_text() }
}
