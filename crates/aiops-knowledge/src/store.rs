//! The `KnowledgeStore` and `AuditLog` traits.

use std::fmt;

use async_trait::async_trait;

use crate::{
    AuditEntry, Direction, Edge, KnowledgeResult, Node, Outcome, Relation, ScoredNode, SimilarityQuery, SolutionStats,
};

/// The knowledge graph.
///
/// # Contract
/// - `upsert_node` validates before writing; invalid data or an embedding of another dimension
///   than [`KnowledgeStore::dimensions`] writes nothing (`invalid_node_writes_nothing`).
/// - What was written is there after the store is reopened, similarity index included
///   (`nodes_and_index_survive_reopen`).
/// - `link` needs both nodes; an edge is unique per (from, to, relation) and linking again
///   updates it (`link_requires_both_nodes_and_upserts`). Deleting a node deletes its edges.
/// - `similar` returns at most `k` nodes of the kind asked, best first, none below
///   `min_score` (`similarity_is_ranked_filtered_and_bounded`).
/// - `record_outcome` updates the solution's statistics and the solution → problem `solves`
///   edge in one transaction; concurrent writers lose no update
///   (`concurrent_outcomes_are_all_counted`), and recording the same `action_id` again
///   changes nothing (`an_outcome_is_counted_once_per_action`).
///
/// # Errors
/// [`crate::KnowledgeError::NotFound`] for missing nodes where one is required,
/// [`crate::KnowledgeError::Invalid`] / [`crate::KnowledgeError::DimensionMismatch`] for bad input,
/// [`crate::KnowledgeError::Unavailable`] when the engine cannot be reached.
#[async_trait]
pub trait KnowledgeStore: Send + Sync + fmt::Debug + 'static {
    /// Dimension of every stored embedding.
    fn dimensions(&self) -> usize;
    /// Inserts or replaces a node (keeping its `created_at`).
    async fn upsert_node(&self, node: Node) -> KnowledgeResult<()>;
    /// Inserts or replaces many nodes in one transaction: all or none are written.
    async fn upsert_nodes(&self, nodes: Vec<Node>) -> KnowledgeResult<()>;
    /// Inserts or updates many edges in one transaction: all or none are written.
    async fn link_many(&self, edges: Vec<Edge>) -> KnowledgeResult<()>;
    /// A node by id.
    async fn get_node(&self, id: &str) -> KnowledgeResult<Option<Node>>;
    /// Deletes a node and its edges; false when it did not exist.
    async fn delete_node(&self, id: &str) -> KnowledgeResult<bool>;
    /// Inserts or updates an edge.
    async fn link(&self, edge: Edge) -> KnowledgeResult<()>;
    /// Removes an edge; false when it did not exist.
    async fn unlink(&self, from: &str, to: &str, relation: Relation) -> KnowledgeResult<bool>;
    /// Edges of a node with the node at their other end.
    async fn neighbors(
        &self,
        id: &str,
        relation: Option<Relation>,
        direction: Direction,
    ) -> KnowledgeResult<Vec<(Edge, Node)>>;
    /// Top-k nodes by cosine similarity.
    async fn similar(&self, query: &SimilarityQuery) -> KnowledgeResult<Vec<ScoredNode>>;
    /// Nodes reachable from `start` over edges of `relation` in `direction`, at most
    /// `max_hops` away (at most 10), each once at its shortest depth, nearest first. Cycles
    /// are safe. `start` itself is left out; reached nodes carry no embedding.
    async fn traverse(
        &self,
        start: &str,
        relation: Relation,
        direction: Direction,
        max_hops: usize,
    ) -> KnowledgeResult<Vec<crate::Reached>>;
    /// Hybrid search: the vector ranking of `query.embedding` and the full-text ranking of
    /// `text` (FTS5 on SQLite, `tsvector` on PostgreSQL, over names and data), fused by
    /// reciprocal rank fusion: score = Σ 1 / (60 + rank) over both rankings (rank from 1,
    /// each ranking cut at 50 candidates). The query's filters apply; `min_score` does not.
    async fn hybrid_search(&self, text: &str, query: &SimilarityQuery) -> KnowledgeResult<Vec<ScoredNode>>;
    /// Records that a solution was tried on a problem; returns the solution's statistics
    /// (unchanged when this action's outcome was recorded before).
    async fn record_outcome(&self, outcome: &Outcome) -> KnowledgeResult<SolutionStats>;
    /// Statistics of a solution over all problems; `None` if never tried.
    async fn solution_stats(&self, solution_id: &str) -> KnowledgeResult<Option<SolutionStats>>;
    /// Statistics of the fixes one pattern version proposed (`<pattern id>@<version>`).
    async fn pattern_stats(&self, pattern: &str) -> KnowledgeResult<Option<SolutionStats>>;
    /// Nodes of one kind, most recently updated first, at most `limit`.
    async fn nodes(&self, kind: crate::NodeKind, limit: usize) -> KnowledgeResult<Vec<Node>>;
    /// Every edge, ordered by (from, to, relation).
    async fn all_edges(&self) -> KnowledgeResult<Vec<Edge>>;
    /// Every recorded outcome, oldest first.
    async fn outcomes(&self) -> KnowledgeResult<Vec<Outcome>>;
    /// Number of nodes of each kind.
    async fn count_nodes(&self) -> KnowledgeResult<Vec<(crate::NodeKind, u64)>>;
}

/// The append-only record of every action taken.
///
/// # Contract
/// - Entries are never changed or removed; `append` assigns increasing `seq` numbers.
/// - `recent` returns the newest entries first.
#[async_trait]
pub trait AuditLog: Send + Sync + fmt::Debug + 'static {
    /// Appends an entry; returns its `seq`.
    async fn append(&self, entry: AuditEntry) -> KnowledgeResult<i64>;
    /// The newest `limit` entries, newest first.
    async fn recent(&self, limit: usize) -> KnowledgeResult<Vec<AuditEntry>>;
}
