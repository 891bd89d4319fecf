//! Diagnosis → healing → learning on a real HTTP service: the safety ladder, verification,
//! limits, audit, idempotency, and the second diagnosis chosen from knowledge.

use std::sync::atomic::Ordering;

use aiops_agents::{Agent, Diagnostic, DiagnosticConfig, Healing, HealingConfig, Learning};
use aiops_model::{event_type, ActionOutcome, Envelope, RiskLevel};

use crate::support::{context, control_events, pool_problem, register, target};

fn as_event(event_type: &str, data: impl serde::Serialize) -> Envelope {
    Envelope::new("test", event_type, serde_json::to_value(data).unwrap()).with_subject("bookmarks")
}

#[tokio::test]
async fn ladder_fails_over_to_the_right_fix_and_knowledge_puts_it_first_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let service = target().await;
    register(&ctx, &service, None).await;
    service.health.store(503, Ordering::SeqCst);

    let diagnostic = Diagnostic::new(DiagnosticConfig::default());
    let problem = pool_problem();
    let diagnosis = diagnostic.diagnose(&ctx, &problem).await.unwrap();
    let plan: Vec<&str> = diagnosis.candidates.iter().map(|c| c.tool.as_str()).collect();
    assert_eq!(plan, vec!["clear_cache", "reset_db_pool"], "untried: least invasive plausible fix first");
    assert_eq!(diagnosis.hypotheses[0].title, "Database connection pool exhausted");

    let healing = Healing::new(HealingConfig::default());
    let event = as_event(event_type::DIAGNOSIS_COMPLETED, &diagnosis);
    healing.handle(&ctx, &event).await.unwrap();
    assert_eq!(service.cache_clears.load(Ordering::SeqCst), 1);
    assert_eq!(service.pool_resets.load(Ordering::SeqCst), 1);
    let outcomes: Vec<ActionOutcome> =
        control_events(&ctx, event_type::ACTION_COMPLETED).await.iter().map(|s| s.event.payload().unwrap()).collect();
    assert_eq!(outcomes.len(), 2);
    assert!(!outcomes[0].verified && outcomes[0].executed, "{:?}", outcomes[0]);
    assert!(outcomes[0].message.contains("not healthy within"), "{}", outcomes[0].message);
    assert!(outcomes[1].verified, "{:?}", outcomes[1]);
    let resolved = control_events(&ctx, event_type::PROBLEM_RESOLVED).await;
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].event.data["tool"], "reset_db_pool");
    let audit = ctx.audit.recent(10).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == "tool.run").count(), 2, "every run is audited");

    // Redelivery of the same diagnosis does nothing more.
    healing.handle(&ctx, &event).await.unwrap();
    assert_eq!(service.pool_resets.load(Ordering::SeqCst), 1, "a handled problem must not be healed twice");

    let learning = Learning::new();
    for stored in control_events(&ctx, event_type::ACTION_COMPLETED).await {
        learning.handle(&ctx, &stored.event).await.unwrap();
        learning.handle(&ctx, &stored.event).await.unwrap();
    }
    let stats = ctx.knowledge.solution_stats("solution:reset_db_pool").await.unwrap().unwrap();
    assert_eq!((stats.attempts, stats.successes), (1, 1), "redelivered outcomes must be counted once");
    let stats = ctx.knowledge.solution_stats("solution:clear_cache").await.unwrap().unwrap();
    assert_eq!((stats.attempts, stats.successes), (1, 0));
    let per_version = ctx.knowledge.pattern_stats("db-pool-exhaustion@1").await.unwrap().unwrap();
    assert_eq!((per_version.attempts, per_version.successes), (1, 1), "statistics per pattern version");

    let again = diagnostic.diagnose(&ctx, &pool_problem()).await.unwrap();
    assert_eq!(again.similar_problems.len(), 1);
    assert_eq!(again.similar_problems[0].0, problem.id);
    let plan: Vec<&str> = again.candidates.iter().map(|c| c.tool.as_str()).collect();
    assert_eq!(plan, vec!["reset_db_pool", "clear_cache"], "proven fix first, failed fix last");
    assert!(again.candidates[0].rationale.starts_with("proven"), "{}", again.candidates[0].rationale);
    assert!(again.candidates[0].expected_success > 0.6);
}

