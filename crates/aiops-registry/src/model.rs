//! Registrations, their checks, instances and lookups.

use std::collections::{BTreeMap, BTreeSet};

use aiops_model::HealthStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{RegistryError, RegistryResult};

/// Most checks one instance may have.
pub const MAX_CHECKS: usize = 16;
/// Longest check timeout, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

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
    /// Share of traffic under weighted random balancing, 1-1000. Default: 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Shorthand for an HTTP check (id `http`) of this URL, passing on 2xx.
    #[serde(default)]
    pub health_url: Option<String>,
    /// Shorthand for a TTL check (id `ttl`): silence longer than this many seconds marks the
    /// instance critical (its process is presumed dead).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Further checks; the instance's status is the worst of its checks' statuses.
    #[serde(default)]
    pub checks: Vec<CheckDefinition>,
    /// Deregister the instance after it has been critical this long (Consul's
    /// `DeregisterCriticalServiceAfter`). Default: never.
    #[serde(default)]
    pub deregister_critical_after_secs: Option<u64>,
}

fn default_weight() -> u32 {
    1
}

/// How a check probes an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// `GET url`: passing on 2xx (or `status`) with `body_contains` in the body; warning on 429.
    Http,
    /// A TCP connection to `target` (`host:port`) opens.
    Tcp,
    /// Runs `argv` (no shell): exit 0 passing, 1 warning, anything else critical.
    Command,
    /// The service pushes heartbeats; silence longer than `ttl_secs` is critical.
    Ttl,
}

impl CheckKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Tcp => "tcp",
            Self::Command => "command",
            Self::Ttl => "ttl",
        }
    }
}

/// One health check. Fields that belong to another kind are refused, so a typo cannot
/// silently turn into a check that never fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDefinition {
    /// Unique within the instance, 1-64 of `[a-z0-9_.-]`. Default: `<kind>-<position>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// How it probes.
    pub kind: CheckKind,
    /// HTTP: the URL to GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP: the status that passes. Default: any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// HTTP: text the body must contain to pass (the first 64 KiB are read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// TCP: `host:port` to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Command: program and arguments, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// TTL: longest silence between heartbeats, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Time between runs. Default: `[registry] interval_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// Time one run may take. Default: `[registry] timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Failed runs in a row before the status changes. Default: `[registry]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures_before_critical: Option<u32>,
    /// Good runs in a row before a failing check passes again. Default: `[registry]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successes_before_passing: Option<u32>,
}

impl CheckDefinition {
    /// A check of `kind` with every optional field unset.
    pub fn new(kind: CheckKind) -> Self {
        Self {
            id: None,
            kind,
            url: None,
            status: None,
            body_contains: None,
            target: None,
            argv: None,
            ttl_secs: None,
            interval_ms: None,
            timeout_ms: None,
            failures_before_critical: None,
            successes_before_passing: None,
        }
    }

