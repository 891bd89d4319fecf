//! The conformance suite: what every [`Registry`] backend must do.
//!
//! Checks are async fns over a [`Harness`]; [`registry_conformance!`] stamps out one
//! `#[tokio::test]` per check. Timing runs on a [`ManualClock`]; probes hit real HTTP and
//! TCP targets and run real processes.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiops_model::HealthStatus;
use async_trait::async_trait;
use axum::http::StatusCode;
use chrono::Utc;

use crate::{
    CheckDefinition, CheckKind, Clock, HealthChecker, ManualClock, Registry, RegistryConfig, RegistryError,
    ServiceQuery, ServiceRegistration,
};

/// Opens the backend under test.
#[async_trait]
pub(crate) trait Harness: Send + Sync {
    /// Opens the registry reading `clock`; every call shares one store.
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn Registry>;
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now()))
}

fn registration(name: &str, id: &str) -> ServiceRegistration {
    let mut reg = ServiceRegistration::new(name, id, "http://127.0.0.1:9");
    reg.tags = vec!["web".into()];
    reg.capabilities = vec!["cache.clear".into()];
    reg.dependencies = vec!["postgres".into()];
    reg
}

fn checker(clock: &Arc<ManualClock>, owner: &str) -> HealthChecker {
    let config = RegistryConfig { interval_ms: 1000, timeout_ms: 2000, ..RegistryConfig::default() };
    HealthChecker::new(config, reqwest::Client::new(), owner).with_clock(clock.clone())
}

/// A real HTTP server whose `/health` answers with the status in the returned cell and the
/// body `ok`.
async fn health_target() -> (String, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(200));
    let shared = status.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let shared = shared.clone();
            async move { (StatusCode::from_u16(shared.load(Ordering::SeqCst)).unwrap(), "ok") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, status)
}

/// Bad registrations get an error naming the field, and write nothing.
pub(crate) async fn bad_registrations_name_the_field_and_write_nothing(harness: &dyn Harness) {
    let registry = harness.open(clock()).await;
    let index = registry.index().await.unwrap();
    let cases: Vec<(ServiceRegistration, &str)> = vec![
        (
            {
                let mut r = registration("svc", "i1");
                r.address = "not a url".into();
                r
            },
            "address",
        ),
        (
            {
                let mut r = registration("svc", "i1");
                r.address = "ftp://host".into();
                r
            },
            "address",
        ),
        (
            {
                let mut r = registration("svc", "i1");
                r.name = "Bad Name".into();
                r
            },
            "name",
        ),
        (
            {
                let mut r = registration("svc", "i1");
                r.name = String::new();
                r
            },
            "name",
        ),
        (
            {
                let mut r = registration("svc", "");
                r.instance_id = " ".into();
                r
            },
            "instance_id",
        ),
        (
            {
                let mut r = registration("svc", "i1");
                r.health_url = Some("ftp://x/health".into());
                r
            },
            "health_url",
        ),
        (
            {
                let mut r = registration("svc", "i1");
                r.weight = 0;
                r
            },
            "weight",
        ),
        (
            {
                let mut r = registration("svc", "i1");
                r.checks = vec![CheckDefinition::new(CheckKind::Http)];
                r
            },
            "needs url",
        ),
        (
            {
                let mut r = registration("svc", "i1");
                let mut check = CheckDefinition::new(CheckKind::Tcp);
                check.target = Some("127.0.0.1:5432".into());
                check.argv = Some(vec!["true".into()]);
                r.checks = vec![check];
                r
            },
            "argv belongs to command checks",
        ),
        (
            {
                let mut r = registration("svc", "i1");
                let mut check = CheckDefinition::new(CheckKind::Tcp);
                check.target = Some("no-port".into());
                r.checks = vec![check];
                r
            },
            "host:port",
        ),
        (
            {
                let mut r = registration("svc", "i1");
                let mut check = CheckDefinition::new(CheckKind::Ttl);
                check.id = Some("ttl".into());
                check.ttl_secs = Some(5);
                r.ttl_secs = Some(5);
                r.checks = vec![check];
                r
            },
            "used twice",
        ),
    ];
    for (bad, field) in cases {
        let err = registry.register(bad).await.unwrap_err();
        assert!(matches!(&err, RegistryError::Invalid(msg) if msg.contains(field)), "{field}: {err}");
    }
    let unknown_kind = serde_json::json!({
        "name": "svc", "instance_id": "i1", "address": "http://127.0.0.1:9",
        "checks": [{"kind": "smtp", "target": "x:25"}]
    });
    let err = serde_json::from_value::<ServiceRegistration>(unknown_kind).unwrap_err().to_string();
    assert!(err.contains("unknown variant `smtp`"), "{err}");
    let missing = serde_json::json!({"name": "svc", "address": "http://127.0.0.1:9"});
    let err = serde_json::from_value::<ServiceRegistration>(missing).unwrap_err().to_string();
    assert!(err.contains("missing field `instance_id`"), "{err}");
    assert!(registry.instances(&ServiceQuery::default()).await.unwrap().is_empty());
    assert_eq!(registry.index().await.unwrap(), index, "a refused registration changes nothing");
    assert!(matches!(registry.heartbeat("nope").await, Err(RegistryError::NotFound(_))));
    assert!(!registry.deregister("nope").await.unwrap());
}

