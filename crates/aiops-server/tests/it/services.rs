//! The registry routes: registration errors and scopes, healthy-only lookups, blocking
//! watches, load-balanced picks and the dependency graph.

use std::time::Duration;

use aiops_model::HealthStatus;
use aiops_registry::CheckRecord;
use aiops_server::{router, ApiState};
use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::support::{call, state, ADMIN_TOKEN, READ_TOKEN};

const INGEST_TOKEN: &str = "ingest-secret-0123456789";

fn instance(name: &str, id: &str) -> Value {
    json!({ "name": name, "instance_id": id, "address": format!("http://127.0.0.1:1/{id}") })
}

/// Makes an instance's one check critical, as the health checker would.
async fn fail(state: &ApiState, id: &str) {
    let claimed = state.registry.claim_due_checks("test", Duration::from_secs(10), 100).await.unwrap();
    for due in claimed.into_iter().filter(|d| d.instance.registration.instance_id == id) {
        let record = CheckRecord {
            instance_id: id.into(),
            check_id: due.state.id.clone(),
            status: HealthStatus::Critical,
            output: "down".into(),
            failures: 2,
            successes: 0,
            next_due: chrono::Utc::now() + chrono::Duration::hours(1),
            heartbeat_lost: false,
        };
        state.registry.record_check("test", record).await.unwrap();
    }
}

