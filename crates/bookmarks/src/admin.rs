//! Admin endpoints that remediation tools call, the bearer-token guard in front of them, and
//! the fault switches.
//!
//! Faults are real failure mechanics, not canned status codes: `db_pool_exhausted` leaks
//! every pooled connection so that requests fail with sqlx's own pool timeout through the
//! normal error path, and only `POST /admin/db/reset-pool` repairs it; `slow_responses` makes
//! every API handler sleep before working.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{BookmarksError, BookmarksResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Delay of `slow_responses` when the request names none.
const DEFAULT_SLOW_DELAY_MS: u64 = 1_000;
/// Largest delay `slow_responses` accepts.
const MAX_SLOW_DELAY_MS: u64 = 60_000;

/// Body of `POST /admin/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRequest {
    fault: FaultName,
    #[serde(default)]
    delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FaultName {
    DbPoolExhausted,
    SlowResponses,
    None,
}

/// What `GET /admin/faults` answers.
#[derive(Debug, Serialize)]
pub(crate) struct FaultStatus {
    /// Names of the active faults.
    active: Vec<&'static str>,
    /// Delay of `slow_responses`, when active.
    slow_delay_ms: Option<u64>,
    /// Connections held by `db_pool_exhausted`.
    leaked_connections: usize,
    /// Connections the pool may open.
    pool_size: u32,
}

fn fault_status(state: &AppState) -> FaultStatus {
    let leaked_connections = state.db().leaked_connections();
    let slow_delay = state.slow_delay();
    let mut active = Vec::new();
    if leaked_connections > 0 {
        active.push("db_pool_exhausted");
    }
    if slow_delay.is_some() {
        active.push("slow_responses");
    }
    FaultStatus {
        active,
        slow_delay_ms: slow_delay.map(|delay| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
        leaked_connections,
        pool_size: state.db().pool_size(),
    }
}

pub(crate) async fn get_faults(State(state): State<AppState>) -> Json<FaultStatus> {
    Json(fault_status(&state))
}

pub(crate) async fn set_fault(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<FaultRequest>,
) -> BookmarksResult<Json<FaultStatus>> {
    match request.fault {
        FaultName::DbPoolExhausted => {
            let leaked = state.db().leak_all_connections().await;
            tracing::warn!(leaked, "Fault injected: leaking every database connection.");
        }
        FaultName::SlowResponses => {
            let delay_ms = request.delay_ms.unwrap_or(DEFAULT_SLOW_DELAY_MS);
            if !(1..=MAX_SLOW_DELAY_MS).contains(&delay_ms) {
                return Err(BookmarksError::Invalid {
                    code: "invalid_delay",
                    message: format!("delay_ms must be between 1 and {MAX_SLOW_DELAY_MS}"),
                });
            }
            state.set_slow_delay(Some(Duration::from_millis(delay_ms)));
            tracing::warn!(delay_ms, "Fault injected: slow responses.");
        }
        FaultName::None => {
            // Leaked connections stay leaked: only a pool reset releases them, as in real life.
            state.set_slow_delay(None);
            tracing::info!("Slow responses fault cleared.");
        }
    }
    Ok(Json(fault_status(&state)))
}

pub(crate) async fn reset_pool(State(state): State<AppState>) -> Json<Value> {
    let released = state.db().reset_pool().await;
    tracing::info!(released, "Database pool reset.");
    Json(json!({ "released": released, "pool_size": state.db().pool_size() }))
}

pub(crate) async fn clear_cache(State(state): State<AppState>) -> Json<Value> {
    let cleared = state.cache().clear();
    tracing::info!(cleared, "Cache cleared.");
    Json(json!({ "cleared": cleared }))
}

/// Lets a request through only with `Authorization: Bearer <admin_token>`, when a token is
/// configured.
pub(crate) async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, BookmarksError> {
    if let Some(expected) = state.admin_token() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            // The scheme name is case-insensitive (RFC 9110, section 11.1).
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes())) {
            return Err(BookmarksError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// The `slow_responses` fault: sleeps before every API handler while it is on.
pub(crate) async fn slow_fault(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(delay) = state.slow_delay() {
        tokio::time::sleep(delay).await;
    }
    next.run(request).await
}

/// Compares without an early exit, so response time does not reveal how much of a guessed
/// token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |diff, (x, y)| diff | (x ^ y)) == 0
}
