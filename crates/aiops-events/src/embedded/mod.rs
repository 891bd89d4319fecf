//! The embedded event mesh: one append-only log file per stream in a directory.
//!
//! # Layout
//! `<dir>/<stream>.log` holds records `[len: u32 LE][crc32 of payload: u32 LE][payload]`, where
//! the payload is the envelope's JSON. Offsets are record positions (1-based). An index of
//! record positions, ids, types and subjects is rebuilt in memory when a stream is opened; a
//! torn or corrupt tail (a crash during a write) is cut off at the last good record.
//!
//! `<dir>/<stream>.groups.json` holds each consumer group's acknowledged offsets, written
//! after every ack. It is not fsynced: losing it in a power cut only causes redeliveries,
//! which at-least-once consumers must tolerate anyway. Pending deliveries are not stored:
//! after a restart everything unacknowledged is delivered again, with the attempt count
//! starting over.
//!
//! # Durability
//! A publish writes its records, then `fdatasync`s the file before returning. Records become
//! visible to readers only once a sync that covers them has finished, so no consumer ever acts
//! on an event that a crash could still take back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aiops_model::Envelope;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{
    Delivery, EmbeddedConfig, EventBus, EventsError, EventsResult, Offset, ReadQuery, StartFrom, StoredEvent,
    StreamName, Subscription,
};

#[cfg(test)]
mod tests;

const BACKEND: &str = "embedded event log";
const HEADER_LEN: usize = 8;
/// Upper bound of one record; larger lengths in a header mean a corrupt record.
const MAX_RECORD_LEN: u32 = 4 * 1024 * 1024;

/// The default event mesh: durable log files in a local directory.
#[derive(Debug, Clone)]
pub struct EmbeddedEventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: EmbeddedConfig,
    streams: Mutex<HashMap<StreamName, StreamLog>>,
    /// Woken on every publish and nack so that waiting receivers look again.
    published: Notify,
}

#[derive(Debug)]
struct StreamLog {
    file: File,
    /// Bytes of the file holding complete records.
    len: u64,
    entries: Vec<Entry>,
    /// Entries covered by a finished fsync; only these are visible to readers.
    visible: usize,
    ids: HashMap<String, Offset>,
    names: Interner,
    groups: HashMap<String, Group>,
    groups_path: PathBuf,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    pos: u64,
    len: u32,
    type_idx: u32,
    subject_idx: Option<u32>,
}

/// Interns event types and subjects so that filters compare small integers, not decoded JSON.
#[derive(Debug, Default)]
struct Interner {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Interner {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(idx) = self.index.get(name) {
            return *idx;
        }
        let idx = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), idx);
        idx
    }

    fn name(&self, idx: u32) -> &str {
        &self.names[idx as usize]
    }
}

#[derive(Debug)]
struct Group {
    /// Every offset below this one is done (acked or skipped by the filter).
    floor: Offset,
    /// Done offsets at or above `floor`.
    done: BTreeSet<Offset>,
    /// The next offset never delivered to this group.
    next: Offset,
    pending: BTreeMap<Offset, Pending>,
}

#[derive(Debug)]
struct Pending {
    attempts: u32,
    visible_at: Instant,
}

impl Group {
    fn starting_at(next: Offset) -> Self {
        Self { floor: next, done: BTreeSet::new(), next, pending: BTreeMap::new() }
    }

