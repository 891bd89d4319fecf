//! The Monitor turns requests, errors and health checks into one problem per incident.

use std::sync::atomic::Ordering;
use std::time::Duration;

use aiops_agents::{Agent, Monitor, MonitorConfig};
use aiops_model::{
    event_type, Envelope, MetricSample, Problem, ProblemKind, ProblemResolved, RequestRecord, ServiceError,
    ServiceRegistered,
};
use chrono::{DateTime, Utc};

use crate::support::{context, control_events, register, target};

fn request(status: u16, at: DateTime<Utc>) -> Envelope {
    let record = RequestRecord {
        method: "GET".into(),
        route: "/api/bookmarks".into(),
        status,
        duration_ms: 3.0,
        trace_id: None,
        rejected: None,
    };
    let mut event = Envelope::new("bookmarks/1", event_type::HTTP_REQUEST, serde_json::to_value(record).unwrap())
        .with_subject("bookmarks");
    event.time = at;
    event
}

#[tokio::test]
async fn error_burst_is_one_problem_with_evidence_and_stragglers_do_not_reopen_it() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let monitor = Monitor::new(MonitorConfig::default());
    let start = Utc::now();
    let ms = |n: i64| start + chrono::Duration::milliseconds(n);
    for n in 0..30 {
        monitor.handle(&ctx, &request(200, ms(n * 10))).await.unwrap();
    }
    let error = ServiceError {
        kind: "database".into(),
        message: "pool timed out while waiting for an open connection".into(),
        route: None,
    };
    for n in 30..80 {
        let mut report = Envelope::new("bookmarks/1", event_type::SERVICE_ERROR, serde_json::to_value(&error).unwrap())
            .with_subject("bookmarks");
        report.time = ms(n * 10);
        monitor.handle(&ctx, &report).await.unwrap();
        monitor.handle(&ctx, &request(503, ms(n * 10))).await.unwrap();
    }
    let problems = control_events(&ctx, event_type::PROBLEM_DETECTED).await;
    assert_eq!(problems.len(), 1, "one incident, one problem");
    let problem: Problem = problems[0].event.payload().unwrap();
    assert_eq!(problem.kind, ProblemKind::HttpErrorRatio);
    assert!(problem.evidence[0].starts_with("database: pool timed out"), "{:?}", problem.evidence);
    assert!(problem.metrics["error_ratio"] >= 0.2);

    // Healed: reports from before the heal that arrive late must not reopen it.
    let resolved = ProblemResolved {
        problem_id: problem.id.clone(),
        service: "bookmarks".into(),
        action_id: "a".into(),
        tool: "reset_db_pool".into(),
        time_to_recover_ms: 1,
        cleared_by_itself: false,
    };
    let mut resolved_event =
        Envelope::new("aiops/healing", event_type::PROBLEM_RESOLVED, serde_json::to_value(resolved).unwrap());
    resolved_event.time = ms(900);
    monitor.handle(&ctx, &resolved_event).await.unwrap();
    for n in 0..40 {
        monitor.handle(&ctx, &request(503, ms(800 + n))).await.unwrap();
    }
    assert_eq!(control_events(&ctx, event_type::PROBLEM_DETECTED).await.len(), 1, "stragglers reopened the problem");
    // Requests in flight during the fix end after it, within the settle time: not counted.
    let settle = MonitorConfig::default().settle_ms as i64;
    for n in 0..40 {
        monitor.handle(&ctx, &request(503, ms(900 + settle - 500 + n))).await.unwrap();
    }
    assert_eq!(control_events(&ctx, event_type::PROBLEM_DETECTED).await.len(), 1, "in-flight requests reopened it");
    // A new burst after the heal has settled is a new problem.
    for n in 0..40 {
        monitor.handle(&ctx, &request(503, ms(900 + settle + n * 10))).await.unwrap();
    }
    assert_eq!(control_events(&ctx, event_type::PROBLEM_DETECTED).await.len(), 2);
}

