//! The Monitor: turns what services report into problems.
//!
//! Consumes `http.request` and `service.error` from the telemetry stream, feeds requests to
//! the detectors (error ratio, latency p95, SLO burn rate) and errors to the error-template detector (a new
//! error message template that bursts, or a known one far above its usual rate), and keeps each
//! service's recent error messages as evidence. Every tick it runs the registry's due health checks, publishes each status change
//! as `service.health_changed`, and turns a critical instance into a problem (`service_down`
//! when its heartbeat stopped, `health_check_failing` otherwise).
//!
//! Error templates are saved in the knowledge graph (insight nodes `log-template:<service>:<id>`,
//! every few seconds when they changed) and loaded on the first tick, so after a restart the
//! same messages get the same template ids.
//!
//! It also consumes `browser.request`: a front end's call that keeps failing in the browser
//! becomes an `integration_failure` problem of its back end (`integration.rs`).
//!
//! And `metric.sample`: a gauge past a configured bound is a `metric_threshold` problem at
//! once. A gauge that moves in a way its own history makes improbable (an anomaly score) is
//! a weaker sign: it waits `metric_anomaly_hold_ms` for a stronger symptom of the service,
//! whose problem then quotes it as evidence, and only without one becomes a `metric_anomaly`
//! problem itself.
//!
//! At most one problem per service is open at a time: further symptoms of a service with an
//! open problem are the same incident. A problem closes on `problem.resolved` (the detectors'
//! windows for the service start afresh) or `problem.escalated` (the service is then left
//! quiet for a while, so a human is not paged in a loop), or after `STALE_PROBLEM` without
//! either. A problem the detectors watch, that no fix was started for, and whose symptom no
//! detector reports any more `clear_after_ms` after it opened, cleared by itself: the Monitor
//! publishes its `problem.resolved` (`cleared_by_itself`). A symptom that keeps coming back
//! right after it cleared flaps: each return within `FLAP_WINDOW` doubles the time its next
//! problem must stay open before it may clear (up to 16 times), so a flapping service keeps
//! one open problem instead of a stream of openings and resolutions.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiops_knowledge::{Node, NodeKind};
use aiops_model::{
    event_type, ActionStarted, BrowserRequest, Envelope, Escalation, HealthChange, HealthStatus, MetricSample, Problem,
    ProblemKind, ProblemResolved, RequestRecord, ServiceDeregistered, ServiceError, ServiceRegistered, Severity,
};
use aiops_patterns::{
    BurnRateDetector, Detector, ErrorRatioDetector, ErrorTemplateDetector, Finding, LatencyDetector, LogTemplate,
    MetricDetector, Observation,
};
use aiops_registry::{Clock, SystemClock};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::agent::payload;
use crate::integration::{self, BrowserFailures, Contracts, FailingCall};
use crate::{Agent, AgentContext, AgentResult, MonitorConfig};

const NAME: &str = "monitor";
/// Error messages kept per service.
const MAX_RECENT_ERRORS: usize = 200;
/// How far back error messages count as evidence.
const EVIDENCE_WINDOW: chrono::Duration = chrono::Duration::seconds(60);
/// Distinct error messages quoted as evidence.
const MAX_EVIDENCE_LINES: usize = 5;
/// An open problem nobody resolved or escalated stops blocking new ones after this.
const STALE_PROBLEM: chrono::Duration = chrono::Duration::minutes(5);
/// Services the Monitor keeps windows and error samples for; reports about further services
/// are dropped (and counted), so a client inventing subjects cannot grow its memory.
const MAX_SERVICES: usize = 10_000;
/// Instances whose recent downs are remembered for crash-loop detection.
const MAX_TRACKED_INSTANCES: usize = 10_000;
/// Knowledge ids of saved error templates: `log-template:<service>:<template id>`.
const TEMPLATE_NODE_PREFIX: &str = "log-template:";
/// Saved templates loaded at start, at most.
const MAX_SAVED_TEMPLATES: usize = 100_000;
/// How often changed templates are saved.
const SAVE_TEMPLATES_EVERY: Duration = Duration::from_secs(5);
/// Time allowed for a live probe of a back end's health.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A problem opening this soon after the service's last one cleared by itself is a flap.
const FLAP_WINDOW: chrono::Duration = chrono::Duration::minutes(5);
/// Most doublings of `clear_after_ms` for a flapping service.
const MAX_FLAP_DOUBLINGS: u32 = 4;
/// How far ahead of ours a service's clock may be before its event times are capped.
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(5);

