//! Budgets around a provider: refused before sending, reserved under concurrency, recorded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiops_ai::{
    AiError, AiProvider, AiResult, BudgetConfig, BudgetedProvider, ChatRequest, ChatResponse, StopReason, Usage,
};
use async_trait::async_trait;

/// Answers every call after a short pause, reporting fixed usage, and counts the calls.
#[derive(Debug, Default)]
struct CountingProvider {
    calls: AtomicU64,
}

#[async_trait]
impl AiProvider for CountingProvider {
    fn name(&self) -> &str {
        "counting"
    }

    fn model(&self) -> &str {
        "fixed"
    }

    async fn chat(&self, request: ChatRequest) -> AiResult<ChatResponse> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(ChatResponse {
            content: "ok".into(),
            tool_calls: Vec::new(),
            stop_reason: StopReason::EndTurn,
            usage: Usage { input_tokens: 100, output_tokens: u64::from(request.max_tokens) / 2 },
        })
    }
}

fn request(max_tokens: u32, incident: Option<&str>) -> ChatRequest {
    let mut request = ChatRequest::new("system", "user", max_tokens);
    request.incident = incident.map(str::to_owned);
    request
}

fn unlimited() -> BudgetConfig {
    BudgetConfig {
        max_tokens_per_call: 0,
        max_tokens_per_incident: 0,
        max_tokens_per_day: 0,
        max_cost_per_incident_usd: 0.0,
        max_cost_per_day_usd: 0.0,
        input_usd_per_million_tokens: 3.0,
        output_usd_per_million_tokens: 15.0,
    }
}

#[tokio::test]
async fn a_call_over_the_per_call_limit_is_never_sent() {
    let inner = Arc::new(CountingProvider::default());
    let provider = BudgetedProvider::new(inner.clone(), BudgetConfig { max_tokens_per_call: 1_000, ..unlimited() });
    let err = provider.chat(request(2_000, None)).await.unwrap_err();
    assert!(matches!(&err, AiError::OverBudget(reason) if reason.contains("per-call limit of 1000")), "{err}");
    assert_eq!(inner.calls.load(Ordering::SeqCst), 0);
    provider.chat(request(500, None)).await.unwrap();
    assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
    assert_eq!(provider.usage().refused_calls, 1);
}

#[tokio::test]
async fn an_incident_budget_counts_actual_usage_and_spares_other_incidents() {
    let inner = Arc::new(CountingProvider::default());
    // Each call reserves about 1,000 + a few tokens and then uses 100 + 500.
    let provider = BudgetedProvider::new(inner.clone(), BudgetConfig { max_tokens_per_incident: 2_500, ..unlimited() });
    for _ in 0..3 {
        provider.chat(request(1_000, Some("inc-1"))).await.unwrap();
    }
    let err = provider.chat(request(1_000, Some("inc-1"))).await.unwrap_err();
    assert!(matches!(&err, AiError::OverBudget(reason) if reason.contains("incident inc-1")), "{err}");
    provider.chat(request(1_000, Some("inc-2"))).await.unwrap();
    assert_eq!(inner.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn concurrent_calls_cannot_overrun_the_daily_budget() {
    let inner = Arc::new(CountingProvider::default());
    let provider =
        Arc::new(BudgetedProvider::new(inner.clone(), BudgetConfig { max_tokens_per_day: 5_500, ..unlimited() }));
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let provider = Arc::clone(&provider);
            tokio::spawn(async move { provider.chat(request(1_000, None)).await })
        })
        .collect();
    let mut admitted = 0;
    for call in calls {
        if call.await.unwrap().is_ok() {
            admitted += 1;
        }
    }
    // All 20 are in flight together, so each holds its full reservation (~1,003 tokens).
    assert_eq!(admitted, 5, "reservations must bound concurrent calls");
    assert_eq!(inner.calls.load(Ordering::SeqCst), 5);
    let usage = provider.usage();
    assert_eq!(usage.day_tokens, 5 * 600, "reservations are replaced by actual usage");
    assert_eq!((usage.calls, usage.refused_calls), (5, 15));
}

#[tokio::test]
async fn cost_is_priced_and_recorded_per_call() {
    let inner = Arc::new(CountingProvider::default());
    let provider = BudgetedProvider::new(inner, BudgetConfig { max_cost_per_day_usd: 0.02, ..unlimited() });
    provider.chat(request(1_000, Some("inc-9"))).await.unwrap();
    let usage = provider.usage();
    // 100 input tokens at $3/M plus 500 output tokens at $15/M.
    let expected = (100.0 * 3.0 + 500.0 * 15.0) / 1e6;
    assert!((usage.cost_usd - expected).abs() < 1e-12, "{}", usage.cost_usd);
    let record = &usage.recent[0];
    assert_eq!((record.input_tokens, record.output_tokens, record.outcome.as_str()), (100, 500, "ok"));
    assert_eq!(record.incident.as_deref(), Some("inc-9"));
    assert_eq!((record.provider.as_str(), record.model.as_str()), ("counting", "fixed"));
    assert!(record.latency_ms >= 20);
    // Two more calls would pass $0.02 (each reserves about $0.015 before it is sent).
    let err = provider.chat(request(1_000, None)).await.unwrap_err();
    assert!(matches!(&err, AiError::OverBudget(reason) if reason.contains("today's spend")), "{err}");
}

#[tokio::test]
async fn an_abandoned_call_keeps_its_reservation_as_spent() {
    let inner = Arc::new(CountingProvider::default());
    let provider = BudgetedProvider::new(inner, unlimited());
    // The caller gives up while the provider is still answering (it takes 20 ms).
    let gave_up = tokio::time::timeout(Duration::from_millis(5), provider.chat(request(1_000, Some("inc-3")))).await;
    assert!(gave_up.is_err());
    let usage = provider.usage();
    assert_eq!((usage.calls, usage.failed_calls), (1, 1));
    assert_eq!(usage.recent[0].outcome, "cancelled");
    assert!(usage.day_tokens >= 1_000, "the provider may have billed it: {}", usage.day_tokens);
}
