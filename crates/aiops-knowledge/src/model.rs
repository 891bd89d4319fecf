//! The nouns of the knowledge graph: nodes, edges, outcomes, statistics, audit entries.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{KnowledgeError, KnowledgeResult};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Something that went wrong (data: `service`, `kind`, `signature`).
    Problem,
    /// A remediation (data: `tool`, `params`).
    Solution,
    /// A failure pattern from the library (data: `version`).
    Pattern,
    /// Something learned that is not a solution (data: `text`).
    Insight,
    /// A remediation tool (data: `version`).
    Tool,
}

impl NodeKind {
    /// All kinds.
    pub const ALL: [NodeKind; 5] = [Self::Problem, Self::Solution, Self::Pattern, Self::Insight, Self::Tool];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Problem => "problem",
            Self::Solution => "solution",
            Self::Pattern => "pattern",
            Self::Insight => "insight",
            Self::Tool => "tool",
        }
    }

    /// Keys the node's data must hold, each with the JSON type it must have.
    fn required_keys(self) -> &'static [(&'static str, JsonType)] {
        match self {
            Self::Problem => &[("service", JsonType::String), ("kind", JsonType::String)],
            Self::Solution => &[("tool", JsonType::String)],
            Self::Pattern | Self::Tool => &[("version", JsonType::Number)],
            Self::Insight => &[("text", JsonType::String)],
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum JsonType {
    String,
    Number,
}

impl FromStr for NodeKind {
    type Err = KnowledgeError;
    fn from_str(s: &str) -> KnowledgeResult<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| KnowledgeError::Invalid(format!("unknown node kind {s:?}")))
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How two nodes relate. Edges point from the first noun to the second: a solution *solves* a
/// problem, a problem *causes* another, a pattern *evolves_into* its next version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// Solution → problem.
    Solves,
    /// Problem → problem it causes.
    Causes,
    /// Solution → tool or capability it needs.
    Requires,
    /// Problem → similar problem.
    SimilarTo,
    /// Old version → new version.
    EvolvesInto,
    /// Tool → solution it carries out.
    Implements,
    /// Outcome or insight → what it confirms.
    Validates,
    /// Solution → solution it must not run with.
    ConflictsWith,
    /// Service or tool → what it depends on.
    DependsOn,
    /// Event or problem → what it sets off.
    Triggers,
    /// Step → next step.
    LeadsTo,
    /// Solution → problem it lessens without solving.
    Mitigates,
    /// Agent or tool → partner.
    Collaborates,
}

impl Relation {
    /// All relations.
    pub const ALL: [Relation; 13] = [
        Self::Solves,
        Self::Causes,
        Self::Requires,
        Self::SimilarTo,
        Self::EvolvesInto,
        Self::Implements,
        Self::Validates,
        Self::ConflictsWith,
        Self::DependsOn,
        Self::Triggers,
        Self::LeadsTo,
        Self::Mitigates,
        Self::Collaborates,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Solves => "solves",
            Self::Causes => "causes",
            Self::Requires => "requires",
            Self::SimilarTo => "similar_to",
            Self::EvolvesInto => "evolves_into",
            Self::Implements => "implements",
            Self::Validates => "validates",
            Self::ConflictsWith => "conflicts_with",
            Self::DependsOn => "depends_on",
            Self::Triggers => "triggers",
            Self::LeadsTo => "leads_to",
            Self::Mitigates => "mitigates",
            Self::Collaborates => "collaborates",
        }
    }
}

impl FromStr for Relation {
    type Err = KnowledgeError;
    fn from_str(s: &str) -> KnowledgeResult<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| KnowledgeError::Invalid(format!("unknown relation {s:?}")))
    }
}

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Stable id chosen by the writer (e.g. `solution:reset_db_pool`).
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// Short human name.
    pub name: String,
    /// Kind-specific JSON object (see [`NodeKind`] for required keys).
    pub data: serde_json::Value,
    /// Embedding of the node's text, if it has one; its length must be the store's dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    /// Set by the store on first insert.
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
    /// Set by the store on every write.
    #[serde(default = "Utc::now")]
    pub updated_at: DateTime<Utc>,
}

impl Node {
    /// A node with no embedding; times are set by the store.
    pub fn new(id: impl Into<String>, kind: NodeKind, name: impl Into<String>, data: serde_json::Value) -> Self {
        let now = Utc::now();
        Self { id: id.into(), kind, name: name.into(), data, embedding: None, created_at: now, updated_at: now }
    }

