//! Token and cost budgets per call, per incident and per day, and a record of every call.
//!
//! The check happens before a call: the request's input tokens are estimated (a conservative
//! three bytes per token of its JSON) and `max_tokens` is the most it can produce. That estimate
//! is reserved against the incident's and the day's budgets under one lock, so concurrent calls
//! cannot together overrun a budget; when the answer arrives, the reservation is replaced by the
//! tokens the provider reports. Days are UTC days.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{AiProvider, ChatRequest, ChatResponse};
use crate::{AiError, AiResult};

/// Incidents whose spend is remembered; the oldest are forgotten beyond this.
const TRACKED_INCIDENTS: usize = 10_000;
/// Calls kept for [`UsageReport::recent`].
const RECENT_CALLS: usize = 256;

/// Budgets and prices. Zero disables a limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// Estimated input plus `max_tokens` of one call. Default: 32,000.
    pub max_tokens_per_call: u64,
    /// All calls for one incident. Default: 200,000.
    pub max_tokens_per_incident: u64,
    /// All calls of one UTC day. Default: 2,000,000.
    pub max_tokens_per_day: u64,
    /// Spend for one incident, in US dollars. Default: 1.
    pub max_cost_per_incident_usd: f64,
    /// Spend per UTC day, in US dollars. Default: 10.
    pub max_cost_per_day_usd: f64,
    /// Price of a million input tokens, in US dollars. Default: 3.
    pub input_usd_per_million_tokens: f64,
    /// Price of a million output tokens, in US dollars. Default: 15.
    pub output_usd_per_million_tokens: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            max_tokens_per_call: 32_000,
            max_tokens_per_incident: 200_000,
            max_tokens_per_day: 2_000_000,
            max_cost_per_incident_usd: 1.0,
            max_cost_per_day_usd: 10.0,
            input_usd_per_million_tokens: 3.0,
            output_usd_per_million_tokens: 15.0,
        }
    }
}

impl BudgetConfig {
    fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (input_tokens as f64 * self.input_usd_per_million_tokens
            + output_tokens as f64 * self.output_usd_per_million_tokens)
            / 1e6
    }
}

/// One call as it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// Provider name.
    pub provider: String,
    /// Model asked for.
    pub model: String,
    /// Incident it served.
    pub incident: Option<String>,
    /// Input tokens as the provider reported them.
    pub input_tokens: u64,
    /// Output tokens as the provider reported them.
    pub output_tokens: u64,
    /// Wall time of the call, retries included.
    pub latency_ms: u64,
    /// Estimated cost in US dollars.
    pub cost_usd: f64,
    /// `ok`, or the error's kind (`unavailable`, `rejected`, `malformed`, `invalid`).
    pub outcome: String,
}

/// Spend so far, for the API and the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    /// The UTC day the `day_*` figures are for.
    pub day: NaiveDate,
    /// Tokens used today (reservations of calls in flight included).
    pub day_tokens: u64,
    /// Spend today, US dollars.
    pub day_cost_usd: f64,
    /// Calls made since start.
    pub calls: u64,
    /// Calls that failed since start.
    pub failed_calls: u64,
    /// Calls refused by a budget since start.
    pub refused_calls: u64,
    /// Input tokens since start.
    pub input_tokens: u64,
    /// Output tokens since start.
    pub output_tokens: u64,
    /// Spend since start, US dollars.
    pub cost_usd: f64,
    /// The latest calls, oldest first.
    pub recent: Vec<UsageRecord>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Spend {
    tokens: u64,
    cost: f64,
}

impl Spend {
    fn add(&mut self, tokens: u64, cost: f64) {
        self.tokens += tokens;
        self.cost += cost;
    }

    fn remove(&mut self, tokens: u64, cost: f64) {
        self.tokens = self.tokens.saturating_sub(tokens);
        self.cost = (self.cost - cost).max(0.0);
    }
}

#[derive(Debug)]
struct Ledger {
    day: NaiveDate,
    today: Spend,
    incidents: HashMap<String, Spend>,
    incident_order: VecDeque<String>,
    recent: VecDeque<UsageRecord>,
    calls: u64,
    failed_calls: u64,
    refused_calls: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost: f64,
}

/// What a call reserved, to be settled when it ends.
struct Reservation {
    day: NaiveDate,
    tokens: u64,
    cost: f64,
}

/// Any provider, with budgets checked before each call and usage recorded after it.
#[derive(Debug)]
pub struct BudgetedProvider {
    inner: Arc<dyn AiProvider>,
    config: BudgetConfig,
    ledger: Mutex<Ledger>,
}