    fn mark_done(&mut self, offset: Offset) {
        if offset < self.floor {
            return;
        }
        self.done.insert(offset);
        while self.done.remove(&self.floor) {
            self.floor += 1;
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedGroup {
    floor: Offset,
    done: Vec<Offset>,
}

/// Just the attributes the index needs; serde skips the rest of the envelope.
#[derive(Deserialize)]
struct Head {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    subject: Option<String>,
}

fn io_err(source: std::io::Error) -> EventsError {
    EventsError::Unavailable { backend: BACKEND, source }
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

    fn lock(&self) -> MutexGuard<'_, HashMap<StreamName, StreamLog>> {
        // A panic while holding this lock leaves the maps consistent (every mutation is a
        // single insert or push), so a poisoned lock is still safe to use.
        self.inner.streams.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn visibility(&self) -> Duration {
        Duration::from_millis(self.inner.config.visibility_timeout_ms)
    }

    /// Appends events under the lock and returns (offsets, highest offset written or reused,
    /// a file handle to sync).
    fn append(
        &self,
        streams: &mut HashMap<StreamName, StreamLog>,
        stream: &StreamName,
        events: &[Envelope],
    ) -> EventsResult<(Vec<Offset>, Offset, File)> {
        let log = open_stream(&self.inner.dir, streams, stream, true)?
            .ok_or_else(|| EventsError::Invalid(format!("stream {stream} could not be created")))?;
        let mut offsets = Vec::with_capacity(events.len());
        let mut buffer = Vec::new();
        let mut new_entries = Vec::new();
        let mut batch_ids: HashMap<&str, Offset> = HashMap::new();
        let mut highest = 0;
        for event in events {
            let existing = log.ids.get(&event.id).copied().or_else(|| batch_ids.get(event.id.as_str()).copied());
            if let Some(offset) = existing {
                offsets.push(offset);
                highest = highest.max(offset);
                continue;
            }
            let payload = serde_json::to_vec(event)
                .map_err(|err| EventsError::Invalid(format!("event {} cannot be encoded: {err}", event.id)))?;
            let offset = (log.entries.len() + new_entries.len() + 1) as Offset;
            let pos = log.len + buffer.len() as u64;
            buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buffer.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            buffer.extend_from_slice(&payload);
            new_entries.push((
                event.id.as_str(),
                event.event_type.as_str(),
                event.subject.as_deref(),
                pos,
                payload.len() as u32,
            ));
            batch_ids.insert(event.id.as_str(), offset);
            offsets.push(offset);
            highest = highest.max(offset);
        }
        if !buffer.is_empty() {
            if let Err(err) = (&log.file).write_all(&buffer) {
                // Cut off a partial write so the next append does not land behind garbage.
                let _ = log.file.set_len(log.len);
                return Err(io_err(err));
            }
            log.len += buffer.len() as u64;
            for (id, event_type, subject, pos, len) in new_entries {
                let type_idx = log.names.intern(event_type);
                let subject_idx = subject.map(|s| log.names.intern(s));
                log.entries.push(Entry { pos, len, type_idx, subject_idx });
                log.ids.insert(id.to_owned(), log.entries.len() as Offset);
            }
        }
        let file = log.file.try_clone().map_err(io_err)?;
        Ok((offsets, highest, file))
    }

    async fn sync_and_reveal(&self, stream: &StreamName, file: File, highest: Offset) -> EventsResult<()> {
        let needs_sync = {
            let streams = self.lock();
            streams.get(stream).is_some_and(|log| (log.visible as Offset) < highest)
        };
        if !needs_sync {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(|err| io_err(std::io::Error::other(err)))?
            .map_err(io_err)?;
        // fdatasync covers every write issued before it, including other publishers' records
        // below `highest`, so all of them may become visible now.
        let mut streams = self.lock();
        if let Some(log) = streams.get_mut(stream) {
            log.visible = log.visible.max(highest as usize);
        }
        drop(streams);
        self.inner.published.notify_waiters();
        Ok(())
    }

    /// Moves events to the dead-letter stream. Called with the lock held.
    fn dead_letter(
        &self,
        streams: &mut HashMap<StreamName, StreamLog>,
        stream: &StreamName,
        group: &str,
        letters: Vec<(Offset, Envelope, u32)>,
    ) -> EventsResult<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let dead_stream = stream.dead_letter();
        let envelopes: Vec<Envelope> = letters
            .into_iter()
            .map(|(offset, event, attempts)| dead_letter_envelope(stream, group, offset, event, attempts))
            .collect();
        let (_, highest, file) = self.append(streams, &dead_stream, &envelopes)?;
        file.sync_data().map_err(io_err)?;
        if let Some(log) = streams.get_mut(&dead_stream) {
            log.visible = log.visible.max(highest as usize);
        }
        Ok(())
    }

    /// One pass of `receive`: the deliveries ready now, and when the next pending one expires.
    fn try_receive(&self, sub: &Subscription, max: usize) -> EventsResult<(Vec<Delivery>, Option<Instant>)> {
        let now = Instant::now();
        let visibility = self.visibility();
        let max_deliveries = self.inner.config.max_deliveries.max(1);
        let mut streams = self.lock();
        let Some(log) = open_stream(&self.inner.dir, &mut streams, &sub.stream, true)? else {
            return Ok((Vec::new(), None));
        };
        let visible = log.visible as Offset;
        let group = log.groups.entry(sub.group.clone()).or_insert_with(|| match sub.start {
            StartFrom::Earliest => Group::starting_at(1),
            StartFrom::Latest => Group::starting_at(visible + 1),
        });
        let mut ready = Vec::new();
        let mut letters = Vec::new();
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
        while ready.len() < max && group.next <= visible {
            let offset = group.next;
            group.next += 1;
            if group.done.contains(&offset) || offset < group.floor {
                continue;
            }
            let entry = log.entries[(offset - 1) as usize];
            if !sub.wants(log.names.name(entry.type_idx)) {
                group.mark_done(offset);
                continue;
            }
            group.pending.insert(offset, Pending { attempts: 1, visible_at: now + visibility });
            ready.push((offset, 1));
        }
        let next_expiry = group.pending.values().map(|p| p.visible_at).min();
        let mut deliveries = Vec::with_capacity(ready.len());
        for (offset, attempt) in ready {
            let event = read_event(&log.file, &log.entries[(offset - 1) as usize], offset)?;
            deliveries.push(Delivery { offset, event, attempt });
        }
        let mut dead = Vec::with_capacity(letters.len());
        for (offset, attempts) in letters {
            let event = read_event(&log.file, &log.entries[(offset - 1) as usize], offset)?;
            dead.push((offset, event, attempts));
        }
        if dead.is_empty() {
            return Ok((deliveries, next_expiry));
        }
        let dead_offsets: Vec<Offset> = dead.iter().map(|(offset, _, _)| *offset).collect();
        self.dead_letter(&mut streams, &sub.stream, &sub.group, dead)?;
        // The letters are durable: only now are the events done for the group.
        if let Some(log) = streams.get_mut(&sub.stream) {
            if let Some(group) = log.groups.get_mut(&sub.group) {
                for offset in dead_offsets {
                    group.pending.remove(&offset);
                    group.mark_done(offset);
                }
            }
            persist_groups(log)?;
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

fn open_stream<'a>(
    dir: &Path,
    streams: &'a mut HashMap<StreamName, StreamLog>,
    stream: &StreamName,
    create: bool,
) -> EventsResult<Option<&'a mut StreamLog>> {
    if !streams.contains_key(stream) {
        let path = dir.join(format!("{stream}.log"));
        if !create && !path.exists() {
            return Ok(None);
        }
        let log = load_stream(dir, stream, &path)?;
        streams.insert(stream.clone(), log);
    }
    Ok(streams.get_mut(stream))
}

fn load_stream(dir: &Path, stream: &StreamName, path: &Path) -> EventsResult<StreamLog> {
    let file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io_err)?;
    let mut reader = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io_err)?);
    let mut entries = Vec::new();
    let mut ids = HashMap::new();
    let mut names = Interner::default();
    let mut pos = 0u64;
    let mut header = [0u8; HEADER_LEN];
    let mut payload = Vec::new();
    let file_len = file.metadata().map_err(io_err)?.len();
    loop {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(err) => return Err(io_err(err)),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_RECORD_LEN {
            break;
        }
        payload.resize(len as usize, 0);
        if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            break;
        }
        let Ok(head) = serde_json::from_slice::<Head>(&payload) else { break };
        let type_idx = names.intern(&head.event_type);
        let subject_idx = head.subject.as_deref().map(|s| names.intern(s));
        entries.push(Entry { pos, len, type_idx, subject_idx });
        ids.insert(head.id, entries.len() as Offset);
        pos += HEADER_LEN as u64 + u64::from(len);
    }
    if pos < file_len {
        tracing::warn!(
            stream = %stream,
            kept_bytes = pos,
            dropped_bytes = file_len - pos,
            "Cut a torn or corrupt tail off the event log; events after the last good record were never acknowledged."
        );
        file.set_len(pos).map_err(io_err)?;
        file.sync_data().map_err(io_err)?;
    }
    let groups_path = dir.join(format!("{stream}.groups.json"));
    let groups = load_groups(&groups_path, entries.len() as Offset)?;
    let visible = entries.len();
    Ok(StreamLog { file, len: pos, entries, visible, ids, names, groups, groups_path })
}

