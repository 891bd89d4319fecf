//! Approvals and the kill switch over HTTP: scopes, decisions recorded once, expiry.

use std::collections::BTreeMap;

use aiops_events::{EventBusExt, ReadQuery};
use aiops_model::{
    event_type, ApprovalDecision, ApprovalRequest, CandidateAction, Envelope, Problem, ProblemKind, RiskLevel, Severity,
};
use aiops_server::{router, ApiState};
use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{json, Value};

use crate::support::{call, state, ADMIN_TOKEN, READ_TOKEN};

async fn request_approval(state: &ApiState, id: &str, expires_in: chrono::Duration) {
    let now = Utc::now();
    let request = ApprovalRequest {
        approval_id: id.into(),
        problem: Problem {
            id: format!("problem-{id}"),
            service: "bookmarks".into(),
            instance_id: None,
            kind: ProblemKind::HttpErrorRatio,
            severity: Severity::Error,
            summary: "pool".into(),
            detected_at: now,
            first_seen: now,
            evidence: vec![],
            metrics: BTreeMap::new(),
        },
        candidate: CandidateAction {
            solution_id: "solution:reset_db_pool".into(),
            tool: "reset_db_pool".into(),
            params: json!({}),
            risk: RiskLevel::Medium,
            hypothesis: "pool".into(),
            pattern_id: Some("db-pool-exhaustion".into()),
            pattern_version: Some(1),
            learned_attempts: 0,
            learned_successes: 0,
            expected_success: 0.5,
            verify_within_ms: 5000,
            verify_consecutive_ok: 3,
            rollback: None,
            target_service: None,
            rationale: String::new(),
            proposed_by: vec![],
        },
        instance_id: "bookmarks-1".into(),
        reason: "medium risk".into(),
        requested_at: now,
        expires_at: now + expires_in,
    };
    let event = Envelope::new("test", event_type::APPROVAL_REQUESTED, serde_json::to_value(request).unwrap());
    state.bus.publish_one(&state.streams.control, event).await.unwrap();
}

#[tokio::test]
async fn approvals_are_decided_once_by_an_admin_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let app = router(state.clone());
    request_approval(&state, "a1", chrono::Duration::minutes(15)).await;
    request_approval(&state, "old", chrono::Duration::seconds(-1)).await;
    let (_, pending) = call(&app, "GET", "/v1/approvals", READ_TOKEN, Value::Null).await;
    let ids: Vec<&str> =
        pending["approvals"].as_array().unwrap().iter().map(|a| a["approval_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a1"], "expired requests are not pending");

    let reason = json!({ "reason": "pool graph confirms the leak" });
    let (status, _) = call(&app, "POST", "/v1/approvals/a1/approve", READ_TOKEN, reason.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(&app, "POST", "/v1/approvals/a1/approve", ADMIN_TOKEN, json!({ "reason": " " })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = call(&app, "POST", "/v1/approvals/a1/approve", ADMIN_TOKEN, reason.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["by"], "ops");
    let (status, body) = call(&app, "POST", "/v1/approvals/a1/deny", ADMIN_TOKEN, reason.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"].as_str().unwrap().contains("already approved"), "{body}");
    let (status, body) = call(&app, "POST", "/v1/approvals/old/approve", ADMIN_TOKEN, reason.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"), "{body}");
    let (status, _) = call(&app, "POST", "/v1/approvals/nope/approve", ADMIN_TOKEN, reason).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, all) = call(&app, "GET", "/v1/approvals?status=all", READ_TOKEN, Value::Null).await;
    let a1 = all["approvals"].as_array().unwrap().iter().find(|a| a["approval_id"] == "a1").unwrap().clone();
    assert_eq!((a1["status"].as_str(), a1["decision"]["by"].as_str()), (Some("approved"), Some("ops")));
    let decided = state
        .bus
        .read(
            &state.streams.control,
            &ReadQuery { types: vec![event_type::APPROVAL_DECIDED.into()], ..ReadQuery::default() },
        )
        .await
        .unwrap();
    assert_eq!(decided.len(), 1, "one decision event, for the Healing agent");
    let decision: ApprovalDecision = decided[0].event.payload().unwrap();
    assert!(decision.approved && decision.request.candidate.tool == "reset_db_pool");
}

#[tokio::test]
async fn the_kill_switch_is_engaged_and_released_by_admins_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let app = router(state.clone());
    let (_, status) = call(&app, "GET", "/v1/healing", READ_TOKEN, Value::Null).await;
    assert_eq!(status["kill_switch"]["engaged"], false);
    let body = json!({ "engaged": true, "reason": "database migration tonight" });
    let (code, _) = call(&app, "POST", "/v1/healing/kill-switch", READ_TOKEN, body.clone()).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = call(&app, "POST", "/v1/healing/kill-switch", ADMIN_TOKEN, body).await;
    assert_eq!(code, StatusCode::OK);
    let (_, status) = call(&app, "GET", "/v1/healing", READ_TOKEN, Value::Null).await;
    assert_eq!(status["kill_switch"]["engaged"], true);
    assert_eq!(status["kill_switch"]["last_change"]["by"], "ops");
    // The bound is in characters: 1500 of them, 3000 bytes in UTF-8, are a valid reason.
    let release = json!({ "engaged": false, "reason": "é".repeat(1500) });
    let (code, answer) = call(&app, "POST", "/v1/healing/kill-switch", ADMIN_TOKEN, release).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    let (_, status) = call(&app, "GET", "/v1/healing", READ_TOKEN, Value::Null).await;
    assert_eq!(status["kill_switch"]["engaged"], false);
    let audit = state.audit.recent(10).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["kill_switch.released", "kill_switch.engaged"]);
}

#[tokio::test]
async fn a_problem_whose_fix_waits_for_a_human_is_listed_as_awaiting_approval() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path()).await;
    let app = router(state.clone());
    // What the loop records: the problem, its escalation naming the approval it waits for,
    // and the request itself.
    request_approval(&state, "a1", chrono::Duration::minutes(15)).await;
    let problem: Value = {
        let read = ReadQuery { types: vec![event_type::APPROVAL_REQUESTED.into()], ..ReadQuery::default() };
        state.bus.read(&state.streams.control, &read).await.unwrap()[0].event.data["problem"].clone()
    };
    let detected = Envelope::new("test", event_type::PROBLEM_DETECTED, problem);
    state.bus.publish_one(&state.streams.control, detected).await.unwrap();
    let escalation =
        json!({ "problem_id": "problem-a1", "service": "bookmarks", "reason": "reset_db_pool: awaiting approval a1" });
    state
        .bus
        .publish_one(&state.streams.control, Envelope::new("test", event_type::PROBLEM_ESCALATED, escalation))
        .await
        .unwrap();
    let listed = |body: &Value| body["problems"][0]["status"].as_str().map(str::to_owned);

    let (status, body) = call(&app, "GET", "/v1/problems", READ_TOKEN, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(listed(&body).as_deref(), Some("awaiting_approval"), "{body}");
    // Denied, nothing waits any more: a human has it.
    let (status, _) = call(&app, "POST", "/v1/approvals/a1/deny", ADMIN_TOKEN, json!({ "reason": "not now" })).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = call(&app, "GET", "/v1/problems", READ_TOKEN, Value::Null).await;
    assert_eq!(listed(&body).as_deref(), Some("escalated"), "{body}");
}
