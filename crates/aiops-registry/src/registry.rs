//! The `Registry` trait.

use std::fmt;
use std::time::Duration;

use aiops_model::HealthStatus;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{CheckDefinition, CheckState, RegistryResult, ServiceInstance, ServiceQuery, ServiceRegistration};

/// A check whose run is due, leased to one core instance.
#[derive(Debug, Clone)]
pub struct DueCheck {
    /// The instance it checks (with its last heartbeat).
    pub instance: ServiceInstance,
    /// What to run.
    pub definition: CheckDefinition,
    /// Its state before this run.
    pub state: CheckState,
}

/// The outcome of one run, already damped.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    /// The instance.
    pub instance_id: String,
    /// The check.
    pub check_id: String,
    /// Its new status.
    pub status: HealthStatus,
    /// What the run said (capped).
    pub output: String,
    /// Failed runs in a row.
    pub failures: u32,
    /// Good runs in a row.
    pub successes: u32,
    /// When it runs next.
    pub next_due: DateTime<Utc>,
    /// Whether the run found the instance's process gone: its heartbeat lost, or its
    /// connection refused. A change to critical says so (`HealthChange::heartbeat_lost`).
    pub heartbeat_lost: bool,
}

/// The catalog of service instances and their health.
///
/// # Contract
/// - `register` validates first; a bad registration writes nothing. Registering an existing
///   instance id replaces its registration; checks that keep their id keep their state.
/// - A new instance starts `passing` when it has no checks, `warning` until its checks have
///   run otherwise. Its status is always the worst of its checks' statuses.
/// - Every change a reader can see (register, deregister, status change) raises
///   [`Registry::index`], so a watcher holding an older index never misses a change.
/// - A due check is leased to one caller of `claim_due_checks` at a time; several core
///   instances sharing one store run each check once. A lease that is not recorded before it
///   ends (its holder died) returns the check to the pool.
/// - `record_check` from a caller that no longer holds the lease is dropped. It returns the
///   instance's status change once, to the one caller that made it.
/// - `heartbeat` on an unknown instance is [`crate::RegistryError::NotFound`], which tells the
///   service to register again; it makes the instance's TTL checks due at once.
#[async_trait]
pub trait Registry: Send + Sync + fmt::Debug + 'static {
    /// Adds or replaces an instance.
    async fn register(&self, registration: ServiceRegistration) -> RegistryResult<ServiceInstance>;
    /// Removes an instance; false when it was not there.
    async fn deregister(&self, instance_id: &str) -> RegistryResult<bool>;
    /// Records a heartbeat now.
    async fn heartbeat(&self, instance_id: &str) -> RegistryResult<()>;
    /// One instance.
    async fn instance(&self, instance_id: &str) -> RegistryResult<Option<ServiceInstance>>;
    /// Instances matching a query, ordered by name then instance id.
    async fn instances(&self, query: &ServiceQuery) -> RegistryResult<Vec<ServiceInstance>>;
    /// The change index: raised by every visible change.
    async fn index(&self) -> RegistryResult<u64>;
    /// Leases up to `limit` due checks to `owner` for `lease`.
    async fn claim_due_checks(&self, owner: &str, lease: Duration, limit: usize) -> RegistryResult<Vec<DueCheck>>;
    /// Stores a run's outcome; returns the instance's status change, if it changed.
    async fn record_check(&self, owner: &str, record: CheckRecord)
        -> RegistryResult<Option<aiops_model::HealthChange>>;
    /// Deregisters the instances that have been critical longer than their
    /// `deregister_critical_after_secs`; returns them.
    async fn reap_critical(&self) -> RegistryResult<Vec<ServiceInstance>>;
}
