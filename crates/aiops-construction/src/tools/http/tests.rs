//! `HttpTool` runs the `Tool` conformance suite against a real axum server on 127.0.0.1;
//! its effect is a request the server counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post;
use serde_json::json;

use super::*;
use crate::conformance::Fixture;
use crate::spec::parse_spec;

fn http_spec(name: &str, path: &str, timeout_ms: u64) -> ToolSpec {
    parse_spec(
        &format!(
            r#"name = "{name}"
version = 1
description = "Posts to the server."
risk = "low"
timeout_ms = {timeout_ms}
capability = "counter.bump"

[[params]]
name = "amount"
pattern = "integer"

[kind]
type = "http"
method = "POST"
path = "{path}"
bearer_secret = "admin_token"
body = {{ amount = "{{amount}}" }}
"#
        ),
        "test",
    )
    .unwrap_or_else(|err| panic!("{err}"))
}

async fn fixture() -> Fixture {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = axum::Router::new()
        .route(
            "/bump",
            post(move || {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    "bumped"
                }
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let secrets = Secrets::from_iter([("admin_token", "t0ken")]);
    let tool = HttpTool::new(http_spec("bump", "/bump", 5_000), client.clone(), secrets.clone()).unwrap();
    let slow = HttpTool::new(http_spec("slow", "/slow", 200), client, secrets).unwrap();
    Fixture {
        tool: Arc::new(tool),
        slow_tool: Some(Arc::new(slow)),
        target: ToolTarget {
            service: "svc".into(),
            instance_id: "svc-1".into(),
            address,
            capabilities: vec!["counter.bump".into()],
        },
        valid_params: json!({ "amount": 2 }),
        invalid_params: json!({ "amount": "2; DROP TABLE" }),
        effects: Some(Box::new(move || hits.load(Ordering::SeqCst))),
        guard: Box::new(AbortOnDrop(server)),
    }
}

/// Stops the test server with the fixture.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

crate::tool_conformance!(fixture().await);

#[test]
fn debug_shows_secret_names_not_values() {
    let tool = HttpTool::new(
        http_spec("bump", "/bump", 1_000),
        reqwest::Client::new(),
        Secrets::from_iter([("admin_token", "t0ken-value")]),
    )
    .unwrap();
    let debug = format!("{tool:?}");
    assert!(debug.contains("admin_token"), "{debug}");
    assert!(!debug.contains("t0ken-value"), "{debug}");
}

#[test]
fn error_chain_skips_repeated_text() {
    let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    assert_eq!(error_chain(&inner), "refused");
}
