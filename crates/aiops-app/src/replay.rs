//! `aiops replay`: recorded history through the detectors and a (changed) policy, in dry run,
//! so that a policy change is judged on past incidents before it goes live.
//!
//! Nothing live is changed. The recorded telemetry is read from a copy of the embedded event
//! log (or from Redis, read only); the knowledge graph and the registry are copied into a
//! scratch SQLite file; the Monitor, Diagnostic and Healing agents of the policy then run over
//! the telemetry in recorded order, Healing in dry run. The report pairs each problem the
//! policy detects with the recorded one (same service and symptom, at most
//! [`MATCH_WINDOW_SECS`] apart) and lists recorded problems it would miss.
//!
//! The Monitor runs on the recorded clock: before each event it is moved to the event's time,
//! and after it what follows from time passing runs (held metric anomalies, problems clearing
//! by themselves), so detection times are the history's and pair with the recorded ones
//! however old the history is.
//!
//! Limits: action budgets count replay time; health checks are not replayed (only what
//! services reported); a language model is never consulted; what would follow from time
//! passing after the last recorded event is not reported.

use std::path::Path;
use std::sync::Arc;

use aiops_agents::{Agent, AgentContext, Diagnostic, Healing, HealingConfig, Monitor, Streams, MAX_CLOCK_SKEW};
use aiops_events::{EmbeddedEventBus, EventBus, EventsConfig, ReadQuery, StoredEvent};
use aiops_knowledge::{Database, SqliteKnowledgeStore};
use aiops_model::{event_type, ApprovalRequest, Diagnosis, Problem};
use aiops_registry::{HealthChecker, ManualClock, PgRegistry, Registry, RegistryConfig, ServiceQuery, SqliteRegistry};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::app::{http_client, load_patterns, load_tools};
use crate::{open_knowledge, AppError, AppResult, Config};

/// A replayed and a recorded problem of the same service and symptom this close are one.
pub const MATCH_WINDOW_SECS: i64 = 60;
/// Telemetry events read per page.
const PAGE: usize = 1000;

/// Which part of the history to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// From this time (the log's acceptance time), if set.
    pub since: Option<DateTime<Utc>>,
    /// Up to this event time, if set.
    pub until: Option<DateTime<Utc>>,
}

/// A problem as the recorded history has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedProblem {
    /// Its id.
    pub problem_id: String,
    /// Its service.
    pub service: String,
    /// Its symptom kind.
    pub kind: String,
    /// When it was detected.
    pub detected_at: DateTime<Utc>,
    /// What it was.
    pub summary: String,
    /// The tool that healed it, if any.
    pub healed_by: Option<String>,
    /// Whether it was escalated to a human.
    pub escalated: bool,
}

/// A problem the policy detects, and what it would do.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayedProblem {
    /// The service.
    pub service: String,
    /// The symptom kind.
    pub kind: String,
    /// Event time of detection.
    pub detected_at: DateTime<Utc>,
    /// What it is.
    pub summary: String,
    /// The diagnosis's leading hypothesis.
    pub hypothesis: Option<String>,
    /// Tools the policy would run, in order (dry run).
    pub would_run: Vec<String>,
    /// Tools it would ask a human to approve.
    pub would_ask: Vec<String>,
    /// Why it would escalate, if it would.
    pub escalation: Option<String>,
    /// The recorded problem it corresponds to, if any.
    pub recorded: Option<RecordedProblem>,
}

/// Totals of a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayCounts {
    /// Telemetry events replayed.
    pub events: usize,
    /// Problems the policy detects.
    pub detected: usize,
    /// Problems in the recorded history (of the window).
    pub recorded: usize,
    /// Detected by both.
    pub matched: usize,
    /// Detected only by the policy.
    pub new: usize,
    /// Recorded, but missed by the policy.
    pub missed: usize,
}

