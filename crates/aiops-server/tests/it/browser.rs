//! Browser reports: only allowed origins, only the strict format, only so fast, and nothing
//! of a refused batch is stored; traces join the browser's and the back end's records.

use std::sync::Arc;

use aiops_events::ReadQuery;
use aiops_server::{router, ApiState, BrowserIngest};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::{state, READ_TOKEN};

const PAGE: &str = "http://127.0.0.1:8080";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn post(
    app: &Router,
    origin: Option<&str>,
    content_type: &str,
    body: String,
) -> (StatusCode, Value, Option<String>) {
    let mut request = Request::builder().method("POST").uri("/v1/browser/events").header("content-type", content_type);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = app.clone().oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    let cors = response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), cors)
}

fn failed_search() -> Value {
    json!({ "type": "request", "method": "GET", "path": "/api/bookmarks", "status": 500, "duration_ms": 14,
            "trace_id": TRACE, "error": "{\"error\":{\"code\":\"internal\"}}", "page": "/", "at": 1 })
}

async fn telemetry(state: &ApiState) -> Vec<aiops_events::StoredEvent> {
    state.bus.read(&state.streams.telemetry, &ReadQuery { limit: 100, ..ReadQuery::default() }).await.unwrap()
}

#[tokio::test]
async fn only_allowed_pages_may_report_and_bad_batches_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = state(dir.path()).await;
    state.browser = Arc::new(BrowserIngest::new(vec![PAGE.into()], 2.0));
    let app = router(state.clone());
    let batch = |events: Vec<Value>| json!({ "app": "bookmarks-web", "events": events }).to_string();

    let cases = [
        (None, "text/plain", batch(vec![failed_search()]), StatusCode::FORBIDDEN, "need an Origin header"),
        (
            Some("http://evil.example"),
            "text/plain",
            batch(vec![failed_search()]),
            StatusCode::FORBIDDEN,
            "may not send",
        ),
        (
            Some(PAGE),
            "application/xml",
            batch(vec![failed_search()]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "text/plain or application/json",
        ),
        (Some(PAGE), "text/plain", "{not json".into(), StatusCode::UNPROCESSABLE_ENTITY, "browser batch"),
        // Past the API's body limit too: still a JSON error, not the framework's plain text.
        (Some(PAGE), "text/plain", "x".repeat(2 << 20), StatusCode::PAYLOAD_TOO_LARGE, "at most"),
    ];
    for (origin, content_type, body, expected, needle) in cases {
        let (status, answer, _) = post(&app, origin, content_type, body).await;
        assert_eq!(status, expected, "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(needle), "{answer}");
    }
    let mut with_cookie = failed_search();
    with_cookie["cookie"] = json!("secret");
    let (status, answer, _) = post(&app, Some(PAGE), "text/plain", batch(vec![with_cookie])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer["error"]["message"].as_str().unwrap().contains("unknown field `cookie`"), "{answer}");
    assert!(telemetry(&state).await.is_empty(), "nothing of a refused batch is stored");

    let (status, answer, cors) = post(&app, Some(PAGE), "text/plain;charset=UTF-8", batch(vec![failed_search()])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["accepted"], 1);
    assert_eq!(cors.as_deref(), Some(PAGE), "the page may read the answer");
    let stored = telemetry(&state).await;
    assert_eq!(stored.len(), 1);
    let event = &stored[0].event;
    assert_eq!((event.event_type.as_str(), event.subject.as_deref()), ("browser.request", Some("bookmarks-web")));
    assert_eq!(event.source, "browser/bookmarks-web");
    assert_eq!(event.data["trace_id"], TRACE);

    // Four batches spent the burst (2 per second, bursts of 4), refused ones included.
    let (status, _, _) = post(&app, Some(PAGE), "text/plain", batch(vec![failed_search()])).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, answer, _) = post(&app, Some(PAGE), "text/plain", batch(vec![failed_search()])).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("slow down"), "{answer}");
}

#[tokio::test]
async fn a_trace_joins_the_browsers_record_with_the_back_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = state(dir.path()).await;
    state.browser = Arc::new(BrowserIngest::new(vec!["*".into()], 20.0));
    let app = router(state.clone());
    let body = json!({ "app": "bookmarks-web", "events": [failed_search()] }).to_string();
    let (status, _, _) = post(&app, Some(PAGE), "text/plain", body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let server_side = aiops_model::Envelope::new(
        "bookmarks/1",
        "http.request",
        json!({ "method": "GET", "route": "/api/bookmarks", "status": 500, "duration_ms": 3.0, "trace_id": TRACE }),
    )
    .with_subject("bookmarks");
    state.bus.publish(&state.streams.telemetry, vec![server_side]).await.unwrap();

    let get = |path: String| {
        let app = app.clone();
        async move {
            let request = Request::builder()
                .uri(path)
                .header("authorization", format!("Bearer {READ_TOKEN}"))
                .body(Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let (status, trace) = get(format!("/v1/traces/{}", TRACE.to_uppercase())).await;
    assert_eq!(status, StatusCode::OK, "{trace}");
    assert_eq!(trace["browser"][0]["data"]["status"], 500);
    assert_eq!(trace["server"][0]["data"]["route"], "/api/bookmarks");
    let (status, _) = get("/v1/traces/nothex".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(format!("/v1/traces/{}", "a".repeat(32))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
