//! A tiny AI-Ops core speaking the real wire format over real HTTP, recording what it gets.
//!
//! It implements only the endpoints the client calls, with switches to make the event
//! endpoint fail (503) or refuse (400), and to forget registered instances (as a restarted
//! core would).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiops_client::Envelope;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub(crate) struct Recorded {
    pub(crate) registrations: Mutex<Vec<Value>>,
    pub(crate) heartbeats: Mutex<Vec<String>>,
    pub(crate) deregistrations: Mutex<Vec<String>>,
    pub(crate) batches: Mutex<Vec<Vec<Envelope>>>,
    pub(crate) known: Mutex<BTreeSet<String>>,
    pub(crate) batch_attempts: AtomicUsize,
    pub(crate) fail_events: AtomicBool,
    pub(crate) refuse_events: AtomicBool,
}

impl Recorded {
    pub(crate) fn events(&self) -> Vec<Envelope> {
        self.batches.lock().unwrap().iter().flatten().cloned().collect()
    }

    pub(crate) fn forget_all_instances(&self) {
        self.known.lock().unwrap().clear();
    }
}

pub(crate) struct FakeCore {
    pub(crate) url: String,
    pub(crate) recorded: Arc<Recorded>,
}

impl FakeCore {
    pub(crate) async fn start() -> Self {
        let recorded = Arc::new(Recorded::default());
        let app = Router::new()
            .route("/v1/services", post(register))
            .route("/v1/services/{id}/heartbeat", put(heartbeat))
            .route("/v1/services/{id}", delete(deregister))
            .route("/v1/events/batch", post(batch))
            .with_state(Arc::clone(&recorded));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, recorded }
    }
}

async fn register(State(rec): State<Arc<Recorded>>, Json(body): Json<Value>) -> StatusCode {
    let id = body["instance_id"].as_str().unwrap().to_owned();
    rec.known.lock().unwrap().insert(id);
    rec.registrations.lock().unwrap().push(body);
    StatusCode::CREATED
}

async fn heartbeat(State(rec): State<Arc<Recorded>>, Path(id): Path<String>) -> StatusCode {
    rec.heartbeats.lock().unwrap().push(id.clone());
    if rec.known.lock().unwrap().contains(&id) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn deregister(State(rec): State<Arc<Recorded>>, Path(id): Path<String>) -> StatusCode {
    rec.deregistrations.lock().unwrap().push(id.clone());
    if rec.known.lock().unwrap().remove(&id) {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn batch(State(rec): State<Arc<Recorded>>, Json(events): Json<Vec<Envelope>>) -> (StatusCode, Json<Value>) {
    rec.batch_attempts.fetch_add(1, Ordering::SeqCst);
    if rec.fail_events.load(Ordering::SeqCst) {
        let body = json!({"error": {"code": "unavailable", "message": "event store is down"}});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    if rec.refuse_events.load(Ordering::SeqCst) {
        let body = json!({"error": {"code": "invalid_event", "message": "refused on purpose"}});
        return (StatusCode::BAD_REQUEST, Json(body));
    }
    assert!(events.len() <= 500, "the core accepts at most 500 events per batch");
    for event in &events {
        event.validate().unwrap();
    }
    let accepted = events.len();
    rec.batches.lock().unwrap().push(events);
    (StatusCode::ACCEPTED, Json(json!({ "accepted": accepted })))
}

/// Polls `check` every 20 ms until it holds, failing the test after 10 s.
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
