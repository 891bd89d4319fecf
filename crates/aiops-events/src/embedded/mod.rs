//! The embedded event mesh: durable, segmented log files per stream in a local directory.
//!
//! # Layout
//! `<dir>/<stream>/` holds the stream's segment files (see `log.rs` for the record format)
//! and `groups.json`, each consumer group's progress (see `group.rs`).
//!
//! # Durability
//! A publish writes its records, then `fdatasync`s the segment before returning. Records
//! become visible to readers only once a sync that covers them has finished, so no consumer
//! ever acts on an event that a crash could still take back.
//!
//! # Bounds
//! - Retention deletes whole sealed segments once every consumer group is done with them and
//!   they exceed `retention_max_events` or `retention_max_age_secs`. Events a group has not
//!   finished are never deleted; a lagging group makes its stream grow until `max_bytes`,
//!   and then publishing fails with an error naming the group (never a silent drop).
//! - A group holds at most `max_pending` unacknowledged deliveries; a slow consumer only
//!   stops receiving more, it never slows the publishers or the other groups.
//!
//! One mutex guards the streams' in-memory state; file writes happen under it (into the page
//! cache), fsyncs outside it.

mod group;
mod log;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aiops_model::Envelope;
use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use self::group::{Group, Pending};
use self::log::{Limits, StreamLog};
use crate::{
    Delivery, EmbeddedConfig, EventBus, EventsError, EventsResult, Offset, ReadQuery, StartFrom, StoredEvent,
    StreamName, Subscription,
};

#[cfg(test)]
mod tests;

const BACKEND: &str = "embedded event log";
/// Group state is written at most this often while acks stream in (and always on close).
const PERSIST_INTERVAL: Duration = Duration::from_millis(200);

fn io_err(source: std::io::Error) -> EventsError {
    EventsError::Unavailable { backend: BACKEND, source }
}

/// The default event mesh: durable log files in a local directory.
#[derive(Debug, Clone)]
pub struct EmbeddedEventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: EmbeddedConfig,
    streams: Mutex<HashMap<StreamName, Stream>>,
    /// Woken on every publish and nack so that waiting receivers look again.
    published: Notify,
}

#[derive(Debug)]
struct Stream {
    log: StreamLog,
    groups: HashMap<String, Group>,
    groups_path: PathBuf,
    groups_dirty: bool,
    groups_persisted: Instant,
    /// An fsync of this stream is running.
    syncing: bool,
    /// Woken when an fsync of this stream ends.
    synced: Arc<Notify>,
}

impl Stream {
    fn persist_groups(&mut self, force: bool) -> EventsResult<()> {
        if self.groups_dirty && (force || self.groups_persisted.elapsed() >= PERSIST_INTERVAL) {
            group::persist(&self.groups_path, &self.groups)?;
            self.groups_dirty = false;
            self.groups_persisted = Instant::now();
        }
        Ok(())
    }

    /// The lowest offset some group has not finished; everything below is done by all.
    fn done_below(&self) -> Offset {
        self.groups.values().map(|g| g.floor).min().unwrap_or(self.log.last() + 1)
    }

    /// The group furthest behind, with how many events it has not finished.
    fn slowest_group(&self) -> Option<(&str, u64)> {
        self.groups
            .iter()
            .min_by_key(|(_, g)| g.floor)
            .map(|(name, g)| (name.as_str(), (self.log.last() + 1).saturating_sub(g.floor)))
    }
}