/// Lookups by name, tag and capability; healthy-only leaves out instances not passing.
pub(crate) async fn lookup_by_name_tag_capability_and_health(harness: &dyn Harness) {
    let registry = harness.open(clock()).await;
    registry.register(registration("bookmarks", "a")).await.unwrap();
    let mut other = registration("billing", "b");
    other.health_url = Some("http://127.0.0.1:9/health".into());
    other.capabilities = vec![];
    other.tags = vec!["api".into()];
    registry.register(other).await.unwrap();
    let by_cap = registry
        .instances(&ServiceQuery { capability: Some("cache.clear".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(by_cap.len(), 1);
    assert_eq!(by_cap[0].registration.instance_id, "a");
    assert_eq!(by_cap[0].status, HealthStatus::Passing, "no checks: passing at once");
    let by_tag = registry.instances(&ServiceQuery { tag: Some("api".into()), ..Default::default() }).await.unwrap();
    assert_eq!(by_tag.len(), 1);
    assert_eq!(by_tag[0].status, HealthStatus::Warning, "checks not run yet");
    assert_eq!(by_tag[0].check_states[0].output, "awaiting first run");
    let by_name = registry.instances(&ServiceQuery::named("billing")).await.unwrap();
    assert_eq!(by_name.len(), 1);
    let healthy = registry.instances(&ServiceQuery { healthy_only: true, ..Default::default() }).await.unwrap();
    assert_eq!(healthy.len(), 1, "an instance awaiting its first check is not healthy yet");
    let all = registry.instances(&ServiceQuery::default()).await.unwrap();
    let names: Vec<&str> = all.iter().map(|i| i.registration.name.as_str()).collect();
    assert_eq!(names, ["billing", "bookmarks"], "ordered by name");
}

/// Every visible change raises the index; a heartbeat does not.
pub(crate) async fn index_rises_on_every_visible_change(harness: &dyn Harness) {
    let clock = clock();
    let registry = harness.open(clock.clone()).await;
    let start = registry.index().await.unwrap();
    let instance = registry.register(registration("svc", "i1")).await.unwrap();
    let registered = registry.index().await.unwrap();
    assert!(registered > start);
    assert_eq!(instance.modify_index, registered);
    registry.heartbeat("i1").await.unwrap();
    assert_eq!(registry.index().await.unwrap(), registered, "heartbeats are not changes");
    let mut changed = registration("svc", "i1");
    changed.tags = vec!["v2".into()];
    registry.register(changed).await.unwrap();
    let replaced = registry.index().await.unwrap();
    assert!(replaced > registered);
    assert!(registry.deregister("i1").await.unwrap());
    assert!(registry.index().await.unwrap() > replaced);
}

/// Checks follow their interval on the clock, damp flaps, report each change once, and a
/// re-registration keeps the state of checks that keep their id.
pub(crate) async fn http_checks_are_damped_and_each_change_reported_once(harness: &dyn Harness) {
    let clock = clock();
    let registry = harness.open(clock.clone()).await;
    let (url, status) = health_target().await;
    let mut reg = registration("svc", "i1");
    reg.health_url = Some(url.clone());
    let mut body_check = CheckDefinition::new(CheckKind::Http);
    body_check.id = Some("body".into());
    body_check.url = Some(url);
    body_check.body_contains = Some("ok".into());
    body_check.interval_ms = Some(5000);
    reg.checks = vec![body_check];
    registry.register(reg.clone()).await.unwrap();
    let checker = checker(&clock, "core-a");
    let report = checker.run_due(registry.as_ref()).await.unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!((report.changes[0].from, report.changes[0].to), (HealthStatus::Warning, HealthStatus::Passing));
    assert!(checker.run_due(registry.as_ref()).await.unwrap().changes.is_empty(), "nothing due yet");
    status.store(503, Ordering::SeqCst);
    clock.advance(Duration::from_millis(1000));
    assert!(checker.run_due(registry.as_ref()).await.unwrap().changes.is_empty(), "one failure does not flip it");
    clock.advance(Duration::from_millis(1000));
    let report = checker.run_due(registry.as_ref()).await.unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].to, HealthStatus::Critical);
    assert!(report.changes[0].reason.contains("check http: GET") && report.changes[0].reason.contains("503"));
    let instance = registry.instance("i1").await.unwrap().unwrap();
    let http = instance.check_states.iter().find(|c| c.id == "http").unwrap();
    assert_eq!((http.status, http.failures), (HealthStatus::Critical, 2));
    assert_eq!(http.checked_by.as_deref(), Some("core-a"));
    let body = instance.check_states.iter().find(|c| c.id == "body").unwrap();
    assert_eq!(body.status, HealthStatus::Passing, "its 5 s interval has not passed");
    // Re-registering keeps the check states, so a flapping service cannot reset its damping.
    registry.register(reg).await.unwrap();
    assert_eq!(registry.instance("i1").await.unwrap().unwrap().status, HealthStatus::Critical);
    status.store(429, Ordering::SeqCst);
    for _ in 0..2 {
        clock.advance(Duration::from_millis(1000));
        checker.run_due(registry.as_ref()).await.unwrap();
    }
    let instance = registry.instance("i1").await.unwrap().unwrap();
    assert_eq!(instance.status, HealthStatus::Warning, "429 is alive but shedding load: {instance:?}");
    status.store(200, Ordering::SeqCst);
    clock.advance(Duration::from_millis(5000));
    let report = checker.run_due(registry.as_ref()).await.unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].to, HealthStatus::Passing);
}

