//! Buffering and batching of events: shapes, batch limits, retries while the core fails,
//! refused batches, the bounded buffer, and the flush on shutdown.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aiops_client::{event_type, AiopsClient, RequestRecord, ServiceError};
use serde_json::json;

use crate::fake_core::{eventually, FakeCore};
use crate::test_config;

fn numbers(events: &[aiops_client::Envelope]) -> BTreeSet<u64> {
    events.iter().filter_map(|event| event.data["n"].as_u64()).collect()
}

#[tokio::test]
async fn events_carry_source_subject_and_typed_payloads() {
    let core = FakeCore::start().await;
    let config = test_config(&core.url);
    let source = format!("bookmarks/{}", config.instance_id);
    let client = AiopsClient::start(config).unwrap();
    client.record_request(RequestRecord {
        method: "GET".into(),
        route: "/api/bookmarks/{id}".into(),
        status: 200,
        duration_ms: 1.5,
        trace_id: None,
        rejected: None,
    });
    client.report_error(ServiceError {
        kind: "database".into(),
        message: "pool timed out while waiting for an open connection".into(),
        route: Some("/api/bookmarks".into()),
    });
    client.emit("bookmark.created", json!({"id": 7}));
    client.report_metric("db_pool_in_use", 3.0);
    // Invalid types and samples are dropped at the source, so they cannot spoil a batch.
    client.emit("Not A Type", json!({}));
    client.report_metric("Pool In Use", 1.0);
    client.report_metric("db_pool_in_use", f64::NAN);

    let rec = &core.recorded;
    eventually("four events arrived", || rec.events().len() == 4).await;
    let events = rec.events();
    assert_eq!(client.source(), source);
    assert!(events.iter().all(|e| e.source == source && e.subject.as_deref() == Some("bookmarks")));
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [event_type::HTTP_REQUEST, event_type::SERVICE_ERROR, "bookmark.created", event_type::METRIC_SAMPLE]
    );
    let request: RequestRecord = events[0].payload().unwrap();
    assert_eq!(request.route, "/api/bookmarks/{id}");
    let error: ServiceError = events[1].payload().unwrap();
    assert_eq!(error.kind, "database");
    assert_eq!(events[1].severity, Some(aiops_model::Severity::Error));
    assert_eq!(events[2].data, json!({"id": 7}));
    assert_eq!(events[3].data, json!({"name": "db_pool_in_use", "value": 3.0}));
    client.shutdown().await;
}

#[tokio::test]
async fn a_full_batch_ships_without_waiting_for_the_interval() {
    let core = FakeCore::start().await;
    let mut config = test_config(&core.url);
    config.max_batch = 10;
    config.flush_interval_ms = 60_000;
    let client = AiopsClient::start(config).unwrap();
    for n in 0..25 {
        client.emit("test.event", json!({ "n": n }));
    }
    let rec = &core.recorded;
    eventually("two full batches arrived", || rec.events().len() >= 20).await;
    let sizes: Vec<usize> = rec.batches.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10], "only full batches go out before the interval");
    assert_eq!(client.buffered_events(), 5);

    // The remainder goes out on shutdown.
    client.shutdown().await;
    assert_eq!(numbers(&rec.events()), (0..25).collect());
    assert!(rec.batches.lock().unwrap().iter().all(|batch| batch.len() <= 10));
}

#[tokio::test]
async fn events_sent_while_the_core_fails_arrive_after_it_recovers() {
    let core = FakeCore::start().await;
    let rec = &core.recorded;
    rec.fail_events.store(true, Ordering::SeqCst);
    let mut config = test_config(&core.url);
    config.max_batch = 7;
    let client = AiopsClient::start(config).unwrap();
    for n in 0..50 {
        client.emit("test.event", json!({ "n": n }));
    }
    eventually("the client retried", || rec.batch_attempts.load(Ordering::SeqCst) >= 2).await;
    assert!(rec.events().is_empty());
    assert_eq!(client.buffered_events(), 50, "nothing leaves the buffer until accepted");

    rec.fail_events.store(false, Ordering::SeqCst);
    eventually("all 50 events arrived", || numbers(&rec.events()).len() == 50).await;
    assert_eq!(numbers(&rec.events()), (0..50).collect());
    eventually("the buffer drained", || client.buffered_events() == 0).await;
    assert_eq!(client.dropped_events(), 0);
    client.shutdown().await;
}

#[tokio::test]
async fn a_refused_batch_is_dropped_and_later_events_still_ship() {
    let core = FakeCore::start().await;
    let rec = &core.recorded;
    rec.refuse_events.store(true, Ordering::SeqCst);
    let client = AiopsClient::start(test_config(&core.url)).unwrap();
    client.emit("test.event", json!({ "n": 1 }));
    eventually("the batch was refused and dropped", || {
        rec.batch_attempts.load(Ordering::SeqCst) >= 1 && client.buffered_events() == 0
    })
    .await;

    rec.refuse_events.store(false, Ordering::SeqCst);
    client.emit("test.event", json!({ "n": 2 }));
    eventually("the next event arrived", || !rec.events().is_empty()).await;
    assert_eq!(numbers(&rec.events()), BTreeSet::from([2]));
    client.shutdown().await;
}

#[tokio::test]
async fn a_dead_core_neither_blocks_recording_nor_grows_the_buffer_past_its_bound() {
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", probe.local_addr().unwrap());
    drop(probe);
    let mut config = test_config(&dead_url);
    config.max_buffered = 100;
    config.shutdown_timeout_ms = 300;
    let client = AiopsClient::start(config).unwrap();

    let started = Instant::now();
    for n in 0..10_000 {
        client.emit("test.event", json!({ "n": n }));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "recording must not wait on the core");
    assert_eq!(client.buffered_events(), 100);
    assert_eq!(client.dropped_events(), 9_900);

    let started = Instant::now();
    client.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3), "shutdown is bounded by its deadline");
}

#[tokio::test]
async fn the_oldest_events_are_the_ones_dropped() {
    let core = FakeCore::start().await;
    let rec = &core.recorded;
    rec.fail_events.store(true, Ordering::SeqCst);
    let mut config = test_config(&core.url);
    config.max_buffered = 10;
    let client = AiopsClient::start(config).unwrap();
    for n in 0..30 {
        client.emit("test.event", json!({ "n": n }));
    }
    assert_eq!(client.dropped_events(), 20);
    rec.fail_events.store(false, Ordering::SeqCst);
    eventually("the kept events arrived", || rec.events().len() >= 10).await;
    assert_eq!(numbers(&rec.events()), (20..30).collect());
    client.shutdown().await;
}

#[tokio::test]
async fn shutdown_ships_what_is_buffered_then_deregisters() {
    let core = FakeCore::start().await;
    let mut config = test_config(&core.url);
    config.flush_interval_ms = 60_000;
    let instance_id = config.instance_id.clone();
    let client = AiopsClient::start(config).unwrap();
    let rec = &core.recorded;
    eventually("the instance registered", || client.is_registered()).await;
    for n in 0..3 {
        client.emit("test.event", json!({ "n": n }));
    }
    let clone = client.clone();
    client.shutdown().await;
    assert_eq!(numbers(&rec.events()), (0..3).collect());
    assert_eq!(*rec.deregistrations.lock().unwrap(), [instance_id]);
    // A clone outliving shutdown still accepts events without blocking or panicking.
    clone.emit("test.event", json!({ "n": 99 }));
    assert_eq!(clone.buffered_events(), 1);
}