#[tokio::test]
async fn a_silent_service_is_down_and_a_failing_check_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let service = target().await;
    register(&ctx, &service, Some(1)).await;
    let monitor = Monitor::new(MonitorConfig::default());
    monitor.tick(&ctx).await.unwrap();
    let changes = control_events(&ctx, event_type::SERVICE_HEALTH_CHANGED).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].event.data["to"], "passing");

    // No heartbeat for longer than the 1 s TTL: the process is presumed dead.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    monitor.tick(&ctx).await.unwrap();
    let problems = control_events(&ctx, event_type::PROBLEM_DETECTED).await;
    assert_eq!(problems.len(), 1);
    let problem: Problem = problems[0].event.payload().unwrap();
    assert_eq!(problem.kind, ProblemKind::ServiceDown);
    assert!(problem.evidence[0].contains("no heartbeat"), "{:?}", problem.evidence);

    // A different service-level failure while that problem is open is the same incident.
    ctx.registry.heartbeat("bookmarks-1").await.unwrap();
    service.health.store(503, Ordering::SeqCst);
    for _ in 0..3 {
        monitor.tick(&ctx).await.unwrap();
    }
    // Still critical (now for the check, not the heartbeat): no new change, no new problem.
    let instance = ctx.registry.instance("bookmarks-1").await.unwrap().unwrap();
    assert_eq!(instance.status, aiops_model::HealthStatus::Critical);
    assert!(instance.status_reason.contains("503"), "{}", instance.status_reason);
    assert_eq!(control_events(&ctx, event_type::SERVICE_HEALTH_CHANGED).await.len(), 2);
    assert_eq!(control_events(&ctx, event_type::PROBLEM_DETECTED).await.len(), 1);
}

#[tokio::test]
async fn a_burst_of_a_new_error_template_is_a_problem_even_when_requests_look_fine() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let monitor = Monitor::new(MonitorConfig::default());
    let start = Utc::now();
    for n in 0..40i64 {
        // Background jobs fail while every HTTP request succeeds: no request detector can see it.
        let error = ServiceError {
            kind: "export".into(),
            message: format!("write to /var/spool/export/{n}.csv failed: No space left on device (os error 28)"),
            route: None,
        };
        let mut report = Envelope::new("bookmarks/1", event_type::SERVICE_ERROR, serde_json::to_value(&error).unwrap())
            .with_subject("bookmarks");
        report.time = start + chrono::Duration::milliseconds(n * 50);
        monitor.handle(&ctx, &report).await.unwrap();
        monitor.handle(&ctx, &request(200, report.time)).await.unwrap();
    }
    let problems = control_events(&ctx, event_type::PROBLEM_DETECTED).await;
    assert_eq!(problems.len(), 1);
    let problem: Problem = problems[0].event.payload().unwrap();
    assert_eq!(problem.kind, ProblemKind::LogErrorSpike);
    assert!(
        problem.summary.contains("a new error appeared 10 times")
            && problem.summary.contains("export: write to <*> failed: No space left on device (os error <*>"),
        "{}",
        problem.summary
    );
    assert_eq!(problem.metrics["count_in_window"], 10.0);
}

#[tokio::test]
async fn error_templates_are_saved_and_a_restarted_monitor_keeps_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let report = |message: String| {
        let error = ServiceError { kind: "database".into(), message, route: None };
        Envelope::new("bookmarks/1", event_type::SERVICE_ERROR, serde_json::to_value(&error).unwrap())
            .with_subject("bookmarks")
    };
    let first = Monitor::new(MonitorConfig::default());
    for n in 0..3 {
        first.handle(&ctx, &report(format!("query took {n}ms too long"))).await.unwrap();
    }
    first.tick(&ctx).await.unwrap();
    let saved = ctx.knowledge.get_node("log-template:bookmarks:1").await.unwrap().expect("saved on tick");
    assert_eq!(saved.data["text"], "database: query took <*> too long");
    assert_eq!(saved.data["count"], 3);

    // A new Monitor (a restart) loads the templates before mining, so the same message keeps
    // id 1 and a different one gets id 2 instead of overwriting it.
    let second = Monitor::new(MonitorConfig::default());
    second.handle(&ctx, &report("connection reset by peer".into())).await.unwrap();
    second.handle(&ctx, &report("query took 7ms too long".into())).await.unwrap();
    second.tick(&ctx).await.unwrap();
    let again = ctx.knowledge.get_node("log-template:bookmarks:1").await.unwrap().unwrap();
    assert_eq!(
        (again.data["text"].as_str(), again.data["count"].as_u64()),
        (Some("database: query took <*> too long"), Some(4))
    );
    let other = ctx.knowledge.get_node("log-template:bookmarks:2").await.unwrap().unwrap();
    assert_eq!(other.data["text"], "database: connection reset by peer");
}

