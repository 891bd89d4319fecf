//! Problems no pattern explains, grouped into candidate patterns for a human to review.
//!
//! Each unexplained problem joins the nearest candidate (cosine similarity of signature
//! embeddings at least [`CLUSTER_MIN_SIMILARITY`]) or starts one. A candidate is an insight
//! node `insight:candidate-pattern:<fingerprint>`; once [`CLUSTER_READY_AT`] problems joined
//! it, it carries a draft pattern (TOML that `[patterns] dir` accepts once a reviewer filled
//! in the root cause and the fix) built from the symptoms and the words its problems share.

use std::collections::{BTreeMap, BTreeSet};

use aiops_knowledge::{KnowledgeStore, Node, NodeKind, SimilarityQuery};
use aiops_model::Problem;
use aiops_patterns::{Pattern, Signature, Verification};
use serde_json::{json, Value};

use crate::{AgentContext, AgentResult};

/// Knowledge id prefix of candidate patterns.
pub const CANDIDATE_PREFIX: &str = "insight:candidate-pattern:";
/// How alike an unexplained problem must be to a candidate to join it.
pub const CLUSTER_MIN_SIMILARITY: f32 = 0.85;
/// Problems a candidate needs before it is offered for review.
pub const CLUSTER_READY_AT: u64 = 3;
/// Problem ids and evidence lines kept per candidate.
const KEEP: usize = 20;

/// Adds an unexplained problem to its candidate pattern; returns the candidate's id when this
/// problem made it ready for review.
pub(crate) async fn cluster(ctx: &AgentContext, problem: &Problem) -> AgentResult<Option<String>> {
    let embedding = ctx.embedder.embed(&[problem.signature()]).await?.remove(0);
    let query = SimilarityQuery {
        embedding: embedding.clone(),
        kind: Some(NodeKind::Insight),
        k: 5,
        min_score: CLUSTER_MIN_SIMILARITY,
        ..SimilarityQuery::default()
    };
    let nearest =
        ctx.knowledge.similar(&query).await?.into_iter().find(|hit| hit.node.id.starts_with(CANDIDATE_PREFIX));
    let mut node = match nearest {
        // Search results come without their vector; an upsert without one would drop the
        // candidate from the index.
        Some(hit) => {
            let mut node = ctx.knowledge.get_node(&hit.node.id).await?.unwrap_or(hit.node);
            node.embedding.get_or_insert(embedding);
            node
        }
        None => {
            let id = format!("{CANDIDATE_PREFIX}{}", problem.fingerprint());
            let mut node =
                Node::new(&id, NodeKind::Insight, format!("candidate pattern: {}", problem.summary), json!({}));
            node.embedding = Some(embedding);
            node
        }
    };
    let data = &mut node.data;
    let mut ids = strings(&data["problems"]);
    if ids.contains(&problem.id) {
        return Ok(None);
    }
    ids.push(problem.id.clone());
    let count = data["count"].as_u64().unwrap_or(0) + 1;
    let mut kinds: BTreeSet<String> = strings(&data["kinds"]).into_iter().collect();
    kinds.insert(problem.kind.as_str().to_owned());
    let mut services: BTreeSet<String> = strings(&data["services"]).into_iter().collect();
    services.insert(problem.service.clone());
    let mut evidence = strings(&data["evidence"]);
    evidence.extend(problem.evidence.iter().cloned());
    let keep_from = |len: usize| len.saturating_sub(KEEP);
    ids.drain(..keep_from(ids.len()));
    evidence.drain(..keep_from(evidence.len()));
    let became_ready = count == CLUSTER_READY_AT;
    let draft = (count >= CLUSTER_READY_AT).then(|| draft_pattern(&node.id, &node.name, &kinds, &evidence)).flatten();
    node.data = json!({
        "text": format!("{count} problems matched no pattern, like: {}", problem.summary),
        "count": count,
        "problems": ids,
        "kinds": kinds,
        "services": services,
        "evidence": evidence,
        "ready_for_review": count >= CLUSTER_READY_AT,
        "draft_pattern": draft,
        "last_seen": problem.detected_at,
    });
    let id = node.id.clone();
    ctx.knowledge.upsert_node(node).await?;
    Ok(became_ready.then_some(id))
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
}

/// Words every error message has, which would match any problem.
const GENERIC_WORDS: &[&str] = &[
    "after",
    "before",
    "cannot",
    "could",
    "error",
    "errors",
    "exception",
    "failed",
    "failure",
    "request",
    "requests",
    "returned",
    "service",
    "times",
    "warning",
    "while",
];

/// Words (5+ letters, no digits, not generic) that most of the evidence lines share, most
/// shared first.
fn shared_words(evidence: &[String]) -> Vec<String> {
    let mut lines_with: BTreeMap<String, usize> = BTreeMap::new();
    for line in evidence {
        let words: BTreeSet<String> = line
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .filter(|w| w.len() >= 5 && !w.chars().any(|c| c.is_ascii_digit()))
            .map(str::to_lowercase)
            .filter(|w| !GENERIC_WORDS.contains(&w.as_str()))
            .collect();
        for word in words {
            *lines_with.entry(word).or_default() += 1;
        }
    }
    let mut words: Vec<(String, usize)> = lines_with.into_iter().filter(|(_, n)| *n * 2 > evidence.len()).collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    words.into_iter().take(4).map(|(w, _)| w).collect()
}

/// A draft pattern for review, valid as a pattern file; `None` when the evidence shares no words.
fn draft_pattern(id: &str, name: &str, kinds: &BTreeSet<String>, evidence: &[String]) -> Option<String> {
    let keywords = shared_words(evidence);
    if keywords.is_empty() {
        return None;
    }
    let kinds = kinds.iter().filter_map(|k| serde_json::from_value(Value::String(k.clone())).ok()).collect();
    let pattern = Pattern {
        id: format!("candidate-{}", &id[CANDIDATE_PREFIX.len()..][..8.min(id.len() - CANDIDATE_PREFIX.len())]),
        version: 1,
        title: name.trim_start_matches("candidate pattern: ").chars().take(80).collect(),
        description: "Drafted from problems no pattern explained; review, then add [[remediation]].".into(),
        root_cause: "to be written by a reviewer".into(),
        signature: Signature { kinds, evidence_any: keywords, evidence_required: true, requires_capability: None },
        diagnosis: Default::default(),
        remediation: Vec::new(),
        verification: Verification { within_ms: 10_000, consecutive_ok: 3 },
    };
    let text = toml::to_string(&pattern).ok()?;
    Pattern::parse(&text, id).ok().map(|_| text)
}

/// Candidate patterns ready for review, most problems first.
///
/// # Errors
/// When the knowledge graph cannot be read.
pub async fn candidate_patterns(knowledge: &dyn KnowledgeStore) -> AgentResult<Vec<Node>> {
    let mut ready: Vec<Node> = knowledge
        .nodes(NodeKind::Insight, 100_000)
        .await?
        .into_iter()
        .filter(|n| n.id.starts_with(CANDIDATE_PREFIX) && n.data["ready_for_review"] == true)
        .collect();
    ready.sort_by_key(|n| std::cmp::Reverse(n.data["count"].as_u64().unwrap_or(0)));
    Ok(ready)
}
