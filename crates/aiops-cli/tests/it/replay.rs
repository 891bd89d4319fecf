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

/// A history from three hours ago, written straight into the event log: the replay runs on
/// the history's clock, so what it detects pairs with what was recorded then, and a metric
/// anomaly held for a stronger symptom becomes a problem once the recorded time passes its
/// hold.
#[tokio::test]
async fn an_old_history_is_replayed_on_its_own_clock() {
    use aiops_events::{EmbeddedConfig, EmbeddedEventBus, EventBus};
    use aiops_model::{event_type, Envelope, Problem, ProblemKind, Severity};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let streams = aiops_agents::Streams::default();
    let start = chrono::Utc::now() - chrono::Duration::hours(3);
    let at = |ms: i64| start + chrono::Duration::milliseconds(ms);
    let event = |subject: &str, kind: &str, data: Value, ms: i64| {
        let mut event = Envelope::new(format!("{subject}/1"), kind, data).with_subject(subject);
        event.time = at(ms);
        event
    };
    let mut telemetry = Vec::new();
    // A connection-pool gauge once a second for 11 minutes, calm but for one spike at 10:00.
    for n in 0..660 {
        let value = if n == 600 { 40.0 } else { 4.0 + 2.0 * (n as f64 / 30.0).sin() + (n % 3) as f64 * 0.1 };
        telemetry.push(event(
            "db",
            event_type::METRIC_SAMPLE,
            json!({ "name": "db_pool_in_use", "value": value }),
            n * 1000,
        ));
    }
    // At 12:00, 40 requests in 4 s, 30% of them failing.
    for n in 0..40 {
        let status = if n % 10 < 3 { 500 } else { 200 };
        let request = json!({ "method": "GET", "route": "/cart", "status": status, "duration_ms": 12.0 });
        telemetry.push(event("shop", event_type::HTTP_REQUEST, request, 720_000 + n * 100));
    }
    // What the live core recorded then.
    let recorded = Problem {
        id: "recorded-1".into(),
        service: "shop".into(),
        instance_id: None,
        kind: ProblemKind::HttpErrorRatio,
        severity: Severity::Error,
        summary: "30% of requests failed".into(),
        detected_at: at(722_000),
        first_seen: at(720_000),
        evidence: Vec::new(),
        metrics: Default::default(),
    };
    {
        let bus = EmbeddedEventBus::open(&data.join("events"), EmbeddedConfig::default()).await.unwrap();
        for batch in telemetry.chunks(500) {
            bus.publish(&streams.telemetry, batch.to_vec()).await.unwrap();
        }
        let detected = event("shop", event_type::PROBLEM_DETECTED, serde_json::to_value(&recorded).unwrap(), 722_000);
        bus.publish(&streams.control, vec![detected]).await.unwrap();
    }

    let (ok, report, output) = replay(data.to_str().unwrap(), &[]).await;
    assert!(ok, "{output}");
    assert_eq!(report["counts"]["events"], 700, "{output}");
    assert_eq!(
        (report["counts"]["matched"].as_u64(), report["counts"]["missed"].as_u64()),
        (Some(1), Some(0)),
        "the replayed error burst pairs with the one recorded three hours ago: {output}"
    );
    let anomaly = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "metric_anomaly")
        .unwrap_or_else(|| panic!("the held anomaly never became a problem: {output}"));
    assert_eq!(anomaly["service"], "db");
    let detected: chrono::DateTime<chrono::Utc> = serde_json::from_value(anomaly["detected_at"].clone()).unwrap();
    assert!(
        detected >= at(630_000) && detected <= at(660_000),
        "held for 30 s of recorded time after the spike at 10:00, then opened: {detected} (start {start})"
    );
}