#[tokio::test]
async fn a_steady_burn_of_the_error_budget_pages_below_the_error_ratio_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let monitor = Monitor::new(MonitorConfig::default());
    // Ten minutes of 5 requests/s, all fine, then two minutes with 10% failing: under the 20%
    // error-ratio threshold, but 100 times what a 99.9% objective allows (the hour burns 16x).
    let start = Utc::now() - chrono::Duration::minutes(12);
    for n in 0..3_600i64 {
        let status = if n >= 3_000 && n % 10 == 0 { 503 } else { 200 };
        monitor.handle(&ctx, &request(status, start + chrono::Duration::milliseconds(n * 200))).await.unwrap();
    }
    let problems = control_events(&ctx, event_type::PROBLEM_DETECTED).await;
    assert_eq!(problems.len(), 1);
    let problem: Problem = problems[0].event.payload().unwrap();
    assert_eq!(problem.kind, ProblemKind::SloBurn);
    assert!(problem.summary.contains("error budget burning"), "{}", problem.summary);
}

#[tokio::test]
async fn an_instance_that_keeps_going_down_is_a_crash_loop() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let service = target().await;
    register(&ctx, &service, Some(1)).await;
    let monitor = Monitor::new(MonitorConfig::default());
    monitor.tick(&ctx).await.unwrap();
    // A failing health check is not a crash: it does not count.
    service.health.store(503, Ordering::SeqCst);
    monitor.tick(&ctx).await.unwrap();
    monitor.tick(&ctx).await.unwrap();
    service.health.store(200, Ordering::SeqCst);
    monitor.tick(&ctx).await.unwrap();
    // The process dies (no heartbeat past its 1 s TTL) and is restarted, three times.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        monitor.tick(&ctx).await.unwrap();
        ctx.registry.heartbeat("bookmarks-1").await.unwrap();
        monitor.tick(&ctx).await.unwrap();
    }
    let problems: Vec<Problem> =
        control_events(&ctx, event_type::PROBLEM_DETECTED).await.iter().map(|e| e.event.payload().unwrap()).collect();
    let kinds: Vec<ProblemKind> = problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [ProblemKind::HealthCheckFailing, ProblemKind::CrashLoop],
        "the second down is the same incident"
    );
    let crash = &problems[1];
    assert!(crash.summary.contains("crash loop: down 3 times"), "{}", crash.summary);
    assert!(
        crash.evidence[0].starts_with("crash loop: went down 3 times, last: check ttl: no heartbeat"),
        "{:?}",
        crash.evidence
    );
    let matched = ctx.patterns.match_problem(crash, &[]);
    assert_eq!(matched[0].pattern.id, "crash-loop");
}

