//! Token auth and scopes.

use aiops_server::router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::support::state;

fn request(method: &str, path: &str, token: Option<&str>, body: &str) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn routes_need_a_token_with_their_scope() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(state(dir.path()).await);
    let event = r#"[{"id":"e1","source":"s","type":"a.b","data":{}}]"#;
    let cases = [
        ("GET", "/v1/problems", None, StatusCode::UNAUTHORIZED),
        ("GET", "/v1/problems", Some("wrong-secret-0123456789"), StatusCode::UNAUTHORIZED),
        ("GET", "/v1/problems", Some("read-secret-0123456789"), StatusCode::OK),
        ("POST", "/v1/events/batch", Some("read-secret-0123456789"), StatusCode::FORBIDDEN),
        ("POST", "/v1/events/batch", Some("ingest-secret-0123456789"), StatusCode::ACCEPTED),
        ("POST", "/v1/tools", Some("ingest-secret-0123456789"), StatusCode::FORBIDDEN),
        // Without a token, nothing about the request is looked at: not its body, its query,
        // or whether the route takes that method.
        ("POST", "/v1/events", None, StatusCode::UNAUTHORIZED),
        ("POST", "/v1/healing/kill-switch", None, StatusCode::UNAUTHORIZED),
        ("GET", "/v1/events?bogus=1", None, StatusCode::UNAUTHORIZED),
        ("PUT", "/v1/events", None, StatusCode::UNAUTHORIZED),
        ("PUT", "/v1/events", Some("read-secret-0123456789"), StatusCode::METHOD_NOT_ALLOWED),
        // Routes that take no query refuse one, as the others refuse unknown parameters.
        ("GET", "/v1/tools?bogus=1", Some("read-secret-0123456789"), StatusCode::BAD_REQUEST),
        ("GET", "/v1/healing?bogus=1", Some("read-secret-0123456789"), StatusCode::BAD_REQUEST),
        ("GET", "/healthz", None, StatusCode::OK),
    ];
    for (method, path, token, expected) in cases {
        let body = if path.ends_with("batch") {
            event
        } else if path.ends_with("tools") {
            r#"{"spec":"x"}"#
        } else if method == "POST" {
            "{broken"
        } else {
            ""
        };
        let response = app.clone().oneshot(request(method, path, token, body)).await.unwrap();
        assert_eq!(response.status(), expected, "{method} {path} with {token:?}");
        if !expected.is_success() {
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
            let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert!(error["error"]["message"].is_string(), "{error}");
            assert!(!error.to_string().contains("secret-0123456789"), "a token leaked into an error: {error}");
        }
    }
}
