//! What both storage engines share: the rows they read and how instances are put together
//! from them, so that both derive statuses the same way.

use std::collections::HashMap;

use aiops_model::HealthStatus;
use chrono::{DateTime, TimeZone, Utc};

use crate::model::badness;
use crate::{CheckKind, CheckState, DueCheck, RegistryError, RegistryResult, ServiceInstance, ServiceRegistration};

/// Status reason of an instance without checks.
pub(crate) const NO_CHECKS: &str = "registered without checks";
/// Output of a check that has not run yet.
pub(crate) const AWAITING_FIRST_RUN: &str = "awaiting first run";

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(crate) fn parse_status(text: &str) -> HealthStatus {
    HealthStatus::parse(text).unwrap_or(HealthStatus::Critical)
}

pub(crate) fn parse_kind(text: &str) -> CheckKind {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).unwrap_or(CheckKind::Http)
}

/// The columns [`InstanceRow`] reads (named, never `*`: a schema change must not shift them).
pub(crate) const INSTANCE_COLUMNS: &str =
    "instance_id, registration, status, status_reason, status_since, last_heartbeat, registered_at, modify_index";
/// The columns [`CheckRow`] reads.
pub(crate) const CHECK_COLUMNS: &str =
    "instance_id, check_id, kind, status, output, failures, successes, last_checked, checked_by";

/// A row of `reg_instances`.
#[derive(Debug)]
pub(crate) struct InstanceRow {
    pub registration: String,
    pub status: String,
    pub status_reason: String,
    pub status_since: i64,
    pub last_heartbeat: Option<i64>,
    pub registered_at: i64,
    pub modify_index: i64,
}

/// A row of `reg_checks`.
#[derive(Debug)]
pub(crate) struct CheckRow {
    pub instance_id: String,
    pub check_id: String,
    pub kind: String,
    pub status: String,
    pub output: String,
    pub failures: i64,
    pub successes: i64,
    pub last_checked: Option<i64>,
    pub checked_by: Option<String>,
}

fn corrupt(err: serde_json::Error) -> RegistryError {
    RegistryError::Invalid(format!("a stored registration cannot be read: {err}"))
}

/// Instances from their rows and all their check rows (ordered by position).
pub(crate) fn assemble(rows: Vec<InstanceRow>, checks: Vec<CheckRow>) -> RegistryResult<Vec<ServiceInstance>> {
    let mut by_instance: HashMap<String, Vec<CheckState>> = HashMap::new();
    for check in checks {
        by_instance.entry(check.instance_id).or_default().push(CheckState {
            id: check.check_id,
            kind: parse_kind(&check.kind),
            status: parse_status(&check.status),
            output: check.output,
            failures: u32::try_from(check.failures).unwrap_or(0),
            successes: u32::try_from(check.successes).unwrap_or(0),
            last_checked: check.last_checked.map(from_millis),
            checked_by: check.checked_by,
        });
    }
    rows.into_iter()
        .map(|row| {
            let registration: ServiceRegistration = serde_json::from_str(&row.registration).map_err(corrupt)?;
            let check_states = by_instance.remove(&registration.instance_id).unwrap_or_default();
            Ok(ServiceInstance {
                registration,
                status: parse_status(&row.status),
                status_reason: row.status_reason,
                status_since: from_millis(row.status_since),
                check_states,
                last_heartbeat: row.last_heartbeat.map(from_millis),
                registered_at: from_millis(row.registered_at),
                modify_index: u64::try_from(row.modify_index).unwrap_or(0),
            })
        })
        .collect()
}

/// A check as status aggregation sees it: id, damped status, last output, failed runs in a row.
pub(crate) type CheckSummary = (String, HealthStatus, String, i64);

/// An instance's status from its checks: the worst damped status, explained by the first
/// check that has it. Damping keeps a passing instance up through a single failed run, but
/// does not bring a failing instance back while any check's last run failed: otherwise a
/// service that restarts broken would flap critical -> passing -> critical.
pub(crate) fn aggregate(checks: &[CheckSummary], current: HealthStatus) -> (HealthStatus, String) {
    let Some(worst) = checks.iter().max_by_key(|check| badness(check.1)) else {
        return (HealthStatus::Passing, NO_CHECKS.to_owned());
    };
    let first_worst = checks.iter().find(|check| check.1 == worst.1).unwrap_or(worst);
    if first_worst.1 != HealthStatus::Passing {
        return (first_worst.1, format!("check {}: {}", first_worst.0, first_worst.2));
    }
    match checks.iter().find(|check| check.3 > 0) {
        Some(failing) if current != HealthStatus::Passing => (current, format!("check {}: {}", failing.0, failing.2)),
        _ => (HealthStatus::Passing, "all checks pass".to_owned()),
    }
}

/// The due checks of claimed `(instance id, check id)` pairs, given their instances. A pair
/// whose check is gone (re-registered meanwhile) is skipped; its lease simply runs out.
pub(crate) fn due_checks(claimed: &[(String, String)], instances: &[ServiceInstance]) -> Vec<DueCheck> {
    claimed
        .iter()
        .filter_map(|(instance_id, check_id)| {
            let instance = instances.iter().find(|i| i.registration.instance_id == *instance_id)?;
            let definition =
                instance.registration.effective_checks().into_iter().find(|c| c.id() == check_id.as_str())?;
            let state = instance.check_states.iter().find(|s| s.id == *check_id)?.clone();
            Some(DueCheck { instance: instance.clone(), definition, state })
        })
        .collect()
}

/// Extracts [`InstanceRow`] and [`CheckRow`] from one engine's rows (the code is the same,
/// the row types differ).
macro_rules! row_readers {
    ($row:ty) => {
        fn instance_row(row: &$row) -> Result<$crate::rows::InstanceRow, sqlx::Error> {
            use sqlx::Row;
            Ok($crate::rows::InstanceRow {
                registration: row.try_get("registration")?,
                status: row.try_get("status")?,
                status_reason: row.try_get("status_reason")?,
                status_since: row.try_get("status_since")?,
                last_heartbeat: row.try_get("last_heartbeat")?,
                registered_at: row.try_get("registered_at")?,
                modify_index: row.try_get("modify_index")?,
            })
        }

        fn check_row(row: &$row) -> Result<$crate::rows::CheckRow, sqlx::Error> {
            use sqlx::Row;
            Ok($crate::rows::CheckRow {
                instance_id: row.try_get("instance_id")?,
                check_id: row.try_get("check_id")?,
                kind: row.try_get("kind")?,
                status: row.try_get("status")?,
                output: row.try_get("output")?,
                failures: row.try_get("failures")?,
                successes: row.try_get("successes")?,
                last_checked: row.try_get("last_checked")?,
                checked_by: row.try_get("checked_by")?,
            })
        }
    };
}
pub(crate) use row_readers;
