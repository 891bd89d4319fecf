//! Ingest and query of events.

use aiops_events::{ReadQuery, StreamName};
use aiops_model::Envelope;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{authorize, Scope};
use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, ApiState};

/// Validates every envelope; the error names the index of the first bad one.
fn validate(events: &[Envelope]) -> Result<(), ApiError> {
    for (idx, event) in events.iter().enumerate() {
        event.validate().map_err(|err| ApiError::Invalid(format!("events[{idx}]: {err}")))?;
    }
    Ok(())
}

async fn publish(state: &ApiState, events: Vec<Envelope>) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let n_events = events.len();
    let offsets = state.bus.publish(&state.streams.telemetry, events).await?;
    metrics::counter!("aiops_events_ingested_total").increment(n_events as u64);
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": n_events, "offsets": offsets }))))
}

pub(crate) async fn ingest_one(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(event): ApiJson<Envelope>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    authorize(&state.tokens, &headers, Scope::Ingest)?;
    let events = vec![event];
    validate(&events)?;
    publish(&state, events).await
}

pub(crate) async fn ingest_batch(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(events): ApiJson<Vec<Envelope>>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    authorize(&state.tokens, &headers, Scope::Ingest)?;
    if events.is_empty() {
        return Err(ApiError::Invalid("a batch needs at least one event".into()));
    }
    if events.len() > state.limits.max_batch {
        return Err(ApiError::TooLarge(format!(
            "a batch holds at most {} events, got {}",
            state.limits.max_batch,
            events.len()
        )));
    }
    validate(&events)?;
    publish(&state, events).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventQuery {
    stream: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    subject: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
    order: Option<String>,
}

pub(crate) async fn query(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let stream = match q.stream.as_deref() {
        None | Some("control") => state.streams.control.clone(),
        Some("telemetry") => state.streams.telemetry.clone(),
        Some(other) => StreamName::new(other)?,
    };
    let newest_first = match q.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => return Err(ApiError::BadRequest(format!("order must be asc or desc, got {other:?}"))),
    };
    let read = ReadQuery {
        after: q.after.unwrap_or(0),
        before: None,
        types: q.event_type.into_iter().flat_map(|t| t.split(',').map(str::to_owned).collect::<Vec<_>>()).collect(),
        subject: q.subject,
        limit: q.limit.unwrap_or(100).min(state.limits.max_page),
        newest_first,
    };
    let events = state.bus.read(&stream, &read).await?;
    Ok(Json(json!({ "stream": stream.as_str(), "events": events })))
}
