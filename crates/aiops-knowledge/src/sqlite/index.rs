//! The in-process vector index of the SQLite engine: vectors kept in one contiguous arena,
//! searched exactly while the store is small and through an inverted-file partition once it
//! is large.
//!
//! Slots of removed nodes are reused. Each slot keeps what the filters need (kind, service,
//! write time) and the vector's norm, so a search computes one dot product per vector.
//!
//! The partition (IVF, as in FAISS's `IndexIVFFlat`) groups vectors into about √n lists around
//! centroids found by spherical k-means on a sample. A search scores the centroids, scans the
//! vectors of the closest lists, and keeps probing further lists until at least `k` vectors
//! passed the query's filters, so a restrictive filter costs time, never results. Memory
//! traffic bounds the scan, so each list holds an 8-bit copy of its vectors side by side (a
//! quarter of the bytes, read in order); the best few times `k` are ranked again with the
//! full vectors, so the scores returned are exact.
//!
//! The partition is planned while only reads are allowed (the caller holds the store's write
//! lock) and installed in one swap; it is planned again whenever the number of vectors has
//! doubled or halved since, so an insert costs one pass over the centroids.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::{NodeKind, SimilarityQuery, VectorIndexConfig};

/// Sample points per list that k-means trains on.
const SAMPLE_PER_LIST: usize = 24;
/// Rounds of k-means; the sample is small, so more rounds are cheap but gain little.
const KMEANS_ROUNDS: usize = 8;
/// Lists a search scans at least, whatever the probe share.
const MIN_PROBES: usize = 8;
/// Candidates ranked again with the full vectors: this many times `k`, and at least
/// `MIN_RERANK`.
const RERANK_FACTOR: usize = 4;
const MIN_RERANK: usize = 32;
/// `Slot::list` of a vector not in a list.
const NO_LIST: u32 = u32::MAX;

#[derive(Debug)]
struct Slot {
    id: String,
    kind: NodeKind,
    service: Option<String>,
    updated_ms: i64,
    norm: f32,
    live: bool,
    list: u32,
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

/// The vectors nearest to one centroid: slots, with their kinds and 8-bit codes side by
/// side, in the same order.
#[derive(Debug, Clone, Default)]
struct List {
    slots: Vec<u32>,
    kinds: Vec<NodeKind>,
    codes: Vec<i8>,
    /// The code's scale over the vector's norm: code · query code × this ∝ cosine.
    weights: Vec<f32>,
}

impl List {
    fn push(&mut self, idx: usize, kind: NodeKind, vector: &[f32], vector_norm: f32) {
        let at = self.codes.len();
        self.codes.resize(at + vector.len(), 0);
        let scale = quantize(vector, &mut self.codes[at..]);
        self.slots.push(idx as u32);
        self.kinds.push(kind);
        self.weights.push(scale / vector_norm);
    }

    fn remove(&mut self, idx: usize, dimensions: usize) {
        let Some(at) = self.slots.iter().position(|&m| m as usize == idx) else { return };
        let last = self.slots.len() - 1;
        self.codes.copy_within(last * dimensions..(last + 1) * dimensions, at * dimensions);
        self.codes.truncate(last * dimensions);
        self.slots.swap_remove(at);
        self.kinds.swap_remove(at);
        self.weights.swap_remove(at);
    }
}

/// An inverted-file partition: unit centroids and the vectors nearest to each.
#[derive(Debug)]
pub(super) struct Partition {
    centroids: Vec<f32>,
    lists: Vec<List>,
    /// Vectors indexed when it was planned.
    planned_for: usize,
}

/// Vectors of one dimension, by node id.
#[derive(Debug)]
pub(super) struct VectorIndex {
    dimensions: usize,
    settings: VectorIndexConfig,
    slots: Vec<Slot>,
    vectors: Vec<f32>,
    by_id: HashMap<String, usize>,
    free: Vec<usize>,
    partition: Option<Partition>,
}

impl VectorIndex {
    pub(super) fn new(dimensions: usize, settings: VectorIndexConfig) -> Self {
        Self {
            dimensions,
            settings,
            slots: Vec::new(),
            vectors: Vec::new(),
            by_id: HashMap::new(),
            free: Vec::new(),
            partition: None,
        }
    }

