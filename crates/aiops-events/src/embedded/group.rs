//! A consumer group's progress through one stream, and its file.
//!
//! Only what is done is stored (`floor` plus the done offsets above it); pending deliveries
//! are not. After a restart everything not done is delivered again, with the attempt count
//! starting over. The file is replaced atomically (write, fsync, rename), so it is always a
//! complete state; a state a little older than the truth only causes redeliveries, which
//! at-least-once consumers handle anyway.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{io_err, BACKEND};
use crate::{EventsError, EventsResult, Offset};

#[derive(Debug)]
pub(super) struct Group {
    /// Every offset below this one is done (acknowledged, skipped or dead-lettered).
    pub(super) floor: Offset,
    /// Done offsets at or above `floor`.
    pub(super) done: BTreeSet<Offset>,
    /// The next offset never delivered to this group.
    pub(super) next: Offset,
    pub(super) pending: BTreeMap<Offset, Pending>,
}

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) attempts: u32,
    pub(super) visible_at: Instant,
}

impl Group {
    pub(super) fn starting_at(next: Offset) -> Self {
        Self { floor: next, done: BTreeSet::new(), next, pending: BTreeMap::new() }
    }

    pub(super) fn mark_done(&mut self, offset: Offset) {
        if offset < self.floor {
            return;
        }
        self.done.insert(offset);
        while self.done.remove(&self.floor) {
            self.floor += 1;
        }
    }

    /// Skips everything below `first` (the events retention removed).
    pub(super) fn skip_below(&mut self, first: Offset) {
        if self.floor < first {
            self.floor = first;
            self.done = self.done.split_off(&first);
            self.pending = self.pending.split_off(&first);
            self.next = self.next.max(first);
            while self.done.remove(&self.floor) {
                self.floor += 1;
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedGroup {
    floor: Offset,
    done: Vec<Offset>,
}

pub(super) fn load(path: &Path, first: Offset, last: Offset) -> EventsResult<HashMap<String, Group>> {
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
            let floor = p.floor.clamp(first, last + 1);
            let mut group = Group::starting_at(floor);
            group.done = p.done.into_iter().filter(|o| *o >= floor && *o <= last).collect();
            (name, group)
        })
        .collect())
}

pub(super) fn persist(path: &Path, groups: &HashMap<String, Group>) -> EventsResult<()> {
    let persisted: HashMap<&str, PersistedGroup> = groups
        .iter()
        .map(|(name, group)| {
            (name.as_str(), PersistedGroup { floor: group.floor, done: group.done.iter().copied().collect() })
        })
        .collect();
    let bytes = serde_json::to_vec(&persisted)
        .map_err(|err| EventsError::Invalid(format!("group state cannot be encoded: {err}")))?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io_err)?;
    file.write_all(&bytes).map_err(io_err)?;
    file.sync_data().map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)
}
