//! The HTTP API: a thin layer over the parts.
//!
//! [`router`] builds the axum `Router` from an [`ApiState`] (trait objects only, so it is
//! tested with `oneshot` and no socket); [`serve`] runs it on a bound listener until a
//! shutdown future resolves, letting in-flight requests finish.
//!
//! This crate is the only one that knows HTTP status codes and JSON error shapes: every
//! error becomes `{"error": {"code", "message"}}` in `error.rs`.
//!
//! | route | scope | what |
//! |---|---|---|
//! | `GET /healthz` | none | liveness |
//! | `GET /readyz` | none | readiness: the mesh and the knowledge store answer |
//! | `GET /metrics` | none | Prometheus text |
//! | `POST /v1/events` | ingest | one CloudEvents envelope → 202 |
//! | `POST /v1/events/batch` | ingest | a JSON array of envelopes (all or nothing) → 202 |
//! | `GET /v1/events` | read | stored events: `stream`, `type`, `subject`, `after`, `since`, `limit`, `order` |
//! | `GET /v1/dead-letters`, `POST /v1/dead-letters/redrive` | read / admin | events groups gave up on; publish them again |
//! | `GET /v1/problems`, `GET /v1/problems/{id}` | read | problems with their status; one with its whole story |
//! | `GET /v1/diagnoses`, `GET /v1/actions` | read | latest diagnoses; latest action outcomes |
//! | `GET /v1/approvals?status=pending\|all` | read | fixes waiting for a human (or all, with their outcome) |
//! | `POST /v1/approvals/{id}/approve`, `POST /v1/approvals/{id}/deny` | admin | decide, with `{"reason"}` |
//! | `GET /v1/healing`, `POST /v1/healing/kill-switch` | read / admin | the kill switch; engage or release it with `{"engaged", "reason"}` |
//! | `GET /v1/services` | read | lookup (`name`, `tag`, `capability`, `healthy`, default true); a watch with `index` (and `wait_ms`) blocks until something changed after that index |
//! | `POST /v1/services` | ingest (admin with command checks) | register or replace an instance |
//! | `GET /v1/services/{id}`, `DELETE /v1/services/{id}`, `PUT /v1/services/{id}/heartbeat` | read / ingest / ingest | one instance with its checks; deregister; heartbeat |
//! | `GET /v1/services/{name}/pick`, `POST /v1/services/{id}/release` | read | pick a healthy instance (`strategy`, `key`); end a `least_outstanding` pick |
//! | `GET /v1/registry/graph` | read | services, dependencies, and which services a failing dependency impacts |
//! | `GET /v1/knowledge/nodes/{id}` | read | a node with its edges and statistics |
//! | `GET /v1/audit` | read | the audit log, newest first |
//! | `GET /v1/tools`, `POST /v1/tools` | read / admin | the tool catalog; propose a tool (TOML spec) |
//! | `GET /v1/browser.js` | none | the browser instrumentation script pages include |
//! | `POST /v1/browser/events` | none (allowed origins, rate limited) | a page's batch of reports (`text/plain` or JSON) |
//! | `GET /v1/traces/{trace_id}` | read | the browser's and the back end's records of one trace |

mod auth;
mod browser;
mod error;
mod extract;
mod routes;
mod state;

pub use auth::{ApiToken, Scope};
pub use browser::BrowserIngest;
pub use error::ApiError;
pub use routes::router;
pub use state::{ApiLimits, ApiState};

/// Serves `router` on `listener` until `shutdown` resolves; in-flight requests finish first.
///
/// # Errors
/// When accepting connections fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