    fn vector(&self, slot: usize) -> &[f32] {
        &self.vectors[slot * self.dimensions..(slot + 1) * self.dimensions]
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
        let idx = match self.by_id.get(&id).copied() {
            Some(idx) => {
                self.leave_list(idx);
                idx
            }
            None => match self.free.pop() {
                Some(idx) => idx,
                None => {
                    self.slots.push(Slot {
                        id: String::new(),
                        kind,
                        service: None,
                        updated_ms,
                        norm: 0.0,
                        live: false,
                        list: NO_LIST,
                    });
                    self.vectors.resize(self.vectors.len() + self.dimensions, 0.0);
                    self.slots.len() - 1
                }
            },
        };
        let vector_norm = norm(vector);
        self.slots[idx] =
            Slot { id: id.clone(), kind, service, updated_ms, norm: vector_norm, live: true, list: NO_LIST };
        self.vectors[idx * self.dimensions..(idx + 1) * self.dimensions].copy_from_slice(vector);
        self.by_id.insert(id, idx);
        if let (Some(partition), true) = (&mut self.partition, vector_norm > 0.0) {
            let list = nearest(&partition.centroids, self.dimensions, vector);
            partition.lists[list].push(idx, kind, vector, vector_norm);
            self.slots[idx].list = list as u32;
        }
    }

    pub(super) fn remove(&mut self, id: &str) {
        if let Some(idx) = self.by_id.remove(id) {
            self.leave_list(idx);
            self.slots[idx].live = false;
            self.free.push(idx);
        }
    }

    fn leave_list(&mut self, idx: usize) {
        let list = std::mem::replace(&mut self.slots[idx].list, NO_LIST);
        if let (Some(partition), true) = (&mut self.partition, list != NO_LIST) {
            partition.lists[list as usize].remove(idx, self.dimensions);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the index should be partitioned anew (or no longer) at its current size.
    pub(super) fn needs_partition(&self) -> bool {
        let n = self.len();
        match &self.partition {
            None => n > self.settings.exact_up_to,
            Some(p) => n <= self.settings.exact_up_to || n >= 2 * p.planned_for || 2 * n <= p.planned_for,
        }
    }

    /// Plans the partition for the vectors held now, or `None` when the index is small enough
    /// to scan. Reads only: the caller keeps writers out until [`Self::install`].
    pub(super) fn plan_partition(&self) -> Option<Partition> {
        let mut live: Vec<usize> = self.by_id.values().copied().filter(|&idx| self.slots[idx].norm > 0.0).collect();
        if live.len() <= self.settings.exact_up_to {
            return None;
        }
        // Sorted, so that the same vectors give the same partition whatever the map's order.
        live.sort_unstable();
        let centroids = self.train(&live, (live.len() as f64).sqrt().ceil() as usize);
        let mut lists = vec![List::default(); centroids.len() / self.dimensions];
        for (&idx, list) in live.iter().zip(self.nearest_lists(&centroids, &live)) {
            let (vector, slot) = (self.vector(idx), &self.slots[idx]);
            lists[list].push(idx, slot.kind, vector, slot.norm);
        }
        Some(Partition { centroids, lists, planned_for: live.len() })
    }

    /// Installs a partition planned by [`Self::plan_partition`] with no write in between.
    pub(super) fn install(&mut self, partition: Option<Partition>) {
        for slot in &mut self.slots {
            slot.list = NO_LIST;
        }
        if let Some(partition) = &partition {
            for (at, list) in partition.lists.iter().enumerate() {
                for &idx in &list.slots {
                    self.slots[idx as usize].list = at as u32;
                }
            }
        }
        self.partition = partition;
    }

    /// The nearest centroid of each slot in `slots`, computed on every core (this is most of
    /// the cost of planning).
    fn nearest_lists(&self, centroids: &[f32], slots: &[usize]) -> Vec<usize> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = slots.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let parts: Vec<_> = slots
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|&idx| nearest(centroids, self.dimensions, self.vector(idx)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|part| part.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        })
    }

