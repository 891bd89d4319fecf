//! Asking a language model about a problem, in a bounded loop, without ever depending on it.
//!
//! The model gets the problem, the rule-based hypotheses and the candidate fixes, and four
//! read-only tools: `search_knowledge`, `recent_events`, `service_health` and `log_templates`.
//! It may call them for at most `max_steps - 1` rounds; the last round offers no tools, so it
//! must answer. The answer is structured (root cause, confidence, evidence, the id of one of
//! the candidate fixes or null) and is validated: a fix that is not among the candidates, a
//! confidence outside [0, 1], an empty root cause or malformed JSON rejects the whole answer.
//! Whatever goes wrong (provider down, over budget, timeout, bad answer), the result is an
//! [`LlmReview`] saying why, and the rule-based diagnosis stands unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use aiops_ai::{AiProvider, ChatMessage, ChatRequest, ToolCall, ToolDefinition};
use aiops_events::ReadQuery;
use aiops_knowledge::SimilarityQuery;
use aiops_model::{event_type, CandidateAction, Hypothesis, LlmReview, Problem};
use aiops_patterns::{LogTemplateMiner, MinerConfig};
use aiops_registry::ServiceQuery;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{AgentContext, LlmDiagnosisConfig};

/// Longest tool result handed back to the model, in bytes.
const MAX_TOOL_RESULT_BYTES: usize = 4_000;
/// Most evidence items kept from an answer.
const MAX_EVIDENCE: usize = 10;

const SYSTEM_PROMPT: &str = "You are the diagnostic assistant of a self-healing operations system. \
You are given a problem detected on a service, hypotheses from a rule-based engine and from past incidents, \
and the candidate fixes the system can run. Use the tools to look at evidence when it helps. \
Then answer with the most likely root cause, your confidence between 0 and 1, the evidence you relied on, \
and the solution_id of the one candidate fix you recommend trying first (or null if none fits). \
Only solution_id values from the candidate list are valid; never invent one.";

/// The answer the model must give.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    root_cause: String,
    confidence: f64,
    evidence: Vec<String>,
    solution_id: Option<String>,
}

fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "root_cause": {"type": "string", "description": "The most likely root cause, one or two sentences."},
            "confidence": {"type": "number", "description": "0 to 1."},
            "evidence": {"type": "array", "items": {"type": "string"}, "description": "Facts the conclusion rests on."},
            "solution_id": {"type": ["string", "null"], "description": "solution_id of one candidate fix, or null."}
        },
        "required": ["root_cause", "confidence", "evidence", "solution_id"],
        "additionalProperties": false
    })
}

fn tool_definitions() -> Vec<ToolDefinition> {
    let service = json!({
        "type": "object",
        "properties": {"service": {"type": "string"}},
        "required": ["service"],
        "additionalProperties": false
    });
    vec![
        ToolDefinition {
            name: "search_knowledge".into(),
            description: "Search past problems, solutions, patterns and insights by text; returns the best matches."
                .into(),
            input_schema: json!({
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
                "additionalProperties": false
            }),
        },
        ToolDefinition {
            name: "recent_events".into(),
            description: "The newest telemetry events (requests, errors, health changes) of a service.".into(),
            input_schema: service.clone(),
        },
        ToolDefinition {
            name: "service_health".into(),
            description: "Health of a service's instances, and of the services it depends on.".into(),
            input_schema: service.clone(),
        },
        ToolDefinition {
            name: "log_templates".into(),
            description: "The distinct error messages a service reported recently, variables masked, with counts."
                .into(),
            input_schema: service,
        },
    ]
}

/// One consultation: everything the model is told about one problem.
pub(crate) struct Consultation<'a> {
    pub(crate) ctx: &'a AgentContext,
    pub(crate) provider: &'a Arc<dyn AiProvider>,
    pub(crate) config: &'a LlmDiagnosisConfig,
    pub(crate) problem: &'a Problem,
    pub(crate) hypotheses: &'a [Hypothesis],
    pub(crate) candidates: &'a [CandidateAction],
}

