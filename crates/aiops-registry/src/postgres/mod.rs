//! The registry's tables in the knowledge database, on PostgreSQL.
//!
//! Several core instances share these tables. Due checks are claimed with
//! `FOR UPDATE SKIP LOCKED`, and a status is recomputed under a lock on its instance row, so
//! concurrent results for one instance cannot hide each other's change.

use std::sync::Arc;
use std::time::Duration;

use aiops_model::{HealthChange, HealthStatus};
use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row, Transaction};

use crate::rows::{
    self, aggregate, row_readers, CheckSummary, AWAITING_FIRST_RUN, CHECK_COLUMNS, INSTANCE_COLUMNS, NO_CHECKS,
};
use crate::{
    CheckRecord, Clock, DueCheck, Registry, RegistryError, RegistryResult, ServiceInstance, ServiceQuery,
    ServiceRegistration, SystemClock,
};

#[cfg(test)]
mod tests;

const BACKEND: &str = "postgres";

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE reg_instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    registration TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    status_since BIGINT NOT NULL,
    last_heartbeat BIGINT,
    registered_at BIGINT NOT NULL,
    deregister_after_ms BIGINT,
    modify_index BIGINT NOT NULL
);
CREATE INDEX reg_instances_name ON reg_instances(name);
CREATE TABLE reg_checks (
    instance_id TEXT NOT NULL REFERENCES reg_instances(instance_id) ON DELETE CASCADE,
    check_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    successes BIGINT NOT NULL DEFAULT 0,
    next_due BIGINT NOT NULL,
    last_checked BIGINT,
    checked_by TEXT,
    lease_owner TEXT,
    lease_until BIGINT,
    PRIMARY KEY (instance_id, check_id)
);
CREATE INDEX reg_checks_due ON reg_checks(next_due);
CREATE TABLE reg_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO reg_meta (key, value) VALUES ('index', 0);
"#];

/// The registry on PostgreSQL, beside the knowledge graph.
#[derive(Debug, Clone)]
pub struct PgRegistry {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

row_readers!(PgRow);

fn db(err: sqlx::Error) -> RegistryError {
    RegistryError::storage(BACKEND, err)
}

impl PgRegistry {
    /// Uses the knowledge store's pool (migrating the registry's tables if needed).
    ///
    /// # Errors
    /// When the schema cannot be migrated or is too new.
    pub async fn from_pool(pool: PgPool) -> RegistryResult<Self> {
        let migrations: Vec<String> = MIGRATIONS.iter().map(|m| (*m).to_owned()).collect();
        aiops_knowledge::apply_pg_migrations(&pool, "registry", &migrations).await.map_err(RegistryError::Storage)?;
        Ok(Self { pool, clock: Arc::new(SystemClock) })
    }

    /// The same registry reading `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    async fn load_ids(&self, ids: Option<&[String]>, name: Option<&str>) -> RegistryResult<Vec<ServiceInstance>> {
        let rows = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM reg_instances
             WHERE ($1::text[] IS NULL OR instance_id = ANY($1)) AND ($2::text IS NULL OR name = $2)
             ORDER BY name, instance_id"
        ))
        .bind(ids)
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let found: Vec<String> = rows.iter().map(|r| r.try_get("instance_id")).collect::<Result<_, _>>().map_err(db)?;
        let instance_rows = rows.iter().map(instance_row).collect::<Result<_, _>>().map_err(db)?;
        let checks = sqlx::query(&format!(
            "SELECT {CHECK_COLUMNS} FROM reg_checks WHERE instance_id = ANY($1) ORDER BY instance_id, position"
        ))
        .bind(&found)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let check_rows = checks.iter().map(check_row).collect::<Result<_, _>>().map_err(db)?;
        rows::assemble(instance_rows, check_rows)
    }
}

async fn bump_index(tx: &mut Transaction<'static, Postgres>) -> RegistryResult<i64> {
    sqlx::query_scalar("UPDATE reg_meta SET value = value + 1 WHERE key = 'index' RETURNING value")
        .fetch_one(&mut **tx)
        .await
        .map_err(db)
}