impl EmbeddedEventBus {
    /// Opens (creating if needed) the log directory.
    ///
    /// # Errors
    /// [`EventsError::Unavailable`] when the directory cannot be created.
    pub async fn open(dir: &Path, config: EmbeddedConfig) -> EventsResult<Self> {
        std::fs::create_dir_all(dir).map_err(io_err)?;
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                config,
                streams: Mutex::new(HashMap::new()),
                published: Notify::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<StreamName, Stream>> {
        // Every mutation under this lock leaves the maps consistent before it can panic, so a
        // poisoned lock is still safe to use.
        self.inner.streams.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn visibility(&self) -> Duration {
        Duration::from_millis(self.inner.config.visibility_timeout_ms)
    }

    fn limits(&self) -> Limits {
        let config = &self.inner.config;
        Limits {
            segment_max_bytes: config.segment_max_bytes,
            max_bytes: config.max_bytes,
            retention_max_events: config.retention_max_events,
            retention_max_age_ms: config.retention_max_age_secs.map(|s| (s as i64).saturating_mul(1000)),
        }
    }

    fn stream<'a>(
        &self,
        streams: &'a mut HashMap<StreamName, Stream>,
        name: &StreamName,
        create: bool,
    ) -> EventsResult<Option<&'a mut Stream>> {
        if !streams.contains_key(name) {
            let dir = self.inner.dir.join(name.as_str());
            if !create && !dir.exists() {
                return Ok(None);
            }
            let log = StreamLog::open(&dir)?;
            let groups_path = dir.join("groups.json");
            let groups = group::load(&groups_path, log.first(), log.last())?;
            streams.insert(
                name.clone(),
                Stream {
                    log,
                    groups,
                    groups_path,
                    groups_dirty: false,
                    groups_persisted: Instant::now(),
                    syncing: false,
                    synced: Arc::new(Notify::new()),
                },
            );
        }
        Ok(streams.get_mut(name))
    }

    /// Appends under the lock; returns (offsets, highest offset written or reused, a handle
    /// to sync).
    fn append(
        &self,
        streams: &mut HashMap<StreamName, Stream>,
        name: &StreamName,
        events: &[Envelope],
    ) -> EventsResult<(Vec<Offset>, Offset)> {
        let limits = self.limits();
        let stream = self
            .stream(streams, name, true)?
            .ok_or_else(|| EventsError::Invalid(format!("stream {name} could not be created")))?;
        let done_below = stream.done_below();
        let removed = stream.log.apply_retention(done_below, &limits)?;
        if removed > 0 {
            for group in stream.groups.values_mut() {
                group.skip_below(stream.log.first());
            }
            tracing::debug!(stream = %name, events = removed, "Retention removed old segments.");
        }
        match stream.log.append(events, &limits) {
            Err(EventsError::Overloaded(reason)) => {
                let lagging = stream
                    .slowest_group()
                    .map(|(group, lag)| format!("; consumer group {group} is {lag} events behind"))
                    .unwrap_or_default();
                Err(EventsError::Overloaded(format!("{reason}{lagging}")))
            }
            other => other,
        }
    }

    /// Waits until `highest` is durable, with group commit: one publisher at a time runs an
    /// fsync covering everything written when it started; publishers arriving meanwhile wait
    /// for it and find themselves covered, or lead the next one.
    async fn sync_and_reveal(&self, name: &StreamName, highest: Offset) -> EventsResult<()> {
        enum Step {
            Done,
            Wait(Arc<Notify>),
            Lead,
        }
        loop {
            let step = {
                let mut streams = self.lock();
                match streams.get_mut(name) {
                    None => Step::Done,
                    Some(stream) if stream.log.visible >= highest => Step::Done,
                    Some(stream) if stream.syncing => Step::Wait(stream.synced.clone()),
                    Some(stream) => {
                        stream.syncing = true;
                        Step::Lead
                    }
                }
            };
            match step {
                Step::Done => return Ok(()),
                Step::Wait(synced) => {
                    let notified = synced.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    // Checked again with the waiter registered, so a sync ending now is not missed.
                    let still_running = self.lock().get(name).is_some_and(|s| s.syncing && s.log.visible < highest);
                    if still_running {
                        notified.await;
                    }
                }
                Step::Lead => {
                    // Whatever happens to this future from here (its caller may drop it at an
                    // await), the stream must not stay marked as syncing with nobody syncing:
                    // every later publisher would wait for a sync that never ends.
                    let mut leading = LeadingSync { bus: self, name, done: false };
                    // Publishers the last sync released are about to write their next
                    // batches: letting them run first puts those batches under this sync
                    // instead of the next one. Without it, consecutive syncs alternate between
                    // two halves of the publishers, each covering about half of them.
                    tokio::task::yield_now().await;
                    let (target, file) = match self.lock().get(name) {
                        Some(stream) => (stream.log.last(), stream.log.active_handle()),
                        None => return Ok(()),
                    };
                    let result = match file {
                        Ok(file) => tokio::task::spawn_blocking(move || file.sync_data())
                            .await
                            .map_err(|err| io_err(std::io::Error::other(err)))
                            .and_then(|synced| synced.map_err(io_err)),
                        Err(err) => Err(err),
                    };
                    {
                        let mut streams = self.lock();
                        if let Some(stream) = streams.get_mut(name) {
                            stream.syncing = false;
                            if result.is_ok() {
                                // fdatasync covers every write issued before it, including
                                // other publishers' records up to `target`.
                                stream.log.visible = stream.log.visible.max(target);
                            }
                            stream.synced.notify_waiters();
                        }
                    }
                    leading.done = true;
                    result?;
                    self.inner.published.notify_waiters();
                }
            }
        }
    }

