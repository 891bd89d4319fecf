//! The bookmark manager that AI-Ops Core watches and heals.
//!
//! A small JSON API over SQLite (sqlx, WAL): create, search, tag and delete bookmarks, with
//! list results cached in memory. When an AI-Ops core URL is configured, the service
//! registers itself through `aiops-client`, records every request, reports every 5xx cause
//! as a `service.error`, and emits `bookmark.created` / `bookmark.deleted`.
//!
//! It also carries what the core needs to heal it: admin endpoints that remediation tools
//! call (`/admin/db/reset-pool`, `/admin/cache/clear`) and real, injectable faults
//! (`/admin/faults`): a connection leak that exhausts the pool, and slow handlers.
//!
//! # Layout
//! - [`serve`] runs the service on a bound listener until a shutdown future resolves;
//!   [`router`] builds the axum `Router` for in-process tests.
//! - [`ServeArgs`] and [`run_cli`] are the command line, shared by the `bookmarks` binary and
//!   `aiops bookmarks serve`; [`config_rollback`] is `bookmarks config rollback`, which works
//!   while the service is down.
//! - `api` (public API, health), `admin` (admin endpoints, faults), `db` (schema, queries,
//!   pool), `cache`, `extract` (JSON error bodies for rejections), `error`.
//! - `titles`: the title service, a second process the bookmark manager depends on when
//!   started with `--titles-url` ([`run_titles`]).
//!
//! # HTTP API
//! | route | answer |
//! |---|---|
//! | `POST /api/bookmarks` `{url, title?, tags?}` | 201 bookmark; 422 on invalid input or unknown fields; 502 when the title service is needed and unavailable |
//! | `GET /api/bookmarks?q=&tag=&limit=` | 200 `{"bookmarks": [...]}` newest first (limit 1..=500, default 50) |
//! | `GET /api/bookmarks/{id}` | 200 bookmark; 404 |
//! | `PUT /api/bookmarks/{id}/tags` `{tags}` | 200 bookmark; 404 |
//! | `DELETE /api/bookmarks/{id}` | 204; 404 |
//! | `GET /`, `/app.js`, `/app.css` | the web front end (lists, adds, searches, tags, deletes) |
//! | `GET /health` | 200 `{"status":"ok"}`; 503 `{"status":"unavailable","error":...}` |
//! | `GET /openapi.json` | the API's OpenAPI document, generated from the handlers |
//! | `POST /admin/db/reset-pool` | 200 `{"released": n, "pool_size": m}` |
//! | `POST /admin/cache/clear` | 200 `{"cleared": n}` |
//! | `GET /admin/faults` | 200 `{"active": [...], "slow_delay_ms", "leaked_connections", "pool_size"}` |
//! | `POST /admin/faults` `{"fault", "delay_ms"?}` | 200, same body as `GET` |
//!
//! A bookmark is `{"id", "url", "title", "tags", "created_at"}`. Errors are
//! `{"error": {"code", "message"}}`. Admin routes need `Authorization: Bearer <token>` when
//! an admin token is configured (401 otherwise).

mod admin;
mod api;
mod cache;
mod cli;
mod cors;
mod db;
mod error;
mod extract;
mod faults;
mod openapi;
mod state;
mod titles;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use aiops_client::{AiopsClient, ClientConfig};
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post, put};
use axum::Router;
use tokio::net::TcpListener;

pub use cli::{config_rollback, run_cli, ConfigRollbackArgs, ServeArgs};
pub use db::Bookmark;
pub use error::{BookmarksError, BookmarksResult};
pub use faults::{rollback_config_file, CRASH_AFTER};
pub use openapi::openapi_document;
pub use state::AppState;
pub use titles::{run_titles, titles_router, TitlesArgs, TITLES_SERVICE};
pub use web::{web_router, PageSettings, WEB_APP};

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// Capabilities the service registers with: what remediation tools can ask of it.
pub const CAPABILITIES: [&str; 9] = [
    "db.reset_pool",
    "db.maintenance",
    "cache.clear",
    "deploy.rollback",
    "config.rollback",
    "frontend.rollback",
    "disk.cleanup",
    "process.restart",
    "faults.inject",
];

