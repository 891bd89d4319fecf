//! Integration tests of the bookmarks service: the router in process (`oneshot`), `serve` on
//! a real listener with a fake AI-Ops core, and the binary itself.
//!
//! One test binary, one module per topic.

mod admin;
mod aiops;
mod api;
mod cli;
mod faults;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use bookmarks::{router, AppState, BookmarksConfig};
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

/// The router over a fresh database in a temporary folder.
struct TestApp {
    router: Router,
    state: AppState,
    _dir: TempDir,
}

async fn test_app(adjust: impl FnOnce(&mut BookmarksConfig)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BookmarksConfig::new(dir.path().join("data/bookmarks.db"));
    adjust(&mut config);
    let state = AppState::open(&config, None).await.unwrap();
    TestApp { router: router(state.clone()), state, _dir: dir }
}

/// What a request answered.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    error_cause: Option<aiops_model::ServiceError>,
}

impl TestApp {
    async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let error_cause = response.extensions().get::<aiops_model::ServiceError>().cloned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Answer { status, headers, body, error_cause }
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.send(request(method, uri, body, None)).await
    }
}

fn request(method: Method, uri: &str, body: Option<Value>, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(body) => {
            builder.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
        }
        None => builder.body(Body::empty()).unwrap(),
    }
}

/// Asserts the JSON error body shape and returns its code.
fn error_code(answer: &Answer) -> &str {
    let message = answer.body["error"]["message"].as_str();
    assert!(message.is_some_and(|m| !m.is_empty()), "error body without message: {}", answer.body);
    answer.body["error"]["code"].as_str().unwrap()
}