/// A supervisor restarts a crashed process faster than any heartbeat expires: the new
/// process registering while the old registration stands is the crash that counts.
#[tokio::test]
async fn restarts_seen_as_new_registrations_are_a_crash_loop_counted_once_per_crash() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let service = target().await;
    register(&ctx, &service, Some(1)).await;
    let monitor = Monitor::new(MonitorConfig::default());
    monitor.tick(&ctx).await.unwrap();
    let registered = |restarted: bool| {
        let data = ServiceRegistered {
            service: "bookmarks".into(),
            instance_id: "bookmarks-1".into(),
            address: service.address.clone(),
            restarted,
        };
        Envelope::new("api/test", event_type::SERVICE_REGISTERED, serde_json::to_value(data).unwrap())
            .with_subject("bookmarks")
    };
    // A registration of a new instance, or after a clean deregistration, is no crash.
    monitor.handle(&ctx, &registered(false)).await.unwrap();
    // Crash 1, seen twice: the heartbeat expires, then the new process registers.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    monitor.tick(&ctx).await.unwrap();
    ctx.registry.heartbeat("bookmarks-1").await.unwrap();
    monitor.handle(&ctx, &registered(true)).await.unwrap();
    let kinds = |problems: &[Problem]| problems.iter().map(|p| p.kind).collect::<Vec<_>>();
    let detected = || async {
        control_events(&ctx, event_type::PROBLEM_DETECTED)
            .await
            .iter()
            .map(|e| e.event.payload().unwrap())
            .collect::<Vec<Problem>>()
    };
    assert_eq!(kinds(&detected().await), [ProblemKind::ServiceDown]);
    // Crash 2, restarted before its heartbeat expired: seen only as the registration.
    monitor.handle(&ctx, &registered(true)).await.unwrap();
    assert_eq!(kinds(&detected().await), [ProblemKind::ServiceDown], "two crashes are not a loop yet");
    // Crash 3.
    monitor.handle(&ctx, &registered(true)).await.unwrap();
    let problems = detected().await;
    assert_eq!(kinds(&problems), [ProblemKind::ServiceDown, ProblemKind::CrashLoop]);
    assert!(problems[1].summary.contains("down 3 times"), "{}", problems[1].summary);
    assert!(
        problems[1].evidence[0].contains("last: restarted: a new process registered"),
        "{:?}",
        problems[1].evidence
    );
    assert_eq!(ctx.patterns.match_problem(&problems[1], &[])[0].pattern.id, "crash-loop");
}

fn metric(name: &str, value: f64, at: DateTime<Utc>) -> Envelope {
    let sample = MetricSample { name: name.into(), value };
    let mut event = Envelope::new("bookmarks/1", event_type::METRIC_SAMPLE, serde_json::to_value(sample).unwrap())
        .with_subject("bookmarks");
    event.time = at;
    event
}

/// A connection-pool gauge that wanders between 2 and 6 for `points` seconds before `start`.
async fn calm_pool_history(monitor: &Monitor, ctx: &aiops_agents::AgentContext, start: DateTime<Utc>, points: i64) {
    for n in 0..points {
        let value = 4.0 + 2.0 * (n as f64 / 30.0).sin() + (n % 3) as f64 * 0.1;
        let at = start - chrono::Duration::seconds(points - n);
        monitor.handle(ctx, &metric("db_pool_in_use", value, at)).await.unwrap();
    }
}

#[tokio::test]
async fn a_metric_anomaly_alone_becomes_its_own_problem_after_the_hold() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let monitor = Monitor::new(MonitorConfig { metric_anomaly_hold_ms: 300, ..MonitorConfig::default() });
    let start = Utc::now();
    calm_pool_history(&monitor, &ctx, start, 600).await;
    monitor.handle(&ctx, &metric("db_pool_in_use", 40.0, start)).await.unwrap();
    monitor.tick(&ctx).await.unwrap();
    assert!(control_events(&ctx, event_type::PROBLEM_DETECTED).await.is_empty(), "it waits for a stronger symptom");
    tokio::time::sleep(Duration::from_millis(350)).await;
    monitor.tick(&ctx).await.unwrap();
    let problems = control_events(&ctx, event_type::PROBLEM_DETECTED).await;
    assert_eq!(problems.len(), 1);
    let problem: Problem = problems[0].event.payload().unwrap();
    assert_eq!(problem.kind, ProblemKind::MetricAnomaly);
    assert!(problem.summary.contains("db_pool_in_use = 40"), "{}", problem.summary);
    assert_eq!(problem.metrics["value"], 40.0);
    monitor.tick(&ctx).await.unwrap();
    assert_eq!(control_events(&ctx, event_type::PROBLEM_DETECTED).await.len(), 1, "opened once");
}

