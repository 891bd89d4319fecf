//! CORS for pages served from another origin (`cors_origins`): a preflight from an allowed
//! origin is answered with the methods and headers the page may use (`traceparent` included,
//! so traces survive the hop); one from any other origin is refused with 403, and a request
//! from one runs without the allow header (its browser withholds the answer), each with a
//! cause the AI-Ops core sees. Requests from the service's own origin pass untouched.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::BookmarksError;
use crate::AppState;

const ALLOWED_METHODS: &str = "GET, POST, PUT, DELETE";
const ALLOWED_HEADERS: &str = "content-type, traceparent, authorization";

fn same_origin(request: &Request, origin: &str) -> bool {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
}

pub(crate) async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(origin) = request.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_owned) else {
        return next.run(request).await;
    };
    if same_origin(&request, &origin) {
        return next.run(request).await;
    }
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let allowed = state.faults().cors_allows(state.cors_origins(), &origin);
    let mut response = match (preflight, allowed) {
        (true, Ok(())) => {
            let mut response = axum::http::StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            response
        }
        (true, Err(reason)) => return BookmarksError::Cors { message: reason }.into_response(),
        // The request runs (a preflight the browser cached let it through), but without the
        // allow header the browser keeps the answer from the page: say so.
        (false, Err(reason)) => {
            let mut response = next.run(request).await;
            let message = format!("{reason}; the answer to {origin} is withheld by its browser");
            response.extensions_mut().insert(aiops_model::ServiceError { kind: "cors".into(), message, route: None });
            return response;
        }
        (false, Ok(())) => next.run(request).await,
    };
    if let Ok(value) = HeaderValue::from_str(&origin) {
        response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}
