//! Dead letters can be listed and re-driven through the API.

use std::time::Duration;

use aiops_events::{EmbeddedConfig, EmbeddedEventBus, EventBusExt, Subscription};
use aiops_model::Envelope;
use aiops_server::router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::support::{state, ADMIN_TOKEN, READ_TOKEN};

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_dead_letter_is_listed_and_redriven_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut api = state(dir.path()).await;
    // A bus that gives up after two deliveries, so the test makes a dead letter quickly.
    let config = EmbeddedConfig { max_deliveries: 2, visibility_timeout_ms: 50, ..EmbeddedConfig::default() };
    api.bus = std::sync::Arc::new(EmbeddedEventBus::open(&dir.path().join("events2"), config).await.unwrap());
    let control = api.streams.control.clone();
    let poison = Envelope::new("t", "test.poison", serde_json::json!({ "n": 7 }));
    api.bus.publish_one(&control, poison.clone()).await.unwrap();
    let sub = Subscription::new(control.clone(), "g", "c");
    for _ in 0..4 {
        for delivery in api.bus.receive(&sub, 1, Duration::from_millis(200)).await.unwrap() {
            api.bus.nack(&sub, delivery.offset, Duration::ZERO).await.unwrap();
        }
    }
    let app = router(api.clone());
    let (status, body) = call(&app, "GET", "/v1/dead-letters?stream=control", READ_TOKEN, "").await;
    assert_eq!(status, StatusCode::OK);
    let letters = body["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{body}");
    assert_eq!(letters[0]["event"]["data"]["event"]["id"], poison.id);
    let offset = letters[0]["offset"].as_u64().unwrap();

    let (status, _) =
        call(&app, "POST", "/v1/dead-letters/redrive", READ_TOKEN, &format!("{{\"offsets\":[{offset}]}}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "re-driving needs the admin scope");
    let mixed = format!("{{\"stream\":\"control\",\"offsets\":[{offset},99]}}");
    let (status, body) = call(&app, "POST", "/v1/dead-letters/redrive", ADMIN_TOKEN, &mixed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(api.bus.last_offset(&control).await.unwrap(), 1, "all or nothing: the letter that exists stayed put");
    let redrive = format!("{{\"stream\":\"control\",\"offsets\":[{offset}]}}");
    let (status, body) = call(&app, "POST", "/v1/dead-letters/redrive", ADMIN_TOKEN, &redrive).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, again) = call(&app, "POST", "/v1/dead-letters/redrive", ADMIN_TOKEN, &redrive).await;
    assert_eq!(body["redriven"][0]["offset"], again["redriven"][0]["offset"], "a letter is re-driven once");
    assert_eq!(api.bus.last_offset(&control).await.unwrap(), 2);
    let (status, body) = call(&app, "POST", "/v1/dead-letters/redrive", ADMIN_TOKEN, "{\"offsets\":[99]}").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}