fn load_groups(path: &Path, last: Offset) -> EventsResult<HashMap<String, Group>> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(err) => return Err(io_err(err)),
    };
    let persisted: HashMap<String, PersistedGroup> = serde_json::from_slice(&text)
        .map_err(|err| EventsError::Corrupt { backend: BACKEND, detail: format!("{}: {err}", path.display()) })?;
    Ok(persisted
        .into_iter()
        .map(|(name, p)| {
            // Offsets past the log's end can only come from a log that lost its tail.
            let floor = p.floor.min(last + 1);
            let mut group = Group::starting_at(floor);
            group.done = p.done.into_iter().filter(|o| *o >= floor && *o <= last).collect();
            (name, group)
        })
        .collect())
}

fn persist_groups(log: &StreamLog) -> EventsResult<()> {
    let persisted: HashMap<&str, PersistedGroup> = log
        .groups
        .iter()
        .map(|(name, group)| {
            (name.as_str(), PersistedGroup { floor: group.floor, done: group.done.iter().copied().collect() })
        })
        .collect();
    let bytes = serde_json::to_vec(&persisted)
        .map_err(|err| EventsError::Invalid(format!("group state cannot be encoded: {err}")))?;
    let tmp = log.groups_path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(io_err)?;
    std::fs::rename(&tmp, &log.groups_path).map_err(io_err)
}