/// What the policy would have detected and done.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Totals.
    pub counts: ReplayCounts,
    /// Each problem the policy detects, oldest first.
    pub problems: Vec<ReplayedProblem>,
    /// Recorded problems the policy would not detect.
    pub missed: Vec<RecordedProblem>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AppError {
    let context = context.into();
    move |source| AppError::Io { context, source }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The recorded event log, opened so that nothing live is written: a copy of the embedded
/// log, or Redis (only read).
async fn recorded_bus(history: &Config, scratch: &Path) -> AppResult<Arc<dyn EventBus>> {
    match &history.events {
        EventsConfig::Embedded(cfg) => {
            let live = cfg.dir.clone().unwrap_or_else(|| history.data_dir.join("events"));
            if !live.is_dir() {
                return Err(AppError::Config {
                    origin: "replay".into(),
                    problems: format!("no recorded event log at {}", live.display()),
                });
            }
            let copy = scratch.join("recorded-events");
            copy_dir(&live, &copy).map_err(io(format!("copying the event log {}", live.display())))?;
            Ok(Arc::new(EmbeddedEventBus::open(&copy, cfg.clone()).await?))
        }
        EventsConfig::Redis(_) => Ok(history.events.build(&history.data_dir).await?),
    }
}

/// A scratch context for the policy's agents: its own event log, a copy of the knowledge
/// graph and of the registrations.
async fn scratch_context(history: &Config, policy: &Config, scratch: &Path) -> AppResult<AgentContext> {
    let live = open_knowledge(history).await?;
    let mut exported = Vec::new();
    aiops_knowledge::export(live.store.as_ref(), live.audit.as_ref(), &mut exported).await?;
    let live_registry: Arc<dyn Registry> = match &live.database {
        Database::Sqlite(pool) => Arc::new(SqliteRegistry::from_pool(pool.clone()).await?),
        Database::Postgres(pool) => Arc::new(PgRegistry::from_pool(pool.clone()).await?),
    };
    let registrations = live_registry.instances(&ServiceQuery::default()).await?;

    let db = scratch.join("aiops.db");
    let store = Arc::new(SqliteKnowledgeStore::open(&db, policy.knowledge.dimensions()).await?);
    aiops_knowledge::import(store.as_ref(), store.as_ref(), &mut exported.as_slice()).await?;
    let registry = Arc::new(SqliteRegistry::open(&db).await?);
    for instance in registrations {
        registry.register(instance.registration).await?;
    }
    let http = http_client()?;
    Ok(AgentContext {
        bus: Arc::new(EmbeddedEventBus::open(&scratch.join("events"), Default::default()).await?),
        streams: Streams::default(),
        knowledge: store.clone(),
        audit: store,
        registry,
        health: Arc::new(HealthChecker::new(RegistryConfig::default(), http.clone(), "replay")),
        embedder: policy.ai.embedder.build()?,
        ai: None,
        tools: load_tools(policy, &http)?,
        patterns: Arc::new(load_patterns(policy)?),
        http,
        instance: "replay".into(),
    })
}

/// Replays `history`'s recorded telemetry through `policy`'s agents (Healing in dry run).
///
/// # Errors
/// When the recorded stores cannot be read, or an agent fails on something other than a
/// malformed event (those are skipped, as the live agents skip them).
pub async fn replay(history: &Config, policy: &Config, window: &ReplayWindow) -> AppResult<ReplayReport> {
    let problems = policy.problems();
    if !problems.is_empty() {
        return Err(AppError::Config { origin: "policy".into(), problems: problems.join("\n") });
    }
    let scratch =
        tempfile::Builder::new().prefix("aiops-replay-").tempdir().map_err(io("creating a scratch directory"))?;
    let recorded = recorded_bus(history, scratch.path()).await?;
    let ctx = scratch_context(history, policy, scratch.path()).await?;
    let clock = Arc::new(ManualClock::new(DateTime::<Utc>::UNIX_EPOCH));
    let monitor = Monitor::with_clock(policy.agents.monitor.clone(), clock.clone());
    let diagnostic = Diagnostic::new(policy.agents.diagnostic.clone());
    let healing =
        Healing::new(HealingConfig { dry_run: true, escalation_webhook: None, ..policy.agents.healing.clone() });

    let streams = Streams::default();
    let mut events = 0;
    let mut after = 0;
    let mut control_after = 0;
    'pages: loop {
        let query = ReadQuery { after, since: window.since, limit: PAGE, ..ReadQuery::default() };
        let page = recorded.read(&streams.telemetry, &query).await?;
        let Some(last) = page.last() else { break };
        after = last.offset;
        for stored in &page {
            if window.until.is_some_and(|until| stored.event.time > until) {
                break 'pages;
            }
            events += 1;
            clock.advance_to(replay_time(stored));
            tolerate(monitor.handle(&ctx, &stored.event).await)?;
            monitor.pass_time(&ctx).await?;
            control_after = drain(&ctx, &diagnostic, &healing, control_after).await?;
        }
    }

    let produced = read_all(ctx.bus.as_ref(), &ctx.streams.control, None).await?;
    let history_events = read_all(recorded.as_ref(), &streams.control, window.since).await?;
    Ok(report(events, &produced, &recorded_problems(&history_events, window)))
}

