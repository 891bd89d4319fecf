//! The request-tracking layer: route templates, fallback, trace ids, attached errors.

use aiops_client::{track_requests, AiopsClient, RequestRecord, ServiceError};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower::ServiceExt;

use crate::fake_core::{eventually, FakeCore};
use crate::test_config;

async fn failing() -> impl IntoResponse {
    let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
    response.extensions_mut().insert(ServiceError {
        kind: "database".into(),
        message: "pool timed out while waiting for an open connection".into(),
        route: None,
    });
    response
}

#[tokio::test]
async fn records_route_templates_statuses_and_trace_ids_never_raw_paths() {
    let core = FakeCore::start().await;
    let client = AiopsClient::start(test_config(&core.url)).unwrap();
    let app = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .route("/failing", get(failing))
        .layer(track_requests(client.clone()));

    let requests = [
        Request::get("/items/42")
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .body(Body::empty())
            .unwrap(),
        Request::get("/items/43").body(Body::empty()).unwrap(),
        Request::get("/no/such/path/17").body(Body::empty()).unwrap(),
        Request::post("/items/44").body(Body::empty()).unwrap(),
        Request::get("/failing").body(Body::empty()).unwrap(),
    ];
    for request in requests {
        app.clone().oneshot(request).await.unwrap();
    }

    let rec = &core.recorded;
    eventually("six events arrived", || rec.events().len() == 6).await;
    let events = rec.events();
    let records: Vec<RequestRecord> = events
        .iter()
        .filter(|e| e.event_type == aiops_client::event_type::HTTP_REQUEST)
        .map(|e| e.payload().unwrap())
        .collect();
    let seen: Vec<(&str, &str, u16)> =
        records.iter().map(|r| (r.method.as_str(), r.route.as_str(), r.status)).collect();
    assert_eq!(
        seen,
        [
            ("GET", "/items/{id}", 200),
            ("GET", "/items/{id}", 200),
            ("GET", "unmatched", 404),
            ("POST", "/items/{id}", 405),
            ("GET", "/failing", 503),
        ]
    );
    assert_eq!(records[0].trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(records[1].trace_id, None);
    assert!(records.iter().all(|r| r.duration_ms >= 0.0));

    let errors: Vec<ServiceError> = events
        .iter()
        .filter(|e| e.event_type == aiops_client::event_type::SERVICE_ERROR)
        .map(|e| e.payload().unwrap())
        .collect();
    assert_eq!(
        errors,
        [ServiceError {
            kind: "database".into(),
            message: "pool timed out while waiting for an open connection".into(),
            route: Some("/failing".into()),
        }]
    );
    client.shutdown().await;
}
