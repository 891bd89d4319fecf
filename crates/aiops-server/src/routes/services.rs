//! The registry over HTTP: registration, lookups with blocking watches, load-balanced picks
//! and the dependency graph.

use std::time::Duration;

use aiops_events::EventBusExt;
use aiops_model::{event_type, Envelope, ServiceDeregistered, ServiceRegistered};
use aiops_registry::{DependencyGraph, ServiceQuery, ServiceRegistration, Strategy};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::{authorize, Scope};
use crate::extract::{ApiJson, ApiQuery, NoQuery};
use crate::{ApiError, ApiState};

/// Longest a watch may block.
const MAX_WAIT_MS: u64 = 300_000;
/// How often a blocked watch looks at the index. The index lives in the shared database, so
/// a change made through another core instance wakes the watch too.
const WATCH_POLL: Duration = Duration::from_millis(100);
/// The response header carrying the registry index (like Consul's `X-Consul-Index`).
const INDEX_HEADER: &str = "x-aiops-index";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupQuery {
    name: Option<String>,
    tag: Option<String>,
    capability: Option<String>,
    /// Only passing instances. Default: true.
    healthy: Option<bool>,
    /// Block until the registry index is past this one (a watch).
    index: Option<u64>,
    /// Longest wait of a watch, in milliseconds. Default: 30000, at most 300000.
    wait_ms: Option<u64>,
}

/// Waits until the registry index differs from `after` or `wait` runs out; returns the index
/// seen. An index below `after` (a new database) answers at once, so the watcher starts over.
async fn wait_for_change(state: &ApiState, after: u64, wait: Duration) -> Result<u64, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let index = state.registry.index().await?;
        if index != after || tokio::time::Instant::now() >= deadline {
            return Ok(index);
        }
        tokio::time::sleep(WATCH_POLL.min(deadline - tokio::time::Instant::now())).await;
    }
}

fn with_index(index: u64, body: Value) -> Response {
    let mut response = Json(body).into_response();
    response.headers_mut().insert(INDEX_HEADER, HeaderValue::from(index));
    response
}

/// Lookup, or a watch when `index` is given: the answer comes once anything changed after
/// that index (or at `wait_ms`), with the new index to watch from. Reading the index before
/// the instances means a change racing the read is seen by the next watch, never lost.
pub(crate) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> Result<Response, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let index = match q.index {
        Some(after) => {
            let wait = q.wait_ms.unwrap_or(30_000);
            if wait > MAX_WAIT_MS {
                return Err(ApiError::Invalid(format!("wait_ms must be at most {MAX_WAIT_MS}")));
            }
            wait_for_change(&state, after, Duration::from_millis(wait)).await?
        }
        None => state.registry.index().await?,
    };
    let query =
        ServiceQuery { name: q.name, tag: q.tag, capability: q.capability, healthy_only: q.healthy.unwrap_or(true) };
    let instances = state.registry.instances(&query).await?;
    Ok(with_index(index, json!({ "index": index, "services": instances })))
}

/// One instance, whatever its health.
pub(crate) async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let instance = state
        .registry
        .instance(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("service instance {id} is not registered")))?;
    Ok(Json(to_json(&instance)?))
}