impl Consultation<'_> {
    /// Asks the model; never fails, see the module doc.
    pub(crate) async fn run(&self) -> LlmReview {
        let started = Instant::now();
        let provider = self.provider;
        let mut review = LlmReview {
            provider: provider.name().to_owned(),
            model: provider.model().to_owned(),
            ..LlmReview::default()
        };
        let deadline = std::time::Duration::from_millis(self.config.timeout_ms);
        let outcome = tokio::time::timeout(deadline, self.converse(&mut review))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", self.config.timeout_ms)));
        match outcome.and_then(|answer| validate(answer, self.candidates)) {
            Ok(answer) => {
                review.accepted = true;
                review.root_cause = Some(answer.root_cause);
                review.confidence = Some(answer.confidence);
                review.evidence = answer.evidence;
                review.solution_id = answer.solution_id;
            }
            Err(reason) => {
                tracing::warn!(problem = %self.problem.id, provider = %review.provider, %reason, "The LLM's diagnosis was not used; the rule-based one stands.");
                review.rejection = Some(reason);
            }
        }
        review.latency_ms = started.elapsed().as_millis() as u64;
        review
    }

    async fn converse(&self, review: &mut LlmReview) -> Result<Answer, String> {
        let mut messages = vec![ChatMessage::user(briefing(self.problem, self.hypotheses, self.candidates))];
        let max_steps = self.config.max_steps;
        for step in 1..=max_steps {
            let last = step == max_steps;
            let request = ChatRequest {
                system: SYSTEM_PROMPT.into(),
                messages: messages.clone(),
                tools: if last { Vec::new() } else { tool_definitions() },
                response_schema: Some(answer_schema()),
                max_tokens: self.config.max_tokens,
                incident: Some(self.problem.id.clone()),
            };
            let response = self.provider.chat(request).await.map_err(|err| err.to_string())?;
            review.steps = step;
            review.input_tokens += response.usage.input_tokens;
            review.output_tokens += response.usage.output_tokens;
            if response.tool_calls.is_empty() {
                return serde_json::from_str(&response.content)
                    .map_err(|err| format!("the answer does not match the required schema: {err}"));
            }
            messages.push(ChatMessage::assistant(&response));
            for call in &response.tool_calls {
                review.tool_calls.push(call.name.clone());
                let result = run_tool(self.ctx, call).await;
                messages.push(ChatMessage::tool_result(&call.id, truncate(result.to_string(), MAX_TOOL_RESULT_BYTES)));
            }
        }
        Err(format!("no answer within {max_steps} steps"))
    }
}

fn validate(mut answer: Answer, candidates: &[CandidateAction]) -> Result<Answer, String> {
    if answer.root_cause.trim().is_empty() {
        return Err("the answer has an empty root cause".into());
    }
    if !(answer.confidence.is_finite() && (0.0..=1.0).contains(&answer.confidence)) {
        return Err(format!("the answer's confidence {} is outside [0, 1]", answer.confidence));
    }
    if let Some(id) = &answer.solution_id {
        if !candidates.iter().any(|c| &c.solution_id == id) {
            return Err(format!("the answer proposes solution {id}, which is not one of the candidate fixes"));
        }
    }
    answer.root_cause = truncate(answer.root_cause, 2_000);
    answer.evidence.truncate(MAX_EVIDENCE);
    answer.evidence = answer.evidence.into_iter().map(|e| truncate(e, 500)).collect();
    Ok(answer)
}

/// The first user message: everything the rules found, as compact JSON.
fn briefing(problem: &Problem, hypotheses: &[Hypothesis], candidates: &[CandidateAction]) -> String {
    let hypotheses: Vec<Value> = hypotheses
        .iter()
        .take(5)
        .map(|h| json!({"title": h.title, "root_cause": h.root_cause, "confidence": h.confidence, "evidence": h.evidence}))
        .collect();
    let candidates: Vec<Value> = candidates
        .iter()
        .map(|c| {
            json!({
                "solution_id": c.solution_id,
                "tool": c.tool,
                "params": c.params,
                "risk": c.risk.as_str(),
                "addresses": c.hypothesis,
                "history": format!("{} successes in {} attempts on similar problems", c.learned_successes, c.learned_attempts),
            })
        })
        .collect();
    json!({
        "problem": {
            "service": problem.service,
            "kind": problem.kind.as_str(),
            "summary": problem.summary,
            "evidence": problem.evidence,
            "first_seen": problem.first_seen,
        },
        "hypotheses": hypotheses,
        "candidate_fixes": candidates,
    })
    .to_string()
}