/// Heartbeat TTL the service registers with, in seconds.
pub const TTL_SECS: u64 = 3;
/// How often the gauges are reported (`metric.sample`).
pub const METRICS_EVERY: Duration = Duration::from_secs(1);

/// Settings of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookmarksConfig {
    /// SQLite database file; created, with its folder, if missing.
    pub db_path: PathBuf,
    /// Name to register with the AI-Ops core. Default: `bookmarks`.
    pub service_name: String,
    /// Base URL of the AI-Ops core; no events are sent when `None`.
    pub aiops_url: Option<String>,
    /// Most database connections open at once. Default: 4.
    pub pool_size: u32,
    /// How long a request waits for a free connection before failing with 503, in ms.
    /// Also bounds `SELECT 1` in `/health`. Default: 250.
    pub acquire_timeout_ms: u64,
    /// Bearer token required by the admin endpoints; they are open when `None`.
    pub admin_token: Option<String>,
    /// Base URL of the title service, asked for a title when a bookmark comes without one.
    /// The service then depends on it (and registers so). Default: none.
    pub titles_url: Option<String>,
    /// Base URL of the AI-Ops core as the browser reaches it: the page includes its
    /// `/v1/browser.js`. Default: `aiops_url`; none means the page is not instrumented.
    pub page_aiops_url: Option<String>,
    /// Origins (`scheme://host[:port]`) of pages served elsewhere that may call the API
    /// (CORS). Default: none.
    pub cors_origins: Vec<String>,
    /// Bearer token the API (`/api/...`) requires; the page is given it. Default: none (open).
    pub api_token: Option<String>,
}

impl BookmarksConfig {
    /// Defaults for everything but the database file.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        Self {
            db_path: db_path.into(),
            service_name: "bookmarks".to_owned(),
            aiops_url: None,
            pool_size: 4,
            acquire_timeout_ms: 250,
            admin_token: None,
            titles_url: None,
            page_aiops_url: None,
            cors_origins: Vec::new(),
            api_token: None,
        }
    }
}

/// The service's routes over `state`, with the request-tracking layer when `state` has an
/// AI-Ops client.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/bookmarks", post(api::create).get(api::list))
        .route("/api/bookmarks/{id}", get(api::get_one).delete(api::delete_one))
        .route("/api/bookmarks/{id}/tags", put(api::set_tags))
        .route_layer(from_fn_with_state(state.clone(), admin::request_faults))
        .route_layer(from_fn_with_state(state.clone(), admin::require_api_token));
    let admin = Router::new()
        .route("/admin/db/reset-pool", post(admin::reset_pool))
        .route("/admin/cache/clear", post(admin::clear_cache))
        .route("/admin/deploy/rollback", post(admin::rollback_deploy))
        .route("/admin/config/rollback", post(admin::rollback_config))
        .route("/admin/frontend/rollback", post(admin::rollback_frontend))
        .route("/admin/disk/cleanup", post(admin::disk_cleanup))
        .route("/admin/restart", post(admin::restart))
        .route("/admin/db/maintenance", post(admin::db_maintenance))
        .route("/admin/faults", get(admin::get_faults).post(admin::set_fault))
        .route_layer(from_fn_with_state(state.clone(), admin::require_admin));
    let app = Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/app.css", get(web::style))
        .route("/health", get(api::health))
        .route("/openapi.json", get(openapi::serve))
        .merge(api)
        .merge(admin)
        .fallback(api::no_route)
        .layer(from_fn_with_state(state.clone(), cors::cors))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state.clone());
    // Added last so it wraps every route, slow fault included; inside the router so that it
    // sees the matched route template.
    match state.aiops() {
        Some(client) => app.layer(aiops_client::track_requests(client.clone())),
        None => app,
    }
}

