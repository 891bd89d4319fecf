//! Runs the conformance suite against SQLite, plus its own migration and audit checks.

use std::sync::Arc;

use async_trait::async_trait;

use super::{apply_migrations, open_sqlite_pool, SqliteKnowledgeStore};
use crate::conformance::{Harness, DIMENSIONS};
use crate::{AuditEntry, AuditLog, KnowledgeError, KnowledgeStore};

struct SqliteHarness {
    dir: tempfile::TempDir,
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn open(&self) -> Arc<dyn KnowledgeStore> {
        Arc::new(SqliteKnowledgeStore::open(&self.dir.path().join("k.db"), DIMENSIONS).await.unwrap())
    }
}

crate::knowledge_store_conformance!(SqliteHarness { dir: tempfile::tempdir().unwrap() });

/// The same suite with the vector index partitioned from the fifth vector on, so every
/// search, write and restart goes through the partition.
mod partitioned {
    use super::*;
    use crate::VectorIndexConfig;

    struct PartitionedHarness {
        dir: tempfile::TempDir,
    }

    #[async_trait]
    impl Harness for PartitionedHarness {
        async fn open(&self) -> Arc<dyn KnowledgeStore> {
            let settings = VectorIndexConfig { exact_up_to: 4, ..VectorIndexConfig::default() };
            let path = self.dir.path().join("k.db");
            Arc::new(SqliteKnowledgeStore::open_with(&path, DIMENSIONS, settings).await.unwrap())
        }
    }

    crate::knowledge_store_conformance!(PartitionedHarness { dir: tempfile::tempdir().unwrap() });
}

#[tokio::test]
async fn schema_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    drop(SqliteKnowledgeStore::open(&path, 4).await.unwrap());
    let pool = open_sqlite_pool(&path).await.unwrap();
    sqlx::query("UPDATE schema_migrations SET version = 99 WHERE component = 'knowledge'")
        .execute(&pool)
        .await
        .unwrap();
    let err = SqliteKnowledgeStore::open(&path, 4).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::SchemaTooNew { found: 99, supported: 4, .. }), "{err}");
    // Applying the same migrations twice is a no-op.
    apply_migrations(&pool, "other", &["CREATE TABLE t (x INTEGER)"]).await.unwrap();
    apply_migrations(&pool, "other", &["CREATE TABLE t (x INTEGER)"]).await.unwrap();
}

#[tokio::test]
async fn audit_log_is_append_only_and_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteKnowledgeStore::open(&dir.path().join("k.db"), 4).await.unwrap();
    for n in 0..3 {
        store
            .append(AuditEntry {
                seq: 0,
                at: chrono::Utc::now(),
                actor: "healing".into(),
                action: "tool.run".into(),
                subject: "bookmarks".into(),
                detail: serde_json::json!({ "n": n }),
            })
            .await
            .unwrap();
    }
    let recent = store.recent(2).await.unwrap();
    assert_eq!(recent.iter().map(|e| e.detail["n"].as_i64().unwrap()).collect::<Vec<_>>(), vec![2, 1]);
    let tamper = sqlx::query("DELETE FROM audit_log").execute(store.pool()).await;
    assert!(tamper.unwrap_err().to_string().contains("append-only"));
}

#[tokio::test]
async fn a_probe_share_outside_zero_to_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for probe_share in [0.0, 1.5, f64::NAN] {
        let settings = crate::VectorIndexConfig { probe_share, ..crate::VectorIndexConfig::default() };
        let err = SqliteKnowledgeStore::open_with(&dir.path().join("k.db"), 4, settings).await.unwrap_err();
        assert!(err.to_string().contains("probe_share must be within (0, 1]"), "{err}");
    }
}