fn to_json(value: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Runs a registry write to its end even when the client goes away mid-request (a crashing
/// service often does, right after it sent its registration): a write cancelled while it
/// opens its transaction leaves the pooled SQLite connection unusable (sqlx issue 3932).
async fn to_completion<T: Send + 'static>(
    write: impl std::future::Future<Output = Result<T, aiops_registry::RegistryError>> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::spawn(write).await {
        Ok(result) => Ok(result?),
        Err(err) => Err(ApiError::Internal(format!("a registry write did not finish: {err}"))),
    }
}

/// Publishes a registry event; the registry change already stands, so a failure is logged,
/// not returned.
async fn announce(state: &ApiState, who: &str, kind: &str, service: &str, data: Value) {
    let event = Envelope::new(format!("api/{who}"), kind, data).with_subject(service);
    if let Err(err) = state.bus.publish_one(&state.streams.control, event).await {
        tracing::warn!(error = %err, event = kind, service, "Could not publish a registry event.");
    }
}

/// Registers (or replaces) an instance. Command checks and `host.` capabilities make the core
/// run programs on its own machine, so registering either takes the admin scope.
pub(crate) async fn register(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(registration): ApiJson<ServiceRegistration>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let scope = if registration.runs_commands() { Scope::Admin } else { Scope::Ingest };
    let who = authorize(&state.tokens, &headers, scope)?;
    // A client registers once per process (and again only after the registry forgot it), so
    // an instance still registered means its last process ended without deregistering.
    let restarted = state.registry.instance(&registration.instance_id).await?.is_some();
    let registry = state.registry.clone();
    let instance = to_completion(async move { registry.register(registration).await }).await?;
    let registered = &instance.registration;
    tracing::info!(service = %registered.name, instance = %registered.instance_id, restarted, "Service registered.");
    let announcement = ServiceRegistered {
        service: registered.name.clone(),
        instance_id: registered.instance_id.clone(),
        address: registered.address.clone(),
        restarted,
    };
    announce(&state, &who, event_type::SERVICE_REGISTERED, &registered.name, to_json(&announcement)?).await;
    Ok((StatusCode::OK, Json(to_json(&instance)?)))
}

pub(crate) async fn heartbeat(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Ingest)?;
    let (registry, instance) = (state.registry.clone(), id.clone());
    to_completion(async move { registry.heartbeat(&instance).await }).await?;
    Ok(Json(json!({ "instance_id": id, "status": "ok" })))
}

pub(crate) async fn deregister(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state.tokens, &headers, Scope::Ingest)?;
    let Some(instance) = state.registry.instance(&id).await? else {
        return Err(ApiError::NotFound(format!("service instance {id} is not registered")));
    };
    let (registry, instance_id) = (state.registry.clone(), id.clone());
    if to_completion(async move { registry.deregister(&instance_id).await }).await? {
        let data = ServiceDeregistered {
            service: instance.registration.name.clone(),
            instance_id: id.clone(),
            reason: format!("deregistered through the API by {who}"),
        };
        announce(&state, &who, event_type::SERVICE_DEREGISTERED, &data.service, to_json(&data)?).await;
    }
    Ok(Json(json!({ "instance_id": id, "deregistered": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PickQuery {
    /// `round_robin` (default), `least_outstanding`, `weighted_random` or `consistent_hash`.
    strategy: Option<String>,
    /// What `consistent_hash` hashes, e.g. a user id.
    key: Option<String>,
}

/// Picks one healthy instance of service `name`. A `least_outstanding` pick stays
/// outstanding until `POST /v1/services/{instance id}/release`.
pub(crate) async fn pick(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<PickQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let strategy = match q.strategy.as_deref() {
        None => Strategy::default(),
        Some(text) => Strategy::parse(text).ok_or_else(|| {
            ApiError::Invalid(format!(
                "strategy {text:?} is not one of round_robin, least_outstanding, weighted_random, consistent_hash"
            ))
        })?,
    };
    if strategy == Strategy::ConsistentHash && q.key.is_none() {
        return Err(ApiError::Invalid("strategy consistent_hash needs a key".into()));
    }
    let instances = state.registry.instances(&ServiceQuery::named(&name)).await?;
    if instances.is_empty() {
        return Err(ApiError::NotFound(format!("no instance of service {name} is registered")));
    }
    let chosen = state.balancer.pick(&instances, strategy, q.key.as_deref()).ok_or_else(|| {
        ApiError::Unavailable(format!(
            "no instance of service {name} is passing or warning ({} critical)",
            instances.len()
        ))
    })?;
    Ok(Json(json!({ "strategy": strategy, "instance": chosen })))
}

/// Ends a `least_outstanding` pick of an instance.
pub(crate) async fn release(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    state.balancer.release(&id);
    Ok(Json(json!({ "instance_id": id, "outstanding": state.balancer.outstanding(&id) })))
}

/// The dependency graph: every service with its health, and who depends on whom.
pub(crate) async fn graph(
    State(state): State<ApiState>,
    headers: HeaderMap,
    _: ApiQuery<NoQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let instances = state.registry.instances(&ServiceQuery::default()).await?;
    let graph = DependencyGraph::from_instances(&instances);
    let failing: Vec<Value> = graph
        .services
        .iter()
        .filter_map(|service| {
            let failing = graph.failing_dependencies(&service.name);
            (!failing.is_empty()).then(|| json!({ "service": service.name, "failing_dependencies": failing }))
        })
        .collect();
    Ok(Json(json!({ "services": graph.services, "edges": graph.edges, "impacted": failing })))
}
