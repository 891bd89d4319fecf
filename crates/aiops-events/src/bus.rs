//! The `EventBus` trait and the nouns it speaks: streams, offsets, subscriptions, deliveries.

use std::fmt;
use std::time::Duration;

use aiops_model::Envelope;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{EventsError, EventsResult};

/// Position of an event in its stream: 1 for the first event, increasing by one per event.
pub type Offset = u64;

/// Name of a stream: 1 to 64 characters of `[a-z0-9_.-]`, so it is safe as a file or key name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamName(String);

impl StreamName {
    /// Validates and wraps a stream name.
    ///
    /// # Errors
    /// [`EventsError::Invalid`] when the name is empty, too long or has other characters.
    pub fn new(name: impl Into<String>) -> EventsResult<Self> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if ok {
            Ok(Self(name))
        } else {
            Err(EventsError::Invalid(format!("stream name {name:?} must be 1-64 characters of [a-z0-9_.-]")))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stream where events of this stream go after too many failed deliveries.
    pub fn dead_letter(&self) -> StreamName {
        StreamName(format!("{}.dead-letter", self.0))
    }
}

impl TryFrom<String> for StreamName {
    type Error = EventsError;
    fn try_from(value: String) -> EventsResult<Self> {
        Self::new(value)
    }
}

impl From<StreamName> for String {
    fn from(value: StreamName) -> String {
        value.0
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// From the first event still stored.
    Earliest,
    /// Only events published after the group was created.
    Latest,
}

/// A consumer's membership in a consumer group of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The stream read.
    pub stream: StreamName,
    /// The group: each event goes to one consumer of the group.
    pub group: String,
    /// This consumer's name within the group (for example the instance id).
    pub consumer: String,
    /// Event type patterns to deliver (see [`aiops_model::event_type::matches`]); empty means all.
    /// Events that match none are skipped for this group and never delivered.
    pub types: Vec<String>,
    /// Only events from this source, if set.
    pub source: Option<String>,
    /// Only events about this subject, if set.
    pub subject: Option<String>,
    /// Only events whose top-level attributes (e.g. `severity`) equal these values.
    pub attributes: Vec<(String, String)>,
    /// Where the group starts when it does not exist yet.
    pub start: StartFrom,
}

impl Subscription {
    /// A subscription to every event of `stream`, from the earliest stored one.
    pub fn new(stream: StreamName, group: impl Into<String>, consumer: impl Into<String>) -> Self {
        Self {
            stream,
            group: group.into(),
            consumer: consumer.into(),
            types: Vec::new(),
            source: None,
            subject: None,
            attributes: Vec::new(),
            start: StartFrom::Earliest,
        }
    }

    /// Whether the type, source and subject pass the filter (what an index can tell).
    pub fn wants_head(&self, event_type: &str, source: &str, subject: Option<&str>) -> bool {
        (self.types.is_empty() || self.types.iter().any(|p| aiops_model::event_type::matches(p, event_type)))
            && self.source.as_deref().is_none_or(|want| want == source)
            && self.subject.as_deref().is_none_or(|want| Some(want) == subject)
    }

    /// Whether an event passes the whole filter.
    pub fn wants(&self, event: &Envelope) -> bool {
        self.wants_head(&event.event_type, &event.source, event.subject.as_deref()) && self.wants_attributes(event)
    }

    /// Whether the event's top-level attributes equal the filter's.
    pub fn wants_attributes(&self, event: &Envelope) -> bool {
        if self.attributes.is_empty() {
            return true;
        }
        let Ok(serde_json::Value::Object(attributes)) = serde_json::to_value(event) else { return false };
        self.attributes.iter().all(|(name, want)| match attributes.get(name) {
            Some(serde_json::Value::String(value)) => value == want,
            Some(other) if !other.is_object() && !other.is_array() => *other.to_string() == **want,
            _ => false,
        })
    }
}

/// One event handed to one consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Its offset in the stream; acknowledge with it.
    pub offset: Offset,
    /// The event.
    pub event: Envelope,
    /// 1 on first delivery, 2 on the first redelivery, ...
    pub attempt: u32,
}

/// One stored event with its offset, as replay returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Its offset in the stream.
    pub offset: Offset,
    /// When the log accepted it (never decreasing along a stream; what `since` selects on).
    /// Unlike the event's own `time`, a producer's clock does not set it.
    #[serde(default)]
    pub accepted_at: chrono::DateTime<chrono::Utc>,
    /// The event.
    pub event: Envelope,
}

/// What to read from a stream, outside any consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadQuery {
    /// Only events with an offset greater than this (0 reads from the start).
    pub after: Offset,
    /// Only events with an offset smaller than this, if set.
    pub before: Option<Offset>,
    /// Event type patterns; empty means all.
    pub types: Vec<String>,
    /// Only events with this subject, if set.
    pub subject: Option<String>,
    /// Only events the log accepted at or after this time, if set.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// At most this many events.
    pub limit: usize,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
}

impl Default for ReadQuery {
    fn default() -> Self {
        Self { after: 0, before: None, types: Vec::new(), subject: None, since: None, limit: 100, newest_first: false }
    }
}

