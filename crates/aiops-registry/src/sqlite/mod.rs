//! The registry's tables in the knowledge database, on SQLite.
//!
//! Writes that read before they write run in `BEGIN IMMEDIATE` transactions, so that two
//! core processes sharing the file serialise instead of failing on a lock upgrade.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aiops_model::{HealthChange, HealthStatus};
use async_trait::async_trait;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, Sqlite, Transaction};

use crate::rows::{
    self, aggregate, row_readers, CheckSummary, AWAITING_FIRST_RUN, CHECK_COLUMNS, INSTANCE_COLUMNS, NO_CHECKS,
};
use crate::{
    CheckRecord, Clock, DueCheck, Registry, RegistryError, RegistryResult, ServiceInstance, ServiceQuery,
    ServiceRegistration, SystemClock,
};

#[cfg(test)]
mod tests;

const BACKEND: &str = "sqlite";
/// Checks whose run is due and not leased (`?1`: now).
const DUE: &str = "next_due <= ?1 AND (lease_until IS NULL OR lease_until < ?1)";
/// Instances critical longer than they may be (`?1`: now).
const EXPIRED: &str =
    "status = 'critical' AND deregister_after_ms IS NOT NULL AND status_since + deregister_after_ms <= ?1";

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE reg_instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    registration TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    last_heartbeat INTEGER,
    registered_at INTEGER NOT NULL
);
CREATE INDEX reg_instances_name ON reg_instances(name);
"#,
    // Checks got their own rows. Registrations of version 1 are dropped: services register
    // again on their next heartbeat (it answers 404), the config directory at start.
    r#"
DELETE FROM reg_instances;
ALTER TABLE reg_instances ADD COLUMN status_since INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reg_instances ADD COLUMN deregister_after_ms INTEGER;
ALTER TABLE reg_instances ADD COLUMN modify_index INTEGER NOT NULL DEFAULT 0;
CREATE TABLE reg_checks (
    instance_id TEXT NOT NULL REFERENCES reg_instances(instance_id) ON DELETE CASCADE,
    check_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    successes INTEGER NOT NULL DEFAULT 0,
    next_due INTEGER NOT NULL,
    last_checked INTEGER,
    checked_by TEXT,
    lease_owner TEXT,
    lease_until INTEGER,
    PRIMARY KEY (instance_id, check_id)
);
CREATE INDEX reg_checks_due ON reg_checks(next_due);
CREATE TABLE reg_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO reg_meta (key, value) VALUES ('index', 0);
"#,
];

/// The default registry: tables in the shared SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteRegistry {
    pool: SqlitePool,
    clock: Arc<dyn Clock>,
}

row_readers!(SqliteRow);

fn db(err: sqlx::Error) -> RegistryError {
    RegistryError::storage(BACKEND, err)
}

impl SqliteRegistry {
    /// Opens the database at `path` (creating and migrating it if needed).
    ///
    /// # Errors
    /// When the database cannot be opened or its schema is too new.
    pub async fn open(path: &Path) -> RegistryResult<Self> {
        let pool = aiops_knowledge::open_sqlite_pool(path).await.map_err(RegistryError::Storage)?;
        Self::from_pool(pool).await
    }

    /// Uses the knowledge store's pool (migrating the registry's tables if needed).
    ///
    /// # Errors
    /// When the schema cannot be migrated or is too new.
    pub async fn from_pool(pool: SqlitePool) -> RegistryResult<Self> {
        aiops_knowledge::apply_migrations(&pool, "registry", MIGRATIONS).await.map_err(RegistryError::Storage)?;
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

    /// Whether any row of `table` meets `condition` (with `?1` bound to `now`).
    async fn exists(&self, table: &str, condition: &str, now: i64) -> RegistryResult<bool> {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE {condition})");
        sqlx::query_scalar(&sql).bind(now).fetch_one(&self.pool).await.map_err(db)
    }

    async fn write(&self) -> RegistryResult<Transaction<'static, Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }

    async fn load(&self, where_sql: &str, binds: &[&str]) -> RegistryResult<Vec<ServiceInstance>> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM reg_instances {where_sql} ORDER BY name, instance_id");
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = query.bind(*bind);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db)?;
        let ids: Vec<String> = rows.iter().map(|r| r.try_get("instance_id")).collect::<Result<_, _>>().map_err(db)?;
        let instance_rows = rows.iter().map(instance_row).collect::<Result<_, _>>().map_err(db)?;
        let ids_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        let checks = sqlx::query(
            &format!(
            "SELECT {CHECK_COLUMNS} FROM reg_checks WHERE instance_id IN (SELECT value FROM json_each(?)) ORDER BY instance_id, position"
        )).bind(ids_json).fetch_all(&self.pool).await.map_err(db)?;
        let check_rows = checks.iter().map(check_row).collect::<Result<_, _>>().map_err(db)?;
        rows::assemble(instance_rows, check_rows)
    }
}

async fn bump_index(tx: &mut Transaction<'static, Sqlite>) -> RegistryResult<i64> {
    sqlx::query_scalar("UPDATE reg_meta SET value = value + 1 WHERE key = 'index' RETURNING value")
        .fetch_one(&mut **tx)
        .await
        .map_err(db)
}

