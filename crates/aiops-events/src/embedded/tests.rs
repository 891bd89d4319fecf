//! Runs the conformance suite against the embedded log, plus crash-recovery checks of its own.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use async_trait::async_trait;

use super::EmbeddedEventBus;
use crate::conformance::{Harness, MAX_DELIVERIES, VISIBILITY};
use crate::{EmbeddedConfig, EventBus, EventsError, ReadQuery, StreamName, Subscription};

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

/// The first segment of `stream` and the end of its first record.
fn first_segment(harness: &EmbeddedHarness, stream: &str) -> (std::fs::File, u64) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(harness.dir.path().join(stream).join("00000000000000000001.log"))
        .unwrap();
    let mut header = [0u8; 4];
    file.read_exact_at(&mut header, 0).unwrap();
    (file, 16 + u64::from(u32::from_le_bytes(header)))
}

#[tokio::test]
async fn torn_tail_is_cut_and_earlier_events_survive() {
    let harness = EmbeddedHarness::new();
    let stream = StreamName::new("torn").unwrap();
    let bus = harness.open().await;
    let event = aiops_model::Envelope::new("t", "test.torn", serde_json::json!({"n": 1}));
    bus.publish(&stream, vec![event.clone()]).await.unwrap();
    drop(bus);
    // A crash in the middle of the next write leaves half a record behind (over the zeros
    // the segment was extended with).
    let (file, end) = first_segment(&harness, "torn");
    file.write_all_at(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"'], end).unwrap();
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
async fn records_left_past_the_end_are_never_read_back() {
    let harness = EmbeddedHarness::new();
    let stream = StreamName::new("stale").unwrap();
    let bus = harness.open().await;
    let first = aiops_model::Envelope::new("t", "test.stale", serde_json::json!({"n": 1}));
    bus.publish(&stream, vec![first]).await.unwrap();
    drop(bus);
    // A whole, valid record stranded past the end, behind zeros: what a crash leaves when a
    // batch's later pages reached the disk and an earlier one did not. The gap is exactly the
    // next append's length, so that the stranded record would follow it if it were still there.
    let mut filler = aiops_model::Envelope::new("t", "test.stale", serde_json::json!({"n": 2}));
    filler.id = "filler".into();
    let gap = 16 + serde_json::to_vec(&filler).unwrap().len() as u64;
    let (file, end) = first_segment(&harness, "stale");
    let mut record = vec![0u8; end as usize];
    file.read_exact_at(&mut record, 0).unwrap();
    file.write_all_at(&record, end + gap).unwrap();
    drop(file);
    let bus = harness.open().await;
    assert_eq!(bus.last_offset(&stream).await.unwrap(), 1);
    bus.publish(&stream, vec![filler]).await.unwrap();
    drop(bus);
    let bus = harness.open().await;
    let stored = bus.read(&stream, &ReadQuery::default()).await.unwrap();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(bus.last_offset(&stream).await.unwrap(), 2);
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

fn small(dir: &std::path::Path, max_bytes: u64) -> EmbeddedConfig {
    EmbeddedConfig {
        dir: Some(dir.to_owned()),
        segment_max_bytes: 4096,
        max_bytes,
        retention_max_events: Some(20),
        retention_max_age_secs: None,
        max_pending: 5,
        ..EmbeddedConfig::default()
    }
}

fn events(from: usize, n: usize) -> Vec<aiops_model::Envelope> {
    (from..from + n).map(|i| aiops_model::Envelope::new("t", "test.ret", serde_json::json!({ "n": i }))).collect()
}

#[tokio::test]
async fn retention_drops_whole_segments_every_group_is_done_with() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedEventBus::open(dir.path(), small(dir.path(), u64::MAX)).await.unwrap();
    let stream = StreamName::new("ret").unwrap();
    let sub = Subscription::new(stream.clone(), "g", "c");
    for round in 0..20 {
        bus.publish(&stream, events(round * 10, 10)).await.unwrap();
        loop {
            let got = bus.receive(&sub, 100, std::time::Duration::from_millis(1)).await.unwrap();
            if got.is_empty() {
                break;
            }
            bus.ack(&sub, &got.iter().map(|d| d.offset).collect::<Vec<_>>()).await.unwrap();
        }
    }
    let stored = bus.read(&stream, &ReadQuery { limit: 1000, ..ReadQuery::default() }).await.unwrap();
    assert!(stored.len() >= 20, "at least retention_max_events are kept: {}", stored.len());
    assert!(stored.len() < 200, "old segments were not deleted: {}", stored.len());
    assert_eq!(stored.last().unwrap().offset, 200, "offsets stay dense across retention");
    let segments = std::fs::read_dir(dir.path().join("ret"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".log"))
        .count();
    assert!(segments < 10, "{segments} segments left");
    drop(bus);
    let bus = EmbeddedEventBus::open(dir.path(), small(dir.path(), u64::MAX)).await.unwrap();
    assert_eq!(bus.last_offset(&stream).await.unwrap(), 200, "reopens after retention");
}

#[tokio::test]
async fn a_lagging_group_keeps_its_events_and_the_bound_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedEventBus::open(dir.path(), small(dir.path(), 16 * 1024)).await.unwrap();
    let stream = StreamName::new("lag").unwrap();
    let slow = Subscription::new(stream.clone(), "slow", "c");
    // The group exists and has received (but not acknowledged) its first events.
    bus.publish(&stream, events(0, 5)).await.unwrap();
    let held = bus.receive(&slow, 100, std::time::Duration::from_millis(1)).await.unwrap();
    assert_eq!(held.len(), 5);
    assert!(bus.receive(&slow, 100, std::time::Duration::from_millis(1)).await.unwrap().is_empty());
    let mut refused = None;
    for round in 1..200 {
        if let Err(err) = bus.publish(&stream, events(round * 10, 10)).await {
            refused = Some(err);
            break;
        }
    }
    let err = refused.expect("the stream never reached its bound");
    assert!(matches!(&err, EventsError::Overloaded(msg) if msg.contains("consumer group slow is")), "{err}");
    // Nothing the slow group has not finished was deleted.
    let first = bus.read(&stream, &ReadQuery { limit: 1, ..ReadQuery::default() }).await.unwrap();
    assert_eq!(first[0].offset, 1);
    // max_pending: the slow consumer holds 5 and gets no more until it acks.
    bus.ack(&slow, &held.iter().map(|d| d.offset).collect::<Vec<_>>()).await.unwrap();
    assert_eq!(bus.receive(&slow, 100, std::time::Duration::from_millis(1)).await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_publisher_dropped_while_leading_a_sync_does_not_stall_the_others() {
    let harness = EmbeddedHarness::new();
    let stream = StreamName::new("dropped").unwrap();
    let bus = harness.open().await;
    let event = |n: u32| aiops_model::Envelope::new("t", "test.dropped", serde_json::json!({ "n": n }));
    // Polled once: it writes its record, becomes the sync's leader, and is dropped at its
    // first await (as an HTTP handler is when its client disconnects).
    let abandoned = tokio::time::timeout(std::time::Duration::ZERO, bus.publish(&stream, vec![event(1)])).await;
    assert!(abandoned.is_err(), "the first publish should not have finished in one poll");
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), bus.publish(&stream, vec![event(2)])).await;
    assert_eq!(next.expect("a later publisher waited for a sync nobody runs").unwrap(), vec![2]);
    assert_eq!(bus.read(&stream, &ReadQuery::default()).await.unwrap().len(), 2, "both are durable and visible");
}