#[tokio::test]
async fn bad_registrations_get_precise_errors_and_commands_need_admin() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(state(dir.path()).await);
    let cases = [
        (
            json!({ "name": "web", "address": "http://h:1" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `instance_id`",
        ),
        (json!({ "name": "web", "instance_id": "w", "address": "h:1" }), StatusCode::UNPROCESSABLE_ENTITY, "address"),
        (
            json!({ "name": "web", "instance_id": "w", "address": "http://h:1", "checks": [{"kind": "smtp"}] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown variant `smtp`",
        ),
        (
            json!({ "name": "web", "instance_id": "w", "address": "http://h:1", "colour": "red" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `colour`",
        ),
    ];
    for (body, expected, needle) in cases {
        let (status, answer) = call(&app, "POST", "/v1/services", INGEST_TOKEN, body).await;
        assert_eq!(status, expected, "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(needle), "{answer}");
    }
    let mut with_command = instance("web", "w");
    with_command["checks"] = json!([{ "kind": "command", "argv": ["true"] }]);
    let (status, _) = call(&app, "POST", "/v1/services", INGEST_TOKEN, with_command.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a command check runs on the core's machine");
    let (status, answer) = call(&app, "POST", "/v1/services", ADMIN_TOKEN, with_command).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["check_states"][0]["id"], "command-1");
    // So does a `host.` capability: command tools act on a service that advertises one
    // (`systemctl start <its name>` on the core's machine).
    let mut host_started = instance("web", "w2");
    host_started["capabilities"] = json!(["cache.clear", "host.start"]);
    let (status, _) = call(&app, "POST", "/v1/services", INGEST_TOKEN, host_started.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a host. capability lets the core run programs for it");
    let (status, answer) = call(&app, "POST", "/v1/services", ADMIN_TOKEN, host_started).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = call(&app, "DELETE", "/v1/services/nope", INGEST_TOKEN, Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lookups_are_healthy_only_by_default_and_watches_wake_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let app = router(state.clone());
    call(&app, "POST", "/v1/services", INGEST_TOKEN, instance("web", "w1")).await;
    let mut checked = instance("web", "w2");
    checked["ttl_secs"] = json!(30);
    call(&app, "POST", "/v1/services", INGEST_TOKEN, checked).await;
    let (_, healthy) = call(&app, "GET", "/v1/services?name=web", READ_TOKEN, Value::Null).await;
    assert_eq!(healthy["services"].as_array().unwrap().len(), 1, "w2 awaits its first check");
    let (_, all) = call(&app, "GET", "/v1/services?name=web&healthy=false", READ_TOKEN, Value::Null).await;
    assert_eq!(all["services"].as_array().unwrap().len(), 2);
    let index = all["index"].as_u64().unwrap();

    // Nothing changes: the watch answers at its wait with the same index.
    let started = std::time::Instant::now();
    let (_, unchanged) =
        call(&app, "GET", &format!("/v1/services?index={index}&wait_ms=300"), READ_TOKEN, Value::Null).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(unchanged["index"].as_u64(), Some(index));

    // A change while the watch blocks wakes it with the new state.
    let watch = {
        let app = app.clone();
        tokio::spawn(async move {
            call(
                &app,
                "GET",
                &format!("/v1/services?index={index}&wait_ms=10000&healthy=false"),
                READ_TOKEN,
                Value::Null,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = call(&app, "DELETE", "/v1/services/w1", INGEST_TOKEN, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let (_, woke) = tokio::time::timeout(Duration::from_secs(5), watch).await.unwrap().unwrap();
    assert!(woke["index"].as_u64().unwrap() > index);
    let ids: Vec<&str> =
        woke["services"].as_array().unwrap().iter().map(|s| s["instance_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["w2"]);
    // An index from another database (ahead of this one) answers at once: the watcher resets.
    let started = std::time::Instant::now();
    let (_, reset) = call(&app, "GET", "/v1/services?index=999999&wait_ms=10000", READ_TOKEN, Value::Null).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(reset["index"].as_u64().unwrap() < 999_999);
    let (status, _) = call(&app, "GET", "/v1/services?index=0&wait_ms=300001", READ_TOKEN, Value::Null).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn picks_are_health_aware_under_every_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let app = router(state.clone());
    for id in ["a1", "a2"] {
        call(&app, "POST", "/v1/services", INGEST_TOKEN, instance("api", id)).await;
    }
    let mut sick = instance("api", "a3");
    sick["ttl_secs"] = json!(30);
    sick["weight"] = json!(1000);
    call(&app, "POST", "/v1/services", INGEST_TOKEN, sick).await;
    fail(&state, "a3").await;

    let pick = |query: &'static str| {
        let app = app.clone();
        async move {
            let (status, body) =
                call(&app, "GET", &format!("/v1/services/api/pick{query}"), READ_TOKEN, Value::Null).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["instance"]["instance_id"].as_str().unwrap().to_owned()
        }
    };
    let rr: Vec<String> = futures_util::future::join_all((0..4).map(|_| pick(""))).await;
    assert_eq!(rr.iter().filter(|id| *id == "a1").count(), 2, "{rr:?}");
    assert!(!rr.contains(&"a3".to_owned()), "never a critical instance");
    for _ in 0..20 {
        assert_ne!(pick("?strategy=weighted_random").await, "a3", "weight never beats health");
    }
    let first = pick("?strategy=consistent_hash&key=user-42").await;
    for _ in 0..5 {
        assert_eq!(pick("?strategy=consistent_hash&key=user-42").await, first);
    }
    let one = pick("?strategy=least_outstanding").await;
    let two = pick("?strategy=least_outstanding").await;
    assert_ne!(one, two, "the second pick goes to the idle instance");
    let (_, released) = call(&app, "POST", &format!("/v1/services/{one}/release"), READ_TOKEN, Value::Null).await;
    assert_eq!(released["outstanding"], 0);
    assert_eq!(pick("?strategy=least_outstanding").await, one, "released: it is the least busy again");

    let (status, body) = call(&app, "GET", "/v1/services/api/pick?strategy=fastest", READ_TOKEN, Value::Null).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"].as_str().unwrap().contains("round_robin"), "{body}");
    let (status, _) = call(&app, "GET", "/v1/services/nope/pick", READ_TOKEN, Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut lone = instance("db", "d1");
    lone["ttl_secs"] = json!(30);
    call(&app, "POST", "/v1/services", INGEST_TOKEN, lone).await;
    fail(&state, "d1").await;
    let (status, body) = call(&app, "GET", "/v1/services/db/pick", READ_TOKEN, Value::Null).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn the_graph_shows_dependencies_and_who_a_failure_impacts() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let app = router(state.clone());
    let mut web = instance("web", "w1");
    web["dependencies"] = json!(["api"]);
    let mut api = instance("api", "a1");
    api["dependencies"] = json!(["db", "cache"]);
    let mut db = instance("db", "d1");
    db["ttl_secs"] = json!(30);
    for body in [web, api, db] {
        call(&app, "POST", "/v1/services", INGEST_TOKEN, body).await;
    }
    fail(&state, "d1").await;
    let (status, graph) = call(&app, "GET", "/v1/registry/graph", READ_TOKEN, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = graph["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["api", "cache", "db", "web"]);
    assert_eq!(graph["services"][1]["status"], Value::Null, "cache is depended on but unregistered");
    assert_eq!(graph["edges"].as_array().unwrap().len(), 3);
    let impacted = graph["impacted"].as_array().unwrap();
    let web_impact = impacted.iter().find(|i| i["service"] == "web").unwrap();
    assert_eq!(web_impact["failing_dependencies"][0]["path"], json!(["web", "api", "db"]));
    assert_eq!(web_impact["failing_dependencies"][0]["status"], "critical");
}

/// `service.registered` says whether the instance was registered already: a new process
/// that registers while the old registration stands means the old one crashed.
#[tokio::test]
async fn registration_events_say_whether_a_standing_instance_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let app = router(state.clone());
    for _ in 0..2 {
        call(&app, "POST", "/v1/services", INGEST_TOKEN, instance("web", "w1")).await;
    }
    call(&app, "DELETE", "/v1/services/w1", INGEST_TOKEN, Value::Null).await;
    call(&app, "POST", "/v1/services", INGEST_TOKEN, instance("web", "w1")).await;
    let events = state
        .bus
        .read(&state.streams.control, &aiops_events::ReadQuery { limit: 100, ..Default::default() })
        .await
        .unwrap();
    let restarted: Vec<(String, bool)> = events
        .iter()
        .filter(|e| e.event.event_type == "service.registered")
        .map(|e| (e.event.data["instance_id"].as_str().unwrap().to_owned(), e.event.data["restarted"] == true))
        .collect();
    let expected = [("w1", false), ("w1", true), ("w1", false)].map(|(id, r)| (id.to_owned(), r));
    assert_eq!(restarted, expected, "a registration after a clean deregistration is no restart");
}
