//! Humans in the healing loop: approvals of risky fixes and the kill switch. Both live on the
//! control stream as events, so every core sees them and the audit trail keeps them.

use aiops_events::EventBusExt;
use aiops_model::{event_type, ApprovalDecision, ApprovalRequest, Envelope, KillSwitch};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::{authorize, Scope};
use crate::extract::{ApiJson, ApiQuery, NoQuery};
use crate::{ApiError, ApiState};

#[derive(Debug, Serialize)]
struct ApprovalView {
    #[serde(flatten)]
    request: ApprovalRequest,
    /// `pending`, `approved`, `denied` or `expired`.
    status: &'static str,
    /// Who decided, why and when.
    decision: Option<Value>,
}

async fn approvals(state: &ApiState) -> Result<Vec<ApprovalView>, ApiError> {
    let now = Utc::now();
    let approvals = aiops_agents::approvals(state.bus.as_ref(), &state.streams.control).await.map_err(agent_error)?;
    Ok(approvals
        .into_iter()
        .map(|approval| {
            let status = approval.status(now);
            let decision =
                approval.decision.map(|d| json!({ "by": d.by, "reason": d.reason, "decided_at": d.decided_at }));
            ApprovalView { request: approval.request, status, decision }
        })
        .collect())
}

fn agent_error(err: aiops_agents::AgentError) -> ApiError {
    match err {
        aiops_agents::AgentError::Events(err) => err.into(),
        other => ApiError::Internal(other.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// `pending` (default) or `all`.
    status: Option<String>,
}

/// Approval requests, newest first: pending ones, or all with their outcome.
pub(crate) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let all = match q.status.as_deref() {
        None | Some("pending") => false,
        Some("all") => true,
        Some(other) => return Err(ApiError::Invalid(format!("status {other:?} is not pending or all"))),
    };
    let mut views = approvals(&state).await?;
    if !all {
        views.retain(|v| v.status == "pending");
    }
    Ok(Json(json!({ "approvals": views })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    /// Why; kept in the audit trail.
    reason: String,
}

/// A human's reason for a decision, kept in the audit trail: said, and bounded in characters.
fn check_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim().is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::Invalid(format!("reason must say why, in 1-{MAX_REASON_CHARS} characters")));
    }
    Ok(())
}

/// Longest reason for an approval decision or a kill-switch change.
const MAX_REASON_CHARS: usize = 2000;

async fn decide(
    state: &ApiState,
    headers: &HeaderMap,
    id: &str,
    approved: bool,
    reason: String,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state.tokens, headers, Scope::Admin)?;
    check_reason(&reason)?;
    let view = approvals(state)
        .await?
        .into_iter()
        .find(|v| v.request.approval_id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no approval request {id}")))?;
    match view.status {
        "pending" => {}
        "expired" => {
            return Err(ApiError::Conflict(format!("approval request {id} expired at {}", view.request.expires_at)))
        }
        decided => return Err(ApiError::Conflict(format!("approval request {id} was already {decided}"))),
    }
    let decision =
        ApprovalDecision { request: view.request, approved, by: who.clone(), reason, decided_at: Utc::now() };
    let service = decision.request.problem.service.clone();
    let data = serde_json::to_value(&decision).map_err(|e| ApiError::Internal(e.to_string()))?;
    let event = Envelope::new(format!("api/{who}"), event_type::APPROVAL_DECIDED, data).with_subject(service);
    state.bus.publish_one(&state.streams.control, event).await?;
    tracing::info!(approval = %id, approved, by = %who, "Approval decided.");
    Ok(Json(json!({ "approval_id": id, "status": if approved { "approved" } else { "denied" }, "by": who })))
}

/// Approves a fix; the Healing agent runs it.
pub(crate) async fn approve(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    decide(&state, &headers, &id, true, body.reason).await
}

/// Denies a fix.
pub(crate) async fn deny(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    decide(&state, &headers, &id, false, body.reason).await
}

/// The kill switch's state.
pub(crate) async fn status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    _: ApiQuery<NoQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state.tokens, &headers, Scope::Read)?;
    let switch = aiops_agents::kill_switch(state.bus.as_ref(), &state.streams.control).await.map_err(agent_error)?;
    let engaged = switch.as_ref().is_some_and(|s| s.engaged);
    Ok(Json(json!({ "kill_switch": { "engaged": engaged, "last_change": switch } })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwitchBody {
    /// Engage (true) or release (false).
    engaged: bool,
    /// Why.
    reason: String,
}

/// Engages or releases the kill switch: while engaged, no remediation runs anywhere.
pub(crate) async fn kill_switch(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SwitchBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = authorize(&state.tokens, &headers, Scope::Admin)?;
    check_reason(&body.reason)?;
    let switch = KillSwitch { engaged: body.engaged, by: who.clone(), reason: body.reason, at: Utc::now() };
    let data = serde_json::to_value(&switch).map_err(|e| ApiError::Internal(e.to_string()))?;
    let event = Envelope::new(format!("api/{who}"), event_type::HEALING_KILL_SWITCH, data).with_subject("healing");
    state.bus.publish_one(&state.streams.control, event).await?;
    state
        .audit
        .append(aiops_knowledge::AuditEntry {
            seq: 0,
            at: switch.at,
            actor: who.clone(),
            action: if switch.engaged { "kill_switch.engaged" } else { "kill_switch.released" }.into(),
            subject: "healing".into(),
            detail: json!({ "reason": switch.reason }),
        })
        .await?;
    tracing::warn!(engaged = switch.engaged, by = %who, "Healing kill switch changed.");
    Ok((StatusCode::OK, Json(json!({ "kill_switch": switch }))))
}
