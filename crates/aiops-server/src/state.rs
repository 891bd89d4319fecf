//! What the handlers work with: the part traits, never a backend type.

use std::sync::Arc;

use aiops_ai::BudgetedProvider;

use aiops_agents::Streams;
use aiops_construction::ToolCatalog;
use aiops_events::EventBus;
use aiops_knowledge::{AuditLog, KnowledgeStore};
use aiops_registry::{Balancer, Registry};

use crate::{ApiToken, BrowserIngest};

/// Bounds on what one request may ask.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Most events in one batch.
    pub max_batch: usize,
    /// Most items one query returns.
    pub max_page: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self { max_body_bytes: 1024 * 1024, max_batch: 500, max_page: 1000 }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct ApiState {
    /// The event mesh.
    pub bus: Arc<dyn EventBus>,
    /// Stream names.
    pub streams: Streams,
    /// The knowledge graph.
    pub knowledge: Arc<dyn KnowledgeStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// The registry.
    pub registry: Arc<dyn Registry>,
    /// Picks instances for `GET /v1/services/{name}/pick`.
    pub balancer: Arc<Balancer>,
    /// The tool catalog.
    pub tools: ToolCatalog,
    /// Accepted API tokens; empty means the API is open (the default, bound to loopback).
    pub tokens: Arc<Vec<ApiToken>>,
    /// Renders the Prometheus exposition.
    pub render_metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Request bounds.
    pub limits: ApiLimits,
    /// The language model and its budgets, when one is configured.
    pub ai: Option<Arc<BudgetedProvider>>,
    /// Which pages may send browser reports, and how fast.
    pub browser: Arc<BrowserIngest>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("bus", &self.bus)
            .field("tokens", &self.tokens.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
