//! `serve` on a real listener reporting to a fake AI-Ops core over real HTTP: registration,
//! request events with route templates, 5xx causes, domain events, deregistration.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiops_model::{event_type, Envelope, RequestRecord, ServiceError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post, put};
use axum::{Json, Router};
use bookmarks::BookmarksConfig;
use serde_json::{json, Value};

#[derive(Default)]
struct Core {
    registrations: Mutex<Vec<Value>>,
    events: Mutex<Vec<Envelope>>,
    deregistrations: Mutex<Vec<String>>,
}

async fn start_core() -> (String, Arc<Core>) {
    let core = Arc::new(Core::default());
    let app = Router::new()
        .route(
            "/v1/services",
            post(|State(core): State<Arc<Core>>, Json(body): Json<Value>| async move {
                core.registrations.lock().unwrap().push(body);
                StatusCode::CREATED
            }),
        )
        .route("/v1/services/{id}/heartbeat", put(|| async { StatusCode::OK }))
        .route(
            "/v1/services/{id}",
            delete(|State(core): State<Arc<Core>>, Path(id): Path<String>| async move {
                core.deregistrations.lock().unwrap().push(id);
                StatusCode::OK
            }),
        )
        .route(
            "/v1/events/batch",
            post(|State(core): State<Arc<Core>>, Json(events): Json<Vec<Envelope>>| async move {
                let accepted = events.len();
                core.events.lock().unwrap().extend(events);
                (StatusCode::ACCEPTED, Json(json!({ "accepted": accepted })))
            }),
        )
        .with_state(Arc::clone(&core));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, core)
}

#[tokio::test]
async fn serve_registers_reports_requests_errors_and_domain_events() {
    let (core_url, core) = start_core().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = BookmarksConfig::new(dir.path().join("b.db"));
    config.aiops_url = Some(core_url);
    config.pool_size = 2;
    config.acquire_timeout_ms = 100;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bookmarks::serve(config, listener, async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{addr}");
    let created: Value = http
        .post(format!("{base}/api/bookmarks"))
        .json(&json!({"url": "https://a.example", "tags": ["x"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let status = http.get(format!("{base}/api/bookmarks/{id}")).send().await.unwrap().status();
    assert_eq!(status, 200);
    http.post(format!("{base}/admin/faults")).json(&json!({"fault": "db_pool_exhausted"})).send().await.unwrap();
    let status = http.get(format!("{base}/api/bookmarks?q=a")).send().await.unwrap().status();
    assert_eq!(status, 503);
    http.post(format!("{base}/admin/db/reset-pool")).send().await.unwrap();
    let status = http.delete(format!("{base}/api/bookmarks/{id}")).send().await.unwrap().status();
    assert_eq!(status, 204);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();

    let instance_id = format!("bookmarks-127-0-0-1-{}", addr.port());
    let registration = core.registrations.lock().unwrap()[0].clone();
    assert_eq!(
        registration,
        json!({
            "name": "bookmarks",
            "instance_id": instance_id,
            "address": base,
            "tags": [],
            "capabilities": bookmarks::CAPABILITIES,
            "metadata": { "web_app": "bookmarks-web", "openapi": "/openapi.json" },
            "dependencies": ["sqlite"],
            "health_url": format!("{base}/health"),
            "ttl_secs": 3,
        })
    );
    assert_eq!(*core.deregistrations.lock().unwrap(), [instance_id.as_str()]);

    let events = core.events.lock().unwrap().clone();
    let source = format!("bookmarks/{instance_id}");
    assert!(events.iter().all(|e| e.source == source && e.subject.as_deref() == Some("bookmarks")));
    let requests: Vec<(String, String, u16)> = events
        .iter()
        .filter(|e| e.event_type == event_type::HTTP_REQUEST)
        .map(|e| {
            let r: RequestRecord = e.payload().unwrap();
            (r.method, r.route, r.status)
        })
        .collect();
    let expected: Vec<(String, String, u16)> = [
        ("POST", "/api/bookmarks", 201),
        ("GET", "/api/bookmarks/{id}", 200),
        ("POST", "/admin/faults", 200),
        ("GET", "/api/bookmarks", 503),
        ("POST", "/admin/db/reset-pool", 200),
        ("DELETE", "/api/bookmarks/{id}", 204),
    ]
    .iter()
    .map(|(m, r, s)| ((*m).to_owned(), (*r).to_owned(), *s))
    .collect();
    assert_eq!(requests, expected);

    let errors: Vec<ServiceError> =
        events.iter().filter(|e| e.event_type == event_type::SERVICE_ERROR).map(|e| e.payload().unwrap()).collect();
    assert_eq!(
        errors,
        [ServiceError {
            kind: "database".into(),
            message: "pool timed out while waiting for an open connection".into(),
            route: Some("/api/bookmarks".into()),
        }]
    );
    // Gauges are reported from the start (then every second).
    let gauges: std::collections::BTreeSet<String> = events
        .iter()
        .filter(|e| e.event_type == event_type::METRIC_SAMPLE)
        .map(|e| e.payload::<aiops_model::MetricSample>().unwrap())
        .inspect(|sample| assert!(sample.value >= 0.0, "{sample:?}"))
        .map(|sample| sample.name)
        .collect();
    assert_eq!(gauges, ["db_pool_in_use", "leaked_bytes", "spool_bytes"].map(String::from).into());
    let domain: Vec<(&str, &Value)> = events
        .iter()
        .filter(|e| e.event_type.starts_with("bookmark."))
        .map(|e| (e.event_type.as_str(), &e.data))
        .collect();
    assert_eq!(
        domain,
        [
            ("bookmark.created", &json!({"id": id, "url": "https://a.example"})),
            ("bookmark.deleted", &json!({"id": id})),
        ]
    );
}
