//! LLM-assisted diagnosis against a scripted OpenAI-compatible server: the model reads evidence
//! through its tools, its fix goes first, and Learning records which source was right; a
//! hallucinated fix, a dead provider or an exhausted budget leave the rule-based diagnosis as is.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use aiops_agents::{source_accuracy, Agent, Diagnostic, DiagnosticConfig, Healing, HealingConfig, Learning};
use aiops_ai::{AiProvider, BudgetConfig, BudgetedProvider, OpenAiProvider, RetryPolicy};
use aiops_model::{event_type, DiagnosisSource, Envelope, HypothesisSource};
use aiops_testkit::{MockHttpServer, MockReply};
use serde_json::{json, Value};

use crate::support::{context, control_events, pool_problem, register, target};

fn provider(base_url: &str, budget: BudgetConfig) -> Arc<dyn AiProvider> {
    let policy = RetryPolicy {
        max_retries: 1,
        initial_backoff_ms: 5,
        max_backoff_ms: 10,
        timeout_ms: 2_000,
        ..RetryPolicy::default()
    };
    let inner = OpenAiProvider::compatible(&format!("{base_url}/v1"), "llama3.1:8b", None, policy, false).unwrap();
    Arc::new(BudgetedProvider::new(Arc::new(inner), budget))
}

fn completion(message: Value, finish_reason: &str) -> MockReply {
    MockReply::json(
        200,
        &json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1741569952, "model": "llama3.1:8b",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960}
        })
        .to_string(),
    )
}

fn tool_call(name: &str, arguments: Value) -> MockReply {
    completion(
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments.to_string()}}
        ]}),
        "tool_calls",
    )
}

fn answer(answer: Value) -> MockReply {
    completion(json!({"role": "assistant", "content": answer.to_string()}), "stop")
}

fn as_event(event_type: &str, data: impl serde::Serialize) -> Envelope {
    Envelope::new("test", event_type, serde_json::to_value(data).unwrap()).with_subject("bookmarks")
}

#[tokio::test]
async fn the_llm_reads_evidence_its_fix_goes_first_and_learning_records_who_was_right() {
    let dir = tempfile::tempdir().unwrap();
    let llm = MockHttpServer::start().unwrap();
    let mut ctx = context(dir.path()).await;
    ctx.ai = Some(provider(&llm.url(), BudgetConfig::default()));
    let service = target().await;
    register(&ctx, &service, None).await;
    service.health.store(503, Ordering::SeqCst);
    for attempt in 0..3 {
        let error = json!({"kind": "database", "message": format!("pool timed out after {}ms waiting for a connection", 5000 + attempt)});
        ctx.bus.publish(&ctx.streams.telemetry, vec![as_event(event_type::SERVICE_ERROR, error)]).await.unwrap();
    }

    llm.push(tool_call("log_templates", json!({"service": "bookmarks"})));
    llm.push(answer(json!({
        "root_cause": "The database connection pool is exhausted: every request waits for a connection and times out.",
        "confidence": 0.85,
        "evidence": ["3 errors: database: pool timed out after <*> waiting for a connection"],
        "solution_id": "solution:reset_db_pool"
    })));
    let diagnosis = Diagnostic::new(DiagnosticConfig::default()).diagnose(&ctx, &pool_problem()).await.unwrap();

    let review = diagnosis.llm.as_ref().unwrap();
    assert!(review.accepted, "{review:?}");
    assert_eq!((review.steps, review.tool_calls.as_slice()), (2, ["log_templates".to_owned()].as_slice()));
    assert_eq!((review.input_tokens, review.output_tokens), (1_800, 120));
    let plan: Vec<&str> = diagnosis.candidates.iter().map(|c| c.tool.as_str()).collect();
    assert_eq!(plan, vec!["reset_db_pool", "clear_cache"], "the LLM's choice goes first among untried fixes");
    assert_eq!(diagnosis.candidates[0].proposed_by, vec![DiagnosisSource::Rules, DiagnosisSource::Llm]);
    assert!(diagnosis
        .hypotheses
        .iter()
        .any(|h| matches!(&h.source, HypothesisSource::Llm { model, .. } if model == "llama3.1:8b")));

    let requests = llm.requests();
    let first: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let briefing = first["messages"][1]["content"].as_str().unwrap();
    assert!(briefing.contains("solution:reset_db_pool") && briefing.contains("pool timed out"), "{briefing}");
    assert_eq!(first["tools"].as_array().unwrap().len(), 4);
    let second: Value = serde_json::from_slice(&requests[1].body).unwrap();
    let tool_result = second["messages"][3]["content"].as_str().unwrap();
    assert!(
        tool_result.contains("database: pool timed out after <*> waiting for a connection")
            && tool_result.contains("\"count\":3"),
        "the tool must group the three errors into one template: {tool_result}"
    );

    Healing::new(HealingConfig::default())
        .handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, &diagnosis))
        .await
        .unwrap();
    assert_eq!(service.pool_resets.load(Ordering::SeqCst), 1);
    assert_eq!(service.cache_clears.load(Ordering::SeqCst), 0, "the LLM's fix healed it first");
    let learning = Learning::new();
    for stored in control_events(&ctx, event_type::ACTION_COMPLETED).await {
        learning.handle(&ctx, &stored.event).await.unwrap();
        learning.handle(&ctx, &stored.event).await.unwrap();
    }
    let accuracy = source_accuracy(ctx.knowledge.as_ref()).await.unwrap();
    assert_eq!(accuracy[&DiagnosisSource::Llm], (1, 0));
    assert_eq!(accuracy[&DiagnosisSource::Rules], (1, 0));
    assert_eq!(accuracy[&DiagnosisSource::Knowledge], (0, 0));
}

