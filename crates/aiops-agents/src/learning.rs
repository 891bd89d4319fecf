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

use aiops_knowledge::{Node, NodeKind, Outcome};
use aiops_model::{event_type, ActionOutcome, Envelope};
use async_trait::async_trait;
use chrono::Utc;

use crate::agent::payload;
use crate::{Agent, AgentContext, AgentResult};

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
        vec![event_type::ACTION_COMPLETED.into()]
    }

    async fn handle(&self, ctx: &AgentContext, event: &Envelope) -> AgentResult<()> {
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
                serde_json::json!({ "tool": outcome.tool, "params": outcome.params, "pattern_id": outcome.pattern_id }),
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
