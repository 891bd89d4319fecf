//! The Learning agent: turns every outcome into knowledge.
//!
//! For each `action.completed` it stores the problem (with the embedding of its signature, so
//! the Diagnostic agent finds it next time) and the solution, then records the outcome, which
//! updates the solution's statistics and the solution → problem `solves` edge in one
//! transaction. A verified fix counts as a success; anything else as a failure. It publishes
//! `knowledge.updated` with the solution's new statistics.
//!
//! Idempotency: the knowledge store counts an outcome once per action id, so a redelivered
//! event changes no statistics (and re-publishes `knowledge.updated`, which is harmless).
//! An action whose tool never ran (dry run, tool missing) says nothing about the solution and
//! is not recorded.
//!
//! It also records which diagnosis sources were right: for each source that proposed the fix
//! (rules, knowledge, LLM), the insight node `insight:diagnosis-source:<source>` gets a
//! `validates` edge to the problem whose data says whether the fix healed it (`right`). One edge
//! per source and problem, so a redelivered outcome changes nothing and the last outcome of a
//! fix that source proposed decides. [`source_accuracy`] counts them.
//!
//! Problems no pattern explains are clustered into candidate patterns for review
//! (`clusters.rs`).
//!
//! Patterns evolve: [`record_pattern_versions`] keeps one node per pattern version
//! (`pattern:<id>@<version>`; its outcome statistics are kept under `<id>@<version>`), linked by
//! `evolves_into` from each version to the next, so a changed pattern is judged by its own
//! record and its history stays readable.

use std::collections::BTreeMap;

use aiops_knowledge::{Direction, Edge, KnowledgeStore, Node, NodeKind, Outcome, Relation};
use aiops_model::{event_type, ActionOutcome, Diagnosis, DiagnosisSource, Envelope, HypothesisSource};
use async_trait::async_trait;
use chrono::Utc;

use crate::agent::payload;
use crate::{Agent, AgentContext, AgentResult};

/// Knowledge id of a pattern version's node.
pub fn pattern_node_id(pattern_id: &str, version: u32) -> String {
    format!("pattern:{pattern_id}@{version}")
}

/// Records every pattern version of `library` not yet in the knowledge graph and links it to
/// the newest earlier version by `evolves_into`; returns how many versions were new.
///
/// # Errors
/// When the graph cannot be read or written, and [`aiops_knowledge::KnowledgeError::Invalid`]
/// when a recorded version's definition changed without a new version number (its statistics
/// would mix two different patterns).
pub async fn record_pattern_versions(
    knowledge: &dyn KnowledgeStore,
    library: &aiops_patterns::PatternLibrary,
) -> AgentResult<usize> {
    let recorded = knowledge.nodes(NodeKind::Pattern, 100_000).await?;
    let mut added = 0;
    for pattern in library.patterns() {
        let id = pattern_node_id(&pattern.id, pattern.version);
        let definition = serde_json::to_value(pattern).unwrap_or_default();
        if let Some(existing) = recorded.iter().find(|n| n.id == id) {
            if existing.data["definition"] != definition {
                return Err(aiops_knowledge::KnowledgeError::Invalid(format!(
                    "pattern {} version {} differs from the version {} recorded earlier; a changed pattern needs version {}",
                    pattern.id,
                    pattern.version,
                    pattern.version,
                    pattern.version + 1
                ))
                .into());
            }
            continue;
        }
        let data = serde_json::json!({
            "pattern_id": pattern.id,
            "version": pattern.version,
            "root_cause": pattern.root_cause,
            "definition": definition,
        });
        knowledge.upsert_node(Node::new(&id, NodeKind::Pattern, &pattern.title, data)).await?;
        let previous = recorded
            .iter()
            .filter(|n| n.data["pattern_id"] == pattern.id.as_str())
            .filter_map(|n| n.data["version"].as_u64().map(|v| (v, n)))
            .filter(|(v, _)| *v < u64::from(pattern.version))
            .max_by_key(|(v, _)| *v);
        if let Some((_, previous)) = previous {
            let edge = Edge {
                from: previous.id.clone(),
                to: id.clone(),
                relation: Relation::EvolvesInto,
                weight: 1.0,
                data: serde_json::Value::Null,
            };
            knowledge.link(edge).await?;
            tracing::info!(pattern = %pattern.id, from = %previous.id, to = %id, "A pattern evolved; its new version keeps its own statistics.");
        }
        added += 1;
    }
    Ok(added)
}

/// Knowledge id of the insight node that collects a diagnosis source's record.
pub fn source_insight_id(source: DiagnosisSource) -> String {
    format!("insight:diagnosis-source:{}", source.as_str())
}

/// How often each diagnosis source's fixes healed: source → (right, wrong), over all problems
/// where a fix it proposed was tried.
///
/// # Errors
/// When the knowledge graph cannot be read.
pub async fn source_accuracy(knowledge: &dyn KnowledgeStore) -> AgentResult<BTreeMap<DiagnosisSource, (u64, u64)>> {
    let mut accuracy = BTreeMap::new();
    for source in DiagnosisSource::ALL {
        let edges =
            knowledge.neighbors(&source_insight_id(source), Some(Relation::Validates), Direction::Outgoing).await?;
        let right = edges.iter().filter(|(edge, _)| edge.data["right"] == serde_json::Value::Bool(true)).count() as u64;
        accuracy.insert(source, (right, edges.len() as u64 - right));
    }
    Ok(accuracy)
}