/// The Monitor agent.
#[derive(Debug)]
pub struct Monitor {
    config: MonitorConfig,
    state: Mutex<State>,
    /// The wall clock live; the recorded events' clock in a replay.
    clock: Arc<dyn Clock>,
}

#[derive(Debug)]
struct State {
    /// Request detectors.
    detectors: Vec<Box<dyn Detector>>,
    /// Error-template spikes; its templates are saved in the knowledge graph.
    templates: ErrorTemplateDetector,
    /// Saved templates were loaded (on the first tick).
    templates_restored: bool,
    last_saved: Option<std::time::Instant>,
    recent_errors: HashMap<String, VecDeque<(DateTime<Utc>, String)>>,
    open: HashMap<String, OpenProblem>,
    quiet_until: HashMap<String, DateTime<Utc>>,
    /// Observations older than this (event time) belong to a closed incident: services flush
    /// their buffers late, and requests in flight during a fix end after it, and counting
    /// those stragglers would reopen a healed problem. A resolution's time plus `settle_ms`.
    closed_at: HashMap<String, DateTime<Utc>>,
    /// Services reports are tracked for (at most `MAX_SERVICES`).
    services: std::collections::HashSet<String>,
    /// When each instance's process last ended, within the crash-loop window.
    downs: HashMap<String, InstanceDowns>,
    /// Front-end calls failing in the browser.
    browser: BrowserFailures,
    /// Back ends' API documents.
    contracts: Contracts,
    /// Reported metrics: anomalies and bounds.
    metrics: MetricDetector,
    /// Per service, a metric anomaly waiting for a stronger symptom, and when it was seen.
    pending_anomalies: HashMap<String, (Finding, DateTime<Utc>)>,
    /// Per service, when its last problem cleared by itself and how many did in a row
    /// (each within `FLAP_WINDOW` of the one before).
    self_cleared: HashMap<String, (DateTime<Utc>, u32)>,
}

/// The ends of one instance's processes seen lately.
#[derive(Debug, Default)]
struct InstanceDowns {
    /// When each process ended (its heartbeat was lost, or a new one registered).
    at: VecDeque<DateTime<Utc>>,
    /// The last end was counted from the lost heartbeat: the new process's registration
    /// that follows is the same end, not another one.
    heartbeat_lost: bool,
}

impl State {
    /// How long a problem of `service` opening at `now` must stay open before it may clear by
    /// itself: `clear_after_ms`, doubled for each time in a row the service's problems cleared
    /// by themselves and came back within `FLAP_WINDOW`.
    fn clear_after(&self, service: &str, now: DateTime<Utc>, clear_after_ms: u64) -> chrono::Duration {
        let flaps = match self.self_cleared.get(service) {
            Some((at, streak)) if now - *at <= FLAP_WINDOW => (*streak).min(MAX_FLAP_DOUBLINGS),
            _ => 0,
        };
        chrono::Duration::milliseconds((clear_after_ms << flaps) as i64)
    }

    /// Counts a problem of `service` that cleared by itself at `at` towards its flapping.
    fn note_cleared(&mut self, service: &str, at: DateTime<Utc>) {
        let streak = match self.self_cleared.get(service) {
            Some((last, streak)) if at - *last <= FLAP_WINDOW => streak + 1,
            _ => 1,
        };
        self.self_cleared.insert(service.to_owned(), (at, streak));
    }

    /// Whether any detector still reports a symptom of `service` at `now`.
    fn symptom_active(&self, service: &str, now: DateTime<Utc>) -> bool {
        self.detectors.iter().any(|d| d.active(service, now))
            || self.templates.active(service, now)
            || self.metrics.active(service, now)
    }

    /// Forgets a service's windows in every detector.
    fn reset(&mut self, service: &str) {
        for detector in &mut self.detectors {
            detector.reset(service);
        }
        self.templates.reset(service);
        self.metrics.reset(service);
        self.pending_anomalies.remove(service);
    }

    /// Whether a report about `service` made at `time` counts: the service is tracked, and the
    /// report is not a straggler from before its last incident closed.
    fn accepts(&mut self, service: &str, time: DateTime<Utc>) -> bool {
        self.admit(service) && self.closed_at.get(service).is_none_or(|closed| time >= *closed)
    }

