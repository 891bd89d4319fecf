//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::ApiState;

pub(crate) async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the mesh and the knowledge store both answer.
pub(crate) async fn ready(State(state): State<ApiState>) -> impl IntoResponse {
    let mesh = state.bus.last_offset(&state.streams.control).await;
    let knowledge = state.knowledge.count_nodes().await;
    let checks = json!({
        "events": if mesh.is_ok() { "ok" } else { "unavailable" },
        "knowledge": if knowledge.is_ok() { "ok" } else { "unavailable" },
    });
    if mesh.is_ok() && knowledge.is_ok() {
        (StatusCode::OK, Json(json!({ "status": "ready", "checks": checks })))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "checks": checks })))
    }
}

pub(crate) async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], (state.render_metrics)())
}
