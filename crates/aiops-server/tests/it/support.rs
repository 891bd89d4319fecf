//! A real `ApiState` over embedded backends in a temporary directory, with two tokens.

use std::sync::Arc;

use aiops_agents::Streams;
use aiops_construction::{Secrets, ToolCatalog};
use aiops_events::{EmbeddedConfig, EmbeddedEventBus};
use aiops_knowledge::SqliteKnowledgeStore;
use aiops_registry::SqliteRegistry;
use aiops_server::{ApiLimits, ApiState, ApiToken, Scope};

pub(crate) const READ_TOKEN: &str = "read-secret-0123456789";
pub(crate) const ADMIN_TOKEN: &str = "admin-secret-0123456789";

pub(crate) async fn state(dir: &std::path::Path) -> ApiState {
    let store = Arc::new(SqliteKnowledgeStore::open(&dir.join("aiops.db"), 384).await.unwrap());
    ApiState {
        bus: Arc::new(EmbeddedEventBus::open(&dir.join("events"), EmbeddedConfig::default()).await.unwrap()),
        streams: Streams::default(),
        knowledge: store.clone(),
        audit: store,
        registry: Arc::new(SqliteRegistry::open(&dir.join("aiops.db")).await.unwrap()),
        balancer: Default::default(),
        tools: ToolCatalog::new(reqwest::Client::new(), Secrets::new()),
        tokens: Arc::new(vec![
            ApiToken { name: "reader".into(), secret: READ_TOKEN.into(), scopes: vec![Scope::Read] },
            ApiToken { name: "agent".into(), secret: "ingest-secret-0123456789".into(), scopes: vec![Scope::Ingest] },
            ApiToken { name: "ops".into(), secret: ADMIN_TOKEN.into(), scopes: vec![Scope::Admin] },
        ]),
        render_metrics: Arc::new(String::new),
        limits: ApiLimits::default(),
        ai: None,
    }
}