    /// Appends letters to the dead-letter stream and syncs them. Called with the lock held.
    fn dead_letter(
        &self,
        streams: &mut HashMap<StreamName, Stream>,
        name: &StreamName,
        group: &str,
        letters: Vec<(Offset, Envelope, u32)>,
    ) -> EventsResult<()> {
        let dead = name.dead_letter();
        let envelopes: Vec<Envelope> = letters
            .into_iter()
            .map(|(offset, event, attempts)| dead_letter_envelope(name, group, offset, event, attempts))
            .collect();
        let (_, highest) = self.append(streams, &dead, &envelopes)?;
        if let Some(stream) = streams.get(&dead) {
            stream.log.active_handle()?.sync_data().map_err(io_err)?;
        }
        if let Some(stream) = streams.get_mut(&dead) {
            stream.log.visible = stream.log.visible.max(highest);
        }
        Ok(())
    }

    /// One pass of `receive`: the deliveries ready now, and when the next pending one expires.
    fn try_receive(&self, sub: &Subscription, max: usize) -> EventsResult<(Vec<Delivery>, Option<Instant>)> {
        let now = Instant::now();
        let visibility = self.visibility();
        let max_deliveries = self.inner.config.max_deliveries.max(1);
        let max_pending = self.inner.config.max_pending.max(1);
        let mut streams = self.lock();
        let Some(stream) = self.stream(&mut streams, &sub.stream, true)? else {
            return Ok((Vec::new(), None));
        };
        let visible = stream.log.visible;
        let first = stream.log.first();
        let group = stream.groups.entry(sub.group.clone()).or_insert_with(|| match sub.start {
            StartFrom::Earliest => Group::starting_at(first),
            StartFrom::Latest => Group::starting_at(visible + 1),
        });
        let mut ready = Vec::new();
        let mut letters = Vec::new();
        let mut skipped = false;
        let expired: Vec<Offset> =
            group.pending.iter().filter(|(_, pending)| pending.visible_at <= now).map(|(offset, _)| *offset).collect();
        for offset in expired {
            if ready.len() >= max {
                break;
            }
            let Some(pending) = group.pending.get_mut(&offset) else { continue };
            if pending.attempts >= max_deliveries {
                // Stays pending (and so is not lost) until its dead letter is durable below.
                letters.push((offset, pending.attempts));
                continue;
            }
            pending.attempts += 1;
            pending.visible_at = now + visibility;
            ready.push((offset, pending.attempts));
        }
        while ready.len() < max && group.next <= visible && group.pending.len() < max_pending {
            let offset = group.next;
            group.next += 1;
            if group.done.contains(&offset) || offset < group.floor {
                continue;
            }
            let Some(entry) = stream.log.entry(offset) else { continue };
            let names = &stream.log.names;
            let subject = entry.subject_idx.map(|idx| names.name(idx));
            if !sub.wants_head(names.name(entry.type_idx), names.name(entry.source_idx), subject) {
                group.mark_done(offset);
                skipped = true;
                continue;
            }
            group.pending.insert(offset, Pending { attempts: 1, visible_at: now + visibility });
            ready.push((offset, 1));
        }
        let next_expiry = group.pending.values().map(|p| p.visible_at).min();
        if skipped {
            stream.groups_dirty = true;
        }
        let mut deliveries = Vec::with_capacity(ready.len());
        for (offset, attempt) in ready {
            let event = stream.log.read(offset)?;
            if sub.wants_attributes(&event) {
                deliveries.push(Delivery { offset, event, attempt });
            } else if let Some(group) = stream.groups.get_mut(&sub.group) {
                // Filtered on an attribute the index does not hold.
                group.pending.remove(&offset);
                group.mark_done(offset);
                stream.groups_dirty = true;
            }
        }
        let mut dead = Vec::with_capacity(letters.len());
        for (offset, attempts) in letters {
            dead.push((offset, stream.log.read(offset)?, attempts));
        }
        if dead.is_empty() {
            stream.persist_groups(false)?;
            return Ok((deliveries, next_expiry));
        }
        let dead_offsets: Vec<Offset> = dead.iter().map(|(offset, _, _)| *offset).collect();
        self.dead_letter(&mut streams, &sub.stream, &sub.group, dead)?;
        // The letters are durable: only now are the events done for the group.
        if let Some(stream) = streams.get_mut(&sub.stream) {
            if let Some(group) = stream.groups.get_mut(&sub.group) {
                for offset in dead_offsets {
                    group.pending.remove(&offset);
                    group.mark_done(offset);
                }
            }
            stream.groups_dirty = true;
            stream.persist_groups(true)?;
        }
        Ok((deliveries, next_expiry))
    }
}

