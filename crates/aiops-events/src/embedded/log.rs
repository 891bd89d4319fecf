//! One stream's log: segment files, the in-memory index, appends, reads, recovery, retention.
//!
//! A stream is a directory of segment files named by the offset of their first record
//! (`00000000000000000001.log`, ...). A record is
//! `[len: u32 LE][crc32: u32 LE][appended_ms: i64 LE][payload]`, where the CRC covers
//! `appended_ms` and the payload (the envelope's JSON), and `appended_ms` is the time the log
//! accepted it (never decreasing, so replay by time can binary-search it). The active
//! segment is the last one; it rolls over at `segment_max_bytes`. Retention deletes whole
//! segments from the front, never the active one.
//!
//! The active segment is extended with zeros ahead of its records, [`PREALLOCATE_BYTES`] at a
//! time, and records overwrite them: an `fdatasync` of a write that does not grow the file
//! has no size to commit, which makes it about a third faster on ext4 (0.135 against 0.20 ms
//! measured here). A zero length ends the records. Recovery cuts the file at the end of the
//! last good record, so that bytes past it (the zeros, or a torn write) can never be read as
//! records once later appends land before them; a sealed segment is cut to its records when
//! it is sealed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use aiops_model::Envelope;
use serde::Deserialize;

use super::{io_err, BACKEND};
use crate::bus::dedup_key;
use crate::{EventsError, EventsResult, Offset};

const HEADER_LEN: usize = 16;
/// Upper bound of one record; a larger length in a header means a corrupt record.
const MAX_RECORD_LEN: u32 = 4 * 1024 * 1024;
/// Zeros the active segment is extended by when its records reach the end of the file.
const PREALLOCATE_BYTES: u64 = 1024 * 1024;

#[derive(Debug)]
struct Segment {
    file: File,
    /// Bytes of records.
    len: u64,
    /// Bytes of the file: the records, then zeros.
    allocated: u64,
    last_append_ms: i64,
}

/// Where one record lives, plus what filters need without decoding it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    segment: Offset,
    pos: u64,
    len: u32,
    pub(super) type_idx: u32,
    pub(super) subject_idx: Option<u32>,
    pub(super) source_idx: u32,
    pub(super) appended_ms: i64,
    /// [`dedup_key`] of the event.
    key: Box<str>,
}

/// Interns event types, subjects and sources so that filters compare small integers.
#[derive(Debug, Default)]
pub(super) struct Interner {
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

    pub(super) fn name(&self, idx: u32) -> &str {
        &self.names[idx as usize]
    }

    pub(super) fn find(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }
}

/// Just the attributes the index needs; serde skips the rest of the envelope.
#[derive(Deserialize)]
struct Head {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    source: String,
    subject: Option<String>,
}

/// Size and age limits of a stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) segment_max_bytes: u64,
    pub(super) max_bytes: u64,
    pub(super) retention_max_events: Option<u64>,
    pub(super) retention_max_age_ms: Option<i64>,
}

/// An open stream.
#[derive(Debug)]
pub(super) struct StreamLog {
    dir: PathBuf,
    segments: BTreeMap<Offset, Segment>,
    entries: VecDeque<Entry>,
    /// Offset of `entries[0]`; `last + 1` when the log is empty.
    first: Offset,
    /// Entries covered by a finished fsync; only these are visible to readers.
    pub(super) visible: Offset,
    /// Offsets by [`dedup_key`], for idempotent publishing.
    ids: HashMap<Box<str>, Offset>,
    pub(super) names: Interner,
    bytes: u64,
    last_append_ms: i64,
}

fn segment_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// Whether `file` holds only zeros from `from` to `to`.
fn only_zeros(file: &File, from: u64, to: u64) -> EventsResult<bool> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut at = from;
    while at < to {
        let chunk = &mut buffer[..(to - at).min(64 * 1024) as usize];
        file.read_exact_at(chunk, at).map_err(io_err)?;
        if chunk.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += chunk.len() as u64;
    }
    Ok(true)
}

