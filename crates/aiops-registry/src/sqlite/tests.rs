//! Registry storage and health checking against real HTTP targets.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use aiops_model::HealthStatus;
use axum::http::StatusCode;

use super::SqliteRegistry;
use crate::{HealthChecker, HealthCheckerConfig, Registry, RegistryError, ServiceQuery, ServiceRegistration};

fn registration(id: &str, health_url: Option<String>) -> ServiceRegistration {
    ServiceRegistration {
        name: "bookmarks".into(),
        instance_id: id.into(),
        address: "http://127.0.0.1:9".into(),
        tags: vec!["web".into()],
        capabilities: vec!["cache.clear".into()],
        metadata: Default::default(),
        dependencies: vec!["sqlite".into()],
        health_url,
        ttl_secs: None,
    }
}

async fn open() -> (tempfile::TempDir, SqliteRegistry) {
    let dir = tempfile::tempdir().unwrap();
    let registry = SqliteRegistry::open(&dir.path().join("aiops.db")).await.unwrap();
    (dir, registry)
}

/// A real HTTP server whose /health answers with the status stored in the returned cell.
async fn health_target() -> (String, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(200));
    let shared = status.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let shared = shared.clone();
            async move { StatusCode::from_u16(shared.load(Ordering::SeqCst)).unwrap() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, status)
}

#[tokio::test]
async fn bad_registrations_name_the_field_and_write_nothing() {
    let (_dir, registry) = open().await;
    let mut bad = registration("i1", None);
    bad.address = "not a url".into();
    let err = registry.register(bad).await.unwrap_err();
    assert!(matches!(&err, RegistryError::Invalid(msg) if msg.contains("address")), "{err}");
    let mut bad = registration("i1", None);
    bad.name = "Bad Name".into();
    assert!(registry.register(bad).await.unwrap_err().to_string().contains("name"));
    let mut bad = registration("i1", None);
    bad.health_url = Some("ftp://x/health".into());
    assert!(registry.register(bad).await.unwrap_err().to_string().contains("health_url"));
    assert!(registry.instances(&ServiceQuery::default()).await.unwrap().is_empty());
    assert!(matches!(registry.heartbeat("nope").await, Err(RegistryError::NotFound(_))));
}

#[tokio::test]
async fn lookup_by_name_tag_capability_and_health() {
    let (_dir, registry) = open().await;
    registry.register(registration("a", None)).await.unwrap();
    let mut other = registration("b", Some("http://127.0.0.1:9/health".into()));
    other.name = "billing".into();
    other.capabilities = vec![];
    registry.register(other).await.unwrap();
    let by_cap = registry
        .instances(&ServiceQuery { capability: Some("cache.clear".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(by_cap.len(), 1);
    assert_eq!(by_cap[0].registration.instance_id, "a");
    assert_eq!(by_cap[0].status, HealthStatus::Passing, "no checks: passing at once");
    let healthy = registry.instances(&ServiceQuery { healthy_only: true, ..Default::default() }).await.unwrap();
    assert_eq!(healthy.len(), 1, "an instance awaiting its first check is not healthy yet");
    assert!(registry.deregister("a").await.unwrap());
    assert!(!registry.deregister("a").await.unwrap());
}

#[tokio::test]
async fn http_check_is_damped_and_each_change_reported_once() {
    let (_dir, registry) = open().await;
    let (url, status) = health_target().await;
    registry.register(registration("i1", Some(url))).await.unwrap();
    let config = HealthCheckerConfig { interval_ms: 0, ..HealthCheckerConfig::default() };
    let checker = HealthChecker::new(config, reqwest::Client::new());
    let changes = checker.run_due(&registry).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!((changes[0].from, changes[0].to), (HealthStatus::Warning, HealthStatus::Passing));
    assert!(checker.run_due(&registry).await.unwrap().is_empty(), "no change, no report");
    status.store(503, Ordering::SeqCst);
    assert!(checker.run_due(&registry).await.unwrap().is_empty(), "one failure must not flip the status");
    let changes = checker.run_due(&registry).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].to, HealthStatus::Critical);
    assert!(changes[0].reason.contains("503"), "{}", changes[0].reason);
    status.store(200, Ordering::SeqCst);
    let changes = checker.run_due(&registry).await.unwrap();
    assert_eq!(changes[0].to, HealthStatus::Passing);
}

#[tokio::test]
async fn silent_instance_is_critical_with_heartbeat_lost() {
    let (_dir, registry) = open().await;
    let mut reg = registration("i1", None);
    reg.ttl_secs = Some(1);
    registry.register(reg).await.unwrap();
    let checker =
        HealthChecker::new(HealthCheckerConfig { interval_ms: 0, ..Default::default() }, reqwest::Client::new());
    assert_eq!(checker.run_due(&registry).await.unwrap()[0].to, HealthStatus::Passing);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let changes = checker.run_due(&registry).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert!(changes[0].heartbeat_lost);
    assert_eq!(changes[0].to, HealthStatus::Critical);
    registry.heartbeat("i1").await.unwrap();
    assert_eq!(checker.run_due(&registry).await.unwrap()[0].to, HealthStatus::Passing);
}