const NAME: &str = "learning";

/// The Learning agent.
#[derive(Debug, Default)]
pub struct Learning;

impl Learning {
    /// A Learning agent.
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl Agent for Learning {
    fn name(&self) -> &'static str {
        NAME
    }

    fn control_types(&self) -> Vec<String> {
        vec![event_type::ACTION_COMPLETED.into(), event_type::DIAGNOSIS_COMPLETED.into()]
    }

    async fn handle(&self, ctx: &AgentContext, event: &Envelope) -> AgentResult<()> {
        if event.event_type == event_type::DIAGNOSIS_COMPLETED {
            let diagnosis: Diagnosis = payload(event)?;
            if diagnosis.hypotheses.iter().any(|h| matches!(h.source, HypothesisSource::Pattern { .. })) {
                return Ok(());
            }
            if let Some(candidate) = crate::clusters::cluster(ctx, &diagnosis.problem).await? {
                tracing::info!(candidate = %candidate, "Problems no pattern explains keep coming; a candidate pattern awaits review.");
                let data = serde_json::json!({ "candidate_pattern": candidate });
                ctx.emit(NAME, event_type::KNOWLEDGE_UPDATED, &diagnosis.problem.service, None, data).await?;
            }
            return Ok(());
        }
        let outcome: ActionOutcome = payload(event)?;
        if !outcome.executed {
            tracing::debug!(action = %outcome.action_id, "The tool did not run; nothing to learn.");
            return Ok(());
        }
        let problem = &outcome.problem;
        let signature = problem.signature();
        let embedding = ctx.embedder.embed(std::slice::from_ref(&signature)).await?.remove(0);
        let mut problem_node = Node::new(
            &problem.id,
            NodeKind::Problem,
            &problem.summary,
            serde_json::json!({
                "service": problem.service,
                "kind": problem.kind.as_str(),
                "signature": signature,
                "fingerprint": problem.fingerprint(),
                "evidence": problem.evidence,
                "first_seen": problem.first_seen,
            }),
        );
        problem_node.embedding = Some(embedding);
        ctx.knowledge.upsert_node(problem_node).await?;
        let params_text = if outcome.params.as_object().is_none_or(|o| o.is_empty()) {
            String::new()
        } else {
            outcome.params.to_string()
        };
        ctx.knowledge
            .upsert_node(Node::new(
                &outcome.solution_id,
                NodeKind::Solution,
                format!("{}({params_text})", outcome.tool),
                serde_json::json!({
                    "tool": outcome.tool, "params": outcome.params, "pattern_id": outcome.pattern_id,
                    "target_service": outcome.target_service,
                }),
            ))
            .await?;
        let recover_ms = (Utc::now() - problem.first_seen).num_milliseconds().max(0) as u64;
        let stats = ctx
            .knowledge
            .record_outcome(&Outcome {
                action_id: outcome.action_id.clone(),
                pattern: outcome.pattern_id.as_ref().map(|id| format!("{id}@{}", outcome.pattern_version.unwrap_or(1))),
                problem_id: problem.id.clone(),
                solution_id: outcome.solution_id.clone(),
                success: outcome.verified,
                recover_ms: outcome.verified.then_some(recover_ms),
                at: event.time,
            })
            .await?;
        if !outcome.proposed_by.is_empty() {
            let insights = outcome.proposed_by.iter().map(|source| {
                Node::new(
                    source_insight_id(*source),
                    NodeKind::Insight,
                    format!("diagnosis source: {}", source.as_str()),
                    serde_json::json!({
                        "text": format!("Problems where a fix proposed by {} was tried, and whether it healed them.", source.as_str()),
                        "source": source.as_str(),
                    }),
                )
            });
            ctx.knowledge.upsert_nodes(insights.collect()).await?;
            let edges = outcome.proposed_by.iter().map(|source| Edge {
                from: source_insight_id(*source),
                to: problem.id.clone(),
                relation: Relation::Validates,
                weight: if outcome.verified { 1.0 } else { 0.0 },
                data: serde_json::json!({
                    "right": outcome.verified,
                    "action_id": outcome.action_id,
                    "solution_id": outcome.solution_id,
                }),
            });
            ctx.knowledge.link_many(edges.collect()).await?;
        }
        tracing::info!(
            solution = %outcome.solution_id,
            verified = outcome.verified,
            attempts = stats.attempts,
            success_rate = stats.success_rate(),
            "Outcome learned."
        );
        ctx.emit(
            NAME,
            event_type::KNOWLEDGE_UPDATED,
            &problem.service,
            None,
            serde_json::json!({
                "problem_id": problem.id,
                "solution_id": outcome.solution_id,
                "verified": outcome.verified,
                "stats": stats,
                "success_rate": stats.success_rate(),
            }),
        )
        .await?;
        Ok(())
    }
}
