//! JSON and query extractors whose rejections are precise JSON errors.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

use crate::ApiError;

/// Like `axum::Json`, but a rejection says exactly what is wrong, as a JSON error.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(err) => ApiError::Invalid(err.body_text()),
                JsonRejection::JsonSyntaxError(err) => ApiError::BadRequest(err.body_text()),
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::UnsupportedMediaType("expected a request with `Content-Type: application/json`".into())
                }
                JsonRejection::BytesRejection(err) => ApiError::TooLarge(err.body_text()),
                other => ApiError::BadRequest(other.body_text()),
            }),
        }
    }
}

/// Like `axum::extract::Query`, with a JSON 400 on a bad query string.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// The query of a route that takes none: any parameter is refused (400), as on the routes
/// that take some.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoQuery {}
