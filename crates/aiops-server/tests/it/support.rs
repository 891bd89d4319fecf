//! A real `ApiState` over embedded backends in a temporary directory, with two tokens.

use std::sync::Arc;

use aiops_agents::Streams;
use aiops_construction::{Secrets, ToolCatalog};
use aiops_events::{EmbeddedConfig, EmbeddedEventBus};
use aiops_knowledge::SqliteKnowledgeStore;
use aiops_registry::SqliteRegistry;
use aiops_server::{ApiLimits, ApiState, ApiToken, Scope};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

pub(crate) const READ_TOKEN: &str = "read-secret-0123456789";
pub(crate) const ADMIN_TOKEN: &str = "admin-secret-0123456789";

pub(crate) async fn state(dir: &std::path::Path) -> ApiState {
    let store = Arc::new(SqliteKnowledgeStore::open(&dir.join("aiops.db"), 384).await.unwrap());
    ApiState {
        bus: Arc::new(EmbeddedEventBus::open(&dir.join("events"), EmbeddedConfig::default()).await.unwrap()),
        streams: Streams::default(),
        knowledge: store.clone(),
        audit: store,
        registry: Arc::new(SqliteRegistry::open(&dir.join("aiops.db")).await.unwrap()),
        balancer: Default::default(),
        tools: ToolCatalog::new(reqwest::Client::new(), Secrets::new()),
        tokens: Arc::new(vec![
            ApiToken { name: "reader".into(), secret: READ_TOKEN.into(), scopes: vec![Scope::Read] },
            ApiToken { name: "agent".into(), secret: "ingest-secret-0123456789".into(), scopes: vec![Scope::Ingest] },
            ApiToken { name: "ops".into(), secret: ADMIN_TOKEN.into(), scopes: vec![Scope::Admin] },
        ]),
        render_metrics: Arc::new(String::new),
        limits: ApiLimits::default(),
        ai: None,
        browser: Default::default(),
    }
}

/// Sends one request through the router with a bearer token; returns the status and the JSON
/// body (`null` when there is none).
pub(crate) async fn call(app: &Router, method: &str, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(if body.is_null() { Body::empty() } else { Body::from(body.to_string()) })
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