async fn run_tool(ctx: &AgentContext, call: &ToolCall) -> Value {
    let text = |key: &str| call.arguments[key].as_str().unwrap_or_default().to_owned();
    let result = match call.name.as_str() {
        "search_knowledge" => search_knowledge(ctx, &text("query")).await,
        "recent_events" => recent_events(ctx, &text("service")).await,
        "service_health" => service_health(ctx, &text("service")).await,
        "log_templates" => log_templates(ctx, &text("service")).await,
        other => Err(format!("no tool named {other}")),
    };
    result.unwrap_or_else(|err| json!({"error": err}))
}

async fn search_knowledge(ctx: &AgentContext, query: &str) -> Result<Value, String> {
    if query.trim().is_empty() {
        return Err("query is empty".into());
    }
    let embedding = ctx.embedder.embed(&[query.to_owned()]).await.map_err(|e| e.to_string())?.remove(0);
    let hits = ctx
        .knowledge
        .hybrid_search(query, &SimilarityQuery { embedding, k: 5, ..SimilarityQuery::default() })
        .await
        .map_err(|e| e.to_string())?;
    Ok(hits
        .into_iter()
        .map(|hit| {
            json!({
                "id": hit.node.id, "kind": hit.node.kind.as_str(), "name": hit.node.name, "score": hit.score,
                "data": truncate(hit.node.data.to_string(), 600),
            })
        })
        .collect())
}

async fn recent_events(ctx: &AgentContext, service: &str) -> Result<Value, String> {
    let query = ReadQuery { subject: Some(service.to_owned()), limit: 20, newest_first: true, ..ReadQuery::default() };
    let events = ctx.bus.read(&ctx.streams.telemetry, &query).await.map_err(|e| e.to_string())?;
    Ok(events
        .into_iter()
        .map(|stored| {
            let event = stored.event;
            json!({"type": event.event_type, "time": event.time, "data": truncate(event.data.to_string(), 300)})
        })
        .collect())
}

async fn service_health(ctx: &AgentContext, service: &str) -> Result<Value, String> {
    let of = |name: &str| ServiceQuery { name: Some(name.to_owned()), ..ServiceQuery::default() };
    let instances = ctx.registry.instances(&of(service)).await.map_err(|e| e.to_string())?;
    let mut dependencies: Vec<String> =
        instances.iter().flat_map(|i| i.registration.dependencies.iter().cloned()).collect();
    dependencies.sort();
    dependencies.dedup();
    let mut dependency_health = Vec::new();
    for dependency in &dependencies {
        let instances = ctx.registry.instances(&of(dependency)).await.map_err(|e| e.to_string())?;
        let statuses: Vec<Value> =
            instances.iter().map(|i| json!({"instance": i.registration.instance_id, "status": i.status})).collect();
        dependency_health.push(json!({"service": dependency, "instances": statuses}));
    }
    let instances: Vec<Value> = instances
        .iter()
        .map(|i| json!({"instance": i.registration.instance_id, "status": i.status, "reason": i.status_reason}))
        .collect();
    Ok(json!({"service": service, "instances": instances, "dependencies": dependency_health}))
}

async fn log_templates(ctx: &AgentContext, service: &str) -> Result<Value, String> {
    let query = ReadQuery {
        subject: Some(service.to_owned()),
        types: vec![event_type::SERVICE_ERROR.into()],
        limit: 200,
        newest_first: true,
        ..ReadQuery::default()
    };
    let events = ctx.bus.read(&ctx.streams.telemetry, &query).await.map_err(|e| e.to_string())?;
    // Oldest first, so that templates form as they did in the service.
    let mut miner = LogTemplateMiner::new(MinerConfig::default());
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for stored in events.iter().rev() {
        let data = &stored.event.data;
        let message =
            format!("{}: {}", data["kind"].as_str().unwrap_or("error"), data["message"].as_str().unwrap_or_default());
        *counts.entry(miner.add(&message).template_id).or_default() += 1;
    }
    let mut templates: Vec<(String, u64)> =
        counts.into_iter().filter_map(|(id, count)| miner.template(id).map(|t| (t.text(), count))).collect();
    templates.sort_by_key(|t| std::cmp::Reverse(t.1));
    Ok(templates.into_iter().take(20).map(|(template, count)| json!({"template": template, "count": count})).collect())
}

fn truncate(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        text.truncate(text.floor_char_boundary(max_bytes));
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo".into(), 2), "h…");
    }
}
