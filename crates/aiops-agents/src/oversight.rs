//! What humans decided about healing, read back from the control stream: approval requests
//! with their decisions, and the kill switch. The API and the Healing agent read them the same
//! way, so they never disagree on what is pending.

use aiops_events::{EventBus, ReadQuery, StreamName};
use aiops_model::{event_type, ApprovalDecision, ApprovalRequest, KillSwitch};
use chrono::{DateTime, Utc};

use crate::AgentResult;

/// Approval events looked at: requests older than this many events are forgotten.
const LOOKBACK: usize = 5000;

/// An approval request and its decision, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// The request.
    pub request: ApprovalRequest,
    /// The decision, once made.
    pub decision: Option<ApprovalDecision>,
}

impl Approval {
    /// `pending`, `approved`, `denied` or `expired` at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        match &self.decision {
            Some(d) if d.approved => "approved",
            Some(_) => "denied",
            None if self.request.expires_at < now => "expired",
            None => "pending",
        }
    }
}

/// Recent approval requests with their decisions, newest first.
///
/// # Errors
/// When the control stream cannot be read.
pub async fn approvals(bus: &dyn EventBus, control: &StreamName) -> AgentResult<Vec<Approval>> {
    let query = ReadQuery {
        types: vec![event_type::APPROVAL_REQUESTED.into(), event_type::APPROVAL_DECIDED.into()],
        newest_first: true,
        limit: LOOKBACK,
        ..ReadQuery::default()
    };
    let events = bus.read(control, &query).await?;
    let decisions: Vec<ApprovalDecision> = events
        .iter()
        .filter(|e| e.event.event_type == event_type::APPROVAL_DECIDED)
        .filter_map(|e| e.event.payload().ok())
        .collect();
    Ok(events
        .iter()
        .filter(|e| e.event.event_type == event_type::APPROVAL_REQUESTED)
        .filter_map(|e| e.event.payload::<ApprovalRequest>().ok())
        .map(|request| {
            let decision = decisions.iter().find(|d| d.request.approval_id == request.approval_id).cloned();
            Approval { request, decision }
        })
        .collect())
}

/// The kill switch's last change, engaged or released; `None` if it was never touched.
///
/// # Errors
/// When the control stream cannot be read.
pub async fn kill_switch(bus: &dyn EventBus, control: &StreamName) -> AgentResult<Option<KillSwitch>> {
    let query = ReadQuery {
        types: vec![event_type::HEALING_KILL_SWITCH.into()],
        newest_first: true,
        limit: 1,
        ..ReadQuery::default()
    };
    let latest = bus.read(control, &query).await?;
    Ok(latest.first().and_then(|stored| stored.event.payload().ok()))
}
