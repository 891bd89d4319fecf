//! The Healing agent: runs fixes safely, verifies them, rolls back, escalates.
//!
//! For each `diagnosis.completed` it walks the ranked candidates:
//! - while the kill switch (`healing.kill_switch`) is engaged, nothing runs: it escalates;
//! - a tool missing from the catalog is skipped; every other fix stands on a rung of the
//!   safety ladder (`ladder.rs`): `auto` fixes run, each `approve` fix becomes an
//!   `approval.requested` that a human answers through the API or CLI (an approved fix runs
//!   when the `approval.decided` arrives, unless it expired, the problem healed meanwhile, or
//!   the kill switch is engaged), `suggest` fixes are only named in the escalation;
//! - at most `max_actions_per_service` actions per service and `max_actions_total` in all per
//!   window, one action per service at a time, and at most `max_attempts_per_problem`
//!   candidates per problem, so healing never loops;
//! - after a tool runs, the service must pass `verify_consecutive_ok` health probes in a row
//!   within `verify_within_ms`; if it does not, the action's rollback (if any) runs and the
//!   next candidate is tried;
//! - a verified fix publishes `problem.resolved` and moves its fix up the ladder, a failed one
//!   down; running out of candidates publishes `problem.escalated` with every reason, and
//!   posts it to the escalation webhook when one is configured.
//!
//! Every run and rollback is written to the audit log before the outcome is published.
//! Handling is idempotent: a problem already resolved or escalated is not healed again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiops_construction::{RunMode, ToolTarget};
use aiops_events::ReadQuery;
use aiops_knowledge::AuditEntry;
use aiops_model::{
    event_type, ActionOutcome, ActionStarted, ApprovalDecision, ApprovalRequest, CandidateAction, Diagnosis, Envelope,
    Escalation, HealthStatus, KillSwitch, Problem, ProblemKind, ProblemResolved, RiskLevel, Severity, TrustLevel,
};
use aiops_registry::{ServiceInstance, ServiceQuery};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::agent::payload;
use crate::{ladder, Agent, AgentContext, AgentResult, HealingConfig};

const NAME: &str = "healing";
/// Problem ids remembered as handled; older ones are checked against the control stream.
const REMEMBERED_PROBLEMS: usize = 1024;
/// How far back the control stream is searched for an earlier end of a problem.
const HISTORY_LOOKBACK: usize = 2000;
/// Audit entries read to restore the action budget and a problem's earlier attempts.
const AUDIT_LOOKBACK: usize = 5000;
/// A diagnosis older than this is not acted on (it was replayed, or waited out an outage).
const STALE_DIAGNOSIS: chrono::Duration = chrono::Duration::minutes(10);
/// Tries and timeout of one escalation webhook delivery.
const WEBHOOK_TRIES: u32 = 3;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests after a fix needed to judge an error-ratio problem healed.
const MIN_VERIFY_REQUESTS: usize = 10;
/// Longest wait for the requests in flight at a fix to end before errors count against it.
const MAX_IN_FLIGHT_GRACE_MS: f64 = 5000.0;

/// What came of running one fix.
enum Run {
    /// Verified; the problem is resolved.
    Healed,
    /// Not run: another fix healed the problem meanwhile.
    Moot,
    /// Not run: the action budget is spent.
    BudgetSpent(String),
    /// Ran and was not verified (or did not run); what happened.
    Failed(String),
}

/// The spiking error's counts around a fix: (errors, requests) before and after.
#[derive(Debug, Default)]
struct ErrorCheck {
    kind: String,
    before: (usize, usize),
    after: (usize, usize),
}

impl ErrorCheck {
    /// Counts requests and errors of `kind` among `events` (requests and service errors of
    /// one service): before, in the 10 s before `fixed_at`; after, from when the requests in
    /// flight at the fix have ended (as late as the slowest request before it took).
    fn count<'a>(events: impl Iterator<Item = &'a Envelope> + Clone, kind: &str, fixed_at: DateTime<Utc>) -> Self {
        let before_from = fixed_at - chrono::Duration::seconds(10);
        let before = |event: &&Envelope| event.time >= before_from && event.time < fixed_at;
        let slowest_ms = events
            .clone()
            .filter(before)
            .filter_map(|event| event.data["duration_ms"].as_f64())
            .fold(0.0, f64::max)
            .min(MAX_IN_FLIGHT_GRACE_MS);
        let counted_from = fixed_at + chrono::Duration::milliseconds(slowest_ms.ceil() as i64);
        let mut check = Self { kind: kind.to_owned(), ..Self::default() };
        for event in events {
            let counts = if event.time >= counted_from {
                &mut check.after
            } else if before(&event) {
                &mut check.before
            } else {
                continue;
            };
            if event.event_type == event_type::HTTP_REQUEST {
                counts.1 += 1;
            } else if event.data["kind"].as_str() == Some(kind) {
                counts.0 += 1;
            }
        }
        check
    }

    /// The error stopped, or fell to a quarter of its rate before the fix (requests in flight
    /// during the fix may still end in it).
    fn stopped(&self) -> bool {
        let rate = |(errors, requests): (usize, usize)| errors as f64 / requests.max(1) as f64;
        self.after.0 == 0 || rate(self.after) <= rate(self.before) / 4.0
    }
}

