//! Runs the conformance suite against a real Redis started by the test kit, plus checks of the
//! documented layout with `redis-cli`.

use std::sync::Arc;

use aiops_testkit::{RedisOptions, RedisServer};
use async_trait::async_trait;

use super::{RedisConfig, RedisEventBus};
use crate::conformance::{Harness, MAX_DELIVERIES, VISIBILITY};
use crate::{EventBus, EventBusExt, StreamName};

struct RedisHarness {
    server: RedisServer,
}

impl RedisHarness {
    fn new() -> Self {
        let server = RedisServer::start_with(RedisOptions::default().aof(true)).expect("start redis-server");
        Self { server }
    }

    fn config(&self) -> RedisConfig {
        RedisConfig {
            url: self.server.url(),
            visibility_timeout_ms: VISIBILITY.as_millis() as u64,
            max_deliveries: MAX_DELIVERIES,
            ..RedisConfig::default()
        }
    }
}

#[async_trait]
impl Harness for RedisHarness {
    async fn open(&self) -> Arc<dyn EventBus> {
        Arc::new(RedisEventBus::connect(&self.config()).await.unwrap())
    }
}

crate::event_bus_conformance!(RedisHarness::new());

fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
    let output = std::process::Command::new("redis-cli")
        .arg("-p")
        .arg(server.port().to_string())
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn any_redis_client_can_read_our_events_with_xreadgroup() {
    let harness = RedisHarness::new();
    let bus = harness.open().await;
    let stream = StreamName::new("telemetry").unwrap();
    let event =
        aiops_model::Envelope::new("svc/1", "http.request", serde_json::json!({"status": 503})).with_subject("svc");
    bus.publish_one(&stream, event.clone()).await.unwrap();
    redis_cli(&harness.server, &["XGROUP", "CREATE", "aiops:{telemetry}", "ops", "0"]);
    let read = redis_cli(
        &harness.server,
        &["XREADGROUP", "GROUP", "ops", "c1", "COUNT", "1", "STREAMS", "aiops:{telemetry}", ">"],
    );
    let lines: Vec<&str> = read.lines().collect();
    assert!(lines.contains(&"0-1"), "{read}");
    for field in ["id", "type", "source", "subject", "time", "event"] {
        assert!(lines.contains(&field), "field {field} missing: {read}");
    }
    assert!(lines.contains(&"http.request"));
    let json_line = lines.iter().find(|l| l.starts_with('{')).expect("event JSON");
    let decoded: aiops_model::Envelope = serde_json::from_str(json_line).unwrap();
    assert_eq!(decoded, event);
    assert_eq!(redis_cli(&harness.server, &["XACK", "aiops:{telemetry}", "ops", "0-1"]).trim(), "1");
}

#[tokio::test]
async fn a_publish_while_redis_is_down_is_an_error_and_works_after_restart() {
    let mut harness = RedisHarness::new();
    let mut config = harness.config();
    config.command_timeout_ms = 500;
    let bus = RedisEventBus::connect(&config).await.unwrap();
    let stream = StreamName::new("outage").unwrap();
    bus.publish_one(&stream, aiops_model::Envelope::new("t", "test.a", serde_json::json!({}))).await.unwrap();
    harness.server.stop().unwrap();
    let err =
        bus.publish_one(&stream, aiops_model::Envelope::new("t", "test.b", serde_json::json!({}))).await.unwrap_err();
    assert!(matches!(err, crate::EventsError::Unavailable { .. }), "{err}");
    harness.server.restart().unwrap();
    let mut published = None;
    for _ in 0..50 {
        match bus.publish_one(&stream, aiops_model::Envelope::new("t", "test.c", serde_json::json!({}))).await {
            Ok(offset) => {
                published = Some(offset);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    assert_eq!(published, Some(2), "the AOF kept the first event; the failed one was never stored");
}

fn batch(from: usize, n: usize) -> Vec<aiops_model::Envelope> {
    (from..from + n).map(|i| aiops_model::Envelope::new("t", "test.ret", serde_json::json!({ "n": i }))).collect()
}

#[tokio::test]
async fn retention_trims_only_what_every_group_finished_and_the_bound_names_the_laggard() {
    let harness = RedisHarness::new();
    let config = RedisConfig { retention_max_events: Some(100), max_length: 2500, ..harness.config() };
    let bus = RedisEventBus::connect(&config).await.unwrap();
    let stream = StreamName::new("ret").unwrap();
    let sub = crate::Subscription::new(stream.clone(), "fast", "c");
    for round in 0..30 {
        bus.publish(&stream, batch(round * 100, 100)).await.unwrap();
        loop {
            let got = bus.receive(&sub, 500, std::time::Duration::from_millis(1)).await.unwrap();
            if got.is_empty() {
                break;
            }
            bus.ack(&sub, &got.iter().map(|d| d.offset).collect::<Vec<_>>()).await.unwrap();
        }
    }
    let length: u64 = redis_cli(&harness.server, &["XLEN", "aiops:{ret}"]).trim().parse().unwrap();
    assert!((100..3000).contains(&length), "trimmed to {length}");
    assert_eq!(bus.last_offset(&stream).await.unwrap(), 3000);

    // A group that never acknowledges holds everything from its first pending event on.
    let lag_stream = StreamName::new("lag").unwrap();
    let slow = crate::Subscription::new(lag_stream.clone(), "slow", "c");
    bus.publish(&lag_stream, batch(0, 10)).await.unwrap();
    assert_eq!(bus.receive(&slow, 10, std::time::Duration::from_millis(1)).await.unwrap().len(), 10);
    let mut refused = None;
    for round in 1..40 {
        if let Err(err) = bus.publish(&lag_stream, batch(round * 100, 100)).await {
            refused = Some(err);
            break;
        }
    }
    let err = refused.expect("the bound was never hit");
    assert!(matches!(&err, crate::EventsError::Overloaded(m) if m.contains("consumer group slow is")), "{err}");
    let oldest = redis_cli(&harness.server, &["XRANGE", "aiops:{lag}", "-", "+", "COUNT", "1"]);
    assert!(oldest.lines().next() == Some("0-1"), "a pending event was trimmed: {oldest}");
}
