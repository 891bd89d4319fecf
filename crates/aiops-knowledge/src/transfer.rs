//! Export and import of a whole knowledge graph as JSON Lines, so a team can move from one
//! engine to another (SQLite to PostgreSQL) without losing anything.
//!
//! One JSON object per line, tagged by `record`: `node` (with its embedding), `outcome`,
//! `edge`, `audit`. Import replays them in that order: nodes first, then outcomes (which
//! rebuild each solution's statistics and its `solves` edges), then edges (which set every edge
//! to its exported weight and data), then audit entries (appended, oldest first, with new
//! sequence numbers). Importing into a store that already holds some of the graph is safe:
//! nodes and edges are upserted and outcomes count once per action (audit entries, being an
//! append-only log, are appended again).

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::{AuditEntry, AuditLog, Edge, KnowledgeError, KnowledgeResult, KnowledgeStore, Node, NodeKind, Outcome};

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// A node.
    Node(Node),
    /// An outcome of trying a solution on a problem.
    Outcome(Outcome),
    /// An edge.
    Edge(Edge),
    /// An audit log entry.
    Audit(AuditEntry),
}

/// How many records of each kind were written or read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransferCounts {
    /// Nodes.
    pub nodes: u64,
    /// Outcomes.
    pub outcomes: u64,
    /// Edges.
    pub edges: u64,
    /// Audit entries.
    pub audit: u64,
}

fn io(err: std::io::Error) -> KnowledgeError {
    KnowledgeError::Unavailable { backend: "export file", source: err.into() }
}

/// Writes the whole graph and audit log to `out`.
///
/// # Errors
/// When the store cannot be read or `out` cannot be written.
pub async fn export(
    store: &dyn KnowledgeStore,
    audit: &dyn AuditLog,
    out: &mut dyn Write,
) -> KnowledgeResult<TransferCounts> {
    let mut counts = TransferCounts::default();
    let mut write = |record: &Record| -> KnowledgeResult<()> {
        serde_json::to_writer(&mut *out, record).map_err(|err| io(err.into()))?;
        out.write_all(b"\n").map_err(io)
    };
    for kind in NodeKind::ALL {
        let mut nodes = store.nodes(kind, usize::MAX).await?;
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        for node in nodes {
            write(&Record::Node(node))?;
            counts.nodes += 1;
        }
    }
    for outcome in store.outcomes().await? {
        write(&Record::Outcome(outcome))?;
        counts.outcomes += 1;
    }
    for edge in store.all_edges().await? {
        write(&Record::Edge(edge))?;
        counts.edges += 1;
    }
    let mut entries = audit.recent(usize::MAX).await?;
    entries.reverse();
    for entry in entries {
        write(&Record::Audit(entry))?;
        counts.audit += 1;
    }
    out.flush().map_err(io)?;
    Ok(counts)
}

/// Reads an export and writes it into `store` and `audit`. Every line is parsed and checked
/// before anything is written, so a malformed file changes nothing.
///
/// # Errors
/// [`KnowledgeError::Invalid`] naming the line of a malformed record; store errors as they come.
pub async fn import(
    store: &dyn KnowledgeStore,
    audit: &dyn AuditLog,
    input: &mut dyn BufRead,
) -> KnowledgeResult<TransferCounts> {
    let mut records = Vec::new();
    for (idx, line) in input.lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record =
            serde_json::from_str(&line).map_err(|err| KnowledgeError::Invalid(format!("line {}: {err}", idx + 1)))?;
        if let Record::Node(node) = &record {
            node.validate(store.dimensions())
                .map_err(|err| KnowledgeError::Invalid(format!("line {}: {err}", idx + 1)))?;
        }
        records.push(record);
    }
    let mut counts = TransferCounts::default();
    let rank = |record: &Record| match record {
        Record::Node(_) => 0,
        Record::Outcome(_) => 1,
        Record::Edge(_) => 2,
        Record::Audit(_) => 3,
    };
    records.sort_by_key(rank);
    for record in records {
        match record {
            Record::Node(node) => {
                store.upsert_node(node).await?;
                counts.nodes += 1;
            }
            Record::Outcome(outcome) => {
                store.record_outcome(&outcome).await?;
                counts.outcomes += 1;
            }
            Record::Edge(edge) => {
                store.link(edge).await?;
                counts.edges += 1;
            }
            Record::Audit(entry) => {
                audit.append(entry).await?;
                counts.audit += 1;
            }
        }
    }
    Ok(counts)
}
