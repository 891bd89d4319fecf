//! Registration, heartbeats, re-registration after the core forgot us, deregistration.

use std::time::Duration;

use aiops_client::AiopsClient;
use serde_json::json;

use crate::fake_core::{eventually, FakeCore};
use crate::test_config;

#[tokio::test]
async fn registers_with_the_full_body_then_sends_heartbeats() {
    let core = FakeCore::start().await;
    let mut config = test_config(&core.url);
    config.tags = vec!["demo".into()];
    config.metadata.insert("version".into(), "1.2.3".into());
    let instance_id = config.instance_id.clone();
    let client = AiopsClient::start(config).unwrap();

    let rec = &core.recorded;
    eventually("the instance registered", || !rec.registrations.lock().unwrap().is_empty()).await;
    let body = rec.registrations.lock().unwrap()[0].clone();
    assert_eq!(
        body,
        json!({
            "name": "bookmarks",
            "instance_id": instance_id,
            "address": "http://127.0.0.1:9999",
            "tags": ["demo"],
            "capabilities": ["db.reset_pool", "cache.clear"],
            "metadata": {"version": "1.2.3"},
            "dependencies": ["sqlite"],
            "health_url": "http://127.0.0.1:9999/health",
            "ttl_secs": 1,
        })
    );
    eventually("the client knows it is registered", || client.is_registered()).await;

    // ttl 1 s: a heartbeat every ~333 ms.
    eventually("two heartbeats arrived", || rec.heartbeats.lock().unwrap().len() >= 2).await;
    assert!(rec.heartbeats.lock().unwrap().iter().all(|id| *id == instance_id));
    assert_eq!(rec.registrations.lock().unwrap().len(), 1, "no re-registration while known");

    client.shutdown().await;
    assert_eq!(*rec.deregistrations.lock().unwrap(), [instance_id]);
}

#[tokio::test]
async fn registers_again_when_a_heartbeat_answers_404() {
    let core = FakeCore::start().await;
    let client = AiopsClient::start(test_config(&core.url)).unwrap();
    let rec = &core.recorded;
    eventually("the instance registered", || rec.registrations.lock().unwrap().len() == 1).await;

    // What a core restart with an empty registry looks like to the client.
    rec.forget_all_instances();
    eventually("the instance registered again", || rec.registrations.lock().unwrap().len() == 2).await;
    eventually("the core knows the instance again", || !rec.known.lock().unwrap().is_empty()).await;
    client.shutdown().await;
}

#[tokio::test]
async fn keeps_retrying_registration_until_the_core_comes_up() {
    // Reserve a port, then free it so nothing listens there yet.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let client = AiopsClient::start(test_config(&format!("http://{addr}"))).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!client.is_registered());

    // Now a core appears at that address.
    let recorded = std::sync::Arc::new(crate::fake_core::Recorded::default());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = axum::Router::new()
        .route(
            "/v1/services",
            axum::routing::post({
                let recorded = std::sync::Arc::clone(&recorded);
                move |axum::Json(body): axum::Json<serde_json::Value>| async move {
                    recorded.registrations.lock().unwrap().push(body);
                    axum::http::StatusCode::CREATED
                }
            }),
        )
        .route("/v1/services/{id}/heartbeat", axum::routing::put(|| async { "ok" }))
        .route("/v1/services/{id}", axum::routing::delete(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    eventually("the instance registered", || client.is_registered()).await;
    assert_eq!(recorded.registrations.lock().unwrap().len(), 1);
    client.shutdown().await;
}

#[test]
fn start_refuses_a_bad_core_url_and_a_missing_runtime() {
    let err = AiopsClient::start(test_config("localhost:7400")).unwrap_err();
    assert!(matches!(err, aiops_client::ClientError::InvalidCoreUrl { .. }), "{err}");
    let err = AiopsClient::start(test_config("http://127.0.0.1:7400")).unwrap_err();
    assert!(matches!(err, aiops_client::ClientError::NoRuntime), "{err}");
}
