//! `HttpTool` against a real axum server on 127.0.0.1: status, body, secrets, timeouts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiops_construction::{ConstructionError, HttpTool, RunMode, Secrets, Tool, ToolCatalog, OUTPUT_LIMIT_BYTES};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::{spec, target};

const SECRET: &str = "s3cr3t-t0ken-value";

/// What the test server saw.
#[derive(Debug, Default)]
struct Seen {
    hits: AtomicUsize,
    authorization: Mutex<Option<String>>,
    body: Mutex<Option<Value>>,
}

impl Seen {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn authorization(&self) -> Option<String> {
        self.authorization.lock().unwrap().clone()
    }
}

fn record(seen: &Seen, headers: &HeaderMap) {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    *seen.authorization.lock().unwrap() = headers.get("authorization").map(|value| value.to_str().unwrap().to_owned());
}

/// Starts the server on a free port; returns its base URL and what it sees.
async fn start_server() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route(
            "/admin/cache/clear",
            post(|State(seen): State<Arc<Seen>>, headers: HeaderMap| async move {
                record(&seen, &headers);
                // Echoes the header back, as a careless service might.
                let auth =
                    headers.get("authorization").map(|value| value.to_str().unwrap().to_owned()).unwrap_or_default();
                format!("cleared; auth was {auth}")
            }),
        )
        .route(
            "/admin/faults",
            post(|State(seen): State<Arc<Seen>>, headers: HeaderMap, Json(body): Json<Value>| async move {
                record(&seen, &headers);
                *seen.body.lock().unwrap() = Some(body.clone());
                Json(json!({"applied": body}))
            }),
        )
        .route(
            "/status/{code}",
            get(|State(seen): State<Arc<Seen>>, headers: HeaderMap, Path(code): Path<u16>| async move {
                record(&seen, &headers);
                (StatusCode::from_u16(code).unwrap(), format!("status {code}"))
            }),
        )
        .route(
            "/items/{id}",
            get(|State(seen): State<Arc<Seen>>, headers: HeaderMap, Path(id): Path<String>| async move {
                record(&seen, &headers);
                format!("id={id}")
            }),
        )
        .route(
            "/slow",
            get(|State(seen): State<Arc<Seen>>, headers: HeaderMap| async move {
                record(&seen, &headers);
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/big",
            get(|State(seen): State<Arc<Seen>>, headers: HeaderMap| async move {
                record(&seen, &headers);
                "b".repeat(200_000)
            }),
        )
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, seen)
}

fn client() -> reqwest::Client {
    // No proxy: the test server is local whatever the environment says.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn shipped(secrets: Secrets) -> ToolCatalog {
    ToolCatalog::new(client(), secrets).with_shipped_tools().unwrap()
}

fn admin_secrets() -> Secrets {
    Secrets::from_iter([("admin_token", SECRET)])
}

#[tokio::test]
async fn shipped_clear_cache_sends_the_bearer_secret_and_redacts_it() {
    let (address, seen) = start_server().await;
    let catalog = shipped(admin_secrets());
    let tool = catalog.get("clear_cache").unwrap();
    let out = tool.run(&target(&address, &["cache.clear"]), &json!({}), RunMode::Execute).await.unwrap();
    assert!(out.success);
    assert_eq!(out.http_status, Some(200));
    assert_eq!(out.exit_code, None);
    assert_eq!(out.resolved, format!("POST {address}/admin/cache/clear"));
    assert_eq!(seen.authorization(), Some(format!("Bearer {SECRET}")));
    // The server echoed the token; the output must not carry it.
    assert_eq!(out.output, "cleared; auth was Bearer [redacted]");
    for text in [format!("{out:?}"), format!("{tool:?}"), format!("{catalog:?}"), format!("{:?}", admin_secrets())] {
        assert!(!text.contains(SECRET), "secret leaked into {text}");
    }
}

#[tokio::test]
async fn bearer_header_is_left_out_without_the_secret() {
    let (address, seen) = start_server().await;
    let tool = shipped(Secrets::new()).get("clear_cache").unwrap();
    let out = tool.run(&target(&address, &["cache.clear"]), &json!({}), RunMode::Execute).await.unwrap();
    assert!(out.success);
    assert_eq!(seen.hits(), 1);
    assert_eq!(seen.authorization(), None);
}

