//! The `Agent` trait and the context every agent works through.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aiops_ai::{AiProvider, Embedder};
use aiops_construction::ToolCatalog;
use aiops_events::{EventBus, EventBusExt, StreamName};
use aiops_knowledge::{AuditLog, KnowledgeStore};
use aiops_model::{Envelope, Severity};
use aiops_patterns::PatternLibrary;
use aiops_registry::{HealthChecker, Registry, ServiceInstance};
use async_trait::async_trait;

use crate::{AgentError, AgentResult};

/// The two streams of the mesh.
#[derive(Debug, Clone)]
pub struct Streams {
    /// What services report (requests, errors, their own events): high volume.
    pub telemetry: StreamName,
    /// What the core decides (problems, diagnoses, actions, outcomes): low volume, kept long.
    pub control: StreamName,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            telemetry: StreamName::new("telemetry").unwrap_or_else(|_| unreachable!("a valid literal name")),
            control: StreamName::new("control").unwrap_or_else(|_| unreachable!("a valid literal name")),
        }
    }
}

/// Everything an agent may use: the part traits, never a backend type.
#[derive(Debug, Clone)]
pub struct AgentContext {
    /// The event mesh.
    pub bus: Arc<dyn EventBus>,
    /// Stream names.
    pub streams: Streams,
    /// The knowledge graph.
    pub knowledge: Arc<dyn KnowledgeStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// The service registry.
    pub registry: Arc<dyn Registry>,
    /// Health checks over the registry.
    pub health: Arc<HealthChecker>,
    /// Embeds problem descriptions.
    pub embedder: Arc<dyn Embedder>,
    /// The language model that assists diagnosis, if one is configured.
    pub ai: Option<Arc<dyn AiProvider>>,
    /// Remediation tools.
    pub tools: ToolCatalog,
    /// Failure patterns.
    pub patterns: Arc<PatternLibrary>,
    /// HTTP client for verification probes.
    pub http: reqwest::Client,
    /// Name of this core instance (consumer name in groups).
    pub instance: String,
}

impl AgentContext {
    /// Probes an instance's health URL now, for when the registry's view (a check or two
    /// behind) is not fresh enough. What failed, or `None` when it answered well or has no
    /// health URL.
    pub(crate) async fn probe_health(&self, instance: &ServiceInstance, timeout: Duration) -> Option<String> {
        let url = instance.registration.health_url.as_deref()?;
        match self.http.get(url).timeout(timeout).send().await {
            Ok(answer) if answer.status().is_success() => None,
            Ok(answer) => Some(format!("GET {url} returned {}", answer.status().as_u16())),
            Err(err) if err.is_connect() => Some(format!("GET {url}: connection refused")),
            Err(err) if err.is_timeout() => Some(format!("GET {url} timed out")),
            Err(err) => Some(format!("GET {url} failed: {err}")),
        }
    }

    /// Publishes an event of an agent to the control stream.
    ///
    /// # Errors
    /// When the mesh cannot make it durable.
    pub async fn emit(
        &self,
        agent: &str,
        event_type: &str,
        subject: &str,
        severity: Option<Severity>,
        data: impl serde::Serialize,
    ) -> AgentResult<Envelope> {
        let data = serde_json::to_value(data).map_err(|err| AgentError::Malformed {
            event_type: event_type.into(),
            id: String::new(),
            reason: err.to_string(),
        })?;
        let mut event =
            Envelope::new(format!("aiops/{}/{agent}", self.instance), event_type, data).with_subject(subject);
        event.severity = severity;
        self.bus.publish_one(&self.streams.control, event.clone()).await?;
        Ok(event)
    }
}

/// Decodes an event's payload, or says precisely why it cannot.
pub(crate) fn payload<T: serde::de::DeserializeOwned>(event: &Envelope) -> AgentResult<T> {
    event.payload().map_err(|err| AgentError::Malformed {
        event_type: event.event_type.clone(),
        id: event.id.clone(),
        reason: err.to_string(),
    })
}

/// One part of the loop.
///
/// # Contract
/// - `handle` is idempotent: the mesh delivers at least once, so the same event may come
///   twice (after a crash, or a redelivery) and must not cause a second action.
/// - An `Err` that [`AgentError::is_retryable`] makes the coordinator deliver the event again
///   later; any other error or a panic is reported and the event is not retried forever.
/// - Agents hold their state behind their own locks; `handle` and `tick` may run concurrently.
#[async_trait]
pub trait Agent: Send + Sync + fmt::Debug + 'static {
    /// Name, used as the consumer group and in event sources.
    fn name(&self) -> &'static str;
    /// Event type patterns consumed from the telemetry stream.
    fn telemetry_types(&self) -> Vec<String> {
        Vec::new()
    }
    /// Event type patterns consumed from the control stream.
    fn control_types(&self) -> Vec<String> {
        Vec::new()
    }
    /// Interval of [`Agent::tick`], if the agent has periodic work.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }
    /// Handles one event.
    async fn handle(&self, ctx: &AgentContext, event: &Envelope) -> AgentResult<()>;
    /// Periodic work.
    async fn tick(&self, _ctx: &AgentContext) -> AgentResult<()> {
        Ok(())
    }
}
