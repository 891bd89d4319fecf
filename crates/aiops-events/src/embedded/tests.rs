//! Runs the conformance suite against the embedded log, plus crash-recovery checks of its own.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;

use super::EmbeddedEventBus;
use crate::conformance::{Harness, MAX_DELIVERIES, VISIBILITY};
use crate::{EmbeddedConfig, EventBus, ReadQuery, StreamName};

struct EmbeddedHarness {
    dir: tempfile::TempDir,
}

impl EmbeddedHarness {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }
}

#[async_trait]
impl Harness for EmbeddedHarness {
    async fn open(&self) -> Arc<dyn EventBus> {
        let config = EmbeddedConfig {
            visibility_timeout_ms: VISIBILITY.as_millis() as u64,
            max_deliveries: MAX_DELIVERIES,
            ..EmbeddedConfig::default()
        };
        Arc::new(EmbeddedEventBus::open(self.dir.path(), config).await.unwrap())
    }
}

crate::event_bus_conformance!(EmbeddedHarness::new());

#[tokio::test]
async fn torn_tail_is_cut_and_earlier_events_survive() {
    let harness = EmbeddedHarness::new();
    let stream = StreamName::new("torn").unwrap();
    let bus = harness.open().await;
    let event = aiops_model::Envelope::new("t", "test.torn", serde_json::json!({"n": 1}));
    bus.publish(&stream, vec![event.clone()]).await.unwrap();
    drop(bus);
    // A crash in the middle of the next write leaves half a record behind.
    let mut file = std::fs::OpenOptions::new().append(true).open(harness.dir.path().join("torn.log")).unwrap();
    file.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']).unwrap();
    drop(file);
    let bus = harness.open().await;
    let stored = bus.read(&stream, &ReadQuery::default()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event, event);
    let next = aiops_model::Envelope::new("t", "test.torn", serde_json::json!({"n": 2}));
    assert_eq!(bus.publish(&stream, vec![next]).await.unwrap(), vec![2]);
    drop(bus);
    let bus = harness.open().await;
    assert_eq!(bus.last_offset(&stream).await.unwrap(), 2, "an append after the cut must be readable");
}

#[tokio::test]
async fn oversized_batch_and_invalid_event_are_refused_and_nothing_is_stored() {
    let harness = EmbeddedHarness::new();
    let stream = StreamName::new("bad").unwrap();
    let bus = harness.open().await;
    let mut bad = aiops_model::Envelope::new("t", "test.ok", serde_json::json!({}));
    bad.event_type = "Not Valid".into();
    let good = aiops_model::Envelope::new("t", "test.ok", serde_json::json!({}));
    let err = bus.publish(&stream, vec![good, bad]).await.unwrap_err();
    assert!(err.to_string().contains("type"), "{err}");
    let many: Vec<_> = (0..1001).map(|_| aiops_model::Envelope::new("t", "test.ok", serde_json::json!({}))).collect();
    assert!(matches!(bus.publish(&stream, many).await, Err(crate::EventsError::Overloaded(_))));
    assert_eq!(bus.last_offset(&stream).await.unwrap(), 0);
}
