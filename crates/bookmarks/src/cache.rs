//! The in-memory cache of list responses, keyed by query and invalidated on every write.
//!
//! It stores the serialized JSON body, so a hit costs a map lookup and an `Arc` clone. A
//! generation counter closes the race between a slow read and a write: a read that started
//! before an invalidation cannot put its (now stale) result back afterwards.
//!
//! The cache hides the database from repeated identical reads, so a broken database shows
//! first on new queries, writes and `/health`; clearing the cache never fixes the database.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;

use crate::db::ListQuery;

/// Most entries kept; when full, the cache starts over rather than tracking recency.
const MAX_ENTRIES: usize = 1_024;

#[derive(Default)]
pub(crate) struct ListCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    entries: HashMap<ListQuery, Bytes>,
}

impl ListCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each critical section is one map operation; a poisoned lock still holds a valid map.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached body for `query`, if any.
    pub(crate) fn get(&self, query: &ListQuery) -> Option<Bytes> {
        self.lock().entries.get(query).cloned()
    }

    /// The current generation, to pass back to [`ListCache::insert`].
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Stores `body` unless the cache was invalidated since `generation` was read.
    pub(crate) fn insert(&self, generation: u64, query: ListQuery, body: Bytes) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(query, body);
    }

    /// Drops every entry and returns how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut inner = self.lock();
        inner.generation += 1;
        let cleared = inner.entries.len();
        inner.entries.clear();
        cleared
    }
}
