//! The title service: a second, small service the bookmark manager depends on. Given a URL it
//! answers a title for it (made from the URL, offline), so that a bookmark saved without a
//! title gets one. Run it with `bookmarks titles` (or `aiops bookmarks titles`); it registers
//! with the AI-Ops core as `titles`, and the bookmark manager lists it as a dependency when
//! started with `--titles-url`. Killing it is the "dependency down" fault scenario.
//!
//! | route | answer |
//! |---|---|
//! | `GET /title?url=` | 200 `{"title"}`; 422 when `url` is missing |
//! | `GET /health` | 200 `{"status":"ok"}` |

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use aiops_client::{AiopsClient, ClientConfig};
use anyhow::Context as _;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::error::BookmarksError;

/// The service name the title service registers under.
pub const TITLES_SERVICE: &str = "titles";
/// How long the bookmark manager waits for a title.
const TITLE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Flags of `bookmarks titles`.
#[derive(Debug, Clone, clap::Args)]
pub struct TitlesArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8081")]
    pub listen: String,
    /// Base URL of the AI-Ops core; without it the service does not register.
    #[arg(long, env = "AIOPS_URL", value_name = "URL")]
    pub aiops_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TitleQuery {
    url: Option<String>,
}

/// A readable title for `url`: its last path segment (or its host), words capitalised.
fn title_for(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let mut segments = rest.split('/').filter(|s| !s.is_empty());
    let host = segments.next().unwrap_or_default();
    let Some(last) = segments.next_back() else { return host.to_owned() };
    let words: Vec<String> = last
        .split(['-', '_', '.', '+'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
        })
        .collect();
    if words.is_empty() {
        host.to_owned()
    } else {
        words.join(" ")
    }
}

async fn title(Query(query): Query<TitleQuery>) -> (StatusCode, Json<Value>) {
    match query.url.filter(|u| !u.trim().is_empty()) {
        Some(url) => (StatusCode::OK, Json(json!({ "title": title_for(&url) }))),
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": { "code": "missing_url", "message": "query parameter url is required" } })),
        ),
    }
}

/// The title service's routes.
pub fn titles_router() -> Router {
    Router::new().route("/title", get(title)).route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
}

/// Binds `--listen`, registers with the core when `--aiops-url` is given, prints
/// `listening on http://ADDR` and serves until Ctrl-C or SIGTERM.
///
/// # Errors
/// When binding, starting the AI-Ops client or serving fails.
pub async fn run_titles(args: TitlesArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let local_addr = listener.local_addr().context("reading the listen address")?;
    let client = match args.aiops_url.as_deref().filter(|url| !url.is_empty()) {
        Some(url) => Some(AiopsClient::start(client_config(url, local_addr)).context("starting the AI-Ops client")?),
        None => None,
    };
    let app = match &client {
        Some(client) => titles_router().layer(aiops_client::track_requests(client.clone())),
        None => titles_router(),
    };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local_addr}").context("writing to stdout")?;
        stdout.flush().context("flushing stdout")?;
    }
    tracing::info!(addr = %local_addr, "Titles is serving.");
    let served = axum::serve(listener, app).with_graceful_shutdown(crate::cli::shutdown_signal()).await;
    if let Some(client) = client {
        client.shutdown().await;
    }
    served.context("serving")
}

fn client_config(aiops_url: &str, local_addr: SocketAddr) -> ClientConfig {
    let address = format!("http://{local_addr}");
    let mut client = ClientConfig::new(aiops_url, TITLES_SERVICE, address);
    client.instance_id = format!("{TITLES_SERVICE}-{}", local_addr.port());
    client.health_path = "/health".to_owned();
    client.ttl_secs = crate::TTL_SECS;
    client
}

/// Asks the title service at `base` for a title for `url`.
pub(crate) async fn fetch_title(http: &reqwest::Client, base: &str, url: &str) -> Result<String, BookmarksError> {
    let unavailable = |message: String| BookmarksError::Dependency { service: TITLES_SERVICE, message };
    let endpoint = format!("{}/title", base.trim_end_matches('/'));
    let mut request =
        reqwest::Url::parse(&endpoint).map_err(|err| unavailable(format!("bad URL {endpoint}: {err}")))?;
    request.query_pairs_mut().append_pair("url", url);
    let response = http.get(request).timeout(TITLE_TIMEOUT).send().await.map_err(|err| {
        let reason = if err.is_connect() {
            "connection refused"
        } else if err.is_timeout() {
            "timed out"
        } else {
            "failed"
        };
        unavailable(format!("GET {endpoint}: {reason}"))
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(unavailable(format!("GET {endpoint} returned {}", status.as_u16())));
    }
    let body: Value = response.json().await.map_err(|err| unavailable(format!("GET {endpoint}: bad body: {err}")))?;
    body["title"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| unavailable(format!("GET {endpoint}: no title in the answer")))
}

#[cfg(test)]
mod tests {
    use super::title_for;

    #[test]
    fn titles_come_from_the_last_path_segment_or_the_host() {
        assert_eq!(title_for("https://example.org/rust-async_book?x=1"), "Rust Async Book");
        assert_eq!(title_for("https://example.org/"), "example.org");
        assert_eq!(title_for("https://example.org/page/42"), "42");
    }
}
