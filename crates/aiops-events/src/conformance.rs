//! The conformance suite: what every [`EventBus`] backend must do.
//!
//! Each check is a plain async fn over a [`Harness`]; [`event_bus_conformance!`] stamps out
//! one `#[tokio::test]` per check for a backend, so a failure names the backend's module and
//! the check. Every check isolates itself with a unique stream name.

use std::sync::Arc;
use std::time::Duration;

use aiops_model::Envelope;
use async_trait::async_trait;

use crate::{EventBus, EventBusExt, ReadQuery, StreamName, Subscription};

/// Visibility timeout the harness must configure, so redelivery checks run quickly.
pub const VISIBILITY: Duration = Duration::from_millis(300);
/// Deliveries before dead-lettering that the harness must configure.
pub const MAX_DELIVERIES: u32 = 3;

/// Opens the backend under test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Opens a bus on the harness's storage with [`VISIBILITY`] and [`MAX_DELIVERIES`].
    /// Opening again (after dropping the previous bus) must see what was stored before.
    async fn open(&self) -> Arc<dyn EventBus>;
}

fn unique_stream(prefix: &str) -> StreamName {
    StreamName::new(format!("{prefix}-{}", aiops_model::new_id())).expect("generated names are valid")
}

fn event(event_type: &str, n: u32) -> Envelope {
    Envelope::new("conformance", event_type, serde_json::json!({ "n": n })).with_subject("svc")
}

fn sub(stream: &StreamName, group: &str, consumer: &str) -> Subscription {
    Subscription::new(stream.clone(), group, consumer)
}

const WAIT: Duration = Duration::from_millis(50);

/// Events acknowledged by `publish` are there after the bus is reopened.
pub async fn published_events_survive_reopen(harness: &dyn Harness) {
    let stream = unique_stream("durable");
    let bus = harness.open().await;
    let sent: Vec<Envelope> = (0..5).map(|n| event("test.durable", n)).collect();
    bus.publish(&stream, sent.clone()).await.unwrap();
    bus.close().await.unwrap();
    drop(bus);
    let bus = harness.open().await;
    let stored = bus.read(&stream, &ReadQuery::default()).await.unwrap();
    let got: Vec<Envelope> = stored.into_iter().map(|s| s.event).collect();
    assert_eq!(got, sent);
}

/// Re-publishing an event (same source and id) returns the first offset and stores nothing
/// new.
pub async fn duplicate_id_is_stored_once(harness: &dyn Harness) {
    let stream = unique_stream("dup");
    let bus = harness.open().await;
    let first_event = event("test.dup", 1);
    let first = bus.publish_one(&stream, first_event.clone()).await.unwrap();
    let again = bus.publish_one(&stream, first_event.clone()).await.unwrap();
    assert_eq!(first, again, "re-publishing an id must return the first offset");
    let in_batch = bus.publish(&stream, vec![event("test.dup", 2), first_event.clone()]).await.unwrap();
    assert_eq!(in_batch[1], first);
    assert_eq!(bus.last_offset(&stream).await.unwrap(), 2);
    // CloudEvents makes an event unique by source and id: another producer's event with the
    // same id is a different event, and is stored (once).
    let mut other_producer = first_event.clone();
    other_producer.source = "another-producer".into();
    let other = bus.publish_one(&stream, other_producer.clone()).await.unwrap();
    assert_eq!(other, 3, "the same id from another source must be stored");
    assert_eq!(bus.publish_one(&stream, other_producer).await.unwrap(), 3);
    // Source and id are kept apart, not just run together: ("ab", "c") is not ("a", "bc").
    let (mut left, mut right) = (event("test.dup", 3), event("test.dup", 4));
    (left.source, left.id, right.source, right.id) = ("ab".into(), "c".into(), "a".into(), "bc".into());
    assert_eq!(bus.publish(&stream, vec![left, right]).await.unwrap(), vec![4, 5]);
    bus.close().await.unwrap();
    drop(bus);
    let bus = harness.open().await;
    assert_eq!(bus.publish_one(&stream, first_event).await.unwrap(), first, "and after a reopen");
    assert_eq!(bus.last_offset(&stream).await.unwrap(), 5);
}

/// Offsets start at 1 and increase by one per stored event.
pub async fn offsets_are_dense_and_ordered(harness: &dyn Harness) {
    let stream = unique_stream("dense");
    let bus = harness.open().await;
    let offsets = bus.publish(&stream, (0..3).map(|n| event("test.dense", n)).collect()).await.unwrap();
    assert_eq!(offsets, vec![1, 2, 3]);
    let more = bus.publish(&stream, vec![event("test.dense", 9)]).await.unwrap();
    assert_eq!(more, vec![4]);
}

