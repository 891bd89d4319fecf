//! The Monitor's view from the browser: failing calls a front end makes to its back end
//! (`browser.request` from `/v1/browser.js`), counted per front end and call. When one call
//! keeps failing, it becomes an `integration_failure` problem of the back end, with evidence
//! from both sides: what the browser saw, how the call departs from the back end's published
//! OpenAPI document (contract drift), and what the back end recorded under the same trace id
//! (or that it never saw the request).
//!
//! A back end names its front end and its API document in its registration metadata:
//! `web_app` (the front end's `data-app`) and `openapi` (a path on its address).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use aiops_events::ReadQuery;
use aiops_model::{event_type, BrowserRequest};
use aiops_patterns::ApiContract;
use aiops_registry::{ServiceInstance, ServiceQuery};
use chrono::{DateTime, Utc};

use crate::AgentContext;

/// Calls tracked at most; the oldest go first.
const MAX_TRACKED_CALLS: usize = 10_000;
/// How long a fetched API document is trusted.
const CONTRACT_TTL: Duration = Duration::from_secs(60);
/// Time allowed to fetch an API document.
const CONTRACT_TIMEOUT: Duration = Duration::from_secs(2);
/// Back-end records searched for a trace.
const TRACE_LOOKBACK: usize = 2000;

/// One front end's call, as the browser names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Call {
    pub app: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// A call that failed often enough to be a problem.
#[derive(Debug, Clone)]
pub(crate) struct FailingCall {
    pub call: Call,
    pub count: usize,
    pub error: Option<String>,
    /// How long the browser waited, the last time.
    pub duration_ms: u64,
    pub trace_ids: Vec<String>,
    pub first_seen: DateTime<Utc>,
}

/// One failure of a call.
#[derive(Debug)]
struct Failure {
    at: DateTime<Utc>,
    trace_id: Option<String>,
    error: Option<String>,
    duration_ms: u64,
}

/// Failing browser calls within a window.
#[derive(Debug)]
pub(crate) struct BrowserFailures {
    window: chrono::Duration,
    min_failures: usize,
    seen: HashMap<Call, VecDeque<Failure>>,
}

impl BrowserFailures {
    pub(crate) fn new(window_ms: u64, min_failures: u32) -> Self {
        Self {
            window: chrono::Duration::milliseconds(window_ms as i64),
            min_failures: min_failures.max(1) as usize,
            seen: HashMap::new(),
        }
    }

    /// Counts a failed call (status 0 or ≥ 400); returns it once it failed `min_failures`
    /// times within the window (and starts counting afresh).
    pub(crate) fn observe(&mut self, app: &str, request: &BrowserRequest, now: DateTime<Utc>) -> Option<FailingCall> {
        if request.status != 0 && request.status < 400 {
            return None;
        }
        let call = Call {
            app: app.to_owned(),
            method: request.method.to_ascii_uppercase(),
            path: request.path.clone(),
            status: request.status,
        };
        if self.seen.len() >= MAX_TRACKED_CALLS && !self.seen.contains_key(&call) {
            let window = self.window;
            self.seen.retain(|_, seen| seen.back().is_some_and(|failure| now - failure.at <= window));
            if self.seen.len() >= MAX_TRACKED_CALLS {
                return None;
            }
        }
        let seen = self.seen.entry(call.clone()).or_default();
        seen.push_back(Failure {
            at: now,
            trace_id: request.trace_id.clone(),
            error: request.error.clone(),
            duration_ms: request.duration_ms,
        });
        while seen.front().is_some_and(|failure| now - failure.at > self.window) {
            seen.pop_front();
        }
        if seen.len() < self.min_failures {
            return None;
        }
        let seen = self.seen.remove(&call).unwrap_or_default();
        Some(FailingCall {
            count: seen.len(),
            error: seen.iter().rev().find_map(|failure| failure.error.clone()),
            duration_ms: seen.back().map_or(0, |failure| failure.duration_ms),
            trace_ids: seen.iter().rev().filter_map(|failure| failure.trace_id.clone()).collect(),
            first_seen: seen.front().map_or(now, |failure| failure.at),
            call,
        })
    }
}

/// API documents fetched lately, by service.
#[derive(Debug, Default)]
pub(crate) struct Contracts {
    fetched: HashMap<String, (Instant, Option<ApiContract>)>,
}

impl Contracts {
    pub(crate) fn cached(&self, service: &str) -> Option<Option<ApiContract>> {
        self.fetched.get(service).filter(|(at, _)| at.elapsed() < CONTRACT_TTL).map(|(_, c)| c.clone())
    }

    pub(crate) fn store(&mut self, service: &str, contract: Option<ApiContract>) {
        if self.fetched.len() >= MAX_TRACKED_CALLS {
            self.fetched.clear();
        }
        self.fetched.insert(service.to_owned(), (Instant::now(), contract));
    }
}

/// What the browser's status says about where the call failed, for the statuses that say
/// something beyond the API document.
pub(crate) fn status_meaning(status: u16) -> Option<&'static str> {
    Some(match status {
        // Worded without naming a cause: the back end's side tells which it was.
        0 => "no answer in the browser: the call was stopped before the page got a response (blocked by the browser, the network, or a back end that is down)",
        401 => "auth: the back end wants credentials the page did not send (a missing or expired Authorization header or session)",
        403 => "auth: the back end refused the page's credentials or origin",
        408 | 504 => "timeout: the call took longer than a proxy or the back end allows",
        413 => "payload too large: the page sends more than the back end accepts",
        _ => return None,
    })
}