/// The time a replay sets its clock to for `stored`: the event's time, as the detectors see it,
/// but no further ahead of when the log accepted it than the live Monitor allows, so that one
/// event stamped by a clock running ahead does not fast-forward the rest of the replay.
fn replay_time(stored: &StoredEvent) -> DateTime<Utc> {
    stored.event.time.min(stored.accepted_at + MAX_CLOCK_SKEW)
}

/// Every event of `stream` accepted since `since`, page by page.
async fn read_all(
    bus: &dyn EventBus,
    stream: &aiops_events::StreamName,
    since: Option<DateTime<Utc>>,
) -> AppResult<Vec<StoredEvent>> {
    let mut all: Vec<StoredEvent> = Vec::new();
    loop {
        let query = ReadQuery { after: all.last().map_or(0, |e| e.offset), since, limit: PAGE, ..ReadQuery::default() };
        let page = bus.read(stream, &query).await?;
        if page.is_empty() {
            return Ok(all);
        }
        all.extend(page);
    }
}

/// A malformed event is skipped, as the live agents skip it; anything else stops the replay.
fn tolerate(result: aiops_agents::AgentResult<()>) -> AppResult<()> {
    match result {
        Err(err) if !err.is_retryable() => {
            tracing::debug!(error = %err, "Skipped a malformed event.");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Hands new problems to the Diagnostic agent and new diagnoses to the Healing agent until
/// nothing new appears; returns the control offset reached.
async fn drain(ctx: &AgentContext, diagnostic: &Diagnostic, healing: &Healing, mut after: u64) -> AppResult<u64> {
    loop {
        let query = ReadQuery { after, limit: PAGE, ..ReadQuery::default() };
        let page = ctx.bus.read(&ctx.streams.control, &query).await?;
        let Some(last) = page.last() else { return Ok(after) };
        after = last.offset;
        for stored in &page {
            match stored.event.event_type.as_str() {
                event_type::PROBLEM_DETECTED => tolerate(diagnostic.handle(ctx, &stored.event).await)?,
                event_type::DIAGNOSIS_COMPLETED => tolerate(healing.handle(ctx, &stored.event).await)?,
                _ => {}
            }
        }
    }
}

fn recorded_problems(events: &[StoredEvent], window: &ReplayWindow) -> Vec<RecordedProblem> {
    let mut problems: Vec<RecordedProblem> = events
        .iter()
        .filter(|e| e.event.event_type == event_type::PROBLEM_DETECTED)
        .filter_map(|e| e.event.payload::<Problem>().ok())
        .filter(|p| window.until.is_none_or(|until| p.detected_at <= until))
        .map(|p| RecordedProblem {
            problem_id: p.id,
            service: p.service,
            kind: p.kind.as_str().to_owned(),
            detected_at: p.detected_at,
            summary: p.summary,
            healed_by: None,
            escalated: false,
        })
        .collect();
    for event in events {
        let id = &event.event.data["problem_id"];
        let Some(problem) = problems.iter_mut().find(|p| *id == p.problem_id.as_str()) else { continue };
        match event.event.event_type.as_str() {
            event_type::PROBLEM_RESOLVED => problem.healed_by = event.event.data["tool"].as_str().map(str::to_owned),
            event_type::PROBLEM_ESCALATED => problem.escalated = true,
            _ => {}
        }
    }
    problems
}

fn report(events: usize, produced: &[StoredEvent], recorded: &[RecordedProblem]) -> ReplayReport {
    let of_type = |t: &'static str| produced.iter().filter(move |e| e.event.event_type == t);
    let mut unmatched: Vec<RecordedProblem> = recorded.to_vec();
    let mut problems = Vec::new();
    for problem in of_type(event_type::PROBLEM_DETECTED).filter_map(|e| e.event.payload::<Problem>().ok()) {
        let for_problem = |e: &&StoredEvent| e.event.data["problem_id"] == problem.id.as_str();
        let hypothesis = of_type(event_type::DIAGNOSIS_COMPLETED)
            .filter_map(|e| e.event.payload::<Diagnosis>().ok())
            .find(|d| d.problem.id == problem.id)
            .and_then(|d| d.hypotheses.first().map(|h| h.title.clone()));
        let would_run = of_type(event_type::ACTION_STARTED)
            .filter(for_problem)
            .filter_map(|e| e.event.data["tool"].as_str().map(str::to_owned))
            .collect();
        let would_ask = of_type(event_type::APPROVAL_REQUESTED)
            .filter_map(|e| e.event.payload::<ApprovalRequest>().ok())
            .filter(|r| r.problem.id == problem.id)
            .map(|r| r.candidate.tool)
            .collect();
        let escalation = of_type(event_type::PROBLEM_ESCALATED)
            .find(for_problem)
            .and_then(|e| e.event.data["reason"].as_str().map(str::to_owned));
        let closest = unmatched
            .iter()
            .enumerate()
            .filter(|(_, r)| r.service == problem.service && r.kind == problem.kind.as_str())
            .map(|(i, r)| (i, (r.detected_at - problem.detected_at).num_seconds().abs()))
            .filter(|(_, gap)| *gap <= MATCH_WINDOW_SECS)
            .min_by_key(|(_, gap)| *gap)
            .map(|(i, _)| i);
        let recorded = closest.map(|i| unmatched.remove(i));
        problems.push(ReplayedProblem {
            service: problem.service.clone(),
            kind: problem.kind.as_str().to_owned(),
            detected_at: problem.detected_at,
            summary: problem.summary.clone(),
            hypothesis,
            would_run,
            would_ask,
            escalation,
            recorded,
        });
    }
    let matched = problems.iter().filter(|p| p.recorded.is_some()).count();
    let counts = ReplayCounts {
        events,
        detected: problems.len(),
        recorded: recorded.len(),
        matched,
        new: problems.len() - matched,
        missed: unmatched.len(),
    };
    ReplayReport { counts, problems, missed: unmatched }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_from_a_clock_running_ahead_moves_the_replay_only_as_far_as_live_would() {
        let accepted_at = Utc::now();
        let at = |time: DateTime<Utc>| StoredEvent {
            offset: 1,
            accepted_at,
            event: {
                let mut event = aiops_model::Envelope::new("s/1", "http.request", serde_json::json!({}));
                event.time = time;
                event
            },
        };
        let earlier = accepted_at - chrono::Duration::seconds(30);
        assert_eq!(replay_time(&at(earlier)), earlier, "a late event keeps its own time");
        let tomorrow = accepted_at + chrono::Duration::days(1);
        assert_eq!(replay_time(&at(tomorrow)), accepted_at + MAX_CLOCK_SKEW);
    }
}
