//! The in-process vector index of the SQLite engine: an exact scan over vectors kept in one
//! contiguous arena, so a search streams through memory instead of chasing pointers.
//!
//! Slots of removed nodes are reused. Each slot keeps what the filters need (kind, service,
//! write time) and the vector's norm, so a search computes one dot product per vector.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::{NodeKind, SimilarityQuery};

#[derive(Debug)]
struct Slot {
    id: String,
    kind: NodeKind,
    service: Option<String>,
    updated_ms: i64,
    norm: f32,
    live: bool,
}

impl Slot {
    fn passes(&self, query: &SimilarityQuery) -> bool {
        self.live
            && self.norm > 0.0
            && query.kind.is_none_or(|k| k == self.kind)
            && query.service.as_ref().is_none_or(|s| self.service.as_ref() == Some(s))
            && query.since.is_none_or(|since| self.updated_ms >= since.timestamp_millis())
    }
}

/// Vectors of one dimension, by node id.
#[derive(Debug)]
pub(super) struct VectorIndex {
    dimensions: usize,
    slots: Vec<Slot>,
    vectors: Vec<f32>,
    by_id: HashMap<String, usize>,
    free: Vec<usize>,
}

impl VectorIndex {
    pub(super) fn new(dimensions: usize) -> Self {
        Self { dimensions, slots: Vec::new(), vectors: Vec::new(), by_id: HashMap::new(), free: Vec::new() }
    }

    /// Adds or replaces a node's vector; `vector` has the index's dimension (checked before).
    pub(super) fn insert(
        &mut self,
        id: String,
        kind: NodeKind,
        service: Option<String>,
        updated_ms: i64,
        vector: &[f32],
    ) {
        let slot = Slot { id: id.clone(), kind, service, updated_ms, norm: norm(vector), live: true };
        let idx = match self.by_id.get(&id).copied().or_else(|| self.free.pop()) {
            Some(idx) => {
                self.slots[idx] = slot;
                self.vectors[idx * self.dimensions..(idx + 1) * self.dimensions].copy_from_slice(vector);
                idx
            }
            None => {
                self.slots.push(slot);
                self.vectors.extend_from_slice(vector);
                self.slots.len() - 1
            }
        };
        self.by_id.insert(id, idx);
    }

    pub(super) fn remove(&mut self, id: &str) {
        if let Some(idx) = self.by_id.remove(id) {
            self.slots[idx].live = false;
            self.free.push(idx);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The exact top k by cosine similarity, best first: one pass, a heap of k.
    pub(super) fn top_k(&self, query: &SimilarityQuery) -> Vec<(String, f32)> {
        let query_norm = norm(&query.embedding);
        if query_norm == 0.0 || query.k == 0 || query.embedding.len() != self.dimensions {
            return Vec::new();
        }
        let mut heap: BinaryHeap<Hit<'_>> = BinaryHeap::with_capacity(query.k + 1);
        for (slot, vector) in self.slots.iter().zip(self.vectors.chunks_exact(self.dimensions)) {
            if !slot.passes(query) {
                continue;
            }
            let score = dot(&query.embedding, vector) / (query_norm * slot.norm);
            if score < query.min_score {
                continue;
            }
            let hit = Hit(score, &slot.id);
            if heap.len() < query.k {
                heap.push(hit);
            } else if heap.peek().is_some_and(|worst| hit < *worst) {
                heap.pop();
                heap.push(hit);
            }
        }
        heap.into_sorted_vec().into_iter().map(|Hit(score, id)| (id.to_owned(), score)).collect()
    }
}

/// Dot product in eight independent lanes, which the compiler turns into SIMD.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for (lane, (x, y)) in lanes.iter_mut().zip(x.iter().zip(y)) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// An entry of the top-k heap, ordered so that a better hit is "less".
struct Hit<'a>(f32, &'a str);

impl PartialEq for Hit<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Hit<'_> {}
impl PartialOrd for Hit<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Hit<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed on score, so that the std max-heap keeps the worst hit on top to be
        // replaced; equal scores order by id.
        other.0.total_cmp(&self.0).then_with(|| self.1.cmp(other.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(v: Vec<f32>, k: usize) -> SimilarityQuery {
        SimilarityQuery { embedding: v, k, min_score: -1.0, ..Default::default() }
    }

    #[test]
    fn top_k_is_exact_and_slots_are_reused() {
        let mut index = VectorIndex::new(3);
        index.insert("a".into(), NodeKind::Problem, None, 0, &[1.0, 0.0, 0.0]);
        index.insert("b".into(), NodeKind::Problem, None, 0, &[0.7, 0.7, 0.0]);
        index.insert("c".into(), NodeKind::Problem, None, 0, &[0.0, 0.0, 1.0]);
        let got: Vec<String> = index.top_k(&query(vec![1.0, 0.1, 0.0], 2)).into_iter().map(|(id, _)| id).collect();
        assert_eq!(got, vec!["a", "b"]);
        index.remove("a");
        index.insert("d".into(), NodeKind::Solution, None, 0, &[0.0, 1.0, 0.0]);
        assert_eq!(index.len(), 3);
        assert_eq!(index.slots.len(), 3, "the removed slot is reused");
        let got: Vec<String> = index.top_k(&query(vec![1.0, 0.1, 0.0], 3)).into_iter().map(|(id, _)| id).collect();
        assert_eq!(got, vec!["b", "d", "c"]);
        index.insert("b".into(), NodeKind::Problem, None, 0, &[0.0, 0.0, 1.0]);
        let top = index.top_k(&query(vec![0.0, 0.0, 1.0], 1));
        assert_eq!(top[0].0, "b");
        assert!((top[0].1 - 1.0).abs() < 1e-6, "a replaced vector is searched with its new value");
    }
}
