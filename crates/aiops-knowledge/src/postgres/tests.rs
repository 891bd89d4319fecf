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

#[tokio::test]
async fn export_from_sqlite_imports_into_postgres_without_loss() {
    use crate::{Direction, Edge, Outcome, Relation, SqliteKnowledgeStore};
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteKnowledgeStore::open(&dir.path().join("k.db"), DIMENSIONS).await.unwrap();
    let mut problem =
        Node::new("p1", NodeKind::Problem, "pool exhausted", serde_json::json!({"service": "b", "kind": "x"}));
    problem.embedding = Some((0..DIMENSIONS).map(|i| i as f32 / 10.0).collect());
    sqlite.upsert_node(problem).await.unwrap();
    sqlite
        .upsert_node(Node::new("s1", NodeKind::Solution, "reset", serde_json::json!({"tool": "reset_db_pool"})))
        .await
        .unwrap();
    sqlite
        .upsert_node(Node::new("s2", NodeKind::Solution, "clear", serde_json::json!({"tool": "clear_cache"})))
        .await
        .unwrap();
    sqlite
        .link(Edge {
            from: "s2".into(),
            to: "s1".into(),
            relation: Relation::ConflictsWith,
            weight: 0.5,
            data: serde_json::json!({"why": "x"}),
        })
        .await
        .unwrap();
    for (n, (solution, success)) in [("s1", true), ("s1", true), ("s2", false)].into_iter().enumerate() {
        let outcome = Outcome {
            action_id: format!("a{n}"),
            pattern: Some("db-pool-exhaustion@1".into()),
            problem_id: "p1".into(),
            solution_id: solution.into(),
            success,
            recover_ms: success.then_some(700),
            at: chrono::Utc::now(),
        };
        sqlite.record_outcome(&outcome).await.unwrap();
    }
    sqlite
        .append(AuditEntry {
            seq: 0,
            at: chrono::Utc::now(),
            actor: "healing".into(),
            action: "tool.run".into(),
            subject: "b".into(),
            detail: serde_json::json!({"n": 1}),
        })
        .await
        .unwrap();
    let mut exported = Vec::new();
    let counts = crate::export(&sqlite, &sqlite, &mut exported).await.unwrap();
    assert_eq!((counts.nodes, counts.outcomes, counts.edges, counts.audit), (3, 3, 3, 1));

    let harness = PgHarness::new();
    let pg = PgKnowledgeStore::connect(&harness.server.url(), DIMENSIONS, 2).await.unwrap();
    let imported = crate::import(&pg, &pg, &mut exported.as_slice()).await.unwrap();
    assert_eq!(imported, counts);
    // The same graph, seen from the new engine.
    let p1 = pg.get_node("p1").await.unwrap().unwrap();
    let original = sqlite.get_node("p1").await.unwrap().unwrap();
    assert_eq!(p1.embedding, original.embedding);
    assert_eq!(p1.created_at, original.created_at);
    assert_eq!(pg.solution_stats("s1").await.unwrap(), sqlite.solution_stats("s1").await.unwrap());
    assert_eq!(pg.all_edges().await.unwrap(), sqlite.all_edges().await.unwrap());
    let solves = pg.neighbors("p1", Some(Relation::Solves), Direction::Incoming).await.unwrap();
    assert_eq!(solves[0].0.data["attempts"], 2);
    assert_eq!(pg.recent(10).await.unwrap()[0].detail, serde_json::json!({"n": 1}));
    // Importing twice changes no statistics.
    crate::import(&pg, &pg, &mut exported.as_slice()).await.unwrap();
    assert_eq!(pg.solution_stats("s1").await.unwrap().unwrap().attempts, 2);
    // A malformed line is refused with its number, and nothing is written.
    let bad = b"{\"record\":\"node\",\"id\":\"z\",\"kind\":\"solution\",\"name\":\"z\",\"data\":{}}\n";
    let err = crate::import(&pg, &pg, &mut bad.as_slice()).await.unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    assert!(pg.get_node("z").await.unwrap().is_none());
}
