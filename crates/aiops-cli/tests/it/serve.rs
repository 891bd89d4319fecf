//! `aiops serve` as a process: accepted events survive `kill -9`, bad input gets precise
//! JSON errors.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{free_port, serve, Server};

async fn start(data_dir: &std::path::Path, port: u16) -> Server {
    serve(data_dir, port, &[]).await
}

fn event(n: u32) -> Value {
    json!({
        "specversion": "1.0", "id": format!("evt-{n}"), "source": "test/e2e", "type": "http.request",
        "subject": "svc", "data": { "method": "GET", "route": "/x", "status": 200, "duration_ms": 1.5 }
    })
}

async fn stored_ids(http: &reqwest::Client, url: &str) -> Vec<String> {
    let body: Value = http
        .get(format!("{url}/v1/events?stream=telemetry&order=asc&limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["events"].as_array().unwrap().iter().map(|e| e["event"]["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn accepted_events_survive_kill_9_and_duplicates_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let http = reqwest::Client::new();
    let mut server = start(dir.path(), port).await;
    let batch: Vec<Value> = (0..200).map(event).collect();
    let response = http.post(format!("{}/v1/events/batch", server.url)).json(&batch).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let one = http.post(format!("{}/v1/events", server.url)).json(&event(200)).send().await.unwrap();
    assert_eq!(one.status(), 202);
    // SIGKILL: no shutdown hook runs.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let server = start(dir.path(), port).await;
    let expected: Vec<String> = (0..=200).map(|n| format!("evt-{n}")).collect();
    assert_eq!(stored_ids(&http, &server.url).await, expected);
    let again = http.post(format!("{}/v1/events/batch", server.url)).json(&batch[..10]).send().await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(stored_ids(&http, &server.url).await.len(), 201, "a retried batch must not store duplicates");
}

#[tokio::test]
async fn bad_input_gets_precise_json_errors_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), free_port()).await;
    // The server answers an oversized body without reading it and closes the connection, so
    // connections are not reused across requests here.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let post = |body: String, content_type: &'static str| {
        http.post(format!("{}/v1/events/batch", server.url)).header("content-type", content_type).body(body).send()
    };
    let cases: Vec<(String, &str, u16, &str)> = vec![
        ("[{\"id\":".into(), "application/json", 400, "bad_request"),
        (
            json!([event(1), {"id": "x", "source": "s", "type": "a.b", "sujbect": "typo"}]).to_string(),
            "application/json",
            422,
            "sujbect",
        ),
        (
            json!([event(1), {"id": "x", "source": "s", "type": "Bad Type"}]).to_string(),
            "application/json",
            422,
            "events[1]",
        ),
        (json!([event(1)]).to_string(), "text/plain", 415, "Content-Type"),
        ("[]".into(), "application/json", 422, "at least one event"),
        (format!("[{}]", vec![event(1).to_string(); 501].join(",")), "application/json", 413, "at most 500"),
        (format!("[\"{}\"]", "x".repeat(2 * 1024 * 1024)), "application/json", 413, "too_large"),
    ];
    for (body, content_type, status, needle) in cases {
        let response = post(body, content_type).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "expected {status} for {needle}");
        let error: Value = response.json().await.unwrap();
        let text = error.to_string();
        assert!(error["error"]["code"].is_string() && error["error"]["message"].is_string(), "{text}");
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    assert!(stored_ids(&http, &server.url).await.is_empty(), "a refused batch must store nothing");
    let unknown = http.get(format!("{}/v1/nope", server.url)).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let registration = json!({ "name": "svc", "instance_id": "i1", "address": "not a url" });
    let response = http.post(format!("{}/v1/services", server.url)).json(&registration).send().await.unwrap();
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("address"));
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_metrics_are_exposed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let http = reqwest::Client::new();
    let mut server = start(dir.path(), port).await;
    let batch: Vec<Value> = (0..20).map(event).collect();
    assert_eq!(http.post(format!("{}/v1/events/batch", server.url)).json(&batch).send().await.unwrap().status(), 202);
    let metrics = http.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("aiops_events_ingested_total 20"), "{metrics}");
    assert!(metrics.contains("aiops_http_requests_total"), "{metrics}");
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "aiops serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    let server = start(dir.path(), port).await;
    assert_eq!(stored_ids(&http, &server.url).await.len(), 20);
}

#[tokio::test]
async fn a_proposed_tool_is_registered_or_rejected_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), free_port()).await;
    let spec = dir.path().join("restart.toml");
    std::fs::write(
        &spec,
        "name = \"restart_worker\"\nversion = 1\ndescription = \"Restarts the worker\"\nrisk = \"high\"\n\n[kind]\ntype = \"command\"\nargv = [\"systemctl\", \"restart\", \"worker\"]\n",
    )
    .unwrap();
    let run = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_aiops"))
            .args(["tools", "propose", "--url", &server.url])
            .arg(file)
            .output()
            .unwrap()
    };
    let output = run(&spec);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "registered restart_worker version 1");
    let tools: Value = reqwest::get(format!("{}/v1/tools", server.url)).await.unwrap().json().await.unwrap();
    assert!(tools["tools"].as_array().unwrap().iter().any(|t| t["name"] == "restart_worker"));
    // A blank origin would leave the verdict without a subject: refused before it is accepted.
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/tools", server.url))
        .json(&serde_json::json!({ "spec": "x", "origin": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);

    std::fs::write(&spec, "name = \"bad\"\nversion = 1\ndescription = \"x\"\nrisk = \"low\"\n\n[kind]\ntype = \"command\"\nargv = [\"bash\", \"-c\", \"echo hi\"]\n").unwrap();
    let output = run(&spec);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("rejected: ") && stdout.contains("restart.toml:") && stdout.contains("shell"),
        "{stdout}"
    );
}