    /// The check's id (set by [`ServiceRegistration::effective_checks`]).
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(self.kind.as_str())
    }

    fn validate(&self, id: &str) -> RegistryResult<()> {
        let bad = |msg: String| RegistryError::Invalid(format!("check {id:?}: {msg}"));
        let fields: [(&str, bool, CheckKind); 6] = [
            ("url", self.url.is_some(), CheckKind::Http),
            ("status", self.status.is_some(), CheckKind::Http),
            ("body_contains", self.body_contains.is_some(), CheckKind::Http),
            ("target", self.target.is_some(), CheckKind::Tcp),
            ("argv", self.argv.is_some(), CheckKind::Command),
            ("ttl_secs", self.ttl_secs.is_some(), CheckKind::Ttl),
        ];
        for (field, set, owner) in fields {
            if set && owner != self.kind {
                return Err(bad(format!(
                    "field {field} belongs to {} checks, not {}",
                    owner.as_str(),
                    self.kind.as_str()
                )));
            }
        }
        match self.kind {
            CheckKind::Http => {
                let url = self.url.as_deref().ok_or_else(|| bad("an http check needs url".into()))?;
                check_url(&format!("check {id:?}: url"), url)?;
                if let Some(status) = self.status {
                    if !(100..=599).contains(&status) {
                        return Err(bad(format!("status must be within 100..=599, got {status}")));
                    }
                }
                if self.body_contains.as_ref().is_some_and(|b| b.is_empty() || b.len() > 1024) {
                    return Err(bad("body_contains must be 1-1024 bytes".into()));
                }
            }
            CheckKind::Tcp => {
                let target = self.target.as_deref().ok_or_else(|| bad("a tcp check needs target".into()))?;
                let port = target.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
                if !matches!(port, Some((host, Ok(port))) if !host.is_empty() && port > 0) {
                    return Err(bad(format!("target {target:?} must be host:port")));
                }
            }
            CheckKind::Command => {
                let argv = self.argv.as_ref().ok_or_else(|| bad("a command check needs argv".into()))?;
                if argv.is_empty() || argv[0].is_empty() || argv.len() > 64 || argv.iter().any(|a| a.len() > 4096) {
                    return Err(bad("argv must hold 1-64 arguments of at most 4096 bytes, the first not empty".into()));
                }
            }
            CheckKind::Ttl => {
                let ttl = self.ttl_secs.ok_or_else(|| bad("a ttl check needs ttl_secs".into()))?;
                check_ttl(ttl).map_err(bad)?;
            }
        }
        if self.interval_ms.is_some_and(|ms| !(100..=86_400_000).contains(&ms)) {
            return Err(bad("interval_ms must be within 100..=86400000".into()));
        }
        if self.timeout_ms.is_some_and(|ms| !(1..=MAX_TIMEOUT_MS).contains(&ms)) {
            return Err(bad(format!("timeout_ms must be within 1..={MAX_TIMEOUT_MS}")));
        }
        for (field, value) in [
            ("failures_before_critical", self.failures_before_critical),
            ("successes_before_passing", self.successes_before_passing),
        ] {
            if value.is_some_and(|n| !(1..=100).contains(&n)) {
                return Err(bad(format!("{field} must be within 1..=100")));
            }
        }
        Ok(())
    }
}

fn check_ttl(ttl: u64) -> Result<(), String> {
    if (1..=86_400).contains(&ttl) {
        Ok(())
    } else {
        Err(format!("ttl_secs must be within 1..=86400, got {ttl}"))
    }
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

fn valid_check_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
}

