//! `aiops replay` on a real core's recorded history: the same policy finds the recorded
//! problem again; a laxer one misses it; nothing live changes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{free_port, serve};

async fn replay(data_dir: &str, extra: &[&str]) -> (bool, Value, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(["replay", "--json"])
        .args(extra)
        .env("AIOPS__DATA_DIR", data_dir)
        .env("AIOPS__AI__EMBEDDER__BACKEND", "hashing")
        .env("AIOPS__AI__EMBEDDER__DIMENSIONS", "384")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report = stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or(Value::Null);
    (output.status.success(), report, format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)))
}

#[tokio::test]
async fn a_policy_is_judged_on_the_recorded_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("AIOPS__AI__EMBEDDER__BACKEND", "hashing"), ("AIOPS__AI__EMBEDDER__DIMENSIONS", "384")];
    let server = serve(&data, free_port(), &env).await;
    let http = reqwest::Client::new();
    let start = chrono::Utc::now();
    // 40 requests in 4 s of event time, 30% of them failing with 500.
    let batch: Vec<Value> = (0..40)
        .map(|n| {
            let time = start + chrono::Duration::milliseconds(n * 100);
            json!({
                "specversion": "1.0", "id": format!("req-{n}"), "source": "shop/1", "type": "http.request",
                "subject": "shop", "time": time.to_rfc3339(),
                "data": { "method": "GET", "route": "/cart", "status": if n % 10 < 3 { 500 } else { 200 }, "duration_ms": 12.0 }
            })
        })
        .collect();
    let response = http.post(format!("{}/v1/events/batch", server.url)).json(&batch).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body: Value = http.get(format!("{}/v1/problems", server.url)).send().await.unwrap().json().await.unwrap();
        // Detected, and escalated (the service is not registered, so nothing can heal it).
        if body["problems"].as_array().is_some_and(|p| p.iter().any(|p| p["status"] == "escalated")) {
            break;
        }
        assert!(Instant::now() < deadline, "the core never detected and escalated the error burst: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The same policy, while the core still runs: it finds the recorded problem again.
    let data = data.to_str().unwrap();
    let (ok, report, output) = replay(data, &[]).await;
    assert!(ok, "{output}");
    assert_eq!(report["counts"]["events"], 40, "{output}");
    assert_eq!(
        (report["counts"]["matched"].as_u64(), report["counts"]["missed"].as_u64()),
        (Some(1), Some(0)),
        "{output}"
    );
    let problem = &report["problems"][0];
    assert_eq!((problem["service"].as_str(), problem["kind"].as_str()), (Some("shop"), Some("http_error_ratio")));
    assert!(problem["escalation"].as_str().unwrap().contains("not registered"), "{output}");
    assert!(output.contains("recorded: escalated"), "{output}");

    // A laxer policy (a 50% error threshold) would have missed it.
    let lax = dir.path().join("lax.toml");
    std::fs::write(&lax, "[agents.monitor]\nerror_ratio_threshold = 0.5\n").unwrap();
    let (ok, report, output) = replay(data, &["--policy", lax.to_str().unwrap()]).await;
    assert!(ok, "{output}");
    assert_eq!(
        (report["counts"]["detected"].as_u64(), report["counts"]["missed"].as_u64()),
        (Some(0), Some(1)),
        "{output}"
    );
    assert!(output.contains("MISSED by the policy"), "{output}");

    // Nothing live changed: the core still has its one problem.
    let body: Value = http.get(format!("{}/v1/problems", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["problems"].as_array().unwrap().len(), 1);
    let (ok, _, output) = replay(data, &["--since", "yesterday"]).await;
    assert!(!ok && output.contains("RFC 3339"), "{output}");
}