/// The back end whose registration names `app` as its front end.
pub(crate) async fn backend_of(ctx: &AgentContext, app: &str) -> Option<ServiceInstance> {
    let instances = ctx.registry.instances(&ServiceQuery::default()).await.ok()?;
    instances
        .into_iter()
        .filter(|i| i.registration.metadata.get("web_app").map(String::as_str) == Some(app))
        .max_by_key(|i| i.last_heartbeat)
}

/// Fetches the API document the instance's registration names (`openapi`).
pub(crate) async fn fetch_contract(ctx: &AgentContext, instance: &ServiceInstance) -> Option<ApiContract> {
    let path = instance.registration.metadata.get("openapi")?;
    let url = format!("{}/{}", instance.registration.address.trim_end_matches('/'), path.trim_start_matches('/'));
    let answer = ctx.http.get(&url).timeout(CONTRACT_TIMEOUT).send().await.ok()?;
    if !answer.status().is_success() {
        tracing::warn!(url = %url, status = answer.status().as_u16(), "The API document could not be fetched.");
        return None;
    }
    let doc: serde_json::Value = answer.json().await.ok()?;
    Some(ApiContract::from_openapi(&doc)).filter(|contract| !contract.is_empty())
}

/// What the back end recorded for the failing call's traces: its own view of the most recent
/// one it saw, or that it saw none of them.
pub(crate) async fn backend_view(ctx: &AgentContext, service: &str, failing: &FailingCall) -> Option<String> {
    if failing.trace_ids.is_empty() {
        return None;
    }
    let query = ReadQuery {
        types: vec![event_type::HTTP_REQUEST.into()],
        subject: Some(service.to_owned()),
        newest_first: true,
        limit: TRACE_LOOKBACK,
        ..ReadQuery::default()
    };
    let recent = ctx.bus.read(&ctx.streams.telemetry, &query).await.ok()?;
    let found = recent.iter().find(|stored| {
        stored.event.data["trace_id"].as_str().is_some_and(|trace| failing.trace_ids.iter().any(|t| t == trace))
    });
    Some(match found {
        Some(stored) => {
            let data = &stored.event.data;
            let outcome = match data["status"].as_u64() {
                // The client went away first (recorded like nginx's 499).
                Some(499) => "was still working on it when the browser closed the request".to_owned(),
                _ => format!("answered {}", data["status"]),
            };
            let mut view = format!(
                "back end {service}: {} {} {outcome} after {:.0} ms (trace {})",
                data["method"].as_str().unwrap_or("?"),
                data["route"].as_str().unwrap_or("?"),
                data["duration_ms"].as_f64().unwrap_or_default(),
                data["trace_id"].as_str().unwrap_or("?"),
            );
            if let Some(rejected) = data["rejected"].as_str() {
                view.push_str(&format!(": it refused it: {rejected}"));
            }
            if failing.call.status == 0 {
                // The page's own error says whether it gave up; durations are too close to
                // tell (a blocked answer and its request end at about the same time).
                let error = failing.error.as_deref().unwrap_or_default().to_ascii_lowercase();
                let gave_up = ["no answer within", "abort", "timeout", "timed out"].iter().any(|w| error.contains(w))
                    || data["status"].as_u64() == Some(499);
                if gave_up {
                    view.push_str(&format!(
                        ", after the browser gave up at {} ms: a timeout seen only by the browser (the page waits less than the back end takes)",
                        failing.duration_ms
                    ));
                } else {
                    view.push_str(
                        ", yet the browser got no answer: the response was withheld from the page (CORS headers missing)",
                    );
                }
            }
            view
        }
        None => format!(
            "back end {service} has no record of traces {}: the requests never reached it (blocked in the browser, the network or a proxy) or it does not record them",
            failing.trace_ids.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use aiops_model::BrowserRequest;
    use chrono::Utc;

    use super::BrowserFailures;

    fn failed(status: u16, trace: &str) -> BrowserRequest {
        BrowserRequest {
            method: "post".into(),
            path: "/api/bookmarks".into(),
            status,
            duration_ms: 9,
            trace_id: Some(trace.into()),
            error: Some(format!("error {trace}")),
            page: "/".into(),
            at: 0,
        }
    }

    #[test]
    fn a_call_that_keeps_failing_is_reported_once_with_its_latest_error() {
        let mut failures = BrowserFailures::new(30_000, 3);
        let now = Utc::now();
        assert!(failures.observe("web", &failed(200, "ok"), now).is_none(), "a success is no failure");
        assert!(failures.observe("web", &failed(422, "a"), now).is_none());
        assert!(failures.observe("web", &failed(404, "x"), now).is_none(), "another call counts apart");
        assert!(failures.observe("web", &failed(422, "b"), now).is_none());
        let failing = failures.observe("web", &failed(422, "c"), now).expect("third failure");
        assert_eq!((failing.count, failing.call.method.as_str()), (3, "POST"));
        assert_eq!(failing.error.as_deref(), Some("error c"));
        assert_eq!(failing.trace_ids, ["c", "b", "a"]);
        assert!(failures.observe("web", &failed(422, "d"), now).is_none(), "counting starts afresh");
        let later = now + chrono::Duration::seconds(31);
        assert!(failures.observe("web", &failed(422, "e"), later).is_none());
        assert!(failures.observe("web", &failed(422, "f"), later).is_none(), "d is out of the window");
    }
}