    /// Spherical k-means on an evenly spread sample of `live`: unit centroids, `lists` of them.
    fn train(&self, live: &[usize], lists: usize) -> Vec<f32> {
        let d = self.dimensions;
        let step = (live.len() / (lists * SAMPLE_PER_LIST)).max(1);
        let sample: Vec<usize> = live.iter().copied().step_by(step).collect();
        let seed_step = (sample.len() / lists).max(1);
        let mut centroids = Vec::with_capacity(lists * d);
        for &idx in sample.iter().step_by(seed_step).take(lists) {
            centroids.extend(self.vector(idx).iter().map(|x| x / self.slots[idx].norm));
        }
        let lists = centroids.len() / d;
        let mut sums = vec![0f32; lists * d];
        let mut counts = vec![0usize; lists];
        for _ in 0..KMEANS_ROUNDS {
            sums.iter_mut().for_each(|s| *s = 0.0);
            counts.iter_mut().for_each(|c| *c = 0);
            for (&idx, list) in sample.iter().zip(self.nearest_lists(&centroids, &sample)) {
                let vector = self.vector(idx);
                counts[list] += 1;
                let inv = 1.0 / self.slots[idx].norm;
                for (s, x) in sums[list * d..(list + 1) * d].iter_mut().zip(vector) {
                    *s += x * inv;
                }
            }
            for list in 0..lists {
                // An empty list keeps its centroid: it may gain members once all vectors are
                // assigned.
                let sum = &sums[list * d..(list + 1) * d];
                let length = norm(sum);
                if counts[list] > 0 && length > 0.0 {
                    for (c, s) in centroids[list * d..(list + 1) * d].iter_mut().zip(sum) {
                        *c = s / length;
                    }
                }
            }
        }
        centroids
    }

