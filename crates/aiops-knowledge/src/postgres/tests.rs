//! Runs the conformance suite against a real PostgreSQL with pgvector started by the test
//! kit, plus checks of its own: dimension pinning, restarts, append-only audit.

use std::sync::Arc;

use aiops_testkit::PostgresServer;
use async_trait::async_trait;

use super::PgKnowledgeStore;
use crate::conformance::{Harness, DIMENSIONS};
use crate::{AuditEntry, AuditLog, KnowledgeError, KnowledgeStore, Node, NodeKind};

struct PgHarness {
    server: PostgresServer,
}

impl PgHarness {
    fn new() -> Self {
        Self { server: PostgresServer::start().expect("start postgres with pgvector") }
    }
}

#[async_trait]
impl Harness for PgHarness {
    async fn open(&self) -> Arc<dyn KnowledgeStore> {
        Arc::new(PgKnowledgeStore::connect(&self.server.url(), DIMENSIONS, 4).await.unwrap())
    }
}

crate::knowledge_store_conformance!(PgHarness::new());

#[tokio::test]
async fn another_dimension_is_refused_and_the_store_survives_a_restart() {
    let mut harness = PgHarness::new();
    let url = harness.server.url();
    let store = PgKnowledgeStore::connect(&url, DIMENSIONS, 2).await.unwrap();
    let err = PgKnowledgeStore::connect(&url, DIMENSIONS + 1, 2).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::DimensionMismatch { expected: DIMENSIONS, .. }), "{err}");
    let node = Node::new("i1", NodeKind::Insight, "i", serde_json::json!({"text": "x"}));
    store.upsert_node(node.clone()).await.unwrap();

    harness.server.stop().unwrap();
    let err = store.get_node("i1").await.unwrap_err();
    assert!(matches!(err, KnowledgeError::Unavailable { .. }), "{err}");
    harness.server.restart().unwrap();
    let mut found = None;
    for _ in 0..50 {
        if let Ok(Some(node)) = store.get_node("i1").await {
            found = Some(node);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(found.map(|n| n.id), Some("i1".to_owned()), "the pool did not recover");

    let seq = store
        .append(AuditEntry {
            seq: 0,
            at: chrono::Utc::now(),
            actor: "t".into(),
            action: "tool.run".into(),
            subject: "s".into(),
            detail: serde_json::json!({}),
        })
        .await
        .unwrap();
    assert!(seq >= 1);
    let tamper = harness.server.psql("DELETE FROM audit_log");
    assert!(tamper.is_err(), "the audit log must refuse deletes");
}