impl BudgetedProvider {
    /// Wraps `inner` with `config`.
    pub fn new(inner: Arc<dyn AiProvider>, config: BudgetConfig) -> Self {
        let ledger = Ledger {
            day: Utc::now().date_naive(),
            today: Spend::default(),
            incidents: HashMap::new(),
            incident_order: VecDeque::new(),
            recent: VecDeque::new(),
            calls: 0,
            failed_calls: 0,
            refused_calls: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost: 0.0,
        };
        Self { inner, config, ledger: Mutex::new(ledger) }
    }

    /// Spend so far.
    pub fn usage(&self) -> UsageReport {
        let mut ledger = self.ledger();
        roll_day(&mut ledger);
        UsageReport {
            day: ledger.day,
            day_tokens: ledger.today.tokens,
            day_cost_usd: ledger.today.cost,
            calls: ledger.calls,
            failed_calls: ledger.failed_calls,
            refused_calls: ledger.refused_calls,
            input_tokens: ledger.input_tokens,
            output_tokens: ledger.output_tokens,
            cost_usd: ledger.cost,
            recent: ledger.recent.iter().cloned().collect(),
        }
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reserve(&self, request: &ChatRequest) -> AiResult<Reservation> {
        let input = estimate_input_tokens(request);
        let tokens = input + u64::from(request.max_tokens);
        let cost = self.config.cost(input, u64::from(request.max_tokens));
        let mut ledger = self.ledger();
        roll_day(&mut ledger);
        let limits = &self.config;
        let refusal = if exceeds(tokens, 0, limits.max_tokens_per_call) {
            Some(format!(
                "the call could use {tokens} tokens (about {input} in, up to {} out), over the per-call limit of {}",
                request.max_tokens, limits.max_tokens_per_call
            ))
        } else if exceeds(tokens, ledger.today.tokens, limits.max_tokens_per_day) {
            Some(format!(
                "today's tokens would reach {}, over the daily limit of {}",
                ledger.today.tokens + tokens,
                limits.max_tokens_per_day
            ))
        } else if exceeds_cost(cost, ledger.today.cost, limits.max_cost_per_day_usd) {
            Some(format!(
                "today's spend would reach ${:.4}, over the daily limit of ${:.2}",
                ledger.today.cost + cost,
                limits.max_cost_per_day_usd
            ))
        } else if let Some(incident) = &request.incident {
            let spent = ledger.incidents.get(incident).copied().unwrap_or_default();
            if exceeds(tokens, spent.tokens, limits.max_tokens_per_incident) {
                Some(format!(
                    "incident {incident} would reach {} tokens, over its limit of {}",
                    spent.tokens + tokens,
                    limits.max_tokens_per_incident
                ))
            } else if exceeds_cost(cost, spent.cost, limits.max_cost_per_incident_usd) {
                Some(format!(
                    "incident {incident} would reach ${:.4}, over its limit of ${:.2}",
                    spent.cost + cost,
                    limits.max_cost_per_incident_usd
                ))
            } else {
                None
            }
        } else {
            None
        };
        if let Some(reason) = refusal {
            ledger.refused_calls += 1;
            metrics::counter!("aiops_ai_calls_total", "provider" => self.inner.name().to_owned(), "outcome" => "over_budget")
                .increment(1);
            return Err(AiError::OverBudget(reason));
        }
        ledger.today.add(tokens, cost);
        if let Some(incident) = &request.incident {
            if !ledger.incidents.contains_key(incident) {
                ledger.incident_order.push_back(incident.clone());
                if ledger.incident_order.len() > TRACKED_INCIDENTS {
                    if let Some(oldest) = ledger.incident_order.pop_front() {
                        ledger.incidents.remove(&oldest);
                    }
                }
            }
            ledger.incidents.entry(incident.clone()).or_default().add(tokens, cost);
        }
        Ok(Reservation { day: ledger.day, tokens, cost })
    }

    /// Replaces the reservation by what the call used. A call that failed after the provider
    /// answered (a malformed answer is billed), or that was abandoned in flight (`outcome`
    /// `None`), keeps its whole reservation as spent: budgets err on the side of spending less.
    fn settle(
        &self,
        request: &ChatRequest,
        reservation: Reservation,
        outcome: Option<&AiResult<ChatResponse>>,
        started: Instant,
    ) {
        let (input_tokens, output_tokens, tokens, cost) = match outcome {
            Some(Ok(response)) => {
                let (input, output) = (response.usage.input_tokens, response.usage.output_tokens);
                (input, output, input + output, self.config.cost(input, output))
            }
            Some(Err(AiError::Malformed { .. })) | None => (0, 0, reservation.tokens, reservation.cost),
            Some(Err(_)) => (0, 0, 0, 0.0),
        };
        let record = UsageRecord {
            at: Utc::now(),
            provider: self.inner.name().to_owned(),
            model: self.inner.model().to_owned(),
            incident: request.incident.clone(),
            input_tokens,
            output_tokens,
            latency_ms: started.elapsed().as_millis() as u64,
            cost_usd: cost,
            outcome: outcome.map_or("cancelled", outcome_name).to_owned(),
        };
        let provider = record.provider.clone();
        metrics::counter!("aiops_ai_calls_total", "provider" => provider.clone(), "outcome" => record.outcome.clone())
            .increment(1);
        metrics::counter!("aiops_ai_tokens_total", "provider" => provider.clone(), "direction" => "input")
            .increment(input_tokens);
        metrics::counter!("aiops_ai_tokens_total", "provider" => provider.clone(), "direction" => "output")
            .increment(output_tokens);
        metrics::counter!("aiops_ai_cost_microusd_total", "provider" => provider.clone())
            .increment((cost * 1e6) as u64);
        metrics::histogram!("aiops_ai_request_duration_seconds", "provider" => provider).record(started.elapsed());

        let mut ledger = self.ledger();
        roll_day(&mut ledger);
        if ledger.day == reservation.day {
            ledger.today.remove(reservation.tokens, reservation.cost);
            ledger.today.add(tokens, cost);
        }
        if let Some(spend) = request.incident.as_ref().and_then(|incident| ledger.incidents.get_mut(incident)) {
            spend.remove(reservation.tokens, reservation.cost);
            spend.add(tokens, cost);
        }
        ledger.calls += 1;
        ledger.failed_calls += u64::from(!matches!(outcome, Some(Ok(_))));
        ledger.input_tokens += input_tokens;
        ledger.output_tokens += output_tokens;
        ledger.cost += cost;
        if ledger.recent.len() == RECENT_CALLS {
            ledger.recent.pop_front();
        }
        ledger.recent.push_back(record);
    }
}

#[async_trait]
impl AiProvider for BudgetedProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    async fn chat(&self, request: ChatRequest) -> AiResult<ChatResponse> {
        let reservation = self.reserve(&request)?;
        let mut pending =
            Pending { budget: self, request: &request, reservation: Some(reservation), started: Instant::now() };
        let outcome = self.inner.chat(request.clone()).await;
        pending.settle(Some(&outcome));
        outcome
    }
}