    /// Whether reports about `service` are tracked: known ones always, new ones while there
    /// is room.
    fn admit(&mut self, service: &str) -> bool {
        if self.services.contains(service) {
            return true;
        }
        if self.services.len() >= MAX_SERVICES {
            metrics::counter!("aiops_monitor_untracked_reports_total").increment(1);
            return false;
        }
        self.services.insert(service.to_owned());
        true
    }
}

#[derive(Debug)]
struct OpenProblem {
    id: String,
    kind: ProblemKind,
    opened: DateTime<Utc>,
    first_seen: DateTime<Utc>,
    /// A fix was started for it: the Healing agent resolves or escalates it.
    acting: bool,
    /// How long it must stay open before it may clear by itself.
    clear_after: chrono::Duration,
}

impl Monitor {
    /// A Monitor with its detectors set up from `config`, on the wall clock.
    pub fn new(config: MonitorConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A Monitor that reads the time from `clock` (a replay moves it with the recorded events).
    pub fn with_clock(config: MonitorConfig, clock: Arc<dyn Clock>) -> Self {
        let detectors: Vec<Box<dyn Detector>> = vec![
            Box::new(ErrorRatioDetector::new(config.window.clone(), config.error_ratio_threshold)),
            Box::new(LatencyDetector::new(config.window.clone(), config.latency_p95_ms)),
            Box::new(BurnRateDetector::new(config.slo.clone())),
        ];
        let templates = ErrorTemplateDetector::new(config.error_templates.clone());
        let browser = BrowserFailures::new(config.browser_window_ms, config.browser_min_failures);
        let metrics = MetricDetector::new(config.metrics.clone());
        Self {
            config,
            state: Mutex::new(State {
                detectors,
                templates,
                templates_restored: false,
                last_saved: None,
                recent_errors: HashMap::new(),
                open: HashMap::new(),
                quiet_until: HashMap::new(),
                closed_at: HashMap::new(),
                services: std::collections::HashSet::new(),
                downs: HashMap::new(),
                browser,
                contracts: Contracts::default(),
                metrics,
                pending_anomalies: HashMap::new(),
                self_cleared: HashMap::new(),
            }),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every mutation of the state is a single map operation, so it stays consistent even
        // if a holder panicked.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a problem for `finding` unless the service has one open or is quiet.
    /// Opens a problem for `finding`, unless one is open for the service or it is quiet after
    /// an escalation. A finding that `supersedes` (a crash loop: the earlier diagnosis did not
    /// stop it) opens one anyway.
    fn open_problem(
        &self,
        finding: Finding,
        instance_id: Option<String>,
        extra_evidence: Vec<String>,
        now: DateTime<Utc>,
        supersedes: bool,
    ) -> Option<Problem> {
        let mut state = self.lock();
        if !supersedes {
            if let Some(open) = state.open.get(&finding.service) {
                if now - open.opened < STALE_PROBLEM {
                    return None;
                }
            }
            if state.quiet_until.get(&finding.service).is_some_and(|until| now < *until) {
                return None;
            }
        }
        let mut evidence = extra_evidence;
        if let Some((anomaly, _)) = state.pending_anomalies.remove(&finding.service) {
            if anomaly.summary != finding.summary {
                evidence.push(format!("metric anomaly: {}", anomaly.summary));
            }
        }
        evidence.extend(summarize_errors(state.recent_errors.get(&finding.service), now));
        let problem = Problem {
            id: aiops_model::new_id(),
            service: finding.service.clone(),
            instance_id,
            kind: finding.kind,
            severity: finding.severity,
            summary: finding.summary,
            detected_at: now,
            first_seen: finding.first_seen,
            evidence,
            metrics: finding.metrics,
        };
        let open = OpenProblem {
            id: problem.id.clone(),
            kind: problem.kind,
            opened: now,
            first_seen: problem.first_seen,
            acting: false,
            clear_after: state.clear_after(&finding.service, now, self.config.clear_after_ms),
        };
        state.open.insert(finding.service, open);
        Some(problem)
    }

    async fn publish_findings(&self, ctx: &AgentContext, findings: Vec<Finding>) -> AgentResult<()> {
        for finding in findings {
            if let Some(problem) = self.open_problem(finding, None, Vec::new(), self.clock.now(), false) {
                self.publish_problem(ctx, problem).await?;
            }
        }
        Ok(())
    }

    async fn publish_problem(&self, ctx: &AgentContext, problem: Problem) -> AgentResult<()> {
        tracing::warn!(service = %problem.service, kind = problem.kind.as_str(), problem = %problem.id, summary = %problem.summary, "Problem detected.");
        metrics::counter!("aiops_monitor_problems_total", "kind" => problem.kind.as_str()).increment(1);
        let (service, id, severity) = (problem.service.clone(), problem.id.clone(), problem.severity);
        if let Err(err) = ctx.emit(NAME, event_type::PROBLEM_DETECTED, &service, Some(severity), problem).await {
            // Not published: forget it, so that the retry of this event (or the next symptom)
            // opens it again instead of finding it open already.
            let mut state = self.lock();
            if state.open.get(&service).is_some_and(|open| open.id == id) {
                state.open.remove(&service);
            }
            state.reset(&service);
            return Err(err);
        }
        Ok(())
    }

    fn close(&self, service: &str, problem_id: &str, closed_at: DateTime<Utc>, quiet_for: Option<Duration>) {
        let mut state = self.lock();
        let was_open = state.open.get(service).is_some_and(|open| open.id == problem_id);
        if quiet_for.is_some() && !was_open {
            // The escalation of a problem already healed (or superseded): nothing to keep
            // quiet about.
            return;
        }
        state.closed_at.insert(service.to_owned(), closed_at);
        if was_open {
            state.open.remove(service);
        }
        state.reset(service);
        state.recent_errors.remove(service);
        match quiet_for {
            Some(quiet) => {
                let until = self.clock.now() + chrono::Duration::from_std(quiet).unwrap_or_default();
                state.quiet_until.insert(service.to_owned(), until);
            }
            // Healed after all (an approved fix ran after the escalation): nothing to keep
            // quiet about any more, and a recurrence must be seen.
            None => {
                state.quiet_until.remove(service);
            }
        }
    }
}

/// Whether the detectors watch problems of `kind`, so that they can tell when it cleared.
fn watched_by_detectors(kind: ProblemKind) -> bool {
    matches!(
        kind,
        ProblemKind::HttpErrorRatio
            | ProblemKind::HttpLatency
            | ProblemKind::SloBurn
            | ProblemKind::LogErrorSpike
            | ProblemKind::MetricThreshold
            | ProblemKind::MetricAnomaly
    )
}

/// Distinct recent error messages of a service, most frequent first, with their counts.
fn summarize_errors(errors: Option<&VecDeque<(DateTime<Utc>, String)>>, now: DateTime<Utc>) -> Vec<String> {
    let Some(errors) = errors else { return Vec::new() };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, message) in errors.iter().filter(|(at, _)| now - *at <= EVIDENCE_WINDOW) {
        *counts.entry(message.as_str()).or_default() += 1;
    }
    let mut lines: Vec<(&str, usize)> = counts.into_iter().collect();
    lines.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    lines
        .into_iter()
        .take(MAX_EVIDENCE_LINES)
        .map(|(message, count)| format!("{message} (seen {count} times)"))
        .collect()
}

fn service_of(event: &Envelope) -> String {
    event.subject.clone().unwrap_or_else(|| event.source.split('/').next().unwrap_or(&event.source).to_owned())
}

#[async_trait]
impl Agent for Monitor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn telemetry_types(&self) -> Vec<String> {
        vec![
            event_type::HTTP_REQUEST.into(),
            event_type::SERVICE_ERROR.into(),
            event_type::BROWSER_REQUEST.into(),
            event_type::METRIC_SAMPLE.into(),
        ]
    }

    fn control_types(&self) -> Vec<String> {
        vec![
            event_type::PROBLEM_RESOLVED.into(),
            event_type::PROBLEM_ESCALATED.into(),
            event_type::SERVICE_REGISTERED.into(),
            event_type::ACTION_STARTED.into(),
        ]
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(self.config.tick_ms))
    }