/// Recomputes an instance's status from its checks under a lock on its row; returns
/// (service, old, new, reason) when it changed.
async fn refresh_status(
    tx: &mut Transaction<'static, Postgres>,
    instance_id: &str,
    now: i64,
) -> RegistryResult<Option<(String, HealthStatus, HealthStatus, String)>> {
    let Some(row) =
        sqlx::query("SELECT name, status, status_reason FROM reg_instances WHERE instance_id = $1 FOR UPDATE")
            .bind(instance_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?
    else {
        return Ok(None);
    };
    let name: String = row.try_get("name").map_err(db)?;
    let old = rows::parse_status(row.try_get("status").map_err(db)?);
    let old_reason: String = row.try_get("status_reason").map_err(db)?;
    let checks = sqlx::query(
        "SELECT check_id, status, output, failures FROM reg_checks WHERE instance_id = $1 ORDER BY position",
    )
    .bind(instance_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    let checks: Vec<CheckSummary> = checks
        .iter()
        .map(|r| {
            Ok((
                r.try_get("check_id")?,
                rows::parse_status(r.try_get("status")?),
                r.try_get("output")?,
                r.try_get("failures")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db)?;
    let (new, reason) = aggregate(&checks, old);
    if new == old {
        // The same status for another reason is not a change watchers wait for.
        if reason != old_reason {
            sqlx::query("UPDATE reg_instances SET status_reason = $1 WHERE instance_id = $2")
                .bind(&reason)
                .bind(instance_id)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
        return Ok(None);
    }
    let index = bump_index(tx).await?;
    sqlx::query(
        "UPDATE reg_instances SET status = $1, status_reason = $2, status_since = $3, modify_index = $4 WHERE instance_id = $5",
    )
    .bind(new.as_str())
    .bind(&reason)
    .bind(now)
    .bind(index)
    .bind(instance_id)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(Some((name, old, new, reason)))
}

#[async_trait]
impl Registry for PgRegistry {
    async fn register(&self, registration: ServiceRegistration) -> RegistryResult<ServiceInstance> {
        registration.validate()?;
        let checks = registration.effective_checks();
        let now = self.now_ms();
        let json = serde_json::to_string(&registration)
            .map_err(|err| RegistryError::Invalid(format!("registration cannot be encoded: {err}")))?;
        let deregister_after = registration.deregister_critical_after_secs.map(|s| (s * 1000) as i64);
        let (status, reason) = if checks.is_empty() {
            (HealthStatus::Passing, NO_CHECKS)
        } else {
            (HealthStatus::Warning, AWAITING_FIRST_RUN)
        };
        let mut tx = self.pool.begin().await.map_err(db)?;
        let index = bump_index(&mut tx).await?;
        // A registration counts as a heartbeat: the service just proved it is alive.
        sqlx::query(
            "INSERT INTO reg_instances (instance_id, name, registration, status, status_reason, status_since,
                 last_heartbeat, registered_at, deregister_after_ms, modify_index)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7, $8)
             ON CONFLICT (instance_id) DO UPDATE SET name = EXCLUDED.name, registration = EXCLUDED.registration,
                 last_heartbeat = EXCLUDED.last_heartbeat, registered_at = EXCLUDED.registered_at,
                 deregister_after_ms = EXCLUDED.deregister_after_ms, modify_index = EXCLUDED.modify_index",
        )
        .bind(&registration.instance_id)
        .bind(&registration.name)
        .bind(json)
        .bind(status.as_str())
        .bind(reason)
        .bind(now)
        .bind(deregister_after)
        .bind(index)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let ids: Vec<String> = checks.iter().map(|c| c.id().to_owned()).collect();
        sqlx::query("DELETE FROM reg_checks WHERE instance_id = $1 AND NOT (check_id = ANY($2))")
            .bind(&registration.instance_id)
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for (position, check) in checks.iter().enumerate() {
            sqlx::query(
                "INSERT INTO reg_checks (instance_id, check_id, position, kind, status, output, next_due)
                 VALUES ($1, $2, $3, $4, 'warning', $5, $6)
                 ON CONFLICT (instance_id, check_id) DO UPDATE SET position = EXCLUDED.position,
                     kind = EXCLUDED.kind, next_due = EXCLUDED.next_due",
            )
            .bind(&registration.instance_id)
            .bind(check.id())
            .bind(position as i64)
            .bind(check.kind.as_str())
            .bind(AWAITING_FIRST_RUN)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        refresh_status(&mut tx, &registration.instance_id, now).await?;
        tx.commit().await.map_err(db)?;
        self.instance(&registration.instance_id)
            .await?
            .ok_or_else(|| RegistryError::NotFound(registration.instance_id.clone()))
    }

    async fn deregister(&self, instance_id: &str) -> RegistryResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query("DELETE FROM reg_instances WHERE instance_id = $1")
            .bind(instance_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let removed = done.rows_affected() > 0;
        if removed {
            bump_index(&mut tx).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(removed)
    }

    async fn heartbeat(&self, instance_id: &str) -> RegistryResult<()> {
        let now = self.now_ms();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let done = sqlx::query("UPDATE reg_instances SET last_heartbeat = $1 WHERE instance_id = $2")
            .bind(now)
            .bind(instance_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::NotFound(instance_id.into()));
        }
        // A failing TTL check is re-run at once, so that a recovered service recovers quickly.
        sqlx::query(
            "UPDATE reg_checks SET next_due = $1 WHERE instance_id = $2 AND kind = 'ttl' AND status <> 'passing'",
        )
        .bind(now)
        .bind(instance_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn instance(&self, instance_id: &str) -> RegistryResult<Option<ServiceInstance>> {
        Ok(self.load_ids(Some(&[instance_id.to_owned()]), None).await?.pop())
    }

    async fn instances(&self, query: &ServiceQuery) -> RegistryResult<Vec<ServiceInstance>> {
        let mut found = self.load_ids(None, query.name.as_deref()).await?;
        found.retain(|instance| query.matches(instance));
        Ok(found)
    }

    async fn index(&self) -> RegistryResult<u64> {
        let index: i64 = sqlx::query_scalar("SELECT value FROM reg_meta WHERE key = 'index'")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(u64::try_from(index).unwrap_or(0))
    }

    async fn claim_due_checks(&self, owner: &str, lease: Duration, limit: usize) -> RegistryResult<Vec<DueCheck>> {
        let now = self.now_ms();
        let claimed = sqlx::query(
            "UPDATE reg_checks SET lease_owner = $1, lease_until = $2
             WHERE (instance_id, check_id) IN (
                 SELECT instance_id, check_id FROM reg_checks
                 WHERE next_due <= $3 AND (lease_until IS NULL OR lease_until < $3)
                 ORDER BY next_due LIMIT $4 FOR UPDATE SKIP LOCKED)
             RETURNING instance_id, check_id",
        )
        .bind(owner)
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let claimed: Vec<(String, String)> = claimed
            .iter()
            .map(|r| Ok((r.try_get("instance_id")?, r.try_get("check_id")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)?;
        let ids: Vec<String> = claimed.iter().map(|(id, _)| id.clone()).collect();
        let instances = self.load_ids(Some(&ids), None).await?;
        Ok(rows::due_checks(&claimed, &instances))
    }

    async fn record_check(&self, owner: &str, record: CheckRecord) -> RegistryResult<Option<HealthChange>> {
        let now = self.now_ms();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let stored = sqlx::query(
            "UPDATE reg_checks SET status = $1, output = $2, failures = $3, successes = $4, next_due = $5,
                 last_checked = $6, checked_by = $7, lease_owner = NULL, lease_until = NULL
             WHERE instance_id = $8 AND check_id = $9 AND lease_owner = $7",
        )
        .bind(record.status.as_str())
        .bind(&record.output)
        .bind(i64::from(record.failures))
        .bind(i64::from(record.successes))
        .bind(record.next_due.timestamp_millis())
        .bind(now)
        .bind(owner)
        .bind(&record.instance_id)
        .bind(&record.check_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if stored.rows_affected() == 0 {
            tracing::debug!(instance = %record.instance_id, check = %record.check_id, "Dropped a check result: its lease ended.");
            return Ok(None);
        }
        let changed = refresh_status(&mut tx, &record.instance_id, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(changed.map(|(service, from, to, reason)| HealthChange {
            service,
            instance_id: record.instance_id.clone(),
            from,
            to,
            reason,
            heartbeat_lost: record.heartbeat_lost && to == HealthStatus::Critical,
        }))
    }

    async fn reap_critical(&self) -> RegistryResult<Vec<ServiceInstance>> {
        let now = self.now_ms();
        let mut tx = self.pool.begin().await.map_err(db)?;
        let reaped = sqlx::query(&format!(
            "DELETE FROM reg_instances
             WHERE status = 'critical' AND deregister_after_ms IS NOT NULL AND status_since + deregister_after_ms <= $1
             RETURNING {INSTANCE_COLUMNS}"
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        if !reaped.is_empty() {
            bump_index(&mut tx).await?;
        }
        tx.commit().await.map_err(db)?;
        let reaped = reaped.iter().map(instance_row).collect::<Result<_, _>>().map_err(db)?;
        rows::assemble(reaped, Vec::new())
    }
}
