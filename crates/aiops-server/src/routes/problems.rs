//! Problems, diagnoses and actions, read back from the control stream.

use std::collections::{HashMap, HashSet};

use aiops_events::{ReadQuery, StoredEvent};
use aiops_model::event_type;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{authorize, Scope};
use crate::extract::ApiQuery;
use crate::{ApiError, ApiState};

/// How far back a problem's story is searched.
const STORY_LOOKBACK: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    service: Option<String>,
}

async fn latest(state: &ApiState, types: &[&str], q: &ListQuery, limit: usize) -> Result<Vec<StoredEvent>, ApiError> {
    let read = ReadQuery {
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        subject: q.service.clone(),
        limit: limit.min(state.limits.max_page),
        newest_first: true,
        ..ReadQuery::default()
    };
    Ok(state.bus.read(&state.streams.control, &read).await?)
}

/// The problem id an event of the loop is about.
fn problem_id_of(event: &Value) -> Option<&str> {
    event["problem_id"].as_str().or_else(|| event["problem"]["id"].as_str()).or_else(|| event["id"].as_str())
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let limit = q.limit.unwrap_or(50);
    let problems = latest(&state, &[event_type::PROBLEM_DETECTED], &q, limit).await?;
    let endings =
        latest(&state, &[event_type::PROBLEM_RESOLVED, event_type::PROBLEM_ESCALATED], &q, STORY_LOOKBACK).await?;
    // An escalation that left a fix waiting for a human is told apart: the problem may still
    // heal by itself once someone approves.
    let now = chrono::Utc::now();
    let approvals = aiops_agents::approvals(state.bus.as_ref(), &state.streams.control)
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    let awaiting: HashSet<&str> =
        approvals.iter().filter(|a| a.status(now) == "pending").map(|a| a.request.problem.id.as_str()).collect();
    let mut status: HashMap<&str, (&str, &Value)> = HashMap::new();
    for ending in &endings {
        if let Some(id) = ending.event.data["problem_id"].as_str() {
            let label = match ending.event.event_type.as_str() {
                event_type::PROBLEM_RESOLVED => "resolved",
                _ if awaiting.contains(id) => "awaiting_approval",
                _ => "escalated",
            };
            status.entry(id).or_insert((label, &ending.event.data));
        }
    }
    let items: Vec<Value> = problems
        .iter()
        .map(|stored| {
            let problem = &stored.event.data;
            let (label, ending) =
                problem["id"].as_str().and_then(|id| status.get(id)).copied().unwrap_or(("open", &Value::Null));
            json!({ "offset": stored.offset, "status": label, "problem": problem, "ending": ending })
        })
        .collect();
    Ok(Json(json!({ "problems": items })))
}

pub(crate) async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let read = ReadQuery {
        types: vec!["problem.*".into(), "diagnosis.*".into(), "action.*".into()],
        limit: STORY_LOOKBACK,
        newest_first: true,
        ..ReadQuery::default()
    };
    let events = state.bus.read(&state.streams.control, &read).await?;
    let mut story: Vec<&StoredEvent> =
        events.iter().filter(|stored| problem_id_of(&stored.event.data) == Some(id.as_str())).collect();
    story.reverse();
    if story.is_empty() {
        return Err(ApiError::NotFound(format!("problem {id} not found")));
    }
    let timeline: Vec<Value> = story
        .iter()
        .map(|stored| json!({ "offset": stored.offset, "time": stored.event.time, "type": stored.event.event_type, "data": stored.event.data }))
        .collect();
    Ok(Json(json!({ "problem_id": id, "timeline": timeline })))
}

pub(crate) async fn diagnoses(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let items = latest(&state, &[event_type::DIAGNOSIS_COMPLETED], &q, q.limit.unwrap_or(50)).await?;
    Ok(Json(json!({ "diagnoses": items.into_iter().map(|s| s.event.data).collect::<Vec<_>>() })))
}

pub(crate) async fn actions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let items = latest(&state, &[event_type::ACTION_COMPLETED], &q, q.limit.unwrap_or(50)).await?;
    Ok(Json(json!({ "actions": items.into_iter().map(|s| s.event.data).collect::<Vec<_>>() })))
}