    /// Checks id, name and kind-specific data; `dimensions` is the store's.
    ///
    /// # Errors
    /// [`KnowledgeError::Invalid`] or [`KnowledgeError::DimensionMismatch`] naming the problem.
    pub fn validate(&self, dimensions: usize) -> KnowledgeResult<()> {
        if self.id.trim().is_empty() || self.id.len() > 256 {
            return Err(KnowledgeError::Invalid("node id must be 1-256 characters".into()));
        }
        if self.name.len() > 1024 {
            return Err(KnowledgeError::Invalid(format!("node {} name is longer than 1024 characters", self.id)));
        }
        let Some(object) = self.data.as_object() else {
            return Err(KnowledgeError::Invalid(format!("node {} data must be a JSON object", self.id)));
        };
        for (key, json_type) in self.kind.required_keys() {
            let ok = matches!(
                (object.get(*key), json_type),
                (Some(serde_json::Value::String(_)), JsonType::String)
                    | (Some(serde_json::Value::Number(_)), JsonType::Number)
            );
            if !ok {
                return Err(KnowledgeError::Invalid(format!(
                    "{} node {} needs data.{key} as a {}",
                    self.kind,
                    self.id,
                    match json_type {
                        JsonType::String => "string",
                        JsonType::Number => "number",
                    }
                )));
            }
        }
        if let Some(embedding) = &self.embedding {
            if embedding.len() != dimensions {
                return Err(KnowledgeError::DimensionMismatch { expected: dimensions, actual: embedding.len() });
            }
            if embedding.iter().any(|v| !v.is_finite()) {
                return Err(KnowledgeError::Invalid(format!("node {} embedding has a non-finite value", self.id)));
            }
        }
        Ok(())
    }
}

/// A directed, weighted edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// The relation.
    pub relation: Relation,
    /// Strength in 0..=1 (for `solves`, the success rate of that solution on that problem).
    pub weight: f64,
    /// Extra facts (for `solves`: `attempts`, `successes`).
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Which edges of a node to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Edges leaving the node.
    Outgoing,
    /// Edges arriving at the node.
    Incoming,
}

/// A top-k similarity search.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimilarityQuery {
    /// The query vector (store dimension).
    pub embedding: Vec<f32>,
    /// Only nodes of this kind, if set.
    pub kind: Option<NodeKind>,
    /// At most this many results.
    pub k: usize,
    /// Only results with cosine similarity at least this.
    pub min_score: f32,
    /// Only nodes whose `data.service` is this, if set.
    pub service: Option<String>,
    /// Only nodes written (created or updated) at or after this time, if set.
    pub since: Option<DateTime<Utc>>,
}

/// A node reached by a traversal, with the number of hops from the start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reached {
    /// The node.
    pub node: Node,
    /// Hops from the start (1 for a neighbour).
    pub depth: usize,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoredNode {
    /// The node, without its embedding (search hits never carry it; `get_node` does).
    pub node: Node,
    /// Cosine similarity to the query.
    pub score: f32,
}

/// The result of trying a solution on a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Id of the action that tried it; an outcome is counted once per action id.
    pub action_id: String,
    /// The pattern version that proposed the solution (`<pattern id>@<version>`), if any; its
    /// statistics are kept too.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Problem node id (must exist).
    pub problem_id: String,
    /// Solution node id (must exist).
    pub solution_id: String,
    /// Whether it healed the problem (verified).
    pub success: bool,
    /// Time to recover, for successes.
    pub recover_ms: Option<u64>,
    /// When it was tried.
    pub at: DateTime<Utc>,
}

/// Success statistics of a solution (over all problems), or of one solution on one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolutionStats {
    /// Times tried.
    pub attempts: u64,
    /// Times it healed.
    pub successes: u64,
    /// Times it did not.
    pub failures: u64,
    /// Mean time to recover over the successes, in milliseconds.
    pub mean_recover_ms: Option<f64>,
    /// When last tried.
    pub last_used: Option<DateTime<Utc>>,
}

impl SolutionStats {
    /// Successes over attempts, 0 when never tried.
    pub fn success_rate(&self) -> f64 {
        if self.attempts == 0 {
            0.0
        } else {
            self.successes as f64 / self.attempts as f64
        }
    }
}

/// One entry of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, assigned by the store (0 when appending).
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (agent name, API token name, CLI user).
    pub actor: String,
    /// What, e.g. `tool.run`, `tool.rollback`, `heal.escalated`.
    pub action: String,
    /// On what, e.g. the service name.
    pub subject: String,
    /// Details.
    pub detail: serde_json::Value,
}