/// A call between its reservation and its end; settles as abandoned if dropped first (the
/// caller timed out or was cancelled while the provider was still answering).
struct Pending<'a> {
    budget: &'a BudgetedProvider,
    request: &'a ChatRequest,
    reservation: Option<Reservation>,
    started: Instant,
}

impl Pending<'_> {
    fn settle(&mut self, outcome: Option<&AiResult<ChatResponse>>) {
        if let Some(reservation) = self.reservation.take() {
            self.budget.settle(self.request, reservation, outcome, self.started);
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.settle(None);
    }
}

fn roll_day(ledger: &mut Ledger) {
    let today = Utc::now().date_naive();
    if ledger.day != today {
        ledger.day = today;
        ledger.today = Spend::default();
    }
}

fn exceeds(tokens: u64, spent: u64, limit: u64) -> bool {
    limit > 0 && spent + tokens > limit
}

fn exceeds_cost(cost: f64, spent: f64, limit: f64) -> bool {
    limit > 0.0 && spent + cost > limit
}

fn outcome_name(outcome: &AiResult<ChatResponse>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(AiError::Invalid(_)) => "invalid",
        Err(AiError::OverBudget(_)) => "over_budget",
        Err(AiError::Unavailable { .. }) => "unavailable",
        Err(AiError::Rejected { .. }) => "rejected",
        Err(AiError::Malformed { .. }) => "malformed",
    }
}

/// A conservative estimate of the input tokens: three bytes of the request's JSON per token
/// (English prose averages about four per token, JSON and identifiers fewer).
fn estimate_input_tokens(request: &ChatRequest) -> u64 {
    let mut bytes = request.system.len();
    for message in &request.messages {
        bytes += message.content.len() + 16;
        bytes +=
            message.tool_calls.iter().map(|call| call.name.len() + call.arguments.to_string().len()).sum::<usize>();
    }
    for tool in &request.tools {
        bytes += tool.name.len() + tool.description.len() + tool.input_schema.to_string().len();
    }
    if let Some(schema) = &request.response_schema {
        bytes += schema.to_string().len();
    }
    (bytes as u64).div_ceil(3)
}