/// Each due check is leased to one checker; a dead holder's lease runs out and another
/// checker takes the check; a late result from the old holder is dropped.
pub(crate) async fn each_due_check_is_leased_to_one_checker(harness: &dyn Harness) {
    let clock = clock();
    let first = harness.open(clock.clone()).await;
    let second = harness.open(clock.clone()).await;
    let mut reg = registration("svc", "i1");
    reg.ttl_secs = Some(30);
    first.register(reg).await.unwrap();
    let lease = Duration::from_secs(10);
    let claimed = first.claim_due_checks("core-a", lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].definition.kind, CheckKind::Ttl);
    assert!(second.claim_due_checks("core-b", lease, 10).await.unwrap().is_empty(), "leased to core-a");
    clock.advance(Duration::from_secs(11));
    let taken = second.claim_due_checks("core-b", lease, 10).await.unwrap();
    assert_eq!(taken.len(), 1, "core-a's lease ran out");
    let mut late = crate::CheckRecord {
        instance_id: "i1".into(),
        check_id: "ttl".into(),
        status: HealthStatus::Critical,
        output: "late".into(),
        failures: 5,
        successes: 0,
        next_due: clock.now(),
        heartbeat_lost: false,
    };
    assert!(first.record_check("core-a", late.clone()).await.unwrap().is_none());
    assert_eq!(first.instance("i1").await.unwrap().unwrap().check_states[0].failures, 0, "dropped");
    late.status = HealthStatus::Passing;
    late.failures = 0;
    late.successes = 1;
    late.next_due = clock.now() + chrono::Duration::seconds(1);
    let change = second.record_check("core-b", late).await.unwrap().expect("warning -> passing");
    assert_eq!(change.to, HealthStatus::Passing);
    assert!(first.claim_due_checks("core-a", lease, 10).await.unwrap().is_empty(), "not due yet");
}

