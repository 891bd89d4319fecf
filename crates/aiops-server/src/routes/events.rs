//! Ingest and query of events.

use aiops_events::{EventBusExt, ReadQuery, StreamName};
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
    since: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<usize>,
    order: Option<String>,
}

pub(crate) async fn query(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let stream = stream_named(&state, q.stream.as_deref())?;
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
        since: q.since,
        limit: q.limit.unwrap_or(100).min(state.limits.max_page),
        newest_first,
    };
    let events = state.bus.read(&stream, &read).await?;
    Ok(Json(json!({ "stream": stream.as_str(), "events": events })))
}

/// The stream a query names; the control stream by default.
fn stream_named(state: &ApiState, name: Option<&str>) -> Result<StreamName, ApiError> {
    Ok(match name {
        None | Some("control") => state.streams.control.clone(),
        Some("telemetry") => state.streams.telemetry.clone(),
        Some(other) => StreamName::new(other)?,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadLetterQuery {
    stream: Option<String>,
    limit: Option<usize>,
}

/// Events a consumer group gave up on, newest first, with the reason.
pub(crate) async fn dead_letters(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<DeadLetterQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let stream = stream_named(&state, q.stream.as_deref())?;
    let read = ReadQuery {
        limit: q.limit.unwrap_or(100).min(state.limits.max_page),
        newest_first: true,
        ..ReadQuery::default()
    };
    let letters = state.bus.read(&stream.dead_letter(), &read).await?;
    Ok(Json(json!({ "stream": stream.as_str(), "dead_letters": letters })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Redrive {
    stream: Option<String>,
    offsets: Vec<u64>,
}

/// Publishes dead-lettered events again to their stream, so every group sees them anew.
pub(crate) async fn redrive(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<Redrive>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = authorize(&state.tokens, &headers, Scope::Admin)?;
    if request.offsets.is_empty() || request.offsets.len() > state.limits.max_batch {
        return Err(ApiError::Invalid(format!(
            "offsets must hold 1 to {} dead-letter offsets",
            state.limits.max_batch
        )));
    }
    let stream = stream_named(&state, request.stream.as_deref())?;
    // All or nothing: one letter that is not there re-drives none.
    let new_offsets = state.bus.redrive_all(&stream, &request.offsets).await?;
    let redriven: Vec<_> = request
        .offsets
        .iter()
        .zip(new_offsets)
        .map(|(offset, new_offset)| json!({ "dead_letter_offset": offset, "offset": new_offset }))
        .collect();
    tracing::info!(stream = %stream, by = %who, n = redriven.len(), "Dead letters re-driven.");
    Ok(Json(json!({ "stream": stream.as_str(), "redriven": redriven })))
}