#[tokio::test]
async fn risky_fixes_wait_for_a_human_and_the_action_budget_is_never_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let service = target().await;
    register(&ctx, &service, None).await;
    service.health.store(503, Ordering::SeqCst);
    let diagnostic = Diagnostic::new(DiagnosticConfig::default());

    // Only low-risk actions without approval: clear_cache runs, reset_db_pool does not.
    let cautious = Healing::new(HealingConfig { max_auto_risk: RiskLevel::Low, ..HealingConfig::default() });
    let diagnosis = diagnostic.diagnose(&ctx, &pool_problem()).await.unwrap();
    cautious.handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, &diagnosis)).await.unwrap();
    assert_eq!(service.pool_resets.load(Ordering::SeqCst), 0);
    let escalated = control_events(&ctx, event_type::PROBLEM_ESCALATED).await;
    assert_eq!(escalated.len(), 1);
    let reason = escalated[0].event.data["reason"].as_str().unwrap();
    assert!(reason.contains("reset_db_pool: awaiting approval"), "{reason}");

    // One action per window: the second problem's first try is refused, then escalated.
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let service = target().await;
    register(&ctx, &service, None).await;
    service.health.store(503, Ordering::SeqCst);
    let frugal = Healing::new(HealingConfig { max_actions_per_service: 1, ..HealingConfig::default() });
    let first = diagnostic.diagnose(&ctx, &pool_problem()).await.unwrap();
    frugal.handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, &first)).await.unwrap();
    let clears_before = service.cache_clears.load(Ordering::SeqCst);
    assert_eq!(clears_before, 1);
    let second = diagnostic.diagnose(&ctx, &pool_problem()).await.unwrap();
    frugal.handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, &second)).await.unwrap();
    assert_eq!(service.cache_clears.load(Ordering::SeqCst), clears_before, "budget exceeded");
    let escalated = control_events(&ctx, event_type::PROBLEM_ESCALATED).await;
    let last = escalated.last().unwrap().event.data["reason"].as_str().unwrap().to_owned();
    assert!(last.contains("action budget spent"), "{last}");

    // A restarted healer (new state) still sees the actions of the last window in the audit log.
    let restarted = Healing::new(HealingConfig { max_actions_per_service: 1, ..HealingConfig::default() });
    let third = diagnostic.diagnose(&ctx, &pool_problem()).await.unwrap();
    restarted.handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, &third)).await.unwrap();
    assert_eq!(service.cache_clears.load(Ordering::SeqCst), clears_before, "the budget must outlive a restart");
}

/// A fault no tool fixes: each fix is verified in vain and rolled back, the problem is
/// escalated after `max_attempts_per_problem`, a redelivered diagnosis runs nothing again, and
/// later occurrences stop at the action budget or at the safety ladder (every failed fix
/// now waits for a human): healing never loops.
#[tokio::test]
async fn a_fault_no_tool_fixes_is_rolled_back_escalated_and_never_looped() {
    use aiops_model::{CandidateAction, Diagnosis};

    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let service = target().await;
    register(&ctx, &service, None).await;
    let spec = aiops_construction::parse_spec(
        "name = \"flush_cache\"\nversion = 1\ndescription = \"Flushes the cache.\"\nrisk = \"low\"\ncapability = \"cache.clear\"\n\n[rollback]\ntool = \"clear_cache\"\n\n[kind]\ntype = \"http\"\nmethod = \"POST\"\npath = \"/admin/cache/clear\"\n",
        "test",
    )
    .unwrap();
    ctx.tools.register(spec).unwrap();
    // Whatever the fixes do, the service stays sick.
    let sick = service.health.clone();
    let keep_sick = tokio::spawn(async move {
        loop {
            sick.store(503, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    let candidate = |tool: &str| CandidateAction {
        solution_id: format!("solution:{tool}"),
        tool: tool.into(),
        params: serde_json::json!({}),
        risk: RiskLevel::Low,
        hypothesis: "unknown".into(),
        pattern_id: None,
        pattern_version: None,
        learned_attempts: 0,
        learned_successes: 0,
        expected_success: 0.5,
        verify_within_ms: 300,
        verify_consecutive_ok: 2,
        rollback: None,
        target_service: None,
        rationale: String::new(),
        proposed_by: vec![],
    };
    let diagnosis = |id: &str| {
        let mut problem = pool_problem();
        problem.id = id.into();
        Diagnosis {
            id: format!("d-{id}"),
            problem,
            hypotheses: vec![],
            candidates: vec![candidate("flush_cache"), candidate("clear_cache"), candidate("reset_db_pool")],
            similar_problems: vec![],
            llm: None,
            diagnosed_at: chrono::Utc::now(),
        }
    };
    let healing = Healing::new(HealingConfig {
        max_attempts_per_problem: 2,
        max_actions_per_service: 3,
        ..HealingConfig::default()
    });
    let first = as_event(event_type::DIAGNOSIS_COMPLETED, diagnosis("p1"));
    healing.handle(&ctx, &first).await.unwrap();
    healing.handle(&ctx, &first).await.unwrap();
    let outcomes: Vec<ActionOutcome> =
        control_events(&ctx, event_type::ACTION_COMPLETED).await.iter().map(|e| e.event.payload().unwrap()).collect();
    assert_eq!(outcomes.len(), 2, "two attempts, and the redelivered diagnosis ran nothing");
    assert!(outcomes.iter().all(|o| o.executed && !o.verified));
    assert!(outcomes[0].rolled_back, "flush_cache's rollback ran: {}", outcomes[0].message);
    let audit = ctx.audit.recent(100).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "tool.rollback" && e.detail["done"] == true));
    let escalated = control_events(&ctx, event_type::PROBLEM_ESCALATED).await;
    assert_eq!(escalated.len(), 1);
    assert!(escalated[0].event.data["reason"].as_str().unwrap().contains("stopped after 2 attempts"));

    for id in ["p2", "p3"] {
        healing.handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, diagnosis(id))).await.unwrap();
    }
    keep_sick.abort();
    let starts = ctx.audit.recent(500).await.unwrap().iter().filter(|e| e.action == "tool.start").count();
    assert_eq!(starts, 3, "never more actions than the budget");
    let reasons: Vec<String> = control_events(&ctx, event_type::PROBLEM_ESCALATED)
        .await
        .iter()
        .map(|e| e.event.data["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons.len(), 3, "every occurrence ends in an escalation");
    // Every fix failed once, so the ladder asks a human instead of trying it again.
    assert!(reasons[2].matches("awaiting approval").count() == 3, "{reasons:?}");
}