/// Writes zeros into `file` from `from` to `to`.
fn write_zeros(file: &File, from: u64, to: u64) -> EventsResult<()> {
    let zeros = vec![0u8; 64 * 1024];
    let mut at = from;
    while at < to {
        let chunk = &zeros[..(to - at).min(64 * 1024) as usize];
        file.write_all_at(chunk, at).map_err(io_err)?;
        at += chunk.len() as u64;
    }
    Ok(())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl StreamLog {
    /// Opens the stream directory, rebuilding the index and cutting a torn tail.
    pub(super) fn open(dir: &Path) -> EventsResult<Self> {
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let mut bases: Vec<Offset> = std::fs::read_dir(dir)
            .map_err(io_err)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse().ok()))
            .collect();
        bases.sort_unstable();
        let mut log = Self {
            dir: dir.to_owned(),
            segments: BTreeMap::new(),
            entries: VecDeque::new(),
            first: bases.first().copied().unwrap_or(1),
            visible: 0,
            ids: HashMap::new(),
            names: Interner::default(),
            bytes: 0,
            last_append_ms: 0,
        };
        for (idx, base) in bases.iter().enumerate() {
            let expected = log.first + log.entries.len() as Offset;
            if *base != expected {
                return Err(EventsError::Corrupt {
                    backend: BACKEND,
                    detail: format!("{}: segment {base} should start at offset {expected}", dir.display()),
                });
            }
            log.load_segment(*base, idx + 1 == bases.len())?;
        }
        log.visible = log.last();
        Ok(log)
    }

    fn load_segment(&mut self, base: Offset, is_last: bool) -> EventsResult<()> {
        let path = segment_path(&self.dir, base);
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io_err)?);
        let mut header = [0u8; HEADER_LEN];
        let mut payload = Vec::new();
        let mut pos = 0u64;
        let mut last_append_ms = 0;
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
            if reader.read_exact(&mut payload).is_err() {
                break;
            }
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&header[8..16]);
            hasher.update(&payload);
            if hasher.finalize() != crc {
                break;
            }
            let Ok(head) = serde_json::from_slice::<Head>(&payload) else { break };
            let appended_ms = i64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
            last_append_ms = appended_ms;
            self.push_entry(
                base,
                pos,
                len,
                &head.id,
                &head.event_type,
                &head.source,
                head.subject.as_deref(),
                appended_ms,
            );
            pos += HEADER_LEN as u64 + u64::from(len);
        }
        if pos < file_len {
            if !only_zeros(&file, pos, file_len)? {
                if !is_last {
                    return Err(EventsError::Corrupt {
                        backend: BACKEND,
                        detail: format!("{}: corrupt record at byte {pos} of a sealed segment", path.display()),
                    });
                }
                tracing::warn!(
                    segment = %path.display(),
                    kept_bytes = pos,
                    dropped_bytes = file_len - pos,
                    "Cut a torn or corrupt tail off the event log; events after the last good record were never acknowledged."
                );
            }
            file.set_len(pos).map_err(io_err)?;
            file.sync_data().map_err(io_err)?;
        }
        self.bytes += pos;
        self.last_append_ms = self.last_append_ms.max(last_append_ms);
        self.segments.insert(base, Segment { file, len: pos, allocated: pos, last_append_ms });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn push_entry(
        &mut self,
        segment: Offset,
        pos: u64,
        len: u32,
        id: &str,
        event_type: &str,
        source: &str,
        subject: Option<&str>,
        appended_ms: i64,
    ) {
        let entry = Entry {
            segment,
            pos,
            len,
            type_idx: self.names.intern(event_type),
            subject_idx: subject.map(|s| self.names.intern(s)),
            source_idx: self.names.intern(source),
            appended_ms,
            key: dedup_key(source, id).into(),
        };
        self.ids.insert(entry.key.clone(), self.first + self.entries.len() as Offset);
        self.entries.push_back(entry);
    }

    /// The newest stored offset (0 when nothing was ever stored).
    pub(super) fn last(&self) -> Offset {
        self.first + self.entries.len() as Offset - 1
    }

    /// The oldest stored offset.
    pub(super) fn first(&self) -> Offset {
        self.first
    }

    pub(super) fn entry(&self, offset: Offset) -> Option<&Entry> {
        offset.checked_sub(self.first).and_then(|idx| self.entries.get(idx as usize))
    }

    /// The first offset appended at or after `ms`, if any.
    pub(super) fn first_since(&self, ms: i64) -> Offset {
        let idx = self.entries.partition_point(|e| e.appended_ms < ms);
        self.first + idx as Offset
    }

    /// Appends the events not stored yet; returns every event's offset and the highest offset
    /// written or reused.
    pub(super) fn append(&mut self, events: &[Envelope], limits: &Limits) -> EventsResult<(Vec<Offset>, Offset)> {
        let mut offsets = Vec::with_capacity(events.len());
        let mut records: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut batch_ids: HashMap<String, Offset> = HashMap::new();
        let mut highest = 0;
        let mut next = self.last() + 1;
        for (idx, event) in events.iter().enumerate() {
            let key = dedup_key(&event.source, &event.id);
            let existing = self.ids.get(key.as_str()).copied().or_else(|| batch_ids.get(&key).copied());
            if let Some(offset) = existing {
                offsets.push(offset);
                highest = highest.max(offset);
                continue;
            }
            let payload = serde_json::to_vec(event)
                .map_err(|err| EventsError::Invalid(format!("event {} cannot be encoded: {err}", event.id)))?;
            batch_ids.insert(key, next);
            offsets.push(next);
            highest = next;
            next += 1;
            records.push((idx, payload));
        }
        let batch_bytes: u64 = records.iter().map(|(_, p)| (HEADER_LEN + p.len()) as u64).sum();
        if records.is_empty() {
            return Ok((offsets, highest));
        }
        if self.bytes + batch_bytes > limits.max_bytes {
            return Err(EventsError::Overloaded(format!(
                "stream is full: {} bytes stored, the limit is {}",
                self.bytes, limits.max_bytes
            )));
        }
        let base = self.writable_segment(batch_bytes, limits)?;
        let appended_ms = now_ms().max(self.last_append_ms);
        let segment = self
            .segments
            .get_mut(&base)
            .ok_or_else(|| EventsError::Corrupt { backend: BACKEND, detail: "the active segment vanished".into() })?;
        if segment.len + batch_bytes > segment.allocated {
            let needed = segment.len + batch_bytes;
            let target = needed.next_multiple_of(PREALLOCATE_BYTES).min(limits.segment_max_bytes.max(needed));
            write_zeros(&segment.file, segment.allocated, target)?;
            segment.allocated = target;
        }
        let mut buffer = Vec::with_capacity(batch_bytes as usize);
        let mut positions = Vec::with_capacity(records.len());
        for (_, payload) in &records {
            positions.push(segment.len + buffer.len() as u64);
            let stamp = appended_ms.to_le_bytes();
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&stamp);
            hasher.update(payload);
            buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buffer.extend_from_slice(&hasher.finalize().to_le_bytes());
            buffer.extend_from_slice(&stamp);
            buffer.extend_from_slice(payload);
        }
        if let Err(err) = segment.file.write_all_at(&buffer, segment.len) {
            // Cut off a partial write: a shorter batch written over it later could leave some
            // of its records readable behind the new ones. Should the cut fail too, the next
            // append still zeroes everything past the records before it writes.
            let _ = segment.file.set_len(segment.len);
            segment.allocated = segment.len;
            return Err(io_err(err));
        }
        segment.len += buffer.len() as u64;
        segment.last_append_ms = appended_ms;
        self.bytes += buffer.len() as u64;
        self.last_append_ms = appended_ms;
        for ((idx, payload), pos) in records.iter().zip(positions) {
            let event = &events[*idx];
            self.push_entry(
                base,
                pos,
                payload.len() as u32,
                &event.id,
                &event.event_type,
                &event.source,
                event.subject.as_deref(),
                appended_ms,
            );
        }
        Ok((offsets, highest))
    }

    /// A handle of the active segment (created if the stream has none), for syncing.
    pub(super) fn active_handle(&self) -> EventsResult<File> {
        match self.segments.values().next_back() {
            Some(segment) => segment.file.try_clone().map_err(io_err),
            None => Err(EventsError::Invalid("the stream has no segment yet".into())),
        }
    }

    fn create_segment(&mut self) -> EventsResult<Offset> {
        let base = self.last() + 1;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(segment_path(&self.dir, base))
            .map_err(io_err)?;
        // The new name must survive a crash too.
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err)?;
        self.segments.insert(base, Segment { file, len: 0, allocated: 0, last_append_ms: 0 });
        Ok(base)
    }

    /// The segment the next batch goes to, rolling over when the active one is full.
    fn writable_segment(&mut self, batch_bytes: u64, limits: &Limits) -> EventsResult<Offset> {
        if let Some((base, segment)) = self.segments.iter().next_back() {
            if segment.len == 0 || segment.len + batch_bytes <= limits.segment_max_bytes {
                return Ok(*base);
            }
            // A sealed segment must be durable, and end at its last record, before records
            // land elsewhere: a later fsync of the new segment does not cover it.
            segment.file.set_len(segment.len).map_err(io_err)?;
            segment.file.sync_data().map_err(io_err)?;
        }
        self.create_segment()
    }

    /// Reads one stored event.
    pub(super) fn read(&self, offset: Offset) -> EventsResult<Envelope> {
        let entry = self.entry(offset).ok_or_else(|| EventsError::Invalid(format!("offset {offset} is not stored")))?;
        let segment = self.segments.get(&entry.segment).ok_or_else(|| EventsError::Corrupt {
            backend: BACKEND,
            detail: format!("offset {offset}: its segment is gone"),
        })?;
        let mut buffer = vec![0u8; HEADER_LEN + entry.len as usize];
        segment.file.read_exact_at(&mut buffer, entry.pos).map_err(io_err)?;
        serde_json::from_slice(&buffer[HEADER_LEN..]).map_err(|err| EventsError::Corrupt {
            backend: BACKEND,
            detail: format!("record at offset {offset}: {err}"),
        })
    }

    /// Deletes whole sealed segments that every group is done with (`done_below`) and that
    /// exceed a retention limit; returns how many events went.
    pub(super) fn apply_retention(&mut self, done_below: Offset, limits: &Limits) -> EventsResult<u64> {
        let now = now_ms();
        let mut removed = 0;
        while self.segments.len() > 1 {
            let mut bases = self.segments.keys();
            let (Some(&base), Some(&next_base)) = (bases.next(), bases.next()) else { break };
            let last_in_segment = next_base - 1;
            if last_in_segment >= done_below || last_in_segment > self.visible {
                break;
            }
            let remaining = self.last() - last_in_segment;
            let too_many = limits.retention_max_events.is_some_and(|max| remaining >= max);
            let too_old =
                limits.retention_max_age_ms.is_some_and(|max_age| self.segments[&base].last_append_ms < now - max_age);
            if !too_many && !too_old {
                break;
            }
            let segment = self.segments.remove(&base).ok_or_else(|| EventsError::Corrupt {
                backend: BACKEND,
                detail: "segment vanished during retention".into(),
            })?;
            std::fs::remove_file(segment_path(&self.dir, base)).map_err(io_err)?;
            self.bytes -= segment.len;
            for _ in base..next_base {
                if let Some(entry) = self.entries.pop_front() {
                    self.ids.remove(&entry.key);
                }
            }
            self.first = next_base;
            removed += next_base - base;
        }
        Ok(removed)
    }

    /// Makes the active segment durable.
    pub(super) fn sync(&self) -> EventsResult<()> {
        if let Some(segment) = self.segments.values().next_back() {
            segment.file.sync_all().map_err(io_err)?;
        }
        Ok(())
    }
}