/// A silent instance is critical at once with `heartbeat_lost`; a heartbeat brings it back.
pub(crate) async fn lost_heartbeat_is_critical_at_once_and_recovers(harness: &dyn Harness) {
    let clock = clock();
    let registry = harness.open(clock.clone()).await;
    let mut reg = registration("svc", "i1");
    reg.ttl_secs = Some(3);
    registry.register(reg).await.unwrap();
    let checker = checker(&clock, "core-a");
    assert_eq!(checker.run_due(registry.as_ref()).await.unwrap().changes[0].to, HealthStatus::Passing);
    clock.advance(Duration::from_secs(2));
    assert!(checker.run_due(registry.as_ref()).await.unwrap().changes.is_empty());
    clock.advance(Duration::from_secs(2));
    let report = checker.run_due(registry.as_ref()).await.unwrap();
    assert_eq!(report.changes.len(), 1);
    assert!(report.changes[0].heartbeat_lost);
    assert_eq!(report.changes[0].to, HealthStatus::Critical);
    assert!(report.changes[0].reason.contains("no heartbeat for 4.0s"), "{}", report.changes[0].reason);
    registry.heartbeat("i1").await.unwrap();
    // The heartbeat makes the failing TTL check due at once, without waiting for its interval.
    let report = checker.run_due(registry.as_ref()).await.unwrap();
    assert_eq!(report.changes[0].to, HealthStatus::Passing);
}

/// An instance critical for longer than `deregister_critical_after_secs` is removed, once.
pub(crate) async fn critical_too_long_is_deregistered(harness: &dyn Harness) {
    let clock = clock();
    let registry = harness.open(clock.clone()).await;
    let mut reg = registration("svc", "i1");
    reg.ttl_secs = Some(1);
    reg.deregister_critical_after_secs = Some(30);
    registry.register(reg).await.unwrap();
    registry.register(registration("svc", "stays")).await.unwrap();
    let checker = checker(&clock, "core-a");
    clock.advance(Duration::from_secs(2));
    let report = checker.run_due(registry.as_ref()).await.unwrap();
    assert_eq!(report.changes[0].to, HealthStatus::Critical);
    assert!(report.deregistered.is_empty());
    clock.advance(Duration::from_secs(29));
    assert!(checker.run_due(registry.as_ref()).await.unwrap().deregistered.is_empty());
    clock.advance(Duration::from_secs(2));
    let index = registry.index().await.unwrap();
    let report = checker.run_due(registry.as_ref()).await.unwrap();
    assert_eq!(report.deregistered.len(), 1);
    assert_eq!(report.deregistered[0].registration.instance_id, "i1");
    assert!(registry.index().await.unwrap() > index);
    assert!(registry.instance("i1").await.unwrap().is_none());
    assert!(registry.instance("stays").await.unwrap().is_some());
    assert!(checker.run_due(registry.as_ref()).await.unwrap().deregistered.is_empty(), "reported once");
}

