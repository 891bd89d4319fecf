//! The safety ladder on a real HTTP service: a risky fix waits for a human, runs once
//! approved, climbs to `auto` after enough verified successes and falls back after a failure;
//! the kill switch stops everything; escalations reach the webhook.

use std::sync::atomic::Ordering;

use aiops_agents::{Agent, Diagnostic, DiagnosticConfig, Healing, HealingConfig, WebhookConfig};
use aiops_model::{event_type, ApprovalDecision, ApprovalRequest, Envelope, KillSwitch, RiskLevel, TrustLevel};
use aiops_testkit::{MockHttpServer, MockReply};
use chrono::Utc;

use crate::support::{context, control_events, pool_problem, register, target};

fn as_event(event_type: &str, data: impl serde::Serialize) -> Envelope {
    Envelope::new("test", event_type, serde_json::to_value(data).unwrap()).with_subject("bookmarks")
}

fn decision(request: &ApprovalRequest, approved: bool) -> ApprovalDecision {
    ApprovalDecision {
        request: request.clone(),
        approved,
        by: "ops".into(),
        reason: "checked the pool graph".into(),
        decided_at: Utc::now(),
    }
}

async fn trust(ctx: &aiops_agents::AgentContext, pattern: &str, tool: &str) -> Option<String> {
    let node = ctx.knowledge.get_node(&format!("insight:trust:{pattern}:{tool}")).await.unwrap()?;
    node.data["level"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn an_approved_fix_runs_climbs_the_ladder_and_falls_back_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let service = target().await;
    register(&ctx, &service, None).await;
    let diagnostic = Diagnostic::new(DiagnosticConfig::default());
    let config = HealingConfig { max_auto_risk: RiskLevel::Low, promote_after: 2, ..HealingConfig::default() };
    let healing = Healing::new(config);

    let mut cache_clears = 0;
    for round in 1..=2 {
        service.health.store(503, Ordering::SeqCst);
        let mut problem = pool_problem();
        problem.id = format!("p{round}");
        let diagnosis = diagnostic.diagnose(&ctx, &problem).await.unwrap();
        healing.handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, &diagnosis)).await.unwrap();
        assert_eq!(service.pool_resets.load(Ordering::SeqCst), round - 1, "nothing risky runs unapproved");
        let cleared = service.cache_clears.load(Ordering::SeqCst);
        if round == 1 {
            assert_eq!(cleared, 1, "untried, the least invasive fix runs while the riskier one waits");
        } else {
            assert_eq!(cleared, cache_clears, "a fix less likely to heal does not run before the proven one");
        }
        cache_clears = cleared;
        let requests = control_events(&ctx, event_type::APPROVAL_REQUESTED).await;
        let request: ApprovalRequest = requests.last().unwrap().event.payload().unwrap();
        assert_eq!(
            (request.problem.id.as_str(), request.candidate.tool.as_str()),
            (problem.id.as_str(), "reset_db_pool")
        );
        assert!(request.expires_at > Utc::now());
        let approved = as_event(event_type::APPROVAL_DECIDED, decision(&request, true));
        healing.handle(&ctx, &approved).await.unwrap();
        healing.handle(&ctx, &approved).await.unwrap();
        assert_eq!(service.pool_resets.load(Ordering::SeqCst), round, "runs once, even when redelivered");
        let resolved = control_events(&ctx, event_type::PROBLEM_RESOLVED).await;
        assert!(resolved.iter().any(|e| e.event.data["problem_id"] == problem.id.as_str()));
    }
    assert_eq!(
        trust(&ctx, "db-pool-exhaustion", "reset_db_pool").await.as_deref(),
        Some("auto"),
        "two verified in a row"
    );

    // Trusted now: the third occurrence heals without asking.
    service.health.store(503, Ordering::SeqCst);
    let mut third = pool_problem();
    third.id = "p3".into();
    let pool_requests = |events: Vec<aiops_events::StoredEvent>| {
        events.iter().filter(|e| e.event.data["candidate"]["tool"] == "reset_db_pool").count()
    };
    let requests_before = pool_requests(control_events(&ctx, event_type::APPROVAL_REQUESTED).await);
    let diagnosis = diagnostic.diagnose(&ctx, &third).await.unwrap();
    healing.handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, &diagnosis)).await.unwrap();
    assert_eq!(service.pool_resets.load(Ordering::SeqCst), 3);
    assert_eq!(pool_requests(control_events(&ctx, event_type::APPROVAL_REQUESTED).await), requests_before);
    let audit = ctx.audit.recent(200).await.unwrap();
    let climbed = audit.iter().find(|e| e.action == "trust.changed").unwrap();
    assert_eq!((climbed.detail["from"].as_str(), climbed.detail["to"].as_str()), (Some("approve"), Some("auto")));
    assert!(audit.iter().any(|e| e.action == "approval.approved" && e.detail["by"] == "ops"));

    // A denied request runs nothing; a late approval runs nothing.
    let mut fourth = pool_problem();
    fourth.id = "p4".into();
    let mut request =
        control_events(&ctx, event_type::APPROVAL_REQUESTED).await[0].event.payload::<ApprovalRequest>().unwrap();
    request.approval_id = "late".into();
    request.problem = fourth;
    request.expires_at = Utc::now() - chrono::Duration::seconds(1);
    healing.handle(&ctx, &as_event(event_type::APPROVAL_DECIDED, decision(&request, true))).await.unwrap();
    request.approval_id = "denied".into();
    request.expires_at = Utc::now() + chrono::Duration::minutes(5);
    healing.handle(&ctx, &as_event(event_type::APPROVAL_DECIDED, decision(&request, false))).await.unwrap();
    assert_eq!(service.pool_resets.load(Ordering::SeqCst), 3);
    let audit = ctx.audit.recent(200).await.unwrap();
    assert!(audit
        .iter()
        .any(|e| e.action == "approval.not_run" && e.detail["why"].as_str().unwrap().contains("expired")));
    assert!(audit.iter().any(|e| e.action == "approval.denied"));

    // A failed verification sends the trusted fix back to needing approval.
    service.health.store(503, Ordering::SeqCst);
    let broken = aiops_model::CandidateAction {
        verify_within_ms: 300,
        ..diagnosis.candidates.iter().find(|c| c.tool == "reset_db_pool").unwrap().clone()
    };
    let mut fifth = pool_problem();
    fifth.id = "p5".into();
    let mut late_diagnosis = diagnosis.clone();
    late_diagnosis.problem = fifth;
    late_diagnosis.candidates = vec![broken];
    late_diagnosis.diagnosed_at = Utc::now();
    // The service stays sick whatever the fix does.
    let stubborn = service.health.clone();
    let keep_sick = tokio::spawn(async move {
        loop {
            stubborn.store(503, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    healing.handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, &late_diagnosis)).await.unwrap();
    keep_sick.abort();
    assert_eq!(trust(&ctx, "db-pool-exhaustion", "reset_db_pool").await.as_deref(), Some(TrustLevel::Approve.as_str()));
}

#[tokio::test]
async fn the_kill_switch_stops_every_fix_and_escalations_reach_the_webhook() {
    let webhook = MockHttpServer::start().unwrap();
    webhook.push(MockReply::json(500, r#"{"error":"busy"}"#));
    webhook.push(MockReply::json(200, "{}"));
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let service = target().await;
    register(&ctx, &service, None).await;
    service.health.store(503, Ordering::SeqCst);
    let switch = KillSwitch { engaged: true, by: "ops".into(), reason: "database migration".into(), at: Utc::now() };
    ctx.emit("test", event_type::HEALING_KILL_SWITCH, "healing", None, &switch).await.unwrap();
    let config = HealingConfig {
        escalation_webhook: Some(WebhookConfig { url: format!("{}/hooks/aiops", webhook.url()), token_env: None }),
        ..HealingConfig::default()
    };
    let healing = Healing::new(config);
    let diagnosis = Diagnostic::new(DiagnosticConfig::default()).diagnose(&ctx, &pool_problem()).await.unwrap();
    healing.handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, &diagnosis)).await.unwrap();
    assert_eq!(service.cache_clears.load(Ordering::SeqCst) + service.pool_resets.load(Ordering::SeqCst), 0);
    let escalated = control_events(&ctx, event_type::PROBLEM_ESCALATED).await;
    let reason = escalated[0].event.data["reason"].as_str().unwrap();
    assert!(reason.contains("kill switch is engaged (by ops: database migration)"), "{reason}");
    let posts = webhook.requests();
    assert_eq!(posts.len(), 2, "retried after a 500");
    let body: serde_json::Value = serde_json::from_str(&posts[1].body_text()).unwrap();
    assert_eq!(body["problem_id"], diagnosis.problem.id.as_str());
    assert!(body["reason"].as_str().unwrap().contains("kill switch"));

    // Released: the next problem heals.
    let released = KillSwitch { engaged: false, at: Utc::now(), ..switch };
    ctx.emit("test", event_type::HEALING_KILL_SWITCH, "healing", None, &released).await.unwrap();
    let mut again = pool_problem();
    again.id = "after-release".into();
    let diagnosis = Diagnostic::new(DiagnosticConfig::default()).diagnose(&ctx, &again).await.unwrap();
    healing.handle(&ctx, &as_event(event_type::DIAGNOSIS_COMPLETED, &diagnosis)).await.unwrap();
    assert_eq!(service.pool_resets.load(Ordering::SeqCst), 1);
}
