//! Runs the conformance suite against SQLite, plus what is SQLite's own: upgrading from the
//! first schema.

use std::sync::Arc;

use async_trait::async_trait;

use super::SqliteRegistry;
use crate::conformance::Harness;
use crate::{Clock, Registry};

struct SqliteHarness {
    dir: tempfile::TempDir,
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn Registry> {
        Arc::new(SqliteRegistry::open(&self.dir.path().join("aiops.db")).await.unwrap().with_clock(clock))
    }
}

crate::conformance::registry_conformance!(SqliteHarness { dir: tempfile::tempdir().unwrap() });

#[tokio::test]
async fn a_first_version_database_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aiops.db");
    let pool = aiops_knowledge::open_sqlite_pool(&path).await.unwrap();
    aiops_knowledge::apply_migrations(&pool, "registry", &super::MIGRATIONS[..1]).await.unwrap();
    sqlx::query(
        "INSERT INTO reg_instances (instance_id, name, registration, status, status_reason, registered_at)
         VALUES ('old', 'svc', '{}', 'passing', 'x', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let registry = SqliteRegistry::from_pool(pool).await.unwrap();
    assert!(registry.instance("old").await.unwrap().is_none(), "old registrations are dropped; services re-register");
    let reg = crate::ServiceRegistration::new("svc", "new", "http://127.0.0.1:9");
    assert_eq!(registry.register(reg).await.unwrap().modify_index, 1);
}
