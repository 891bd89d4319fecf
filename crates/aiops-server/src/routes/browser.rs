//! The browser side: the instrumentation script, the reports it sends, and traces that join
//! a browser's request with the back end's handling of it.

use aiops_events::ReadQuery;
use aiops_model::{BrowserBatch, Envelope};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::auth::{authorize, Scope};
use crate::{ApiError, ApiState};

/// The instrumentation script pages include.
const SCRIPT: &str = include_str!("../../browser/browser.js");
/// Largest browser batch, in bytes.
pub(crate) const MAX_BROWSER_BODY: usize = 64 * 1024;
/// How far back a trace is looked for, in events.
const TRACE_LOOKBACK: usize = 5000;

pub(crate) async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// The origin of a report, when it is allowed.
fn allowed_origin(state: &ApiState, headers: &HeaderMap) -> Result<String, ApiError> {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| ApiError::Forbidden("browser reports need an Origin header".into()))?;
    if !state.browser.allows(origin) {
        return Err(ApiError::Forbidden(format!(
            "origin {origin} may not send browser reports (server.browser.allowed_origins)"
        )));
    }
    Ok(origin.to_owned())
}

fn with_cors(mut response: Response, origin: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// The CORS preflight of a report sent as `application/json`.
pub(crate) async fn preflight(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let origin = allowed_origin(&state, &headers)?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let allow = response.headers_mut();
    allow.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    allow.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
    allow.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    Ok(with_cors(response, &origin))
}

/// Takes a batch of reports (sent as `text/plain` by `sendBeacon`, or `application/json`),
/// checks it whole, and publishes each event as `browser.*` telemetry about the page's app.
pub(crate) async fn ingest(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let origin = allowed_origin(&state, &headers)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::TooLarge(format!("a browser batch is at most {MAX_BROWSER_BODY} bytes"))
        }
        _ => ApiError::BadRequest(rejection.body_text()),
    })?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media != "text/plain" && media != "application/json" {
        return Err(ApiError::UnsupportedMediaType(format!(
            "browser reports are text/plain or application/json, not {content_type:?}"
        )));
    }
    if body.len() > MAX_BROWSER_BODY {
        return Err(ApiError::TooLarge(format!("a browser batch is at most {MAX_BROWSER_BODY} bytes")));
    }
    if !state.browser.admit(&origin) {
        return Err(ApiError::Overloaded(format!("too many browser batches from {origin}; slow down")));
    }
    let batch: BrowserBatch =
        serde_json::from_slice(&body).map_err(|err| ApiError::Invalid(format!("browser batch: {err}")))?;
    batch.validate().map_err(|err| ApiError::Invalid(format!("browser batch: {err}")))?;
    if batch.dropped > 0 {
        metrics::counter!("aiops_browser_dropped_total", "app" => batch.app.clone())
            .increment(u64::from(batch.dropped));
    }
    let accepted = batch.events.len();
    let events: Vec<Envelope> = batch
        .events
        .iter()
        .map(|event| {
            Envelope::new(format!("browser/{}", batch.app), event.event_type(), event.data()).with_subject(&batch.app)
        })
        .collect();
    if !events.is_empty() {
        state.bus.publish(&state.streams.telemetry, events).await?;
    }
    metrics::counter!("aiops_browser_events_total").increment(accepted as u64);
    Ok(with_cors((StatusCode::ACCEPTED, Json(json!({ "accepted": accepted }))).into_response(), &origin))
}

/// Everything recorded under one trace id: the browser's view of the request and the back
/// end's, newest first.
pub(crate) async fn trace(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let trace_id = trace_id.to_ascii_lowercase();
    if trace_id.len() != 32 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest("a trace id is 32 hex digits".into()));
    }
    let query = ReadQuery { newest_first: true, limit: TRACE_LOOKBACK, ..ReadQuery::default() };
    let recent = state.bus.read(&state.streams.telemetry, &query).await?;
    let (mut browser, mut server) = (Vec::new(), Vec::new());
    for stored in recent.iter().filter(|s| s.event.data["trace_id"].as_str() == Some(trace_id.as_str())) {
        let side = if stored.event.event_type.starts_with("browser.") { &mut browser } else { &mut server };
        side.push(json!({
            "type": stored.event.event_type, "source": stored.event.source, "subject": stored.event.subject,
            "time": stored.event.time, "data": stored.event.data,
        }));
    }
    if browser.is_empty() && server.is_empty() {
        return Err(ApiError::NotFound(format!("no event of trace {trace_id} among the last {TRACE_LOOKBACK}")));
    }
    Ok(Json(json!({ "trace_id": trace_id, "browser": browser, "server": server })))
}