    /// The top k by cosine similarity, best first: exact while the index is small, else
    /// over the closest lists of the partition (see the module docs).
    pub(super) fn top_k(&self, query: &SimilarityQuery) -> Vec<(String, f32)> {
        let query_norm = norm(&query.embedding);
        if query_norm == 0.0 || query.k == 0 || query.embedding.len() != self.dimensions {
            return Vec::new();
        }
        let mut top = TopK::new(query.k);
        let mut offer = |idx: usize| {
            let slot = &self.slots[idx];
            let score = dot(&query.embedding, self.vector(idx)) / (query_norm * slot.norm);
            if score >= query.min_score {
                top.offer(Ranked(score, slot.id.as_str()));
            }
        };
        match &self.partition {
            None => (0..self.slots.len()).filter(|&idx| self.slots[idx].passes(query)).for_each(offer),
            Some(partition) => {
                let d = self.dimensions;
                let mut order: Vec<(f32, usize)> =
                    partition.centroids.chunks_exact(d).map(|c| dot(&query.embedding, c)).zip(0..).collect();
                order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
                let probes = ((order.len() as f64 * self.settings.probe_share).ceil() as usize).max(MIN_PROBES);
                let mut query_code = vec![0i8; d];
                quantize(&query.embedding, &mut query_code);
                // Kind is kept in the lists; only the other filters need the slot.
                let slot_filters = query.service.is_some() || query.since.is_some();
                let mut candidates = TopK::new((query.k * RERANK_FACTOR).max(MIN_RERANK));
                let mut passed = 0;
                for (rank, (_, at)) in order.into_iter().enumerate() {
                    if rank >= probes && passed >= query.k {
                        break;
                    }
                    let list = &partition.lists[at];
                    for (i, code) in list.codes.chunks_exact(d).enumerate() {
                        if query.kind.is_some_and(|k| k != list.kinds[i])
                            || (slot_filters && !self.slots[list.slots[i] as usize].passes(query))
                        {
                            continue;
                        }
                        passed += 1;
                        let approx = dot_i8(&query_code, code) as f32 * list.weights[i];
                        candidates.offer(Ranked(approx, list.slots[i]));
                    }
                }
                candidates.heap.into_iter().for_each(|Ranked(_, idx)| offer(idx as usize));
            }
        }
        top.heap.into_sorted_vec().into_iter().map(|Ranked(score, id)| (id.to_owned(), score)).collect()
    }
}

/// The best `k` of what was offered.
struct TopK<T: Ord> {
    k: usize,
    heap: BinaryHeap<Ranked<T>>,
}

impl<T: Ord> TopK<T> {
    fn new(k: usize) -> Self {
        Self { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    fn offer(&mut self, hit: Ranked<T>) {
        if self.heap.len() < self.k {
            self.heap.push(hit);
        } else if self.heap.peek().is_some_and(|worst| hit < *worst) {
            self.heap.pop();
            self.heap.push(hit);
        }
    }
}

/// The list whose unit centroid has the largest dot product with `vector` (the largest
/// cosine, since `vector`'s own norm is the same for every centroid).
fn nearest(centroids: &[f32], dimensions: usize, vector: &[f32]) -> usize {
    let mut best = (f32::NEG_INFINITY, 0);
    for (list, centroid) in centroids.chunks_exact(dimensions).enumerate() {
        let score = dot(vector, centroid);
        if score > best.0 {
            best = (score, list);
        }
    }
    best.1
}

/// Dot product in sixteen independent lanes, which the compiler turns into SIMD.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let (a_chunks, b_chunks) = (a.chunks_exact(16), b.chunks_exact(16));
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

/// Writes `vector` as 8-bit integers scaled to its largest magnitude into `code`; returns the
/// scale that turns the code back into the vector.
fn quantize(vector: &[f32], code: &mut [i8]) -> f32 {
    let largest = vector.iter().fold(0f32, |m, x| m.max(x.abs()));
    if largest == 0.0 {
        code.fill(0);
        return 0.0;
    }
    let scale = largest / 127.0;
    for (c, x) in code.iter_mut().zip(vector) {
        *c = (x / scale).round() as i8;
    }
    scale
}

/// Dot product of two 8-bit codes, in sixteen 32-bit lanes.
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut lanes = [0i32; 16];
    let (a_chunks, b_chunks) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 =
        a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for (lane, (&x, &y)) in lanes.iter_mut().zip(x.iter().zip(y)) {
            *lane += i32::from(x) * i32::from(y);
        }
    }
    lanes.iter().sum::<i32>() + tail
}

/// A score and what it scores (an id, or a slot), ordered so that a better one is "less".
struct Ranked<T>(f32, T);

impl<T: Ord> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T: Ord> Eq for Ranked<T> {}
impl<T: Ord> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Ord> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed on score, so that the std max-heap keeps the worst on top to be replaced;
        // equal scores order by what they score.
        other.0.total_cmp(&self.0).then_with(|| self.1.cmp(&other.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(v: Vec<f32>, k: usize) -> SimilarityQuery {
        SimilarityQuery { embedding: v, k, min_score: -1.0, ..Default::default() }
    }

    fn ids(hits: Vec<(String, f32)>) -> Vec<String> {
        hits.into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn top_k_is_exact_and_slots_are_reused() {
        let mut index = VectorIndex::new(3, VectorIndexConfig::default());
        index.insert("a".into(), NodeKind::Problem, None, 0, &[1.0, 0.0, 0.0]);
        index.insert("b".into(), NodeKind::Problem, None, 0, &[0.7, 0.7, 0.0]);
        index.insert("c".into(), NodeKind::Problem, None, 0, &[0.0, 0.0, 1.0]);
        assert_eq!(ids(index.top_k(&query(vec![1.0, 0.1, 0.0], 2))), vec!["a", "b"]);
        index.remove("a");
        index.insert("d".into(), NodeKind::Solution, None, 0, &[0.0, 1.0, 0.0]);
        assert_eq!(index.len(), 3);
        assert_eq!(index.slots.len(), 3, "the removed slot is reused");
        assert_eq!(ids(index.top_k(&query(vec![1.0, 0.1, 0.0], 3))), vec!["b", "d", "c"]);
        index.insert("b".into(), NodeKind::Problem, None, 0, &[0.0, 0.0, 1.0]);
        let top = index.top_k(&query(vec![0.0, 0.0, 1.0], 1));
        assert_eq!(top[0].0, "b");
        assert!((top[0].1 - 1.0).abs() < 1e-6, "a replaced vector is searched with its new value");
    }

    /// A deterministic generator (SplitMix64) of values in [-1, 1).
    struct Rng(u64);

    impl Rng {
        fn unit(&mut self) -> f32 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }

        fn around(&mut self, centre: &[f32], spread: f32) -> Vec<f32> {
            centre.iter().map(|c| c + spread * self.unit()).collect()
        }
    }

    const D: usize = 32;

    fn exact_up_to(exact_up_to: usize) -> VectorIndexConfig {
        VectorIndexConfig { exact_up_to, ..VectorIndexConfig::default() }
    }

    /// `n` vectors around 50 centres, and an exact index beside the partitioned one.
    fn clustered(n: usize) -> (VectorIndex, VectorIndex, Rng) {
        let mut rng = Rng(7);
        let centres: Vec<Vec<f32>> = (0..50).map(|_| (0..D).map(|_| rng.unit()).collect()).collect();
        let mut partitioned = VectorIndex::new(D, exact_up_to(500));
        let mut exact = VectorIndex::new(D, exact_up_to(usize::MAX));
        for i in 0..n {
            let v = rng.around(&centres[i % centres.len()], 0.3);
            let kind = if i % 503 == 0 { NodeKind::Solution } else { NodeKind::Problem };
            partitioned.insert(format!("n{i}"), kind, None, 0, &v);
            exact.insert(format!("n{i}"), kind, None, 0, &v);
        }
        (partitioned, exact, rng)
    }

    fn repartition(index: &mut VectorIndex) {
        assert!(index.needs_partition());
        let plan = index.plan_partition();
        index.install(plan);
    }

    #[test]
    fn the_partition_finds_what_an_exact_scan_finds() {
        let (mut index, exact, mut rng) = clustered(4000);
        repartition(&mut index);
        let lists = index.partition.as_ref().map(|p| p.lists.len());
        assert_eq!(lists, Some(64), "about √n lists");
        let (mut found, mut wanted) = (0, 0);
        for q in 0..100 {
            let near = exact.vector(q * 37).to_vec();
            let probe = query(rng.around(&near, 0.05), 10);
            let truth = ids(exact.top_k(&probe));
            found += ids(index.top_k(&probe)).iter().filter(|id| truth.contains(id)).count();
            wanted += truth.len();
        }
        let recall = found as f64 / wanted as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    #[test]
    fn a_restrictive_filter_probes_until_it_has_k_results() {
        let (mut index, exact, mut rng) = clustered(4000);
        repartition(&mut index);
        // Eight solutions among 4,000 problems, spread over the clusters.
        let probe = SimilarityQuery { kind: Some(NodeKind::Solution), ..query(rng.around(exact.vector(1), 0.05), 8) };
        let got = ids(index.top_k(&probe));
        assert_eq!(got.len(), 8);
        assert_eq!(got, ids(exact.top_k(&probe)));
    }

    #[test]
    fn writes_after_partitioning_are_searched_and_size_changes_replan() {
        let (mut index, _exact, _rng) = clustered(1000);
        repartition(&mut index);
        assert!(!index.needs_partition());
        let target: Vec<f32> = (0..D).map(|i| if i == 3 { 1.0 } else { 0.0 }).collect();
        index.insert("new".into(), NodeKind::Problem, None, 0, &target);
        assert_eq!(index.top_k(&query(target.clone(), 1))[0].0, "new");
        // Replaced: the node moves to its new vector's list.
        let moved: Vec<f32> = (0..D).map(|i| if i == 5 { 1.0 } else { 0.0 }).collect();
        index.insert("new".into(), NodeKind::Problem, None, 0, &moved);
        assert_eq!(index.top_k(&query(moved, 1))[0].0, "new");
        let members: usize = index.partition.as_ref().map_or(0, |p| p.lists.iter().map(|l| l.slots.len()).sum());
        assert_eq!(members, index.len(), "every vector sits in exactly one list");
        index.remove("new");
        assert_ne!(index.top_k(&query(target, 1))[0].0, "new");
        for i in 0..600 {
            index.remove(&format!("n{i}"));
        }
        assert!(index.needs_partition(), "shrunk below half: plan again (here: back to exact)");
        let plan = index.plan_partition();
        assert!(plan.is_none());
        index.install(plan);
        assert!(!index.needs_partition());
    }
}