    async fn handle(&self, ctx: &AgentContext, event: &Envelope) -> AgentResult<()> {
        match event.event_type.as_str() {
            event_type::HTTP_REQUEST => {
                let record: RequestRecord = payload(event)?;
                let service = service_of(event);
                // A clock far ahead on the service's side must not pin the window open.
                let at = event.time.min(self.clock.now() + MAX_CLOCK_SKEW);
                let findings: Vec<Finding> = {
                    let mut state = self.lock();
                    if !state.accepts(&service, event.time) {
                        return Ok(());
                    }
                    let observation = Observation::Request { service, at, record };
                    state.detectors.iter_mut().filter_map(|d| d.observe(&observation)).collect()
                };
                self.publish_findings(ctx, findings).await?;
            }
            event_type::SERVICE_ERROR => {
                let error: ServiceError = payload(event)?;
                let mine = self.restore_templates(ctx).await;
                let service = service_of(event);
                let at = event.time.min(self.clock.now() + MAX_CLOCK_SKEW);
                let message = format!("{}: {}", error.kind, error.message);
                let findings: Vec<Finding> = {
                    let mut state = self.lock();
                    if !state.accepts(&service, event.time) {
                        return Ok(());
                    }
                    let errors = state.recent_errors.entry(service.clone()).or_default();
                    errors.push_back((event.time, message.clone()));
                    while errors.len() > MAX_RECENT_ERRORS {
                        errors.pop_front();
                    }
                    if !mine {
                        return Ok(());
                    }
                    let observation = Observation::Error { service, at, message };
                    state.templates.observe(&observation).into_iter().collect()
                };
                self.publish_findings(ctx, findings).await?;
            }
            event_type::METRIC_SAMPLE => {
                let sample: MetricSample = payload(event)?;
                sample.validate().map_err(|reason| crate::AgentError::Malformed {
                    event_type: event.event_type.clone(),
                    id: event.id.clone(),
                    reason,
                })?;
                let service = service_of(event);
                let at = event.time.min(self.clock.now() + MAX_CLOCK_SKEW);
                let finding = {
                    let mut state = self.lock();
                    if !state.accepts(&service, event.time) {
                        return Ok(());
                    }
                    let observation = Observation::Metric { service, at, name: sample.name, value: sample.value };
                    let ignored = state.metrics.ignored_series();
                    let finding = state.metrics.observe(&observation);
                    if state.metrics.ignored_series() > ignored {
                        metrics::counter!("aiops_monitor_untracked_metric_samples_total").increment(1);
                    }
                    match finding {
                        Some(finding) if finding.kind == ProblemKind::MetricAnomaly => {
                            // Only the first anomaly waits; an open problem already is the incident.
                            if !state.open.contains_key(&finding.service) {
                                state
                                    .pending_anomalies
                                    .entry(finding.service.clone())
                                    .or_insert((finding, self.clock.now()));
                            }
                            None
                        }
                        finding => finding,
                    }
                };
                self.publish_findings(ctx, finding.into_iter().collect()).await?;
            }
            event_type::BROWSER_REQUEST => {
                let request: BrowserRequest = payload(event)?;
                let app = service_of(event);
                let failing = {
                    let mut state = self.lock();
                    if !state.admit(&app) {
                        return Ok(());
                    }
                    state.browser.observe(&app, &request, self.clock.now())
                };
                if let Some(failing) = failing {
                    if let Some(problem) = self.integration_problem(ctx, failing).await {
                        self.publish_problem(ctx, problem).await?;
                    }
                }
            }
            event_type::PROBLEM_RESOLVED => {
                let resolved: ProblemResolved = payload(event)?;
                let settled = event.time + chrono::Duration::milliseconds(self.config.settle_ms as i64);
                self.close(&resolved.service, &resolved.problem_id, settled, None);
            }
            event_type::SERVICE_REGISTERED => {
                let registered: ServiceRegistered = payload(event)?;
                if let Some(problem) = self.restart_problem(&registered) {
                    self.publish_problem(ctx, problem).await?;
                }
            }
            event_type::ACTION_STARTED => {
                let started: ActionStarted = payload(event)?;
                let mut state = self.lock();
                if let Some(open) = state.open.values_mut().find(|open| open.id == started.problem_id) {
                    open.acting = true;
                }
            }
            event_type::PROBLEM_ESCALATED => {
                let escalation: Escalation = payload(event)?;
                let quiet = Duration::from_millis(self.config.escalation_quiet_ms);
                self.close(&escalation.service, &escalation.problem_id, event.time, Some(quiet));
            }
            _ => {}
        }
        Ok(())
    }

