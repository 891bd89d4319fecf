//! Admin endpoints that remediation tools call, the bearer-token guard in front of them, and
//! the fault switches.
//!
//! Faults are real failure mechanics, not canned status codes: `db_pool_exhausted` leaks
//! every pooled connection so that requests fail with sqlx's own pool timeout through the
//! normal error path, and only `POST /admin/db/reset-pool` repairs it; `slow_responses` makes
//! every API handler sleep before working; the others are in `faults.rs`, each with the admin
//! endpoint that repairs it.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
    BadRelease,
    DiskFull,
    MemoryLeak,
    BadConfig,
    CrashLoop,
    CorsBlocked,
    BodyLimitLowered,
    FrontendAuthDropped,
    FrontendSkew,
    SlowQueries,
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
    /// Memory kept by `memory_leak`.
    leaked_memory_bytes: usize,
    /// The release running.
    release: &'static str,
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
    active.extend(state.faults().active());
    FaultStatus {
        active,
        slow_delay_ms: slow_delay.map(|delay| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
        leaked_connections,
        pool_size: state.db().pool_size(),
        leaked_memory_bytes: state.faults().leaked_bytes(),
        release: state.faults().release(),
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
        FaultName::BadRelease => {
            state.faults().deploy_bad_release();
            tracing::warn!("Fault injected: release 1.1.0 deployed.");
        }
        FaultName::DiskFull => {
            let bytes = state.faults().fill_spool().map_err(|source| BookmarksError::Io {
                context: "filling the spool for the disk_full fault".into(),
                source,
            })?;
            tracing::warn!(bytes, "Fault injected: the data directory is full.");
        }
        FaultName::MemoryLeak => {
            state.faults().start_leaking();
            tracing::warn!("Fault injected: every request leaks memory.");
        }
        FaultName::SlowQueries => {
            state.faults().drop_index();
            tracing::warn!("Fault injected: the search index is gone.");
        }
        FaultName::BadConfig => {
            state.faults().load_bad_config().map_err(|source| config_error("loading configuration v2", source))?;
            tracing::warn!("Fault injected: configuration v2 loaded.");
        }
        FaultName::CorsBlocked => {
            state
                .faults()
                .load_cors_lost_config()
                .map_err(|source| config_error("loading configuration v4", source))?;
            tracing::warn!("Fault injected: configuration v4 loaded; it has no cors_origins.");
        }
        FaultName::BodyLimitLowered => {
            state
                .faults()
                .load_small_body_config()
                .map_err(|source| config_error("loading configuration v5", source))?;
            tracing::warn!("Fault injected: configuration v5 loaded; max_body_bytes = 32.");
        }
        FaultName::FrontendAuthDropped => {
            state.faults().deploy_frontend(crate::faults::FrontendRelease::NoAuth);
            tracing::warn!("Fault injected: front end 2.0.1 deployed, which sends no API token.");
        }
        FaultName::FrontendSkew => {
            state.faults().deploy_frontend(crate::faults::FrontendRelease::Skewed);
            tracing::warn!("Fault injected: front end 2.0.0 deployed, built against another API version.");
        }
        FaultName::CrashLoop => {
            state.faults().load_crashing_config().map_err(|source| config_error("loading configuration v3", source))?;
            crate::start_cache_warmer(&state);
            tracing::warn!("Fault injected: configuration v3 loaded; its cache warmer panics.");
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

pub(crate) async fn rollback_deploy(State(state): State<AppState>) -> Json<Value> {
    let release = state.faults().rollback_release();
    tracing::info!(release, "Rolled back to the previous release.");
    Json(json!({ "release": release }))
}

pub(crate) async fn rollback_frontend(State(state): State<AppState>) -> Json<Value> {
    let changed = state.faults().rollback_frontend();
    tracing::info!(changed, "Front end rolled back to 1.0.0.");
    Json(json!({ "frontend": "1.0.0", "changed": changed }))
}

pub(crate) async fn db_maintenance(State(state): State<AppState>) -> Json<Value> {
    let rebuilt = state.faults().rebuild_index();
    tracing::info!(rebuilt, "Database maintenance done: indexes rebuilt.");
    Json(json!({ "indexes_rebuilt": u32::from(rebuilt) }))
}

fn config_error(context: &str, source: std::io::Error) -> BookmarksError {
    BookmarksError::Io { context: format!("{context} (the configuration file)"), source }
}

pub(crate) async fn rollback_config(State(state): State<AppState>) -> BookmarksResult<Json<Value>> {
    let changed = state.faults().rollback_config().map_err(|source| config_error("rolling back", source))?;
    tracing::info!(changed, "Configuration rolled back to v1.");
    Ok(Json(json!({ "config": "v1", "changed": changed })))
}

pub(crate) async fn disk_cleanup(State(state): State<AppState>) -> BookmarksResult<Json<Value>> {
    let freed = state
        .faults()
        .clean_spool()
        .map_err(|source| BookmarksError::Io { context: "cleaning the spool".into(), source })?;
    tracing::info!(freed, "Spool cleaned.");
    Ok(Json(json!({ "freed_bytes": freed })))
}

/// A soft restart: drops what a process restart would (leaked memory, cache, pool).
pub(crate) async fn restart(State(state): State<AppState>) -> Json<Value> {
    let freed = state.faults().restart();
    let cleared = state.cache().clear();
    let released = state.db().reset_pool().await;
    tracing::info!(freed, cleared, released, "Soft restart done.");
    Json(json!({ "freed_bytes": freed, "cache_cleared": cleared, "connections_released": released }))
}

pub(crate) async fn clear_cache(State(state): State<AppState>) -> Json<Value> {
    let cleared = state.cache().clear();
    tracing::info!(cleared, "Cache cleared.");
    Json(json!({ "cleared": cleared }))
}

/// Lets a request through only with `Authorization: Bearer <admin_token>`, when a token is
/// configured.
/// Whether the request carries `Authorization: Bearer <expected>`.
fn bearer_matches(request: &Request, expected: &str) -> bool {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        // The scheme name is case-insensitive (RFC 9110, section 11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
}

pub(crate) async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, BookmarksError> {
    if let Some(expected) = state.admin_token() {
        if !bearer_matches(&request, expected) {
            return Err(BookmarksError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// The API's own token (`api_token`), which the page sends; the API is open without one.
pub(crate) async fn require_api_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, BookmarksError> {
    if let Some(expected) = state.api_token() {
        if !bearer_matches(&request, expected) {
            return Err(BookmarksError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

/// The per-request faults: `slow_responses` sleeps before every API handler, `memory_leak`
/// keeps memory per request and fails once the heap is full.
pub(crate) async fn request_faults(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(delay) = state.slow_delay() {
        tokio::time::sleep(delay).await;
    }
    if let Err(err) = state.faults().on_request() {
        return err.into_response();
    }
    if let Some(limit) = state.faults().body_limit() {
        let length = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if length.is_some_and(|length| length > limit) {
            return BookmarksError::PayloadTooLarge { limit }.into_response();
        }
    }
    next.run(request).await
}

/// Compares without an early exit, so response time does not reveal how much of a guessed
/// token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |diff, (x, y)| diff | (x ^ y)) == 0
}
