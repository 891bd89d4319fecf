//! Runs the conformance suite against a real PostgreSQL started by the test kit.

use std::sync::Arc;

use aiops_testkit::PostgresServer;
use async_trait::async_trait;

use super::PgRegistry;
use crate::conformance::Harness;
use crate::{Clock, Registry};

struct PgHarness {
    server: PostgresServer,
}

impl PgHarness {
    fn new() -> Self {
        Self { server: PostgresServer::start().expect("start postgres") }
    }
}

#[async_trait]
impl Harness for PgHarness {
    async fn open(&self, clock: Arc<dyn Clock>) -> Arc<dyn Registry> {
        // A pool per open, like separate core instances on one database.
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&self.server.url()).await.unwrap();
        Arc::new(PgRegistry::from_pool(pool).await.unwrap().with_clock(clock))
    }
}

crate::conformance::registry_conformance!(PgHarness::new());
