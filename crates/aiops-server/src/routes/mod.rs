//! The router: every route, its limits, and request metrics.

mod browser;
mod events;
mod healing;
mod health;
mod knowledge;
mod problems;
mod services;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

use crate::auth::authenticated;
use crate::{ApiError, ApiState};

/// The whole API.
pub fn router(state: ApiState) -> Router {
    let max_body = state.limits.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/v1/events", post(events::ingest_one).get(events::query))
        .route("/v1/events/batch", post(events::ingest_batch))
        .route("/v1/browser.js", get(browser::script))
        .route("/v1/browser/events", post(browser::ingest).options(browser::preflight))
        .route("/v1/traces/{trace_id}", get(browser::trace))
        .route("/v1/dead-letters", get(events::dead_letters))
        .route("/v1/dead-letters/redrive", post(events::redrive))
        .route("/v1/problems", get(problems::list))
        .route("/v1/problems/{id}", get(problems::show))
        .route("/v1/diagnoses", get(problems::diagnoses))
        .route("/v1/actions", get(problems::actions))
        .route("/v1/approvals", get(healing::list))
        .route("/v1/approvals/{id}/approve", post(healing::approve))
        .route("/v1/approvals/{id}/deny", post(healing::deny))
        .route("/v1/healing", get(healing::status))
        .route("/v1/healing/kill-switch", post(healing::kill_switch))
        .route("/v1/services", get(services::list).post(services::register))
        .route("/v1/services/{id}", get(services::show).delete(services::deregister))
        .route("/v1/services/{id}/heartbeat", put(services::heartbeat))
        // `{id}` is a service name here: one path segment takes one parameter name.
        .route("/v1/services/{id}/pick", get(services::pick))
        .route("/v1/services/{id}/release", post(services::release))
        .route("/v1/registry/graph", get(services::graph))
        .route("/v1/knowledge/nodes/{id}", get(knowledge::node))
        .route("/v1/knowledge/sources", get(knowledge::sources))
        .route("/v1/ai/usage", get(knowledge::ai_usage))
        .route("/v1/audit", get(knowledge::audit))
        .route("/v1/tools", get(knowledge::tools).post(knowledge::propose_tool))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

/// The routes a browser calls without a token (limited by origin and rate instead).
const PUBLIC_ROUTES: &[&str] = &["/v1/browser.js", "/v1/browser/events"];

/// With tokens configured, a `/v1` request without a valid one is refused before its query or
/// body is read, so that a caller who may not use the API learns nothing about its formats
/// (the route's own scope is checked by its handler).
async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/v1/") && !PUBLIC_ROUTES.contains(&path) && !authenticated(&state.tokens, request.headers()) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!("no route for {} {}", request.method(), request.uri().path()))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {}", request.uri().path(), request.method()))
}

async fn count_requests(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    metrics::counter!(
        "aiops_http_requests_total",
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}