impl ServiceRegistration {
    /// A registration with no checks, tags or dependencies.
    pub fn new(name: &str, instance_id: &str, address: &str) -> Self {
        Self {
            name: name.into(),
            instance_id: instance_id.into(),
            address: address.into(),
            tags: Vec::new(),
            capabilities: Vec::new(),
            metadata: BTreeMap::new(),
            dependencies: Vec::new(),
            weight: 1,
            health_url: None,
            ttl_secs: None,
            checks: Vec::new(),
            deregister_critical_after_secs: None,
        }
    }

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
        if self.instance_id.trim().is_empty()
            || self.instance_id.len() > 128
            || self.instance_id.contains('/')
            || self.instance_id.chars().any(char::is_control)
        {
            return Err(RegistryError::Invalid("instance_id must be 1-128 printable characters without '/'".into()));
        }
        check_url("address", &self.address)?;
        if !(1..=1000).contains(&self.weight) {
            return Err(RegistryError::Invalid(format!("weight must be within 1..=1000, got {}", self.weight)));
        }
        if let Some(health_url) = &self.health_url {
            check_url("health_url", health_url)?;
        }
        if let Some(ttl) = self.ttl_secs {
            check_ttl(ttl).map_err(RegistryError::Invalid)?;
        }
        if self.deregister_critical_after_secs.is_some_and(|s| !(1..=30 * 86_400).contains(&s)) {
            return Err(RegistryError::Invalid("deregister_critical_after_secs must be within 1..=2592000".into()));
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
        if self.metadata.len() > 64
            || self.metadata.iter().any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 1024)
        {
            return Err(RegistryError::Invalid(
                "metadata must hold at most 64 entries, keys of 1-128 and values of at most 1024 bytes".into(),
            ));
        }
        let checks = self.effective_checks();
        if checks.len() > MAX_CHECKS {
            return Err(RegistryError::Invalid(format!("at most {MAX_CHECKS} checks per instance")));
        }
        let mut ids = BTreeSet::new();
        for check in &checks {
            let id = check.id();
            if !valid_check_id(id) {
                return Err(RegistryError::Invalid(format!("check id {id:?} must be 1-64 characters of [a-z0-9_.-]")));
            }
            if !ids.insert(id) {
                return Err(RegistryError::Invalid(format!("check id {id:?} is used twice")));
            }
            check.validate(id)?;
        }
        Ok(())
    }

    /// Every check, the shorthands (`health_url`, `ttl_secs`) included, each with its id set.
    pub fn effective_checks(&self) -> Vec<CheckDefinition> {
        let mut checks = Vec::with_capacity(self.checks.len() + 2);
        if let Some(url) = &self.health_url {
            let mut check = CheckDefinition::new(CheckKind::Http);
            check.id = Some("http".into());
            check.url = Some(url.clone());
            checks.push(check);
        }
        if let Some(ttl) = self.ttl_secs {
            let mut check = CheckDefinition::new(CheckKind::Ttl);
            check.id = Some("ttl".into());
            check.ttl_secs = Some(ttl);
            checks.push(check);
        }
        for (position, check) in self.checks.iter().enumerate() {
            let mut check = check.clone();
            if check.id.is_none() {
                check.id = Some(format!("{}-{}", check.kind.as_str(), position + 1));
            }
            checks.push(check);
        }
        checks
    }

    /// Whether registering this makes the core run programs on its own machine: a command
    /// check, or a `host.` capability (see [`aiops_model::HOST_CAPABILITY_PREFIX`]). Either
    /// takes the admin scope.
    pub fn runs_commands(&self) -> bool {
        self.checks.iter().any(|c| c.kind == CheckKind::Command)
            || self.capabilities.iter().any(|c| c.starts_with(aiops_model::HOST_CAPABILITY_PREFIX))
    }
}

/// The state of one check of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckState {
    /// The check's id.
    pub id: String,
    /// Its kind.
    pub kind: CheckKind,
    /// Its damped status.
    pub status: HealthStatus,
    /// What its last run said (capped).
    pub output: String,
    /// Failed runs in a row.
    pub failures: u32,
    /// Good runs in a row.
    pub successes: u32,
    /// When it last ran.
    pub last_checked: Option<DateTime<Utc>>,
    /// Which core instance ran it last.
    pub checked_by: Option<String>,
}

/// A registered instance with its current health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInstance {
    /// What it registered with.
    #[serde(flatten)]
    pub registration: ServiceRegistration,
    /// Current health: the worst of its checks (passing without checks).
    pub status: HealthStatus,
    /// Why it has that status.
    pub status_reason: String,
    /// Since when it has that status.
    pub status_since: DateTime<Utc>,
    /// Its checks, in registration order.
    pub check_states: Vec<CheckState>,
    /// Last heartbeat received.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// When it (last) registered.
    pub registered_at: DateTime<Utc>,
    /// The registry index of its last change (see [`crate::Registry::index`]).
    pub modify_index: u64,
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
    /// All instances of service `name`.
    pub fn named(name: &str) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }

    /// Whether `instance` satisfies the query.
    pub fn matches(&self, instance: &ServiceInstance) -> bool {
        let reg = &instance.registration;
        self.name.as_ref().is_none_or(|n| *n == reg.name)
            && self.tag.as_ref().is_none_or(|t| reg.tags.contains(t))
            && self.capability.as_ref().is_none_or(|c| reg.capabilities.contains(c))
            && (!self.healthy_only || instance.status == HealthStatus::Passing)
    }
}

/// How bad a status is, for "the worst of".
pub(crate) fn badness(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Passing => 0,
        HealthStatus::Warning => 1,
        HealthStatus::Critical => 2,
    }
}