    async fn tick(&self, ctx: &AgentContext) -> AgentResult<()> {
        self.restore_templates(ctx).await;
        self.save_templates(ctx).await;
        self.pass_time(ctx).await?;
        let report = ctx.health.run_due(ctx.registry.as_ref()).await?;
        for gone in report.deregistered {
            let since = gone.status_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let data = ServiceDeregistered {
                service: gone.registration.name.clone(),
                instance_id: gone.registration.instance_id.clone(),
                reason: format!("critical since {since}, longer than deregister_critical_after_secs"),
            };
            ctx.emit(NAME, event_type::SERVICE_DEREGISTERED, &data.service, Some(Severity::Warning), &data).await?;
        }
        for change in report.changes {
            let severity = match change.to {
                HealthStatus::Passing => Severity::Info,
                HealthStatus::Warning => Severity::Warning,
                HealthStatus::Critical => Severity::Error,
            };
            ctx.emit(NAME, event_type::SERVICE_HEALTH_CHANGED, &change.service, Some(severity), &change).await?;
            if change.to == HealthStatus::Critical {
                if let Some(problem) = self.health_problem(&change) {
                    self.publish_problem(ctx, problem).await?;
                }
            }
        }
        Ok(())
    }
}

impl Monitor {
    /// What follows from time passing alone: metric anomalies that waited out their hold
    /// become problems, and problems whose symptoms stopped clear by themselves. Part of every
    /// tick; a replay calls it after each recorded event, on the recorded clock.
    ///
    /// # Errors
    /// When a problem or a resolution cannot be published.
    pub async fn pass_time(&self, ctx: &AgentContext) -> AgentResult<()> {
        let held = self.held_anomalies(self.clock.now());
        self.publish_findings(ctx, held).await?;
        for cleared in self.cleared_problems(self.clock.now()) {
            tracing::info!(service = %cleared.service, problem = %cleared.problem_id, "Problem cleared by itself.");
            let (service, id) = (cleared.service.clone(), cleared.problem_id.clone());
            ctx.emit(NAME, event_type::PROBLEM_RESOLVED, &service, Some(Severity::Info), cleared).await?;
            let settled = self.clock.now() + chrono::Duration::milliseconds(self.config.settle_ms as i64);
            self.close(&service, &id, settled, None);
            self.lock().note_cleared(&service, self.clock.now());
        }
        Ok(())
    }