/// Serves the service on `listener` until `shutdown` resolves, then finishes in-flight
/// requests, ships buffered events, deregisters and closes the database.
///
/// # Errors
/// When the database cannot be opened, the AI-Ops client cannot start (bad URL), or serving
/// fails on I/O.
pub async fn serve(
    config: BookmarksConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> BookmarksResult<()> {
    let state = prepare(&config, &listener).await?;
    serve_state(state, listener, shutdown).await
}

/// Opens the database, then starts the AI-Ops client, so that an instance that cannot open
/// its database never registers.
async fn prepare(config: &BookmarksConfig, listener: &TcpListener) -> BookmarksResult<AppState> {
    let local_addr = listener
        .local_addr()
        .map_err(|source| BookmarksError::Io { context: "reading the listener's address".to_owned(), source })?;
    let db =
        db::Database::open(&config.db_path, config.pool_size, Duration::from_millis(config.acquire_timeout_ms)).await?;
    let aiops = match &config.aiops_url {
        Some(url) => Some(AiopsClient::start(client_config(config, url, local_addr)).map_err(BookmarksError::Aiops)?),
        None => None,
    };
    Ok(AppState::from_parts(db, config, aiops))
}

async fn serve_state(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> BookmarksResult<()> {
    start_cache_warmer(&state);
    let reporter = start_metrics_reporter(&state);
    let served = axum::serve(listener, router(state.clone())).with_graceful_shutdown(shutdown).await;
    if let Some(reporter) = reporter {
        reporter.abort();
    }
    if let Some(client) = state.aiops() {
        client.clone().shutdown().await;
    }
    state.close().await;
    served.map_err(|source| BookmarksError::Io { context: "serving http".to_owned(), source })
}

/// How the service presents itself to the AI-Ops core.
///
/// The instance id is derived from the listen address, so that a restarted instance takes
/// over its registration instead of leaving a dead one behind. An unspecified listen address
/// (`0.0.0.0`) is advertised as loopback, which is right when the core runs on the same host.
fn client_config(config: &BookmarksConfig, aiops_url: &str, local_addr: SocketAddr) -> ClientConfig {
    let mut advertised = local_addr;
    if advertised.ip().is_unspecified() {
        advertised.set_ip(match advertised {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let host_part: String =
        advertised.ip().to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let mut client = ClientConfig::new(aiops_url, config.service_name.as_str(), format!("http://{advertised}"));
    client.instance_id = format!("{}-{host_part}-{}", config.service_name, advertised.port());
    client.capabilities = CAPABILITIES.iter().map(|&c| c.to_owned()).collect();
    client.dependencies = vec!["sqlite".to_owned()];
    if config.titles_url.is_some() {
        client.dependencies.push(TITLES_SERVICE.to_owned());
    }
    client.health_path = "/health".to_owned();
    client.ttl_secs = TTL_SECS;
    // The core joins the page's reports with this service and checks them against its API.
    client.metadata.insert("web_app".to_owned(), web::WEB_APP.to_owned());
    client.metadata.insert("openapi".to_owned(), "/openapi.json".to_owned());
    client
}

/// Reports the service's gauges to the core every [`METRICS_EVERY`]: connections of the pool
/// in use, bytes held by leaked state, bytes in the export spool. The core scores each series
/// against its own history.
fn start_metrics_reporter(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let client = state.aiops()?.clone();
    let state = state.clone();
    Some(tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_EVERY);
        loop {
            every.tick().await;
            let pool = state.db().pool();
            client.report_metric("db_pool_in_use", f64::from(pool.size()) - pool.num_idle() as f64);
            client.report_metric("leaked_bytes", state.faults().leaked_bytes() as f64);
            client.report_metric("spool_bytes", state.faults().spool_bytes() as f64);
        }
    }))
}

/// Runs the cache warmer once, [`CRASH_AFTER`] from now (after a start or a configuration
/// load). Under configuration v3 it panics, and the process exits as a panicking one does.
pub(crate) fn start_cache_warmer(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(CRASH_AFTER).await;
        if let Some(reason) = state.faults().crash_reason() {
            eprintln!("{reason}");
            std::process::exit(faults::PANIC_EXIT_CODE);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_advertises_loopback_and_a_stable_instance_id() {
        let mut config = BookmarksConfig::new("x.db");
        config.service_name = "bookmarks".into();
        let client = client_config(&config, "http://core:7400", "0.0.0.0:8080".parse().unwrap());
        assert_eq!(client.address, "http://127.0.0.1:8080");
        assert_eq!(client.instance_id, "bookmarks-127-0-0-1-8080");
        assert_eq!(client.health_url(), "http://127.0.0.1:8080/health");
        assert_eq!(client.capabilities, CAPABILITIES);
        assert_eq!(client.ttl_secs, 3);
    }
}