fn read_event(file: &File, entry: &Entry, offset: Offset) -> EventsResult<Envelope> {
    let mut buffer = vec![0u8; HEADER_LEN + entry.len as usize];
    file.read_exact_at(&mut buffer, entry.pos).map_err(io_err)?;
    let payload = &buffer[HEADER_LEN..];
    serde_json::from_slice(payload)
        .map_err(|err| EventsError::Corrupt { backend: BACKEND, detail: format!("record at offset {offset}: {err}") })
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
        let (offsets, highest, file) = {
            let mut streams = self.lock();
            self.append(&mut streams, stream, &events)?
        };
        self.sync_and_reveal(stream, file, highest).await?;
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
        let Some(log) = open_stream(&self.inner.dir, &mut streams, &sub.stream, false)? else {
            return Ok(());
        };
        let Some(group) = log.groups.get_mut(&sub.group) else { return Ok(()) };
        let mut changed = false;
        for offset in offsets {
            if group.pending.remove(offset).is_some() {
                group.mark_done(*offset);
                changed = true;
            }
        }
        if changed {
            persist_groups(log)?;
        }
        Ok(())
    }

    async fn nack(&self, sub: &Subscription, offset: Offset, retry_after: Duration) -> EventsResult<()> {
        {
            let mut streams = self.lock();
            let Some(log) = open_stream(&self.inner.dir, &mut streams, &sub.stream, false)? else {
                return Ok(());
            };
            if let Some(pending) = log.groups.get_mut(&sub.group).and_then(|g| g.pending.get_mut(&offset)) {
                pending.visible_at = Instant::now() + retry_after;
            }
        }
        self.inner.published.notify_waiters();
        Ok(())
    }

    async fn read(&self, stream: &StreamName, query: &ReadQuery) -> EventsResult<Vec<StoredEvent>> {
        let mut streams = self.lock();
        let Some(log) = open_stream(&self.inner.dir, &mut streams, stream, false)? else {
            return Ok(Vec::new());
        };
        let first = query.after.saturating_add(1);
        let last = query.before.map_or(log.visible as Offset, |b| b.saturating_sub(1).min(log.visible as Offset));
        let matches = |offset: Offset| {
            let entry = &log.entries[(offset - 1) as usize];
            let type_ok = query.types.is_empty()
                || query.types.iter().any(|p| aiops_model::event_type::matches(p, log.names.name(entry.type_idx)));
            let subject_ok = query
                .subject
                .as_deref()
                .is_none_or(|want| entry.subject_idx.is_some_and(|idx| log.names.name(idx) == want));
            type_ok && subject_ok
        };
        let mut out = Vec::new();
        if first > last || query.limit == 0 {
            return Ok(out);
        }
        let mut push = |offset: Offset| -> EventsResult<bool> {
            if matches(offset) {
                let event = read_event(&log.file, &log.entries[(offset - 1) as usize], offset)?;
                out.push(StoredEvent { offset, event });
            }
            Ok(out.len() < query.limit)
        };
        if query.newest_first {
            for offset in (first..=last).rev() {
                if !push(offset)? {
                    break;
                }
            }
        } else {
            for offset in first..=last {
                if !push(offset)? {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn last_offset(&self, stream: &StreamName) -> EventsResult<Offset> {
        let mut streams = self.lock();
        Ok(open_stream(&self.inner.dir, &mut streams, stream, false)?.map_or(0, |log| log.visible as Offset))
    }

    async fn close(&self) -> EventsResult<()> {
        let streams = self.lock();
        for log in streams.values() {
            persist_groups(log)?;
            log.file.sync_all().map_err(io_err)?;
        }
        Ok(())
    }
}
