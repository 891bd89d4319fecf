//! A context over real embedded backends in a temporary directory, and a real HTTP service to
//! heal whose health is controlled by the test.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::Arc;

use aiops_agents::{AgentContext, Streams};
use aiops_ai::HashingEmbedder;
use aiops_construction::{Secrets, ToolCatalog};
use aiops_events::{EmbeddedConfig, EmbeddedEventBus, ReadQuery, StoredEvent};
use aiops_knowledge::SqliteKnowledgeStore;
use aiops_model::{Problem, ProblemKind, Severity};
use aiops_patterns::PatternLibrary;
use aiops_registry::{HealthChecker, RegistryConfig, ServiceRegistration, SqliteRegistry};
use axum::http::StatusCode;
use axum::routing::{get, post};

pub(crate) async fn context(dir: &std::path::Path) -> AgentContext {
    let events = EmbeddedConfig { visibility_timeout_ms: 500, max_deliveries: 3, ..EmbeddedConfig::default() };
    let bus = Arc::new(EmbeddedEventBus::open(&dir.join("events"), events).await.unwrap());
    let store = Arc::new(SqliteKnowledgeStore::open(&dir.join("aiops.db"), 384).await.unwrap());
    let registry = Arc::new(SqliteRegistry::open(&dir.join("aiops.db")).await.unwrap());
    let http = reqwest::Client::new();
    AgentContext {
        bus,
        streams: Streams::default(),
        knowledge: store.clone(),
        audit: store,
        registry,
        health: Arc::new(HealthChecker::new(
            RegistryConfig { interval_ms: 0, ..Default::default() },
            http.clone(),
            "test",
        )),
        embedder: Arc::new(HashingEmbedder::new(384).unwrap()),
        ai: None,
        tools: ToolCatalog::new(http.clone(), Secrets::new()).with_shipped_tools().unwrap(),
        patterns: Arc::new(PatternLibrary::shipped().unwrap()),
        http,
        instance: "test".into(),
    }
}

/// A service whose pool "leaks": /health answers 503 until /admin/db/reset-pool is called.
pub(crate) struct Target {
    pub(crate) health: Arc<AtomicU16>,
    pub(crate) cache_clears: Arc<AtomicU32>,
    pub(crate) pool_resets: Arc<AtomicU32>,
    pub(crate) address: String,
}

pub(crate) async fn target() -> Target {
    let health = Arc::new(AtomicU16::new(200));
    let cache_clears = Arc::new(AtomicU32::new(0));
    let pool_resets = Arc::new(AtomicU32::new(0));
    let (h, c, p) = (health.clone(), cache_clears.clone(), pool_resets.clone());
    let h2 = health.clone();
    let app = axum::Router::new()
        .route("/health", get(move || async move { StatusCode::from_u16(h.load(Ordering::SeqCst)).unwrap() }))
        .route(
            "/admin/cache/clear",
            post(move || async move {
                c.fetch_add(1, Ordering::SeqCst);
                axum::Json(serde_json::json!({ "cleared": 0 }))
            }),
        )
        .route(
            "/admin/db/reset-pool",
            post(move || async move {
                p.fetch_add(1, Ordering::SeqCst);
                h2.store(200, Ordering::SeqCst);
                axum::Json(serde_json::json!({ "released": 4 }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Target { health, cache_clears, pool_resets, address }
}

pub(crate) async fn register(ctx: &AgentContext, target: &Target, ttl_secs: Option<u64>) {
    ctx.registry
        .register(ServiceRegistration {
            capabilities: vec!["cache.clear".into(), "db.reset_pool".into()],
            dependencies: vec!["sqlite".into()],
            health_url: Some(format!("{}/health", target.address)),
            ttl_secs,
            ..ServiceRegistration::new("bookmarks", "bookmarks-1", &target.address)
        })
        .await
        .unwrap();
}

pub(crate) fn pool_problem() -> Problem {
    let now = chrono::Utc::now();
    Problem {
        id: aiops_model::new_id(),
        service: "bookmarks".into(),
        instance_id: None,
        kind: ProblemKind::HttpErrorRatio,
        severity: Severity::Error,
        summary: "bookmarks: 40% of 50 requests failed with 5xx in the last 5s".into(),
        detected_at: now,
        first_seen: now,
        evidence: vec!["database: pool timed out while waiting for an open connection (seen 20 times)".into()],
        metrics: BTreeMap::new(),
    }
}

pub(crate) async fn control_events(ctx: &AgentContext, event_type: &str) -> Vec<StoredEvent> {
    ctx.bus
        .read(&ctx.streams.control, &ReadQuery { types: vec![event_type.into()], limit: 1000, ..ReadQuery::default() })
        .await
        .unwrap()
}