/// TCP checks against a real listener; command checks run real processes (argv, no shell),
/// map exit codes to statuses and cap their output.
pub(crate) async fn tcp_and_command_checks_probe_for_real(harness: &dyn Harness) {
    let clock = clock();
    let registry = harness.open(clock.clone()).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap().to_string();
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let check = |id: &str, kind: CheckKind| {
        let mut check = CheckDefinition::new(kind);
        check.id = Some(id.into());
        check.failures_before_critical = Some(1);
        check
    };
    let mut tcp_open = check("tcp-open", CheckKind::Tcp);
    tcp_open.target = Some(open);
    let mut tcp_closed = check("tcp-closed", CheckKind::Tcp);
    tcp_closed.target = Some(closed);
    let mut warn = check("warn", CheckKind::Command);
    warn.argv = Some(vec!["sh".into(), "-c".into(), "echo queue deep; exit 1".into()]);
    let mut chatty = check("chatty", CheckKind::Command);
    chatty.argv = Some(vec!["sh".into(), "-c".into(), "head -c 200000 /dev/zero | tr '\\0' x; exit 2".into()]);
    let mut ok = check("ok", CheckKind::Command);
    ok.argv = Some(vec!["true".into()]);
    let mut missing = check("missing", CheckKind::Command);
    missing.argv = Some(vec!["/nonexistent/probe".into()]);
    let mut slow = check("slow", CheckKind::Command);
    slow.argv = Some(vec!["sleep".into(), "30".into()]);
    slow.timeout_ms = Some(300);
    let mut reg = registration("svc", "i1");
    reg.checks = vec![tcp_open, tcp_closed, warn, chatty, ok, missing, slow];
    registry.register(reg).await.unwrap();
    let started = std::time::Instant::now();
    checker(&clock, "core-a").run_due(registry.as_ref()).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "the slow command was cut at its timeout");
    let instance = registry.instance("i1").await.unwrap().unwrap();
    let state = |id: &str| instance.check_states.iter().find(|c| c.id == id).unwrap().clone();
    assert_eq!(state("tcp-open").status, HealthStatus::Passing);
    assert_eq!(state("tcp-closed").status, HealthStatus::Critical, "{}", state("tcp-closed").output);
    assert_eq!(state("warn").status, HealthStatus::Warning);
    assert!(state("warn").output.contains("exit 1: queue deep"), "{}", state("warn").output);
    assert_eq!(state("chatty").status, HealthStatus::Critical);
    assert!(state("chatty").output.len() <= 4096, "output is capped");
    assert_eq!(state("ok").status, HealthStatus::Passing);
    assert!(state("missing").output.contains("could not start"), "{}", state("missing").output);
    assert!(state("slow").output.contains("timed out after 300ms"), "{}", state("slow").output);
    assert_eq!(instance.status, HealthStatus::Critical);
    assert!(instance.status_reason.starts_with("check tcp-closed:"), "first worst check: {}", instance.status_reason);
    drop(listener);
}

/// Stamps out one test per conformance check for a harness expression.
macro_rules! registry_conformance {
    ($harness:expr) => {
        $crate::conformance::registry_conformance!(@each $harness;
            bad_registrations_name_the_field_and_write_nothing,
            lookup_by_name_tag_capability_and_health,
            index_rises_on_every_visible_change,
            http_checks_are_damped_and_each_change_reported_once,
            each_due_check_is_leased_to_one_checker,
            lost_heartbeat_is_critical_at_once_and_recovers,
            critical_too_long_is_deregistered,
            tcp_and_command_checks_probe_for_real,
        );
    };
    (@each $harness:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let harness = $harness;
                $crate::conformance::$check(&harness).await;
            }
        )+
    };
}
pub(crate) use registry_conformance;