    /// Open problems that cleared by themselves (see the module docs), as their resolutions.
    fn cleared_problems(&self, now: DateTime<Utc>) -> Vec<ProblemResolved> {
        let state = self.lock();
        state
            .open
            .iter()
            .filter(|(service, open)| {
                watched_by_detectors(open.kind)
                    && !open.acting
                    && now - open.opened >= open.clear_after
                    && !state.symptom_active(service, now)
            })
            .map(|(service, open)| ProblemResolved {
                problem_id: open.id.clone(),
                service: service.clone(),
                action_id: String::new(),
                tool: String::new(),
                time_to_recover_ms: (now - open.first_seen).num_milliseconds().max(0) as u64,
                cleared_by_itself: true,
            })
            .collect()
    }

    /// Metric anomalies that waited `metric_anomaly_hold_ms` with no stronger symptom, taken
    /// out of the waiting list to be opened as problems of their own.
    fn held_anomalies(&self, now: DateTime<Utc>) -> Vec<Finding> {
        let hold = chrono::Duration::milliseconds(self.config.metric_anomaly_hold_ms as i64);
        let mut state = self.lock();
        let due: Vec<String> = state
            .pending_anomalies
            .iter()
            .filter(|(_, (_, seen))| now - *seen >= hold)
            .map(|(s, _)| s.clone())
            .collect();
        due.iter().filter_map(|service| state.pending_anomalies.remove(service)).map(|(finding, _)| finding).collect()
    }

