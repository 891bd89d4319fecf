//! The registry over HTTP.

use aiops_registry::{ServiceQuery, ServiceRegistration};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{authorize, Scope};
use crate::extract::{ApiJson, ApiQuery};
use crate::{ApiError, ApiState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupQuery {
    name: Option<String>,
    tag: Option<String>,
    capability: Option<String>,
    healthy: Option<bool>,
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let query =
        ServiceQuery { name: q.name, tag: q.tag, capability: q.capability, healthy_only: q.healthy.unwrap_or(false) };
    let instances = state.registry.instances(&query).await?;
    Ok(Json(json!({ "services": instances })))
}

pub(crate) async fn register(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(registration): ApiJson<ServiceRegistration>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state.tokens, &headers, Scope::Ingest)?;
    let instance = state.registry.register(registration).await?;
    tracing::info!(service = %instance.registration.name, instance = %instance.registration.instance_id, "Service registered.");
    Ok((StatusCode::OK, Json(serde_json::to_value(instance).map_err(|e| ApiError::Internal(e.to_string()))?)))
}

pub(crate) async fn heartbeat(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Ingest)?;
    state.registry.heartbeat(&id).await?;
    Ok(Json(json!({ "instance_id": id, "status": "ok" })))
}

pub(crate) async fn deregister(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Ingest)?;
    if state.registry.deregister(&id).await? {
        Ok(Json(json!({ "instance_id": id, "deregistered": true })))
    } else {
        Err(ApiError::NotFound(format!("service instance {id} is not registered")))
    }
}