/// An event not acked within the visibility timeout is delivered again, to any consumer.
pub async fn unacked_event_is_redelivered(harness: &dyn Harness) {
    let stream = unique_stream("redeliver");
    let bus = harness.open().await;
    bus.publish_one(&stream, event("test.redeliver", 1)).await.unwrap();
    let a = sub(&stream, "g", "a");
    let b = sub(&stream, "g", "b");
    let first = bus.receive(&a, 10, WAIT).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    assert!(bus.receive(&b, 10, WAIT).await.unwrap().is_empty(), "pending event went to a second consumer");
    let again = bus.receive(&b, 10, VISIBILITY * 4).await.unwrap();
    assert_eq!(again.len(), 1, "the unacked event was not redelivered");
    assert_eq!(again[0].offset, first[0].offset);
    assert_eq!(again[0].attempt, 2);
    bus.ack(&b, &[again[0].offset]).await.unwrap();
    assert!(bus.receive(&a, 10, VISIBILITY * 2).await.unwrap().is_empty(), "acked event came back");
}

/// A nacked event comes back after its delay, not before.
pub async fn nacked_event_is_retried_after_delay(harness: &dyn Harness) {
    let stream = unique_stream("nack");
    let bus = harness.open().await;
    bus.publish_one(&stream, event("test.nack", 1)).await.unwrap();
    let a = sub(&stream, "g", "a");
    let got = bus.receive(&a, 1, WAIT).await.unwrap();
    let delay = Duration::from_millis(150);
    bus.nack(&a, got[0].offset, delay).await.unwrap();
    let started = tokio::time::Instant::now();
    let retried = bus.receive(&a, 1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempt, 2);
    assert!(started.elapsed() >= delay - Duration::from_millis(20), "retried too early: {:?}", started.elapsed());
}

/// After `MAX_DELIVERIES` deliveries the event moves to the dead-letter stream, with the reason.
pub async fn exhausted_event_goes_to_dead_letter(harness: &dyn Harness) {
    let stream = unique_stream("dlq");
    let bus = harness.open().await;
    let poison = event("test.poison", 1);
    bus.publish_one(&stream, poison.clone()).await.unwrap();
    let a = sub(&stream, "g", "a");
    for attempt in 1..=MAX_DELIVERIES {
        let got = bus.receive(&a, 1, Duration::from_secs(2)).await.unwrap();
        assert_eq!(got.len(), 1, "delivery {attempt} missing");
        bus.nack(&a, got[0].offset, Duration::ZERO).await.unwrap();
    }
    assert!(bus.receive(&a, 1, VISIBILITY).await.unwrap().is_empty(), "poison event delivered too often");
    let dead = bus.read(&stream.dead_letter(), &ReadQuery::default()).await.unwrap();
    assert_eq!(dead.len(), 1);
    let letter = &dead[0].event;
    assert_eq!(letter.event_type, crate::DEAD_LETTER_TYPE);
    assert_eq!(letter.data["event"]["id"], poison.id);
    assert!(letter.data["reason"].as_str().unwrap().contains("deliveries"));
    // Re-driving publishes the event anew (once, however often it is asked).
    let first = bus.redrive(&stream, dead[0].offset).await.unwrap();
    assert_eq!(bus.redrive(&stream, dead[0].offset).await.unwrap(), first);
    let again = bus.receive(&a, 1, Duration::from_secs(2)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].offset, first);
    assert_eq!(again[0].event.data, poison.data);
    assert!(again[0].event.id.starts_with(&poison.id));
}

/// Two groups each see every event; within a group it goes to one consumer.
pub async fn every_group_sees_every_event(harness: &dyn Harness) {
    let stream = unique_stream("fanout");
    let bus = harness.open().await;
    bus.publish(&stream, (0..4).map(|n| event("test.fan", n)).collect()).await.unwrap();
    for group in ["g1", "g2"] {
        let s = sub(&stream, group, "c");
        let got = bus.receive(&s, 10, WAIT).await.unwrap();
        assert_eq!(got.len(), 4, "group {group}");
        bus.ack(&s, &got.iter().map(|d| d.offset).collect::<Vec<_>>()).await.unwrap();
    }
}

/// A group's type filter skips other types for good.
pub async fn group_filter_skips_other_types(harness: &dyn Harness) {
    let stream = unique_stream("filter");
    let bus = harness.open().await;
    bus.publish(&stream, vec![event("problem.detected", 1), event("http.request", 2), event("problem.resolved", 3)])
        .await
        .unwrap();
    let mut s = sub(&stream, "g", "c");
    s.types = vec!["problem.*".into()];
    let got = bus.receive(&s, 10, WAIT).await.unwrap();
    let types: Vec<&str> = got.iter().map(|d| d.event.event_type.as_str()).collect();
    assert_eq!(types, vec!["problem.detected", "problem.resolved"]);
}