/// The entry written to a dead-letter stream: the event, where it came from, and why.
pub(crate) fn dead_letter_envelope(
    stream: &StreamName,
    group: &str,
    offset: Offset,
    event: Envelope,
    attempts: u32,
) -> Envelope {
    let mut letter = Envelope::new(
        "aiops/events",
        crate::DEAD_LETTER_TYPE,
        serde_json::json!({
            "stream": stream.as_str(),
            "group": group,
            "offset": offset,
            "attempts": attempts,
            "reason": format!("not acknowledged after {attempts} deliveries"),
            "event": event,
        }),
    );
    // One letter per (group, offset): dead-lettering again after a crash stores nothing new.
    letter.id = format!("{group}/{offset}");
    letter.subject = event_subject(&letter);
    letter
}

fn event_subject(letter: &Envelope) -> Option<String> {
    letter.data["event"]["subject"].as_str().map(str::to_owned)
}

#[async_trait]
impl EventBus for EmbeddedEventBus {
    async fn publish(&self, stream: &StreamName, events: Vec<Envelope>) -> EventsResult<Vec<Offset>> {
        if events.len() > self.inner.config.max_batch {
            return Err(EventsError::Overloaded(format!(
                "a batch holds at most {} events, got {}",
                self.inner.config.max_batch,
                events.len()
            )));
        }
        for event in &events {
            event.validate().map_err(|err| EventsError::Invalid(format!("event {:?}: {err}", event.id)))?;
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (offsets, highest) = {
            let mut streams = self.lock();
            self.append(&mut streams, stream, &events)?
        };
        self.sync_and_reveal(stream, highest).await?;
        Ok(offsets)
    }

    async fn receive(&self, sub: &Subscription, max: usize, wait: Duration) -> EventsResult<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.inner.published.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (deliveries, next_expiry) = self.try_receive(sub, max.max(1))?;
            if !deliveries.is_empty() || Instant::now() >= deadline {
                return Ok(deliveries);
            }
            let wake_at = next_expiry.map_or(deadline, |expiry| expiry.min(deadline));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    async fn ack(&self, sub: &Subscription, offsets: &[Offset]) -> EventsResult<()> {
        let mut streams = self.lock();
        let Some(stream) = self.stream(&mut streams, &sub.stream, false)? else {
            return Ok(());
        };
        let Some(group) = stream.groups.get_mut(&sub.group) else { return Ok(()) };
        let mut changed = false;
        for offset in offsets {
            if group.pending.remove(offset).is_some() {
                group.mark_done(*offset);
                changed = true;
            }
        }
        if changed {
            stream.groups_dirty = true;
            stream.persist_groups(false)?;
        }
        Ok(())
    }

    async fn nack(&self, sub: &Subscription, offset: Offset, retry_after: Duration) -> EventsResult<()> {
        {
            let mut streams = self.lock();
            let Some(stream) = self.stream(&mut streams, &sub.stream, false)? else {
                return Ok(());
            };
            if let Some(pending) = stream.groups.get_mut(&sub.group).and_then(|g| g.pending.get_mut(&offset)) {
                pending.visible_at = Instant::now() + retry_after;
            }
        }
        self.inner.published.notify_waiters();
        Ok(())
    }

    async fn read(&self, name: &StreamName, query: &ReadQuery) -> EventsResult<Vec<StoredEvent>> {
        let mut streams = self.lock();
        let Some(stream) = self.stream(&mut streams, name, false)? else {
            return Ok(Vec::new());
        };
        let log = &stream.log;
        let mut first = query.after.saturating_add(1).max(log.first());
        if let Some(since) = query.since {
            first = first.max(log.first_since(since.timestamp_millis()));
        }
        let last = query.before.map_or(log.visible, |b| b.saturating_sub(1).min(log.visible));
        let mut out = Vec::new();
        if first > last || query.limit == 0 {
            return Ok(out);
        }
        let types: Vec<&str> = query.types.iter().map(String::as_str).collect();
        let subject_idx = query.subject.as_deref().map(|s| log.names.find(s));
        let wanted = |offset: Offset| {
            let Some(entry) = log.entry(offset) else { return false };
            let type_ok = types.is_empty()
                || types.iter().any(|p| aiops_model::event_type::matches(p, log.names.name(entry.type_idx)));
            let subject_ok = match subject_idx {
                None => true,
                Some(None) => false,
                Some(Some(idx)) => entry.subject_idx == Some(idx),
            };
            type_ok && subject_ok
        };
        let offsets: Box<dyn Iterator<Item = Offset>> =
            if query.newest_first { Box::new((first..=last).rev()) } else { Box::new(first..=last) };
        for offset in offsets.filter(|o| wanted(*o)) {
            let accepted_at = log
                .entry(offset)
                .and_then(|entry| chrono::DateTime::from_timestamp_millis(entry.appended_ms))
                .unwrap_or_default();
            out.push(StoredEvent { offset, accepted_at, event: log.read(offset)? });
            if out.len() >= query.limit {
                break;
            }
        }
        Ok(out)
    }

    async fn last_offset(&self, name: &StreamName) -> EventsResult<Offset> {
        let mut streams = self.lock();
        Ok(self.stream(&mut streams, name, false)?.map_or(0, |stream| stream.log.visible))
    }

    async fn close(&self) -> EventsResult<()> {
        let mut streams = self.lock();
        for stream in streams.values_mut() {
            stream.persist_groups(true)?;
            stream.log.sync()?;
        }
        Ok(())
    }
}

/// A publisher leading a sync of `name`; if it is dropped before it finished, the next
/// publisher takes over (its records are still covered: they were written before).
struct LeadingSync<'a> {
    bus: &'a EmbeddedEventBus,
    name: &'a StreamName,
    done: bool,
}

impl Drop for LeadingSync<'_> {
    fn drop(&mut self) {
        if !self.done {
            if let Some(stream) = self.bus.lock().get_mut(self.name) {
                stream.syncing = false;
                stream.synced.notify_waiters();
            }
        }
    }
}
