//! The `Registry` trait.

use std::fmt;

use aiops_model::{HealthChange, HealthStatus};
use async_trait::async_trait;

use crate::{RegistryResult, ServiceInstance, ServiceQuery, ServiceRegistration};

/// The catalog of service instances and their health.
///
/// # Contract
/// - `register` validates first; a bad registration writes nothing. Registering an existing
///   instance id replaces its registration and keeps its health status.
/// - A new instance starts `passing` when it has no checks, `warning` until its first check
///   otherwise.
/// - `set_status` returns the change only when the status actually changed, so each change
///   is reported once.
/// - `heartbeat` on an unknown instance is [`crate::RegistryError::NotFound`], which tells the
///   service to register again.
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
    /// Sets an instance's status; returns the change if it changed.
    async fn set_status(
        &self,
        instance_id: &str,
        status: HealthStatus,
        reason: &str,
    ) -> RegistryResult<Option<HealthChange>>;
}