#[tokio::test]
async fn shipped_clear_faults_posts_its_json_body() {
    let (address, seen) = start_server().await;
    let tool = shipped(admin_secrets()).get("clear_faults").unwrap();
    let out = tool.run(&target(&address, &["faults.inject"]), &json!({}), RunMode::Execute).await.unwrap();
    assert!(out.success, "{out:?}");
    assert_eq!(*seen.body.lock().unwrap(), Some(json!({"fault": "none"})));
    assert_eq!(out.resolved, format!(r#"POST {address}/admin/faults {{"fault":"none"}}"#));
    assert_eq!(serde_json::from_str::<Value>(&out.output).unwrap(), json!({"applied": {"fault": "none"}}));
}

/// A GET tool; `extra` goes at the top level, `kind_extra` into `[kind]`.
fn get_tool(path: &str, extra: &str, kind_extra: &str, secrets: Secrets) -> HttpTool {
    HttpTool::new(
        spec(&format!(
            r#"name = "get"
version = 1
description = "A test request."
risk = "low"
{extra}

[kind]
type = "http"
method = "GET"
path = "{path}"
{kind_extra}
"#
        )),
        client(),
        secrets,
    )
    .unwrap()
}

#[tokio::test]
async fn non_2xx_status_is_an_unsuccessful_output() {
    let (address, _seen) = start_server().await;
    let out = get_tool("/status/503", "", "", Secrets::new())
        .run(&target(&address, &[]), &json!({}), RunMode::Execute)
        .await
        .unwrap();
    assert!(!out.success);
    assert_eq!(out.http_status, Some(503));
    assert_eq!(out.output, "status 503");
}

#[tokio::test]
async fn slow_response_times_out() {
    let (address, seen) = start_server().await;
    let start = Instant::now();
    let err = get_tool("/slow", "timeout_ms = 200", "", Secrets::new())
        .run(&target(&address, &[]), &json!({}), RunMode::Execute)
        .await
        .unwrap_err();
    assert!(matches!(err, ConstructionError::Timeout { after_ms: 200, .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(seen.hits(), 1);
}

#[tokio::test]
async fn refused_connection_fails_without_leaking_the_secret() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let tool = get_tool("/status/200", "", "bearer_secret = \"admin_token\"", admin_secrets());
    let err = tool.run(&target(&address, &[]), &json!({}), RunMode::Execute).await.unwrap_err();
    assert!(matches!(err, ConstructionError::Failed { .. }), "{err:?}");
    assert!(!err.to_string().contains(SECRET));
    assert!(!format!("{err:?}").contains(SECRET));
}

#[tokio::test]
async fn large_body_is_capped_and_noted() {
    let (address, _seen) = start_server().await;
    let out = get_tool("/big", "", "", Secrets::new())
        .run(&target(&address, &[]), &json!({}), RunMode::Execute)
        .await
        .unwrap();
    assert!(out.success);
    assert!(out.output.len() <= OUTPUT_LIMIT_BYTES, "{}", out.output.len());
    assert!(out.output.ends_with(" bytes]"), "the cut must be noted");
}

#[tokio::test]
async fn path_values_are_percent_encoded() {
    let (address, _seen) = start_server().await;
    let tool = get_tool("/items/{id}", "[[params]]\nname = \"id\"\npattern = \"any_text\"\n", "", Secrets::new());
    let out = tool.run(&target(&address, &[]), &json!({"id": "a b/../c?x=1#f"}), RunMode::Execute).await.unwrap();
    assert!(out.success, "{out:?}");
    assert_eq!(out.resolved, format!("GET {address}/items/a%20b%2F..%2Fc%3Fx%3D1%23f"));
    assert_eq!(out.output, "id=a b/../c?x=1#f");
}

#[tokio::test]
async fn dry_run_sends_nothing() {
    let (address, seen) = start_server().await;
    let tool = shipped(admin_secrets()).get("reset_db_pool").unwrap();
    let out = tool.run(&target(&address, &["db.reset_pool"]), &json!({}), RunMode::DryRun).await.unwrap();
    assert!(out.success);
    assert_eq!(out.http_status, None);
    assert_eq!(out.resolved, format!("POST {address}/admin/db/reset-pool"));
    assert!(out.output.contains("authorization"), "{}", out.output);
    assert!(!out.output.contains(SECRET));
    assert_eq!(seen.hits(), 0);
}

#[tokio::test]
async fn missing_capability_sends_nothing() {
    let (address, seen) = start_server().await;
    let tool = shipped(admin_secrets()).get("reset_db_pool").unwrap();
    for mode in [RunMode::Execute, RunMode::DryRun] {
        let err = tool.run(&target(&address, &["cache.clear"]), &json!({}), mode).await.unwrap_err();
        assert!(matches!(err, ConstructionError::MissingCapability { .. }), "{err:?}");
    }
    assert_eq!(seen.hits(), 0);
}

#[tokio::test]
async fn missing_header_secret_sends_nothing() {
    let (address, seen) = start_server().await;
    let tool = get_tool("/status/200", "", "headers = { X-Api-Key = \"{secret:api_key}\" }", Secrets::new());
    let err = tool.run(&target(&address, &[]), &json!({}), RunMode::Execute).await.unwrap_err();
    assert!(matches!(&err, ConstructionError::MissingSecret { secret, .. } if secret == "api_key"), "{err:?}");
    assert_eq!(seen.hits(), 0);
}

#[tokio::test]
async fn unusable_target_address_is_rejected() {
    let tool = get_tool("/status/200", "", "", Secrets::new());
    for address in ["not a url", "ftp://127.0.0.1", "http://127.0.0.1:1/?q=1"] {
        let err = tool.run(&target(address, &[]), &json!({}), RunMode::DryRun).await.unwrap_err();
        assert!(matches!(err, ConstructionError::InvalidTarget { .. }), "{address}: {err:?}");
    }
}

/// A tool with `base_url` calls a management API about the target, naming the target in
/// its path, instead of the target itself (which may be down).
#[tokio::test]
async fn base_url_calls_a_management_api_about_the_target() {
    let (manager, seen) = start_server().await;
    let tool = get_tool("/items/{target.service}", "", &format!("base_url = \"{manager}\""), Secrets::new());
    let down = target("http://127.0.0.1:9", &[]);
    let out = tool.run(&down, &json!({}), RunMode::Execute).await.unwrap();
    assert!(out.success, "{out:?}");
    assert_eq!(out.resolved, format!("GET {manager}/items/{}", down.service));
    assert_eq!(seen.hits.load(Ordering::SeqCst), 1);
    let bad = aiops_construction::parse_spec(
        "name = \"get\"\nversion = 1\ndescription = \"d\"\nrisk = \"low\"\n\n[kind]\ntype = \"http\"\nmethod = \"GET\"\npath = \"/x\"\nbase_url = \"ftp://h/\"\n",
        "bad.toml",
    )
    .unwrap_err();
    assert!(bad.to_string().contains("base_url `ftp://h/` must be an http:// or https:// URL"), "{bad}");
}
