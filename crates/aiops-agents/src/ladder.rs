//! The healing safety ladder: how far each fix (pattern × tool) is trusted to act alone.
//!
//! `suggest` → `approve` → `auto`. A fix starts at `auto` when its risk is at most
//! `max_auto_risk`, at `approve` otherwise. After `promote_after` verified successes in a row
//! it climbs from `approve` to `auto`. A failed verification sends it one rung down: an `auto`
//! fix needs approval again, and an approved fix that still failed is only suggested from
//! then on (it stops asking humans). Each rung is an insight node
//! (`insight:trust:<pattern>:<tool>`) in the knowledge graph, so the ladder outlives restarts
//! and is shared by every core on one store; deleting the node resets it.

use aiops_knowledge::{KnowledgeStore, Node, NodeKind};
use aiops_model::{CandidateAction, RiskLevel, TrustLevel};
use serde_json::json;

use crate::{AgentResult, HealingConfig};

/// Knowledge id of the node holding a fix's rung.
pub fn trust_node_id(candidate: &CandidateAction) -> String {
    format!("insight:trust:{}:{}", scope(candidate), candidate.tool)
}

/// What a fix's trust is earned for: its pattern, or `learned` for fixes proposed only by
/// past outcomes or a language model.
fn scope(candidate: &CandidateAction) -> &str {
    candidate.pattern_id.as_deref().unwrap_or("learned")
}

fn initial(risk: RiskLevel, config: &HealingConfig) -> TrustLevel {
    if risk <= config.max_auto_risk {
        TrustLevel::Auto
    } else {
        TrustLevel::Approve
    }
}

fn parse(text: &str) -> Option<TrustLevel> {
    [TrustLevel::Suggest, TrustLevel::Approve, TrustLevel::Auto].into_iter().find(|l| l.as_str() == text)
}

/// The rung `candidate` stands on, given the riskier of its own and its tool's risk.
pub(crate) async fn level(
    knowledge: &dyn KnowledgeStore,
    candidate: &CandidateAction,
    risk: RiskLevel,
    config: &HealingConfig,
) -> AgentResult<TrustLevel> {
    let stored = knowledge.get_node(&trust_node_id(candidate)).await?;
    Ok(stored.and_then(|node| node.data["level"].as_str().and_then(parse)).unwrap_or_else(|| initial(risk, config)))
}

/// Moves `candidate` on the ladder after a verified (or failed) run; returns its rung before
/// and after.
pub(crate) async fn record(
    knowledge: &dyn KnowledgeStore,
    candidate: &CandidateAction,
    risk: RiskLevel,
    verified: bool,
    config: &HealingConfig,
) -> AgentResult<(TrustLevel, TrustLevel)> {
    let id = trust_node_id(candidate);
    let stored = knowledge.get_node(&id).await?;
    let data = stored.map(|node| node.data).unwrap_or_default();
    let before = data["level"].as_str().and_then(parse).unwrap_or_else(|| initial(risk, config));
    let count = |key: &str| data[key].as_u64().unwrap_or(0);
    let (mut streak, mut successes, mut failures) = (count("streak"), count("successes"), count("failures"));
    let after = if verified {
        streak += 1;
        successes += 1;
        if before == TrustLevel::Approve && streak >= u64::from(config.promote_after) {
            TrustLevel::Auto
        } else {
            before
        }
    } else {
        streak = 0;
        failures += 1;
        match before {
            TrustLevel::Auto => TrustLevel::Approve,
            TrustLevel::Approve | TrustLevel::Suggest => TrustLevel::Suggest,
        }
    };
    let text = format!(
        "{} for {}: {} ({successes} verified, {failures} failed, {streak} in a row)",
        candidate.tool,
        scope(candidate),
        after.as_str()
    );
    let data = json!({
        "text": text, "scope": scope(candidate), "tool": candidate.tool, "level": after.as_str(),
        "streak": streak, "successes": successes, "failures": failures,
    });
    knowledge.upsert_node(Node::new(&id, NodeKind::Insight, format!("trust in {}", candidate.tool), data)).await?;
    Ok((before, after))
}
