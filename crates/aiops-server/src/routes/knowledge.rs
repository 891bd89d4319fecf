//! Knowledge nodes, what each diagnosis source got right, the audit log, the tool catalog and
//! the language model's spend.

use aiops_ai::AiProvider;
use aiops_events::EventBusExt;
use aiops_knowledge::Direction;
use aiops_model::{event_type, Envelope};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{authorize, Scope};
use crate::extract::{ApiJson, ApiQuery, NoQuery};
use crate::{ApiError, ApiState};

pub(crate) async fn node(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let mut node =
        state.knowledge.get_node(&id).await?.ok_or_else(|| ApiError::NotFound(format!("node {id} not found")))?;
    node.embedding = None;
    let outgoing = state.knowledge.neighbors(&id, None, Direction::Outgoing).await?;
    let incoming = state.knowledge.neighbors(&id, None, Direction::Incoming).await?;
    let edge = |(edge, other): &(aiops_knowledge::Edge, aiops_knowledge::Node)| json!({ "from": edge.from, "to": edge.to, "relation": edge.relation, "weight": edge.weight, "data": edge.data, "other": other.name });
    let stats = state.knowledge.solution_stats(&id).await?;
    Ok(Json(json!({
        "node": node,
        "outgoing": outgoing.iter().map(edge).collect::<Vec<_>>(),
        "incoming": incoming.iter().map(edge).collect::<Vec<_>>(),
        "stats": stats,
    })))
}

/// How often the fixes each diagnosis source proposed healed the problem.
pub(crate) async fn sources(
    State(state): State<ApiState>,
    headers: HeaderMap,
    _: ApiQuery<NoQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let accuracy = aiops_agents::source_accuracy(state.knowledge.as_ref())
        .await
        .map_err(|err| ApiError::Unavailable(err.to_string()))?;
    let sources: Vec<Value> = accuracy
        .into_iter()
        .map(|(source, (right, wrong))| {
            let tried = right + wrong;
            json!({
                "source": source.as_str(),
                "right": right,
                "wrong": wrong,
                "accuracy": if tried == 0 { Value::Null } else { json!(right as f64 / tried as f64) },
            })
        })
        .collect();
    Ok(Json(json!({ "sources": sources })))
}

/// Calls, tokens and spend of the language model.
pub(crate) async fn ai_usage(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let provider =
        state.ai.as_ref().ok_or_else(|| ApiError::NotFound("no AI provider is configured ([ai.provider])".into()))?;
    Ok(Json(json!({ "provider": provider.name(), "model": provider.model(), "usage": provider.usage() })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    limit: Option<usize>,
}

pub(crate) async fn audit(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let entries = state.audit.recent(q.limit.unwrap_or(100).min(state.limits.max_page)).await?;
    Ok(Json(json!({ "entries": entries })))
}

pub(crate) async fn tools(
    State(state): State<ApiState>,
    headers: HeaderMap,
    _: ApiQuery<NoQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    Ok(Json(json!({ "tools": state.tools.specs() })))
}

/// Longest origin of a proposed tool (it becomes the subject of the verdict's event).
const MAX_ORIGIN_CHARS: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Proposal {
    spec: String,
    origin: Option<String>,
}

/// Proposes a tool; the Builder agent validates and registers it (or rejects it) and says so
/// on the control stream.
pub(crate) async fn propose_tool(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(proposal): ApiJson<Proposal>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = authorize(&state.tokens, &headers, Scope::Admin)?;
    if let Some(origin) = &proposal.origin {
        if origin.trim().is_empty() || origin.chars().count() > MAX_ORIGIN_CHARS {
            return Err(ApiError::Invalid(format!(
                "origin names where the spec comes from, in 1-{MAX_ORIGIN_CHARS} characters (or leave it out)"
            )));
        }
    }
    let data = json!({ "spec": proposal.spec, "origin": proposal.origin.unwrap_or_else(|| format!("api:{who}")) });
    let event = Envelope::new(format!("api/{who}"), event_type::TOOL_PROPOSED, data);
    let id = event.id.clone();
    event.validate().map_err(|err| ApiError::Invalid(err.to_string()))?;
    state.bus.publish_one(&state.streams.control, event).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "proposal": id }))))
}