/// Publish/subscribe over durable, replayable streams.
///
/// # Contract
/// - `publish` returns only once every event of the batch is durable: a crash of the process
///   after `Ok` loses none of them (`published_events_survive_reopen`).
/// - Publishing an envelope whose `source` and `id` are already stored in the stream stores
///   nothing and returns the first offset (`duplicate_id_is_stored_once`); the same `id` from
///   another `source` is another event.
/// - Offsets of one stream start at 1 and increase by one per stored event
///   (`offsets_are_dense_and_ordered`).
/// - In a group each event goes to one consumer and stays pending until `ack`ed; an event not
///   acked within the visibility timeout is delivered again (`unacked_event_is_redelivered`),
///   `nack` makes it deliverable again after its delay (`nacked_event_is_retried_after_delay`).
/// - After `max_deliveries` deliveries without ack, an event goes to the stream's
///   dead-letter stream with the reason (`exhausted_event_goes_to_dead_letter`).
/// - Every group sees every event of the stream it wants (`every_group_sees_every_event`);
///   a group's type filter skips the rest (`group_filter_skips_other_types`).
/// - Acknowledged events are not delivered to the group again, also after reopening
///   (`acked_events_stay_acked_after_reopen`).
/// - `read` replays from any offset with filters, in either direction (`read_replays_with_filters`).
///
/// # Errors
/// Invalid input is [`EventsError::Invalid`]; a full bound is [`EventsError::Overloaded`];
/// a backend that cannot make an event durable answers [`EventsError::Unavailable`], never `Ok`.
#[async_trait]
pub trait EventBus: Send + Sync + fmt::Debug + 'static {
    /// Appends a batch of events to a stream; returns their offsets in order.
    async fn publish(&self, stream: &StreamName, events: Vec<Envelope>) -> EventsResult<Vec<Offset>>;

    /// Up to `max` deliveries for this consumer, waiting up to `wait` when none is ready.
    /// Creates the group (starting where `sub.start` says) if it does not exist.
    async fn receive(&self, sub: &Subscription, max: usize, wait: Duration) -> EventsResult<Vec<Delivery>>;

    /// Marks deliveries as done for the group. Unknown or already acked offsets are ignored.
    async fn ack(&self, sub: &Subscription, offsets: &[Offset]) -> EventsResult<()>;

    /// Gives a delivery back: it is delivered again, to any consumer, after `retry_after`.
    async fn nack(&self, sub: &Subscription, offset: Offset, retry_after: Duration) -> EventsResult<()>;

    /// Reads stored events outside any group (replay, queries).
    async fn read(&self, stream: &StreamName, query: &ReadQuery) -> EventsResult<Vec<StoredEvent>>;

    /// The offset of the newest event in the stream, 0 when it is empty.
    async fn last_offset(&self, stream: &StreamName) -> EventsResult<Offset>;

    /// Makes pending group state durable and releases resources; called on shutdown.
    async fn close(&self) -> EventsResult<()>;
}

/// Conveniences built on [`EventBus`].
#[async_trait]
pub trait EventBusExt: EventBus {
    /// Publishes the event held by the dead letter at `letter_offset` of `stream`'s
    /// dead-letter stream to `stream` again, as a new event (id `<original>~redrive~<offset>`,
    /// so re-driving the same letter twice stores it once). Every group sees it anew.
    async fn redrive(&self, stream: &StreamName, letter_offset: Offset) -> EventsResult<Offset> {
        let offsets = self.redrive_all(stream, &[letter_offset]).await?;
        offsets
            .first()
            .copied()
            .ok_or_else(|| EventsError::Invalid("a redrive of one letter returned no offset".into()))
    }

    /// [`Self::redrive`] for several letters, all or nothing: every letter is read first, and
    /// the copies are published as one batch, so a missing letter re-drives none of them.
    async fn redrive_all(&self, stream: &StreamName, letter_offsets: &[Offset]) -> EventsResult<Vec<Offset>> {
        let mut copies = Vec::with_capacity(letter_offsets.len());
        for &letter_offset in letter_offsets {
            let query = ReadQuery { after: letter_offset.saturating_sub(1), limit: 1, ..ReadQuery::default() };
            let letter = self
                .read(&stream.dead_letter(), &query)
                .await?
                .into_iter()
                .find(|stored| stored.offset == letter_offset)
                .ok_or_else(|| EventsError::Invalid(format!("no dead letter at offset {letter_offset} of {stream}")))?;
            let mut event: Envelope = serde_json::from_value(letter.event.data["event"].clone())
                .map_err(|err| EventsError::Invalid(format!("dead letter {letter_offset} holds no event: {err}")))?;
            let original: String = event.id.chars().take(REDRIVE_ID_KEEP).collect();
            event.id = format!("{original}~redrive~{letter_offset}");
            copies.push(event);
        }
        self.publish(stream, copies).await
    }

    /// Publishes one event and returns its offset.
    async fn publish_one(&self, stream: &StreamName, event: Envelope) -> EventsResult<Offset> {
        let offsets = self.publish(stream, vec![event]).await?;
        offsets.first().copied().ok_or_else(|| EventsError::Invalid("publish of one event returned no offset".into()))
    }
}

impl<T: EventBus + ?Sized> EventBusExt for T {}

/// What makes an event unique, as CloudEvents defines it: its source and its id (two
/// producers may both send an event `1`). Publishing is idempotent on this key.
pub(crate) fn dedup_key(source: &str, id: &str) -> String {
    // The source's length first, so that no two (source, id) pairs share a key whatever
    // characters they hold.
    format!("{}:{source}{id}", source.len())
}

/// Longest id kept from the original event in a re-driven copy's id.
const REDRIVE_ID_KEEP: usize = 96;

/// Time a consumer may hold a delivery before it goes to another consumer.
pub(crate) const fn default_visibility() -> Duration {
    Duration::from_secs(30)
}