async fn rule_based_plan(ctx: &aiops_agents::AgentContext) -> Vec<String> {
    let mut plain = ctx.clone();
    plain.ai = None;
    let diagnosis = Diagnostic::new(DiagnosticConfig::default()).diagnose(&plain, &pool_problem()).await.unwrap();
    diagnosis.candidates.iter().map(|c| c.solution_id.clone()).collect()
}

#[tokio::test]
async fn a_hallucinated_fix_or_a_bad_answer_is_rejected_and_the_rules_stand() {
    let dir = tempfile::tempdir().unwrap();
    let llm = MockHttpServer::start().unwrap();
    let mut ctx = context(dir.path()).await;
    ctx.ai = Some(provider(&llm.url(), BudgetConfig::default()));
    register(&ctx, &target().await, None).await;
    let expected = rule_based_plan(&ctx).await;
    let diagnostic = Diagnostic::new(DiagnosticConfig::default());

    let answers = [
        (
            json!({"root_cause": "everything is broken", "confidence": 0.99, "evidence": [], "solution_id": "solution:restart_the_world"}),
            "solution:restart_the_world",
        ),
        (json!({"root_cause": "pool", "confidence": 7.5, "evidence": [], "solution_id": null}), "outside [0, 1]"),
        (json!({"cause": "pool"}), "schema"),
    ];
    for (bad, reason) in answers {
        llm.push(answer(bad));
        let diagnosis = diagnostic.diagnose(&ctx, &pool_problem()).await.unwrap();
        let review = diagnosis.llm.unwrap();
        assert!(!review.accepted);
        assert!(review.rejection.as_deref().unwrap().contains(reason), "{:?}", review.rejection);
        let plan: Vec<String> = diagnosis.candidates.iter().map(|c| c.solution_id.clone()).collect();
        assert_eq!(plan, expected);
        assert!(diagnosis.hypotheses.iter().all(|h| !matches!(h.source, HypothesisSource::Llm { .. })));
    }

    // A call of a tool it was not given is malformed output, not a crash.
    llm.push(tool_call("delete_database", json!({})));
    let review = diagnostic.diagnose(&ctx, &pool_problem()).await.unwrap().llm.unwrap();
    assert!(review.rejection.unwrap().contains("delete_database"));
}

#[tokio::test]
async fn a_dead_provider_or_a_spent_budget_never_blocks_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = context(dir.path()).await;
    register(&ctx, &target().await, None).await;
    let expected = rule_based_plan(&ctx).await;
    let diagnostic = Diagnostic::new(DiagnosticConfig::default());

    let dead_port = aiops_testkit::free_port().unwrap();
    ctx.ai = Some(provider(&format!("http://127.0.0.1:{dead_port}"), BudgetConfig::default()));
    let diagnosis = diagnostic.diagnose(&ctx, &pool_problem()).await.unwrap();
    let review = diagnosis.llm.unwrap();
    assert!(review.rejection.as_deref().unwrap().contains("unavailable"), "{review:?}");
    assert_eq!(diagnosis.candidates.iter().map(|c| c.solution_id.clone()).collect::<Vec<_>>(), expected);

    let llm = MockHttpServer::start().unwrap();
    ctx.ai = Some(provider(&llm.url(), BudgetConfig { max_tokens_per_call: 500, ..BudgetConfig::default() }));
    let review = diagnostic.diagnose(&ctx, &pool_problem()).await.unwrap().llm.unwrap();
    assert!(review.rejection.as_deref().unwrap().contains("over budget"), "{review:?}");
    assert!(llm.requests().is_empty(), "a call over budget is never sent");
}