    /// The problem a front end's failing call makes for its back end (the front end itself
    /// when no registered service names it), with both sides' evidence.
    async fn integration_problem(&self, ctx: &AgentContext, failing: FailingCall) -> Option<Problem> {
        let call = &failing.call;
        let backend = integration::backend_of(ctx, &call.app).await;
        let service = backend.as_ref().map_or_else(|| call.app.clone(), |b| b.registration.name.clone());
        let (shown, outcome) = if call.status == 0 {
            ("no answer".to_owned(), "got no answer".to_owned())
        } else {
            (call.status.to_string(), format!("answered {}", call.status))
        };
        let mut evidence = vec![format!(
            "browser {}: {} {} {outcome} {} times{}",
            call.app,
            call.method,
            call.path,
            failing.count,
            failing.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        )];
        evidence.extend(integration::status_meaning(call.status).map(str::to_owned));
        if let Some(instance) = &backend {
            if instance.status != HealthStatus::Passing {
                evidence.push(format!(
                    "back end {service} instance {} is {}: {}",
                    instance.registration.instance_id,
                    instance.status.as_str(),
                    instance.status_reason
                ));
            } else if call.status == 0 {
                // The registry lags a death by a check or two; a call with no answer asks now.
                if let Some(failure) = ctx.probe_health(instance, PROBE_TIMEOUT).await {
                    evidence.push(format!(
                        "back end {service} instance {} is critical (live probe): {failure}",
                        instance.registration.instance_id
                    ));
                }
            }
        }
        if let Some(instance) = &backend {
            let cached = self.lock().contracts.cached(&service);
            let contract = match cached {
                Some(contract) => contract,
                None => {
                    let fetched = integration::fetch_contract(ctx, instance).await;
                    self.lock().contracts.store(&service, fetched.clone());
                    fetched
                }
            };
            if let Some(contract) = contract {
                evidence.extend(contract.drift(
                    &call.method,
                    &call.path,
                    call.status,
                    failing.error.as_deref().unwrap_or(""),
                ));
            }
        }
        evidence.extend(integration::backend_view(ctx, &service, &failing).await);
        let finding = Finding {
            service: service.clone(),
            kind: ProblemKind::IntegrationFailure,
            severity: Severity::Error,
            summary: format!(
                "{} → {service}: {} {} fails in the browser with {shown} ({} times)",
                call.app, call.method, call.path, failing.count
            ),
            metrics: BTreeMap::from([
                ("failures".to_owned(), failing.count as f64),
                ("status".to_owned(), f64::from(call.status)),
            ]),
            first_seen: failing.first_seen,
        };
        let instance_id = backend.map(|b| b.registration.instance_id);
        self.open_problem(finding, instance_id, evidence, self.clock.now(), false)
    }

    /// Loads the error templates saved by earlier runs, once, before the first error is mined
    /// (so that new templates never take a saved template's id). Returns whether they are
    /// loaded: while the knowledge graph cannot be read, errors are not mined (the other
    /// detectors go on) and the next error or tick tries again.
    async fn restore_templates(&self, ctx: &AgentContext) -> bool {
        if self.lock().templates_restored {
            return true;
        }
        let nodes = match ctx.knowledge.nodes(NodeKind::Insight, MAX_SAVED_TEMPLATES).await {
            Ok(nodes) => nodes,
            Err(err) => {
                tracing::warn!(error = %err, "Could not load saved error templates; trying again later.");
                return false;
            }
        };
        let mut by_service: HashMap<String, Vec<LogTemplate>> = HashMap::new();
        for node in nodes.into_iter().filter(|n| n.id.starts_with(TEMPLATE_NODE_PREFIX)) {
            let template = LogTemplate {
                id: node.data["template_id"].as_u64().unwrap_or_default(),
                tokens: serde_json::from_value(node.data["tokens"].clone()).unwrap_or_default(),
                count: node.data["count"].as_u64().unwrap_or_default(),
                last_seen: node.data["last_seen"].as_u64().unwrap_or_default(),
            };
            if let (Some(service), true) = (node.data["service"].as_str(), template.id > 0) {
                by_service.entry(service.to_owned()).or_default().push(template);
            }
        }
        let mut state = self.lock();
        if state.templates_restored {
            return true; // A concurrent call got here first.
        }
        let services = by_service.len();
        for (service, templates) in by_service {
            state.templates.restore(&service, templates);
        }
        state.templates_restored = true;
        tracing::debug!(services, "Error templates restored from the knowledge graph.");
        true
    }

    /// Saves templates learned or changed since the last save, at most every `SAVE_TEMPLATES_EVERY`.
    async fn save_templates(&self, ctx: &AgentContext) {
        let changed = {
            let mut state = self.lock();
            if !state.templates_restored {
                return;
            }
            if state.last_saved.is_some_and(|at| at.elapsed() < SAVE_TEMPLATES_EVERY) {
                return;
            }
            state.last_saved = Some(std::time::Instant::now());
            state.templates.take_changed()
        };
        let nodes: Vec<Node> = changed
            .into_iter()
            .filter(|(service, _)| service.len() <= 200)
            .flat_map(|(service, templates)| {
                templates.into_iter().map(move |template| {
                    let text = template.text();
                    Node::new(
                        format!("{TEMPLATE_NODE_PREFIX}{service}:{}", template.id),
                        NodeKind::Insight,
                        text.chars().take(1000).collect::<String>(),
                        serde_json::json!({
                            "text": text,
                            "service": service,
                            "template_id": template.id,
                            "tokens": template.tokens,
                            "count": template.count,
                            "last_seen": template.last_seen,
                        }),
                    )
                })
            })
            .collect();
        if nodes.is_empty() {
            return;
        }
        let saved = nodes.len();
        if let Err(err) = ctx.knowledge.upsert_nodes(nodes).await {
            // They are saved again when they next change; detection does not depend on it.
            tracing::warn!(error = %err, "Could not save error templates.");
        } else {
            tracing::debug!(saved, "Error templates saved.");
        }
    }