#[tokio::test]
async fn a_metric_anomaly_is_evidence_of_the_stronger_symptom_that_follows() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let monitor = Monitor::new(MonitorConfig::default());
    let start = Utc::now();
    calm_pool_history(&monitor, &ctx, start, 600).await;
    monitor.handle(&ctx, &metric("db_pool_in_use", 40.0, start)).await.unwrap();
    for n in 0..40 {
        monitor.handle(&ctx, &request(503, start + chrono::Duration::milliseconds(n * 10))).await.unwrap();
    }
    monitor.tick(&ctx).await.unwrap();
    let problems = control_events(&ctx, event_type::PROBLEM_DETECTED).await;
    assert_eq!(problems.len(), 1, "one incident");
    let problem: Problem = problems[0].event.payload().unwrap();
    assert_eq!(problem.kind, ProblemKind::HttpErrorRatio);
    assert!(
        problem.evidence.iter().any(|e| e.starts_with("metric anomaly: bookmarks: db_pool_in_use = 40")),
        "{:?}",
        problem.evidence
    );
}

#[tokio::test]
async fn a_metric_past_its_bound_is_a_problem_at_once_and_a_bad_sample_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let mut config = MonitorConfig::default();
    config
        .metrics
        .bounds
        .insert("spool_bytes".into(), aiops_patterns::MetricBound { above: Some(1_000_000.0), below: None });
    let monitor = Monitor::new(config);
    let start = Utc::now();
    monitor.handle(&ctx, &metric("spool_bytes", 10.0, start)).await.unwrap();
    monitor.handle(&ctx, &metric("spool_bytes", 2_000_000.0, start)).await.unwrap();
    let problems = control_events(&ctx, event_type::PROBLEM_DETECTED).await;
    assert_eq!(problems.len(), 1);
    let problem: Problem = problems[0].event.payload().unwrap();
    assert_eq!(problem.kind, ProblemKind::MetricThreshold);
    assert!(problem.summary.contains("spool_bytes is 2000000 (above 1000000)"), "{}", problem.summary);

    let mut bad = metric("spool_bytes", 1.0, start);
    bad.data["name"] = serde_json::json!("Spool Bytes!");
    let err = monitor.handle(&ctx, &bad).await.unwrap_err();
    assert!(err.to_string().contains("must be 1 to 100 characters"), "{err}");
    assert!(!err.is_retryable(), "a malformed sample is not retried");
}

/// An error burst 20 s ago that opened an `http_error_ratio` problem, then only successes.
async fn a_burst_that_stopped(monitor: &Monitor, ctx: &aiops_agents::AgentContext) -> Problem {
    let start = Utc::now() - chrono::Duration::seconds(20);
    let ms = |n: i64| start + chrono::Duration::milliseconds(n);
    for n in 0..40 {
        monitor.handle(ctx, &request(503, ms(n * 10))).await.unwrap();
    }
    let problems = control_events(ctx, event_type::PROBLEM_DETECTED).await;
    assert_eq!(problems.len(), 1);
    // The window (10 s) has moved past the burst: only successes in it.
    for n in 0..100 {
        monitor.handle(ctx, &request(200, ms(11_000 + n * 10))).await.unwrap();
    }
    problems[0].event.payload().unwrap()
}

#[tokio::test]
async fn a_problem_whose_symptom_went_away_before_any_fix_is_resolved_as_cleared_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let monitor = Monitor::new(MonitorConfig { clear_after_ms: 300, ..MonitorConfig::default() });
    let problem = a_burst_that_stopped(&monitor, &ctx).await;
    monitor.tick(&ctx).await.unwrap();
    assert!(control_events(&ctx, event_type::PROBLEM_RESOLVED).await.is_empty(), "not before clear_after_ms");
    tokio::time::sleep(Duration::from_millis(350)).await;
    monitor.tick(&ctx).await.unwrap();
    monitor.tick(&ctx).await.unwrap();
    let resolved = control_events(&ctx, event_type::PROBLEM_RESOLVED).await;
    assert_eq!(resolved.len(), 1, "resolved once");
    let resolved: ProblemResolved = resolved[0].event.payload().unwrap();
    assert_eq!(resolved.problem_id, problem.id);
    assert!(resolved.cleared_by_itself && resolved.tool.is_empty() && resolved.action_id.is_empty());
    assert!(resolved.time_to_recover_ms >= 20_000, "{}", resolved.time_to_recover_ms);
}

