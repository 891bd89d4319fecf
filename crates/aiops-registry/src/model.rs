//! Registrations, instances and lookups.

use std::collections::BTreeMap;

use aiops_model::HealthStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{RegistryError, RegistryResult};

/// What a service says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRegistration {
    /// Service name, shared by its instances: 1-64 of `[a-z0-9_-]`.
    pub name: String,
    /// Unique id of this instance: 1-128 printable characters.
    pub instance_id: String,
    /// Base URL of the instance, `http://host:port`.
    pub address: String,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// What the instance can do, e.g. `cache.clear`; remediation tools require these.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Names of services (or resources) it depends on.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// URL answered with 2xx while the instance is healthy; checked actively when set.
    #[serde(default)]
    pub health_url: Option<String>,
    /// Heartbeat time-to-live in seconds; when set, silence longer than this marks the
    /// instance critical (its process is presumed dead).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

fn check_url(field: &str, value: &str) -> RegistryResult<()> {
    let url = reqwest::Url::parse(value)
        .map_err(|err| RegistryError::Invalid(format!("{field} {value:?} is not a URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(RegistryError::Invalid(format!("{field} {value:?} must be an http(s) URL with a host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RegistryError::Invalid(format!("{field} must not carry credentials")));
    }
    Ok(())
}

impl ServiceRegistration {
    /// Checks every field; the error names the first bad one.
    ///
    /// # Errors
    /// [`RegistryError::Invalid`].
    pub fn validate(&self) -> RegistryResult<()> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(RegistryError::Invalid(format!("name {:?} must be 1-64 characters of [a-z0-9_-]", self.name)));
        }
        if self.instance_id.trim().is_empty() || self.instance_id.len() > 128 || self.instance_id.contains('/') {
            return Err(RegistryError::Invalid("instance_id must be 1-128 characters without '/'".into()));
        }
        check_url("address", &self.address)?;
        if let Some(health_url) = &self.health_url {
            check_url("health_url", health_url)?;
        }
        if let Some(ttl) = self.ttl_secs {
            if !(1..=86_400).contains(&ttl) {
                return Err(RegistryError::Invalid(format!("ttl_secs must be within 1..=86400, got {ttl}")));
            }
        }
        for (field, list) in
            [("tags", &self.tags), ("capabilities", &self.capabilities), ("dependencies", &self.dependencies)]
        {
            if list.len() > 64 || list.iter().any(|v| v.is_empty() || v.len() > 128) {
                return Err(RegistryError::Invalid(format!(
                    "{field} must hold at most 64 entries of 1-128 characters"
                )));
            }
        }
        Ok(())
    }
}

/// A registered instance with its current health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInstance {
    /// What it registered with.
    #[serde(flatten)]
    pub registration: ServiceRegistration,
    /// Current health.
    pub status: HealthStatus,
    /// Why it has that status.
    pub status_reason: String,
    /// Last heartbeat received.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// When it (last) registered.
    pub registered_at: DateTime<Utc>,
}

/// A lookup: all conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceQuery {
    /// Service name.
    pub name: Option<String>,
    /// Has this tag.
    pub tag: Option<String>,
    /// Has this capability.
    pub capability: Option<String>,
    /// Only passing instances.
    pub healthy_only: bool,
}

impl ServiceQuery {
    /// Whether `instance` satisfies the query.
    pub fn matches(&self, instance: &ServiceInstance) -> bool {
        let reg = &instance.registration;
        self.name.as_ref().is_none_or(|n| *n == reg.name)
            && self.tag.as_ref().is_none_or(|t| reg.tags.contains(t))
            && self.capability.as_ref().is_none_or(|c| reg.capabilities.contains(c))
            && (!self.healthy_only || instance.status == HealthStatus::Passing)
    }
}