    /// Counts an end of `instance_id`'s process at `now` (`heartbeat_lost`: seen as a lost
    /// heartbeat, else as a new process registering) and returns the ends within the
    /// crash-loop window. A registration right after a counted lost heartbeat is that same
    /// end and adds nothing.
    fn count_down(&self, instance_id: &str, now: DateTime<Utc>, heartbeat_lost: bool) -> usize {
        let window = chrono::Duration::milliseconds(self.config.crash_loop_window_ms as i64);
        let mut state = self.lock();
        if state.downs.len() >= MAX_TRACKED_INSTANCES && !state.downs.contains_key(instance_id) {
            state.downs.retain(|_, downs| downs.at.back().is_some_and(|at| now - *at <= window));
        }
        let downs = state.downs.entry(instance_id.to_owned()).or_default();
        if heartbeat_lost || !std::mem::take(&mut downs.heartbeat_lost) {
            downs.at.push_back(now);
        }
        downs.heartbeat_lost = heartbeat_lost;
        while downs.at.front().is_some_and(|at| now - *at > window) {
            downs.at.pop_front();
        }
        downs.at.len()
    }

    /// The crash-loop problem once `downs` reaches the configured restarts; it supersedes
    /// the problem open for the service (restarting did not help).
    fn crash_loop_problem(
        &self,
        service: &str,
        instance_id: &str,
        downs: usize,
        last: &str,
        now: DateTime<Utc>,
    ) -> Option<Problem> {
        if downs < self.config.crash_loop_restarts as usize {
            return None;
        }
        self.lock().downs.remove(instance_id);
        let window = chrono::Duration::milliseconds(self.config.crash_loop_window_ms as i64);
        let finding = Finding {
            service: service.to_owned(),
            kind: ProblemKind::CrashLoop,
            severity: Severity::Critical,
            summary: format!(
                "{service} instance {instance_id} is in a crash loop: down {downs} times in {} s",
                window.num_seconds()
            ),
            metrics: BTreeMap::from([("downs".to_owned(), downs as f64)]),
            first_seen: now,
        };
        let evidence = vec![format!("crash loop: went down {downs} times, last: {last}")];
        self.open_problem(finding, Some(instance_id.to_owned()), evidence, now, true)
    }

    /// A new process registered for an instance that never deregistered: its previous
    /// process crashed.
    fn restart_problem(&self, registered: &ServiceRegistered) -> Option<Problem> {
        if !registered.restarted {
            return None;
        }
        let now = self.clock.now();
        let downs = self.count_down(&registered.instance_id, now, false);
        let last =
            "restarted: a new process registered without the previous one deregistering (it exited or was killed)";
        self.crash_loop_problem(&registered.service, &registered.instance_id, downs, last, now)
    }

    fn health_problem(&self, change: &HealthChange) -> Option<Problem> {
        let now = self.clock.now();
        // Only a lost heartbeat or a refused connection says the process died; a failing check
        // alone is not a crash.
        if change.heartbeat_lost {
            let downs = self.count_down(&change.instance_id, now, true);
            if let Some(problem) =
                self.crash_loop_problem(&change.service, &change.instance_id, downs, &change.reason, now)
            {
                return Some(problem);
            }
        }
        let (kind, summary) = if change.heartbeat_lost {
            (
                ProblemKind::ServiceDown,
                format!("{} instance {} is down: its process is gone", change.service, change.instance_id),
            )
        } else {
            (
                ProblemKind::HealthCheckFailing,
                format!("{} instance {} fails its health check", change.service, change.instance_id),
            )
        };
        let finding = Finding {
            service: change.service.clone(),
            kind,
            severity: Severity::Critical,
            summary,
            metrics: BTreeMap::new(),
            first_seen: now,
        };
        self.open_problem(finding, Some(change.instance_id.clone()), vec![change.reason.clone()], now, false)
    }
}