/// A group's source, subject and attribute filters skip what does not match.
pub async fn group_filter_matches_source_subject_and_attributes(harness: &dyn Harness) {
    let stream = unique_stream("attrs");
    let bus = harness.open().await;
    let mut events: Vec<Envelope> = (0..4).map(|n| event("app.thing", n)).collect();
    events[1].source = "elsewhere".into();
    events[2].subject = Some("other".into());
    events[3].severity = Some(aiops_model::Severity::Critical);
    events[0].severity = Some(aiops_model::Severity::Warning);
    bus.publish(&stream, events).await.unwrap();
    let mut s = sub(&stream, "g", "c");
    s.source = Some("conformance".into());
    s.subject = Some("svc".into());
    s.attributes = vec![("severity".into(), "critical".into())];
    let got = bus.receive(&s, 10, WAIT).await.unwrap();
    assert_eq!(got.iter().map(|d| d.event.data["n"].as_u64().unwrap()).collect::<Vec<_>>(), vec![3]);
}

/// `read` can start at a time: only events stored at or after it.
pub async fn read_replays_from_a_time(harness: &dyn Harness) {
    let stream = unique_stream("since");
    let bus = harness.open().await;
    bus.publish(&stream, vec![event("t.a", 1), event("t.a", 2)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    bus.publish(&stream, vec![event("t.a", 3)]).await.unwrap();
    let got = bus.read(&stream, &ReadQuery { since: Some(since), ..ReadQuery::default() }).await.unwrap();
    assert_eq!(got.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![3]);
}

/// Acked events stay acked after reopening; unacked ones come back.
pub async fn acked_events_stay_acked_after_reopen(harness: &dyn Harness) {
    let stream = unique_stream("reopen");
    let bus = harness.open().await;
    bus.publish(&stream, (0..3).map(|n| event("test.reopen", n)).collect()).await.unwrap();
    let s = sub(&stream, "g", "c");
    let got = bus.receive(&s, 10, WAIT).await.unwrap();
    assert_eq!(got.len(), 3);
    bus.ack(&s, &[got[0].offset, got[2].offset]).await.unwrap();
    bus.close().await.unwrap();
    drop(bus);
    let bus = harness.open().await;
    let again = bus.receive(&s, 10, VISIBILITY * 4).await.unwrap();
    let offsets: Vec<u64> = again.iter().map(|d| d.offset).collect();
    assert_eq!(offsets, vec![got[1].offset]);
}

/// `read` replays from an offset, filters by type and subject, and reads newest first.
pub async fn read_replays_with_filters(harness: &dyn Harness) {
    let stream = unique_stream("read");
    let bus = harness.open().await;
    let mut events: Vec<Envelope> = (0..6).map(|n| event(if n % 2 == 0 { "a.even" } else { "a.odd" }, n)).collect();
    events[5].subject = Some("other".into());
    bus.publish(&stream, events).await.unwrap();
    let from_three = bus.read(&stream, &ReadQuery { after: 3, ..ReadQuery::default() }).await.unwrap();
    assert_eq!(from_three.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![4, 5, 6]);
    let odd = bus
        .read(&stream, &ReadQuery { types: vec!["a.odd".into()], subject: Some("svc".into()), ..ReadQuery::default() })
        .await
        .unwrap();
    assert_eq!(odd.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![2, 4]);
    let newest = bus.read(&stream, &ReadQuery { newest_first: true, limit: 2, ..ReadQuery::default() }).await.unwrap();
    assert_eq!(newest.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![6, 5]);
    assert!(bus.read(&unique_stream("missing"), &ReadQuery::default()).await.unwrap().is_empty());
}

/// Runs the whole suite against a backend: one `#[tokio::test]` per check.
#[macro_export]
macro_rules! event_bus_conformance {
    ($harness:expr) => {
        $crate::event_bus_conformance!(@each $harness;
            published_events_survive_reopen, duplicate_id_is_stored_once,
            offsets_are_dense_and_ordered, unacked_event_is_redelivered,
            nacked_event_is_retried_after_delay, exhausted_event_goes_to_dead_letter,
            every_group_sees_every_event, group_filter_skips_other_types,
            group_filter_matches_source_subject_and_attributes, read_replays_from_a_time,
            acked_events_stay_acked_after_reopen, read_replays_with_filters);
    };
    (@each $harness:expr; $($check:ident),+) => {$(
        #[tokio::test]
        async fn $check() {
            let harness = $harness;
            $crate::conformance::$check(&harness).await;
        }
    )+};
}
