//! Injected faults behave like the real failures and are repaired only by the right action.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{error_code, test_app, TestApp};

async fn small_pool_app() -> TestApp {
    test_app(|config| {
        config.pool_size = 2;
        config.acquire_timeout_ms = 100;
    })
    .await
}

#[tokio::test]
async fn leaked_connections_fail_requests_until_the_pool_is_reset() {
    let app = small_pool_app().await;
    let created = app.call(Method::POST, "/api/bookmarks", Some(json!({"url": "https://a.example"}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_i64().unwrap();

    let injected = app.call(Method::POST, "/admin/faults", Some(json!({"fault": "db_pool_exhausted"}))).await;
    assert_eq!(injected.status, StatusCode::OK, "{}", injected.body);
    assert_eq!(injected.body["active"], json!(["db_pool_exhausted"]));
    assert_eq!(injected.body["leaked_connections"], 2);

    // Requests fail through the normal error path with sqlx's own pool timeout.
    let list = app.call(Method::GET, "/api/bookmarks", None).await;
    assert_eq!(list.status, StatusCode::SERVICE_UNAVAILABLE, "{}", list.body);
    assert_eq!(error_code(&list), "unavailable");
    let cause = list.error_cause.expect("a 503 carries its cause for the aiops layer");
    assert_eq!(cause.kind, "database");
    assert_eq!(cause.message, "pool timed out while waiting for an open connection");
    assert_eq!(
        app.call(Method::GET, &format!("/api/bookmarks/{id}"), None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let write = app.call(Method::POST, "/api/bookmarks", Some(json!({"url": "https://b.example"}))).await;
    assert_eq!(write.status, StatusCode::SERVICE_UNAVAILABLE);
    let health = app.call(Method::GET, "/health", None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.body["status"], "unavailable");
    assert_eq!(health.body["error"], "pool timed out while waiting for an open connection");

    // The wrong remediations do not help.
    let cleared = app.call(Method::POST, "/admin/cache/clear", None).await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert_eq!(app.call(Method::GET, "/api/bookmarks", None).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.call(Method::GET, "/health", None).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let none = app.call(Method::POST, "/admin/faults", Some(json!({"fault": "none"}))).await;
    assert_eq!(none.body["leaked_connections"], 2, "`none` does not release leaked connections");
    assert_eq!(app.call(Method::GET, "/health", None).await.status, StatusCode::SERVICE_UNAVAILABLE);

    // The right one does.
    let reset = app.call(Method::POST, "/admin/db/reset-pool", None).await;
    assert_eq!(reset.status, StatusCode::OK);
    assert_eq!(reset.body["released"], 2);
    assert_eq!(app.call(Method::GET, "/health", None).await.status, StatusCode::OK);
    let list = app.call(Method::GET, "/api/bookmarks", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["bookmarks"][0]["id"], id, "no data was lost");
    let faults = app.call(Method::GET, "/admin/faults", None).await;
    assert_eq!(faults.body["active"], json!([]));
    assert_eq!(faults.body["leaked_connections"], 0);
}

#[tokio::test]
async fn slow_responses_delay_api_handlers_until_cleared() {
    let app = small_pool_app().await;
    let injected =
        app.call(Method::POST, "/admin/faults", Some(json!({"fault": "slow_responses", "delay_ms": 800}))).await;
    assert_eq!(injected.status, StatusCode::OK);
    assert_eq!(injected.body["active"], json!(["slow_responses"]));
    assert_eq!(injected.body["slow_delay_ms"], 800);

    let started = Instant::now();
    assert_eq!(app.call(Method::GET, "/api/bookmarks", None).await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(800), "API handlers are slowed");
    let started = Instant::now();
    assert_eq!(app.call(Method::GET, "/health", None).await.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(800), "health is not an API handler");

    let bad = app.call(Method::POST, "/admin/faults", Some(json!({"fault": "slow_responses", "delay_ms": 0}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    let cleared = app.call(Method::POST, "/admin/faults", Some(json!({"fault": "none"}))).await;
    assert_eq!(cleared.body["active"], json!([]));
    let started = Instant::now();
    app.call(Method::GET, "/api/bookmarks?q=fresh", None).await;
    assert!(started.elapsed() < Duration::from_millis(800));
}

/// Each scenario fault breaks what it breaks, shows in `/health`, reports its cause, and only
/// its own repair ends it.
#[tokio::test]
async fn each_scenario_fault_is_repaired_by_its_own_admin_endpoint_only() {
    let app = test_app(|_| {}).await;
    let tagged = || Some(json!({"url": "https://tagged.example", "tags": ["rust"]}));
    let cases: [(&str, &str, &str, &str); 4] = [
        ("bad_release", "/admin/deploy/rollback", "release", "new version, deployed today"),
        ("disk_full", "/admin/disk/cleanup", "disk", "No space left on device (os error 28)"),
        ("memory_leak", "/admin/restart", "memory", "cannot allocate memory"),
        ("bad_config", "/admin/config/rollback", "config", "invalid setting in configuration"),
    ];
    let repairs = [
        "/admin/deploy/rollback",
        "/admin/disk/cleanup",
        "/admin/restart",
        "/admin/config/rollback",
        "/admin/db/maintenance",
    ];
    for (fault, repair, kind, cause) in cases {
        let injected = app.call(Method::POST, "/admin/faults", Some(json!({ "fault": fault }))).await;
        assert_eq!(injected.status, StatusCode::OK, "{}", injected.body);
        // Drive the requests that break (the leak needs a few to fill the heap).
        let mut failure = None;
        for n in 0..200 {
            let answer = if n % 2 == 0 {
                app.call(Method::GET, "/api/bookmarks?q=rust", None).await
            } else {
                app.call(Method::POST, "/api/bookmarks", tagged()).await
            };
            if answer.status == StatusCode::INTERNAL_SERVER_ERROR {
                failure = Some(answer);
                break;
            }
        }
        let failure = failure.unwrap_or_else(|| panic!("{fault} broke nothing"));
        let reported = failure.error_cause.expect("the cause goes to the AI-Ops layer");
        assert_eq!(reported.kind, kind);
        assert!(reported.message.contains(cause), "{fault}: {}", reported.message);
        assert_eq!(failure.body["error"]["message"], "internal error", "the cause stays out of the body");
        let health = app.call(Method::GET, "/health", None).await;
        assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{fault}: {}", health.body);
        // Every other repair leaves it broken.
        for wrong in repairs.iter().filter(|r| **r != repair) {
            app.call(Method::POST, wrong, None).await;
            assert_eq!(
                app.call(Method::GET, "/health", None).await.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{fault} after {wrong}"
            );
        }
        let repaired = app.call(Method::POST, repair, None).await;
        assert_eq!(repaired.status, StatusCode::OK, "{}", repaired.body);
        assert_eq!(app.call(Method::GET, "/health", None).await.status, StatusCode::OK, "{fault} after {repair}");
        assert_eq!(app.call(Method::GET, "/api/bookmarks?q=rust", None).await.status, StatusCode::OK);
        assert_eq!(app.call(Method::POST, "/api/bookmarks", tagged()).await.status, StatusCode::CREATED);
        let faults = app.call(Method::GET, "/admin/faults", None).await;
        assert_eq!(faults.body["active"], json!([]), "{fault}");
    }
}

#[tokio::test]
async fn slow_queries_scan_the_table_until_the_indexes_are_rebuilt() {
    let app = test_app(|_| {}).await;
    app.call(Method::POST, "/admin/faults", Some(json!({"fault": "slow_queries"}))).await;
    let started = Instant::now();
    assert_eq!(app.call(Method::GET, "/api/bookmarks?q=rust", None).await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(1200), "a search scans the whole table");
    let health = app.call(Method::GET, "/health", None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(health.body["error"].as_str().unwrap().contains("full table scan"), "{}", health.body);
    for wrong in ["/admin/db/reset-pool", "/admin/cache/clear", "/admin/restart"] {
        app.call(Method::POST, wrong, None).await;
        assert_eq!(app.call(Method::GET, "/health", None).await.status, StatusCode::SERVICE_UNAVAILABLE, "{wrong}");
    }
    let rebuilt = app.call(Method::POST, "/admin/db/maintenance", None).await;
    assert_eq!(rebuilt.body["indexes_rebuilt"], 1);
    assert_eq!(app.call(Method::GET, "/health", None).await.status, StatusCode::OK);
    let started = Instant::now();
    app.call(Method::GET, "/api/bookmarks?q=rust", None).await;
    assert!(started.elapsed() < Duration::from_millis(500));
}