impl std::fmt::Display for ErrorCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} errors in {} requests since the fix (before: {} in {})",
            self.after.0, self.kind, self.after.1, self.before.0, self.before.1
        )
    }
}

/// The Healing agent.
#[derive(Debug)]
pub struct Healing {
    config: HealingConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether `actions` was filled from the audit log, so the budget outlives a restart.
    seeded: bool,
    handled: HashSet<String>,
    handled_order: VecDeque<String>,
    actions: HashMap<String, VecDeque<Instant>>,
    actions_total: VecDeque<Instant>,
    /// One lock per service: one action per service at a time, across problems.
    busy: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl Healing {
    /// A Healing agent with the given safety limits.
    pub fn new(config: HealingConfig) -> Self {
        Self { config, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a problem handled; false when it already was.
    fn claim(&self, problem_id: &str) -> bool {
        let mut state = self.lock();
        if !state.handled.insert(problem_id.to_owned()) {
            return false;
        }
        state.handled_order.push_back(problem_id.to_owned());
        while state.handled_order.len() > REMEMBERED_PROBLEMS {
            if let Some(old) = state.handled_order.pop_front() {
                state.handled.remove(&old);
            }
        }
        true
    }

    /// Fills the per-service action history from the audit log once, so that a restarted core
    /// (or one in a crash loop) cannot exceed the budget the previous run had spent.
    async fn seed_budget(&self, ctx: &AgentContext) -> AgentResult<()> {
        if self.lock().seeded {
            return Ok(());
        }
        let window = chrono::Duration::seconds(self.config.window_secs as i64);
        let now_utc = Utc::now();
        let now = Instant::now();
        let entries = ctx.audit.recent(AUDIT_LOOKBACK).await?;
        let mut state = self.lock();
        if state.seeded {
            return Ok(());
        }
        for entry in entries.iter().rev().filter(|e| e.action == "tool.start" && now_utc - e.at < window) {
            let age = (now_utc - entry.at).to_std().unwrap_or_default();
            let at = now.checked_sub(age).unwrap_or(now);
            state.actions.entry(entry.subject.clone()).or_default().push_back(at);
            state.actions_total.push_back(at);
        }
        state.seeded = true;
        Ok(())
    }

    /// Takes one action slot for `service`; the reason when its budget or the global one is
    /// spent.
    fn take_action_slot(&self, service: &str) -> Result<(), String> {
        let window = Duration::from_secs(self.config.window_secs);
        let now = Instant::now();
        let mut state = self.lock();
        let expire = |actions: &mut VecDeque<Instant>| {
            while actions.front().is_some_and(|at| now.duration_since(*at) > window) {
                actions.pop_front();
            }
        };
        expire(&mut state.actions_total);
        if state.actions_total.len() >= self.config.max_actions_total as usize {
            return Err(format!(
                "global action budget spent: {} actions in {}s",
                self.config.max_actions_total, self.config.window_secs
            ));
        }
        let actions = state.actions.entry(service.to_owned()).or_default();
        expire(actions);
        if actions.len() >= self.config.max_actions_per_service as usize {
            return Err(format!(
                "action budget spent: {} actions on {service} in {}s",
                self.config.max_actions_per_service, self.config.window_secs
            ));
        }
        actions.push_back(now);
        state.actions_total.push_back(now);
        Ok(())
    }

    fn service_lock(&self, service: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.lock().busy.entry(service.to_owned()).or_default().clone()
    }

    /// The kill switch, when engaged; read from the control stream each time, so that every
    /// core sees a switch flipped through any of them.
    async fn kill_switch(&self, ctx: &AgentContext) -> AgentResult<Option<KillSwitch>> {
        Ok(crate::oversight::kill_switch(ctx.bus.as_ref(), &ctx.streams.control).await?.filter(|k| k.engaged))
    }

    async fn already_ended(&self, ctx: &AgentContext, problem_id: &str) -> AgentResult<bool> {
        self.ended_by(ctx, problem_id, &[event_type::PROBLEM_RESOLVED, event_type::PROBLEM_ESCALATED]).await
    }

    async fn ended_by(&self, ctx: &AgentContext, problem_id: &str, types: &[&str]) -> AgentResult<bool> {
        let query = ReadQuery {
            types: types.iter().map(|t| (*t).to_owned()).collect(),
            newest_first: true,
            limit: HISTORY_LOOKBACK,
            ..ReadQuery::default()
        };
        let ended = ctx.bus.read(&ctx.streams.control, &query).await?;
        Ok(ended.iter().any(|stored| stored.event.data["problem_id"] == problem_id))
    }

    /// Verifies a fix: the instance's health URL must pass enough probes in a row, and then,
    /// for an error-ratio problem, the requests the service reports after that must be
    /// mostly good again. Both within the candidate's deadline.
    async fn verify(
        &self,
        ctx: &AgentContext,
        problem: &Problem,
        instance: &ServiceInstance,
        candidate: &CandidateAction,
    ) -> (bool, String) {
        let Some(url) = instance.registration.health_url.as_deref() else {
            return (false, "the instance has no health_url to verify with".into());
        };
        let started = Instant::now();
        let fixed_at = Utc::now();
        let deadline = started + Duration::from_millis(candidate.verify_within_ms);
        let interval = Duration::from_millis(self.config.probe_interval_ms);
        let need = candidate.verify_consecutive_ok.max(1);
        let mut streak = 0;
        let mut last_failure = String::from("no probe answered");
        let mut healthy = false;
        while Instant::now() < deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let probe = ctx.http.get(url).timeout(remaining.min(Duration::from_secs(2))).send().await;
            match probe {
                Ok(response) if response.status().is_success() => {
                    streak += 1;
                    if streak >= need {
                        healthy = true;
                        break;
                    }
                }
                Ok(response) => {
                    streak = 0;
                    last_failure = format!("GET {url} returned {}", response.status().as_u16());
                }
                Err(err) => {
                    streak = 0;
                    last_failure = format!("GET {url} failed: {err}");
                }
            }
            tokio::time::sleep(interval.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        if !healthy {
            return (false, format!("not healthy within {}ms; last probe: {last_failure}", candidate.verify_within_ms));
        }
        let health_ms = started.elapsed().as_millis();
        let health = format!("{need} health probes in a row passed within {health_ms}ms");
        if problem.kind == ProblemKind::LogErrorSpike {
            return match self.same_errors_since(ctx, problem, fixed_at, deadline, interval).await {
                Ok(Some(check)) if check.stopped() => (true, format!("{health}; then {check}")),
                Ok(Some(check)) => (false, format!("{health}, but the error goes on: {check}")),
                Ok(None) => (true, format!("{health}; the error was not named, so only health is checked")),
                Err(err) => (false, format!("{health}, but the errors could not be read: {err}")),
            };
        }
        if problem.kind != ProblemKind::HttpErrorRatio {
            return (true, health);
        }
        match self.error_ratio_since(ctx, problem, Utc::now(), deadline, interval).await {
            Ok(Some((errors, total))) if errors * 10 <= total => {
                (true, format!("{health}; then {errors} of {total} requests failed"))
            }
            Ok(Some((errors, total))) => {
                (false, format!("{health}, but {errors} of {total} requests since still failed"))
            }
            Ok(None) => (true, format!("{health}; too little traffic since to check the error ratio")),
            Err(err) => (false, format!("{health}, but the error ratio could not be read: {err}")),
        }
    }

    /// How often the error that spiked (its kind, from the problem's first evidence line,
    /// `kind: message (seen n times)`) came per request in the 10 s before the fix and after
    /// it (past the requests in flight at the fix), once `MIN_VERIFY_REQUESTS` requests arrived
    /// after it (or at the deadline). `None` when the evidence names no error.
    async fn same_errors_since(
        &self,
        ctx: &AgentContext,
        problem: &Problem,
        fixed_at: DateTime<Utc>,
        deadline: Instant,
        interval: Duration,
    ) -> AgentResult<Option<ErrorCheck>> {
        let Some(kind) = problem.evidence.first().and_then(|line| line.split_once(": ")).map(|(kind, _)| kind) else {
            return Ok(None);
        };
        let query = ReadQuery {
            types: vec![event_type::HTTP_REQUEST.into(), event_type::SERVICE_ERROR.into()],
            subject: Some(problem.service.clone()),
            newest_first: true,
            limit: 2000,
            ..ReadQuery::default()
        };
        loop {
            let recent = ctx.bus.read(&ctx.streams.telemetry, &query).await?;
            let check = ErrorCheck::count(recent.iter().map(|stored| &stored.event), kind, fixed_at);
            if check.after.1 >= MIN_VERIFY_REQUESTS || Instant::now() + interval >= deadline {
                return Ok(Some(check));
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// (5xx count, request count) of the service's requests after `since`, once at least
    /// `MIN_VERIFY_REQUESTS` arrived; `None` if too few arrived by the deadline.
    async fn error_ratio_since(
        &self,
        ctx: &AgentContext,
        problem: &Problem,
        since: chrono::DateTime<Utc>,
        deadline: Instant,
        interval: Duration,
    ) -> AgentResult<Option<(usize, usize)>> {
        let query = ReadQuery {
            types: vec![event_type::HTTP_REQUEST.into()],
            subject: Some(problem.service.clone()),
            newest_first: true,
            limit: 500,
            ..ReadQuery::default()
        };
        loop {
            let recent = ctx.bus.read(&ctx.streams.telemetry, &query).await?;
            let statuses: Vec<u64> = recent
                .iter()
                .filter(|stored| stored.event.time >= since)
                .filter_map(|stored| stored.event.data["status"].as_u64())
                .collect();
            if statuses.len() >= MIN_VERIFY_REQUESTS {
                let errors = statuses.iter().filter(|s| **s >= 500).count();
                return Ok(Some((errors, statuses.len())));
            }
            if Instant::now() + interval >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(interval).await;
        }
    }

    async fn audit(
        &self,
        ctx: &AgentContext,
        action: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> AgentResult<()> {
        ctx.audit
            .append(AuditEntry {
                seq: 0,
                at: Utc::now(),
                actor: NAME.into(),
                action: action.into(),
                subject: subject.into(),
                detail,
            })
            .await?;
        Ok(())
    }

    async fn escalate(&self, ctx: &AgentContext, problem: &Problem, reason: String) -> AgentResult<()> {
        tracing::warn!(problem = %problem.id, service = %problem.service, reason = %reason, "Escalating to a human.");
        metrics::counter!("aiops_healing_escalations_total").increment(1);
        self.audit(
            ctx,
            "heal.escalated",
            &problem.service,
            serde_json::json!({ "problem_id": problem.id, "reason": reason }),
        )
        .await?;
        let escalation = Escalation { problem_id: problem.id.clone(), service: problem.service.clone(), reason };
        ctx.emit(NAME, event_type::PROBLEM_ESCALATED, &problem.service, Some(Severity::Critical), &escalation).await?;
        self.notify(ctx, problem, &escalation).await
    }

    /// Posts an escalation to the webhook (three tries); the delivery is audited either way,
    /// and a webhook that cannot be reached never blocks healing for longer than that.
    async fn notify(&self, ctx: &AgentContext, problem: &Problem, escalation: &Escalation) -> AgentResult<()> {
        let Some(webhook) = &self.config.escalation_webhook else { return Ok(()) };
        let token = webhook.token_env.as_ref().and_then(|name| std::env::var(name).ok());
        let body = serde_json::json!({
            "type": event_type::PROBLEM_ESCALATED,
            "problem_id": escalation.problem_id,
            "service": escalation.service,
            "reason": escalation.reason,
            "summary": problem.summary,
            "severity": problem.severity,
            "detected_at": problem.detected_at,
        });
        let mut last_error = String::new();
        for attempt in 0..WEBHOOK_TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            let mut request = ctx.http.post(&webhook.url).timeout(WEBHOOK_TIMEOUT).json(&body);
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    let detail =
                        serde_json::json!({ "problem_id": problem.id, "delivered": true, "tries": attempt + 1 });
                    return self.audit(ctx, "escalation.notified", &problem.service, detail).await;
                }
                Ok(response) => last_error = format!("the webhook answered {}", response.status().as_u16()),
                Err(err) => last_error = format!("the webhook could not be reached: {err}"),
            }
        }
        tracing::warn!(problem = %problem.id, error = %last_error, "Escalation webhook failed.");
        let detail = serde_json::json!({ "problem_id": problem.id, "delivered": false, "error": last_error });
        self.audit(ctx, "escalation.notified", &problem.service, detail).await
    }

    /// Runs one candidate and verifies it; returns the outcome (not yet published).
    async fn attempt(
        &self,
        ctx: &AgentContext,
        problem: &Problem,
        instance: &ServiceInstance,
        candidate: &CandidateAction,
        attempt: u32,
    ) -> AgentResult<ActionOutcome> {
        let reg = &instance.registration;
        let target = ToolTarget {
            service: reg.name.clone(),
            instance_id: reg.instance_id.clone(),
            address: reg.address.clone(),
            capabilities: reg.capabilities.clone(),
        };
        let action_id = aiops_model::new_id();
        let started_event = ActionStarted {
            action_id: action_id.clone(),
            problem_id: problem.id.clone(),
            service: problem.service.clone(),
            tool: candidate.tool.clone(),
            params: candidate.params.clone(),
            attempt,
        };
        ctx.emit(NAME, event_type::ACTION_STARTED, &problem.service, None, &started_event).await?;
        let mode = if self.config.dry_run { RunMode::DryRun } else { RunMode::Execute };
        // Written before the tool runs, so that even a crash mid-run leaves the action on
        // record (and counted against the budget and the problem's attempts).
        self.audit(
            ctx,
            "tool.start",
            &problem.service,
            serde_json::json!({
                "action_id": action_id, "problem_id": problem.id, "solution_id": candidate.solution_id,
                "tool": candidate.tool, "params": candidate.params, "instance_id": reg.instance_id,
                "mode": format!("{mode:?}"),
            }),
        )
        .await?;
        let started = Instant::now();
        let tool = ctx.tools.get(&candidate.tool);
        let run = match &tool {
            Some(tool) => tool.run(&target, &candidate.params, mode).await.map_err(|err| err.to_string()),
            None => Err(format!("tool {} is not in the catalog", candidate.tool)),
        };
        let (executed, run_message) = match &run {
            Ok(output) if output.success => (true, format!("{} succeeded", output.resolved)),
            Ok(output) => {
                (false, format!("{} failed: {}", output.resolved, output.output.chars().take(200).collect::<String>()))
            }
            Err(err) => (false, err.clone()),
        };
        self.audit(
            ctx,
            "tool.run",
            &problem.service,
            serde_json::json!({
                "action_id": action_id, "problem_id": problem.id, "tool": candidate.tool,
                "params": candidate.params, "mode": format!("{mode:?}"), "executed": executed, "message": run_message,
            }),
        )
        .await?;
        let (verified, verify_message) = if executed && mode == RunMode::Execute {
            self.verify(ctx, problem, instance, candidate).await
        } else if mode == RunMode::DryRun {
            (false, "dry run: nothing changed, nothing to verify".to_owned())
        } else {
            (false, "not verified: the tool did not run".to_owned())
        };
        let mut rolled_back = false;
        let mut message = format!("{run_message}; {verify_message}");
        if !verified && executed && mode == RunMode::Execute {
            let rollback = candidate.rollback.clone().or_else(|| {
                tool.as_ref().and_then(|t| t.spec().rollback_call(&target, &candidate.params).ok().flatten())
            });
            if let Some((rollback_tool, rollback_params)) = rollback {
                let result = match ctx.tools.get(&rollback_tool) {
                    Some(tool) => {
                        tool.run(&target, &rollback_params, RunMode::Execute).await.map_err(|e| e.to_string())
                    }
                    None => Err(format!("rollback tool {rollback_tool} is not in the catalog")),
                };
                rolled_back = matches!(&result, Ok(output) if output.success);
                message
                    .push_str(&format!("; rollback {rollback_tool}: {}", if rolled_back { "done" } else { "failed" }));
                self.audit(
                    ctx,
                    "tool.rollback",
                    &problem.service,
                    serde_json::json!({ "action_id": action_id, "tool": rollback_tool, "params": rollback_params, "done": rolled_back }),
                )
                .await?;
            }
        }
        Ok(ActionOutcome {
            action_id,
            problem: problem.clone(),
            solution_id: candidate.solution_id.clone(),
            tool: candidate.tool.clone(),
            params: candidate.params.clone(),
            pattern_id: candidate.pattern_id.clone(),
            pattern_version: candidate.pattern_version,
            attempt,
            executed,
            verified,
            rolled_back,
            duration_ms: started.elapsed().as_millis() as u64,
            message,
            proposed_by: candidate.proposed_by.clone(),
            target_service: candidate.target_service.clone(),
        })
    }
    fn unclaim(&self, problem_id: &str) {
        let mut state = self.lock();
        state.handled.remove(problem_id);
        state.handled_order.retain(|id| id != problem_id);
    }

    /// Solutions already run on this problem, from the audit log: a redelivered diagnosis
    /// (after a crash mid-heal) neither repeats them nor exceeds `max_attempts_per_problem`.
    async fn earlier_attempts(&self, ctx: &AgentContext, problem_id: &str) -> AgentResult<Vec<String>> {
        let entries = ctx.audit.recent(AUDIT_LOOKBACK).await?;
        Ok(entries
            .iter()
            .filter(|e| e.action == "tool.start" && e.detail["problem_id"] == problem_id)
            .filter_map(|e| e.detail["solution_id"].as_str().map(str::to_owned))
            .collect())
    }

    /// The instance to act on: the one the problem names, else the one heard from last.
    fn pick_instance<'a>(problem: &Problem, instances: &'a [ServiceInstance]) -> Option<&'a ServiceInstance> {
        if let Some(id) = &problem.instance_id {
            if let Some(instance) = instances.iter().find(|i| &i.registration.instance_id == id) {
                return Some(instance);
            }
        }
        instances.iter().max_by_key(|i| i.last_heartbeat)
    }

    /// The instance of `service` a fix of that dependency acts on: a failing one if any.
    async fn dependency_instance(ctx: &AgentContext, service: &str) -> AgentResult<Option<ServiceInstance>> {
        let instances =
            ctx.registry.instances(&ServiceQuery { name: Some(service.to_owned()), ..ServiceQuery::default() }).await?;
        Ok(instances.into_iter().max_by_key(|i| (i.status != HealthStatus::Passing, i.last_heartbeat)))
    }

    async fn heal(&self, ctx: &AgentContext, diagnosis: &Diagnosis) -> AgentResult<()> {
        let problem = &diagnosis.problem;
        let age = Utc::now() - diagnosis.diagnosed_at;
        if age > STALE_DIAGNOSIS {
            let reason = format!(
                "the diagnosis is {}s old (replayed or delayed); not acting on stale information",
                age.num_seconds()
            );
            return self.escalate(ctx, problem, reason).await;
        }
        self.seed_budget(ctx).await?;
        let instances = ctx
            .registry
            .instances(&ServiceQuery { name: Some(problem.service.clone()), ..ServiceQuery::default() })
            .await?;
        let Some(instance) = Self::pick_instance(problem, &instances) else {
            let reason = format!("service {} is not registered, so no tool can reach it", problem.service);
            return self.escalate(ctx, problem, reason).await;
        };
        if let Some(switch) = self.kill_switch(ctx).await? {
            let reason = format!("the healing kill switch is engaged (by {}: {})", switch.by, switch.reason);
            return self.escalate(ctx, problem, reason).await;
        }
        let tried = self.earlier_attempts(ctx, &problem.id).await?;
        let mut notes = Vec::new();
        let mut attempt = tried.len() as u32;
        // The best expected success among fixes waiting for a human: a fix less likely to heal
        // does not run before them (it would only spend an attempt and the budget).
        let mut awaited: Option<f64> = None;
        for candidate in &diagnosis.candidates {
            if let Some(best) = awaited.filter(|best| candidate.expected_success < *best) {
                notes.push(format!(
                    "{}: not run while a fix more likely to heal ({best:.2} against {:.2}) awaits approval",
                    candidate.tool, candidate.expected_success
                ));
                continue;
            }
            if attempt >= self.config.max_attempts_per_problem {
                notes.push(format!("stopped after {attempt} attempts (max_attempts_per_problem)"));
                break;
            }
            if tried.contains(&candidate.solution_id) {
                notes.push(format!("{}: already tried on this problem", candidate.tool));
                continue;
            }
            let Some(tool) = ctx.tools.get(&candidate.tool) else {
                notes.push(format!("{}: tool not in the catalog", candidate.tool));
                continue;
            };
            let dependency;
            let instance = match &candidate.target_service {
                None => instance,
                Some(service) => match Self::dependency_instance(ctx, service).await? {
                    Some(found) => {
                        dependency = found;
                        &dependency
                    }
                    None => {
                        notes.push(format!("{}: dependency {service} is not registered", candidate.tool));
                        continue;
                    }
                },
            };
            // A pattern may not lower a tool's own risk; the riskier of the two counts.
            let risk = candidate.risk.max(tool.spec().risk);
            match ladder::level(ctx.knowledge.as_ref(), candidate, risk, &self.config).await? {
                TrustLevel::Suggest => {
                    notes.push(format!(
                        "{}: suggested only ({} risk): run it by hand if it fits",
                        candidate.tool,
                        risk.as_str()
                    ));
                    continue;
                }
                TrustLevel::Approve => {
                    // Each such fix is offered; once one heals, approving another runs nothing.
                    let id = self.request_approval(ctx, problem, instance, candidate, risk).await?;
                    awaited =
                        Some(awaited.map_or(candidate.expected_success, |best| best.max(candidate.expected_success)));
                    notes.push(format!("{}: awaiting approval {id} (aiops approvals approve {id})", candidate.tool));
                    continue;
                }
                TrustLevel::Auto => {}
            }
            attempt += 1;
            tracing::info!(problem = %problem.id, tool = %candidate.tool, attempt, rationale = %candidate.rationale, "Running remediation.");
            match self.run(ctx, problem, instance, candidate, risk, attempt).await? {
                Run::Healed | Run::Moot => return Ok(()),
                Run::Failed(summary) => notes.push(summary),
                Run::BudgetSpent(spent) => {
                    notes.push(spent);
                    break;
                }
            }
        }
        if diagnosis.candidates.is_empty() {
            notes.push("no known fix for this problem".into());
        }
        // An approved fix may have healed it while the others ran: nothing to escalate then.
        if self.ended_by(ctx, &problem.id, &[event_type::PROBLEM_RESOLVED]).await? {
            return Ok(());
        }
        self.escalate(ctx, problem, notes.join(" | ")).await
    }

    /// Runs one fix (one action per service at a time, within the budget), publishes its
    /// outcome, moves it on the ladder, and resolves the problem when it is verified.
    async fn run(
        &self,
        ctx: &AgentContext,
        problem: &Problem,
        instance: &ServiceInstance,
        candidate: &CandidateAction,
        risk: RiskLevel,
        attempt: u32,
    ) -> AgentResult<Run> {
        // One action at a time on the service acted on, which is a dependency's for its fixes.
        let acted_on = &instance.registration.name;
        let lock = self.service_lock(acted_on);
        let _one_at_a_time = lock.lock().await;
        // Another action may have healed the problem while this one waited for the lock.
        if self.ended_by(ctx, &problem.id, &[event_type::PROBLEM_RESOLVED]).await? {
            tracing::info!(problem = %problem.id, tool = %candidate.tool, "Not run: the problem was healed meanwhile.");
            return Ok(Run::Moot);
        }
        if let Err(spent) = self.take_action_slot(acted_on) {
            return Ok(Run::BudgetSpent(spent));
        }
        let outcome = self.attempt(ctx, problem, instance, candidate, attempt).await?;
        metrics::counter!("aiops_healing_actions_total", "tool" => outcome.tool.clone(), "verified" => outcome.verified.to_string()).increment(1);
        ctx.emit(NAME, event_type::ACTION_COMPLETED, &problem.service, None, &outcome).await?;
        if outcome.executed && !self.config.dry_run {
            let (before, after) =
                ladder::record(ctx.knowledge.as_ref(), candidate, risk, outcome.verified, &self.config).await?;
            if before != after {
                tracing::info!(tool = %candidate.tool, from = before.as_str(), to = after.as_str(), "A fix moved on the safety ladder.");
                let detail = serde_json::json!({
                    "node": ladder::trust_node_id(candidate), "tool": candidate.tool,
                    "from": before.as_str(), "to": after.as_str(), "action_id": outcome.action_id,
                });
                self.audit(ctx, "trust.changed", &problem.service, detail).await?;
            }
        }
        if !outcome.verified {
            return Ok(Run::Failed(format!("{}: {}", outcome.tool, outcome.message)));
        }
        let recovered = Utc::now() - problem.first_seen;
        let resolved = ProblemResolved {
            problem_id: problem.id.clone(),
            service: problem.service.clone(),
            action_id: outcome.action_id.clone(),
            tool: outcome.tool.clone(),
            time_to_recover_ms: recovered.num_milliseconds().max(0) as u64,
            cleared_by_itself: false,
        };
        tracing::info!(problem = %problem.id, tool = %resolved.tool, "Problem healed and verified.");
        ctx.emit(NAME, event_type::PROBLEM_RESOLVED, &problem.service, Some(Severity::Info), resolved).await?;
        Ok(Run::Healed)
    }

    /// Fixes of `problem_id` still waiting on a human or about to run: requested, not denied,
    /// not expired, and not run yet.
    async fn approvals_in_flight(&self, ctx: &AgentContext, problem_id: &str) -> AgentResult<usize> {
        let ran = self.earlier_attempts(ctx, problem_id).await?;
        let now = Utc::now();
        Ok(crate::oversight::approvals(ctx.bus.as_ref(), &ctx.streams.control)
            .await?
            .iter()
            .filter(|a| a.request.problem.id == problem_id && !ran.contains(&a.request.candidate.solution_id))
            .filter(|a| matches!(a.status(now), "pending" | "approved"))
            .count())
    }

    /// Asks a human to approve a fix; returns the request's id.
    async fn request_approval(
        &self,
        ctx: &AgentContext,
        problem: &Problem,
        instance: &ServiceInstance,
        candidate: &CandidateAction,
        risk: RiskLevel,
    ) -> AgentResult<String> {
        let now = Utc::now();
        let request = ApprovalRequest {
            approval_id: aiops_model::new_id(),
            problem: problem.clone(),
            candidate: candidate.clone(),
            instance_id: instance.registration.instance_id.clone(),
            reason: format!(
                "{} ({} risk) has not earned the trust to run alone for {}",
                candidate.tool,
                risk.as_str(),
                candidate.pattern_id.as_deref().unwrap_or("learned fixes")
            ),
            requested_at: now,
            expires_at: now + chrono::Duration::seconds(self.config.approval_ttl_secs as i64),
        };
        let detail = serde_json::to_value(&request).unwrap_or_default();
        self.audit(ctx, "approval.requested", &problem.service, detail).await?;
        ctx.emit(NAME, event_type::APPROVAL_REQUESTED, &problem.service, Some(Severity::Warning), &request).await?;
        Ok(request.approval_id)
    }

    /// Acts on a human's decision: an approved fix runs, unless the request expired, the
    /// problem healed meanwhile, the kill switch is engaged, or the budget is spent.
    async fn decided(&self, ctx: &AgentContext, decision: &ApprovalDecision) -> AgentResult<()> {
        let request = &decision.request;
        let problem = &request.problem;
        let candidate = &request.candidate;
        let verdict = if decision.approved { "approval.approved" } else { "approval.denied" };
        let detail = serde_json::json!({
            "approval_id": request.approval_id, "problem_id": problem.id, "tool": candidate.tool,
            "by": decision.by, "reason": decision.reason,
        });
        self.audit(ctx, verdict, &problem.service, detail).await?;
        if !decision.approved {
            return Ok(());
        }
        let skip = |why: String| async move {
            tracing::info!(approval = %request.approval_id, why = %why, "An approved fix does not run.");
            let detail =
                serde_json::json!({ "approval_id": request.approval_id, "problem_id": problem.id, "why": why });
            self.audit(ctx, "approval.not_run", &problem.service, detail).await
        };
        if decision.decided_at > request.expires_at {
            return skip("the approval came after the request expired".into()).await;
        }
        if self.ended_by(ctx, &problem.id, &[event_type::PROBLEM_RESOLVED]).await? {
            return skip("the problem was healed meanwhile".into()).await;
        }
        let tried = self.earlier_attempts(ctx, &problem.id).await?;
        if tried.contains(&candidate.solution_id) {
            return skip("this fix already ran on this problem".into()).await;
        }
        if let Some(switch) = self.kill_switch(ctx).await? {
            let reason = format!("approved {} not run: the kill switch is engaged (by {})", candidate.tool, switch.by);
            return self.escalate(ctx, problem, reason).await;
        }
        let Some(instance) = ctx.registry.instance(&request.instance_id).await? else {
            let reason = format!("approved {} not run: instance {} is gone", candidate.tool, request.instance_id);
            return self.escalate(ctx, problem, reason).await;
        };
        self.seed_budget(ctx).await?;
        let risk = ctx.tools.get(&candidate.tool).map_or(candidate.risk, |t| candidate.risk.max(t.spec().risk));
        let attempt = tried.len() as u32 + 1;
        tracing::info!(problem = %problem.id, tool = %candidate.tool, by = %decision.by, "Running an approved remediation.");
        match self.run(ctx, problem, &instance, candidate, risk, attempt).await? {
            Run::Healed => Ok(()),
            Run::Moot => skip("the problem was healed meanwhile".into()).await,
            Run::Failed(summary) => {
                let waiting = self.approvals_in_flight(ctx, &problem.id).await?;
                if waiting > 0 {
                    // Other fixes of this problem are still before a human or about to run:
                    // escalating now would call people about what is already in hand.
                    let detail = serde_json::json!({ "approval_id": request.approval_id, "problem_id": problem.id, "failed": summary, "undecided": waiting });
                    return self.audit(ctx, "approval.failed", &problem.service, detail).await;
                }
                self.escalate(ctx, problem, format!("the approved fix failed: {summary}")).await
            }
            Run::BudgetSpent(spent) => {
                self.escalate(ctx, problem, format!("approved {} not run: {spent}", candidate.tool)).await
            }
        }
    }
}

#[async_trait]
impl Agent for Healing {
    fn name(&self) -> &'static str {
        NAME
    }

    fn control_types(&self) -> Vec<String> {
        vec![event_type::DIAGNOSIS_COMPLETED.into(), event_type::APPROVAL_DECIDED.into()]
    }

    async fn handle(&self, ctx: &AgentContext, event: &Envelope) -> AgentResult<()> {
        if event.event_type == event_type::APPROVAL_DECIDED {
            let decision: ApprovalDecision = payload(event)?;
            let key = format!("approval:{}", decision.request.approval_id);
            if !self.claim(&key) {
                return Ok(());
            }
            let result = self.decided(ctx, &decision).await;
            if result.is_err() {
                self.unclaim(&key);
            }
            return result;
        }
        let diagnosis: Diagnosis = payload(event)?;
        let problem_id = diagnosis.problem.id.clone();
        if self.already_ended(ctx, &problem_id).await? || !self.claim(&problem_id) {
            tracing::debug!(problem = %problem_id, "Problem already handled; skipping.");
            return Ok(());
        }
        let result = self.heal(ctx, &diagnosis).await;
        if result.is_err() {
            // Give the problem back, so that the retry of this event heals it.
            self.unclaim(&problem_id);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use aiops_model::{event_type, Envelope};
    use chrono::{DateTime, Utc};

    use super::ErrorCheck;

    fn at(event_type: &str, data: serde_json::Value, time: DateTime<Utc>) -> Envelope {
        let mut event = Envelope::new("bookmarks/1", event_type, data).with_subject("bookmarks");
        event.time = time;
        event
    }

    /// Slow searches in flight when the index came back still log the slow query after it;
    /// they end within the slowest request's time and do not count against the fix.
    #[test]
    fn errors_of_requests_in_flight_at_the_fix_do_not_count() {
        let fixed_at = Utc::now();
        let ms = |n: i64| fixed_at + chrono::Duration::milliseconds(n);
        let request = |n: i64, duration: f64| {
            at(event_type::HTTP_REQUEST, serde_json::json!({ "status": 200, "duration_ms": duration }), ms(n))
        };
        let slow = |n: i64| at(event_type::SERVICE_ERROR, serde_json::json!({ "kind": "database" }), ms(n));
        let mut events: Vec<Envelope> =
            (0..20).flat_map(|i| [request(-2000 + i * 50, 1200.0), slow(-2000 + i * 50)]).collect();
        // Stragglers, within 1.2 s of the fix.
        events.extend((0..10).flat_map(|i| [request(100 + i * 100, 1200.0), slow(100 + i * 100)]));
        // After them, fast and clean.
        events.extend((0..12).map(|i| request(1300 + i * 20, 3.0)));
        let check = ErrorCheck::count(events.iter(), "database", fixed_at);
        assert_eq!((check.before, check.after), ((20, 20), (0, 12)));
        assert!(check.stopped(), "{check}");
        // The same, but the error goes on after the stragglers.
        events.extend((0..12).map(|i| slow(1300 + i * 20)));
        assert!(!ErrorCheck::count(events.iter(), "database", fixed_at).stopped());
    }

    fn check(before: (usize, usize), after: (usize, usize)) -> ErrorCheck {
        ErrorCheck { kind: "dependency".into(), before, after }
    }

    #[test]
    fn a_spiking_error_counts_as_stopped_only_when_gone_or_far_rarer() {
        assert!(check((10, 100), (0, 12)).stopped(), "gone");
        assert!(check((50, 100), (1, 20)).stopped(), "a straggler from a request in flight");
        assert!(!check((10, 100), (2, 20)).stopped(), "as frequent as before: the fix did nothing");
        assert!(!check((0, 100), (1, 20)).stopped(), "new since the fix");
    }
}