#[tokio::test]
async fn a_problem_being_fixed_is_left_to_the_healing_agent_even_when_its_symptom_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let monitor = Monitor::new(MonitorConfig { clear_after_ms: 0, ..MonitorConfig::default() });
    let start = Utc::now() - chrono::Duration::seconds(20);
    for n in 0..40 {
        monitor.handle(&ctx, &request(503, start + chrono::Duration::milliseconds(n * 10))).await.unwrap();
    }
    let problem: Problem = control_events(&ctx, event_type::PROBLEM_DETECTED).await[0].event.payload().unwrap();
    let started = aiops_model::ActionStarted {
        action_id: "a1".into(),
        problem_id: problem.id.clone(),
        service: "bookmarks".into(),
        tool: "reset_db_pool".into(),
        params: serde_json::json!({}),
        attempt: 1,
    };
    let started = Envelope::new("aiops/healing", event_type::ACTION_STARTED, serde_json::to_value(started).unwrap());
    monitor.handle(&ctx, &started).await.unwrap();
    for n in 0..100 {
        monitor.handle(&ctx, &request(200, start + chrono::Duration::milliseconds(11_000 + n * 10))).await.unwrap();
    }
    monitor.tick(&ctx).await.unwrap();
    assert!(control_events(&ctx, event_type::PROBLEM_RESOLVED).await.is_empty(), "the fix in flight decides");
}

#[tokio::test]
async fn an_error_spike_clears_when_the_template_stops_occurring() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let monitor = Monitor::new(MonitorConfig { clear_after_ms: 0, ..MonitorConfig::default() });
    let start = Utc::now() - chrono::Duration::seconds(30);
    let error =
        ServiceError { kind: "export".into(), message: "write failed: disk quota exceeded".into(), route: None };
    for n in 0..20 {
        let mut report = Envelope::new("bookmarks/1", event_type::SERVICE_ERROR, serde_json::to_value(&error).unwrap())
            .with_subject("bookmarks");
        report.time = start + chrono::Duration::milliseconds(n * 50);
        monitor.handle(&ctx, &report).await.unwrap();
    }
    let problems = control_events(&ctx, event_type::PROBLEM_DETECTED).await;
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].event.payload::<Problem>().unwrap().kind, ProblemKind::LogErrorSpike);
    // No message for 30 s, longer than the template window (10 s): the spike is over.
    monitor.tick(&ctx).await.unwrap();
    let resolved = control_events(&ctx, event_type::PROBLEM_RESOLVED).await;
    assert_eq!(resolved.len(), 1);
    assert!(resolved[0].event.payload::<ProblemResolved>().unwrap().cleared_by_itself);
}

#[tokio::test]
async fn a_symptom_that_keeps_coming_back_must_stay_longer_before_it_clears_again() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let config = MonitorConfig { clear_after_ms: 300, settle_ms: 0, ..MonitorConfig::default() };
    let monitor = Monitor::new(config);
    a_burst_that_stopped(&monitor, &ctx).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    monitor.tick(&ctx).await.unwrap();
    assert_eq!(control_events(&ctx, event_type::PROBLEM_RESOLVED).await.len(), 1);

    // It comes back at once, and goes away again.
    let start = Utc::now();
    for n in 0..40 {
        monitor.handle(&ctx, &request(503, start + chrono::Duration::milliseconds(n))).await.unwrap();
    }
    for n in 0..400 {
        monitor.handle(&ctx, &request(200, start + chrono::Duration::milliseconds(100 + n))).await.unwrap();
    }
    assert_eq!(control_events(&ctx, event_type::PROBLEM_DETECTED).await.len(), 2);
    tokio::time::sleep(Duration::from_millis(350)).await;
    monitor.tick(&ctx).await.unwrap();
    assert_eq!(control_events(&ctx, event_type::PROBLEM_RESOLVED).await.len(), 1, "a flap stays open twice as long");
    tokio::time::sleep(Duration::from_millis(300)).await;
    monitor.tick(&ctx).await.unwrap();
    assert_eq!(control_events(&ctx, event_type::PROBLEM_RESOLVED).await.len(), 2);
}