/// Recomputes an instance's status from its checks; returns (old, new, reason) when it changed.
async fn refresh_status(
    tx: &mut Transaction<'static, Sqlite>,
    instance_id: &str,
    now: i64,
) -> RegistryResult<Option<(String, HealthStatus, HealthStatus, String)>> {
    let Some(row) = sqlx::query("SELECT name, status, status_reason FROM reg_instances WHERE instance_id = ?")
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
        "SELECT check_id, status, output, failures FROM reg_checks WHERE instance_id = ? ORDER BY position",
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
            sqlx::query("UPDATE reg_instances SET status_reason = ? WHERE instance_id = ?")
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
        "UPDATE reg_instances SET status = ?, status_reason = ?, status_since = ?, modify_index = ? WHERE instance_id = ?",
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
impl Registry for SqliteRegistry {
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
        let mut tx = self.write().await?;
        let index = bump_index(&mut tx).await?;
        // A registration counts as a heartbeat: the service just proved it is alive.
        sqlx::query(
            "INSERT INTO reg_instances (instance_id, name, registration, status, status_reason, status_since,
                 last_heartbeat, registered_at, deregister_after_ms, modify_index)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(instance_id) DO UPDATE SET name = excluded.name, registration = excluded.registration,
                 last_heartbeat = excluded.last_heartbeat, registered_at = excluded.registered_at,
                 deregister_after_ms = excluded.deregister_after_ms, modify_index = excluded.modify_index",
        )
        .bind(&registration.instance_id)
        .bind(&registration.name)
        .bind(json)
        .bind(status.as_str())
        .bind(reason)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(deregister_after)
        .bind(index)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let ids = serde_json::to_string(&checks.iter().map(|c| c.id()).collect::<Vec<_>>()).unwrap_or_default();
        sqlx::query(
            "DELETE FROM reg_checks WHERE instance_id = ? AND check_id NOT IN (SELECT value FROM json_each(?))",
        )
        .bind(&registration.instance_id)
        .bind(ids)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        for (position, check) in checks.iter().enumerate() {
            sqlx::query(
                "INSERT INTO reg_checks (instance_id, check_id, position, kind, status, output, next_due)
                 VALUES (?, ?, ?, ?, 'warning', ?, ?)
                 ON CONFLICT(instance_id, check_id) DO UPDATE SET position = excluded.position,
                     kind = excluded.kind, next_due = excluded.next_due",
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
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM reg_instances WHERE instance_id = ?")
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
        let mut tx = self.write().await?;
        let done = sqlx::query("UPDATE reg_instances SET last_heartbeat = ? WHERE instance_id = ?")
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
            "UPDATE reg_checks SET next_due = ? WHERE instance_id = ? AND kind = 'ttl' AND status <> 'passing'",
        )
        .bind(now)
        .bind(instance_id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn instance(&self, instance_id: &str) -> RegistryResult<Option<ServiceInstance>> {
        Ok(self.load("WHERE instance_id = ?", &[instance_id]).await?.pop())
    }

    async fn instances(&self, query: &ServiceQuery) -> RegistryResult<Vec<ServiceInstance>> {
        let mut found = match &query.name {
            Some(name) => self.load("WHERE name = ?", &[name]).await?,
            None => self.load("", &[]).await?,
        };
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
        // Every core asks on every tick; most ticks find nothing due, and a read does not
        // take SQLite's one write lock.
        if !self.exists("reg_checks", DUE, now).await? {
            return Ok(Vec::new());
        }
        let claimed = sqlx::query(
            "UPDATE reg_checks SET lease_owner = ?, lease_until = ?
             WHERE rowid IN (SELECT rowid FROM reg_checks
                             WHERE next_due <= ? AND (lease_until IS NULL OR lease_until < ?)
                             ORDER BY next_due LIMIT ?)
             RETURNING instance_id, check_id",
        )
        .bind(owner)
        .bind(now + lease.as_millis() as i64)
        .bind(now)
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
        let ids: Vec<&str> = claimed.iter().map(|(id, _)| id.as_str()).collect();
        let ids_json = serde_json::to_string(&ids).unwrap_or_default();
        let instances = self.load("WHERE instance_id IN (SELECT value FROM json_each(?))", &[&ids_json]).await?;
        Ok(rows::due_checks(&claimed, &instances))
    }

    async fn record_check(&self, owner: &str, record: CheckRecord) -> RegistryResult<Option<HealthChange>> {
        let now = self.now_ms();
        let mut tx = self.write().await?;
        let stored = sqlx::query(
            "UPDATE reg_checks SET status = ?, output = ?, failures = ?, successes = ?, next_due = ?,
                 last_checked = ?, checked_by = ?, lease_owner = NULL, lease_until = NULL
             WHERE instance_id = ? AND check_id = ? AND lease_owner = ?",
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
        .bind(owner)
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
        if !self.exists("reg_instances", EXPIRED, now).await? {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        let reaped = sqlx::query(&format!("DELETE FROM reg_instances WHERE {EXPIRED} RETURNING {INSTANCE_COLUMNS}"))
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
