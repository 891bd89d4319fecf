//! Token auth and scopes, through the router without a socket.

use std::sync::Arc;

use aiops_agents::Streams;
use aiops_construction::{Secrets, ToolCatalog};
use aiops_events::{EmbeddedConfig, EmbeddedEventBus};
use aiops_knowledge::SqliteKnowledgeStore;
use aiops_registry::SqliteRegistry;
use aiops_server::{router, ApiLimits, ApiState, ApiToken, Scope};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

async fn state(dir: &std::path::Path) -> ApiState {
    let store = Arc::new(SqliteKnowledgeStore::open(&dir.join("aiops.db"), 384).await.unwrap());
    ApiState {
        bus: Arc::new(EmbeddedEventBus::open(&dir.join("events"), EmbeddedConfig::default()).await.unwrap()),
        streams: Streams::default(),
        knowledge: store.clone(),
        audit: store,
        registry: Arc::new(SqliteRegistry::open(&dir.join("aiops.db")).await.unwrap()),
        tools: ToolCatalog::new(reqwest::Client::new(), Secrets::new()),
        tokens: Arc::new(vec![
            ApiToken { name: "reader".into(), secret: "read-secret-0123456789".into(), scopes: vec![Scope::Read] },
            ApiToken { name: "agent".into(), secret: "ingest-secret-0123456789".into(), scopes: vec![Scope::Ingest] },
        ]),
        render_metrics: Arc::new(String::new),
        limits: ApiLimits::default(),
    }
}

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
        ("GET", "/healthz", None, StatusCode::OK),
    ];
    for (method, path, token, expected) in cases {
        let body = if path.ends_with("batch") {
            event
        } else if path.ends_with("tools") {
            r#"{"spec":"x"}"#
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
