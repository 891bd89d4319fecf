//! The registry's tables in the knowledge database (SQLite).

use std::path::Path;

use aiops_model::{HealthChange, HealthStatus};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::Row;

use crate::{Registry, RegistryError, RegistryResult, ServiceInstance, ServiceQuery, ServiceRegistration};

#[cfg(test)]
mod tests;

const MIGRATIONS: &[&str] = &[r#"
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
"#];

/// The default registry: one table in the shared SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteRegistry {
    pool: SqlitePool,
}

impl SqliteRegistry {
    /// Opens the database at `path` (creating and migrating it if needed).
    ///
    /// # Errors
    /// When the database cannot be opened or its schema is too new.
    pub async fn open(path: &Path) -> RegistryResult<Self> {
        let pool = aiops_knowledge::open_sqlite_pool(path).await.map_err(RegistryError::Storage)?;
        aiops_knowledge::apply_migrations(&pool, "registry", MIGRATIONS).await.map_err(RegistryError::Storage)?;
        Ok(Self { pool })
    }
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn row_to_instance(row: &SqliteRow) -> RegistryResult<ServiceInstance> {
    let registration: &str = row.try_get("registration")?;
    let registration: ServiceRegistration = serde_json::from_str(registration).map_err(|err| {
        RegistryError::Storage(aiops_knowledge::KnowledgeError::Backend { backend: "sqlite", source: err.into() })
    })?;
    let status: &str = row.try_get("status")?;
    Ok(ServiceInstance {
        registration,
        status: HealthStatus::parse(status).unwrap_or(HealthStatus::Critical),
        status_reason: row.try_get("status_reason")?,
        last_heartbeat: row.try_get::<Option<i64>, _>("last_heartbeat")?.map(from_millis),
        registered_at: from_millis(row.try_get("registered_at")?),
    })
}

#[async_trait]
impl Registry for SqliteRegistry {
    async fn register(&self, registration: ServiceRegistration) -> RegistryResult<ServiceInstance> {
        registration.validate()?;
        let has_checks = registration.health_url.is_some() || registration.ttl_secs.is_some();
        let (status, reason) = if has_checks {
            (HealthStatus::Warning, "registered, awaiting first check")
        } else {
            (HealthStatus::Passing, "registered without checks")
        };
        let now = Utc::now().timestamp_millis();
        let json = serde_json::to_string(&registration)
            .map_err(|err| RegistryError::Invalid(format!("registration cannot be encoded: {err}")))?;
        // A registration counts as a heartbeat: the service just proved it is alive.
        sqlx::query(
            "INSERT INTO reg_instances (instance_id, name, registration, status, status_reason, last_heartbeat, registered_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(instance_id) DO UPDATE SET name = excluded.name, registration = excluded.registration,
                 last_heartbeat = excluded.last_heartbeat, registered_at = excluded.registered_at",
        )
        .bind(&registration.instance_id)
        .bind(&registration.name)
        .bind(json)
        .bind(status.as_str())
        .bind(reason)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.instance(&registration.instance_id)
            .await?
            .ok_or_else(|| RegistryError::NotFound(registration.instance_id.clone()))
    }

    async fn deregister(&self, instance_id: &str) -> RegistryResult<bool> {
        let done = sqlx::query("DELETE FROM reg_instances WHERE instance_id = ?")
            .bind(instance_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn heartbeat(&self, instance_id: &str) -> RegistryResult<()> {
        let done = sqlx::query("UPDATE reg_instances SET last_heartbeat = ? WHERE instance_id = ?")
            .bind(Utc::now().timestamp_millis())
            .bind(instance_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::NotFound(instance_id.into()));
        }
        Ok(())
    }

    async fn instance(&self, instance_id: &str) -> RegistryResult<Option<ServiceInstance>> {
        let row = sqlx::query("SELECT * FROM reg_instances WHERE instance_id = ?")
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(row_to_instance).transpose()
    }

    async fn instances(&self, query: &ServiceQuery) -> RegistryResult<Vec<ServiceInstance>> {
        let rows = sqlx::query("SELECT * FROM reg_instances WHERE (? IS NULL OR name = ?) ORDER BY name, instance_id")
            .bind(query.name.as_deref())
            .bind(query.name.as_deref())
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let instance = row_to_instance(row)?;
            if query.matches(&instance) {
                out.push(instance);
            }
        }
        Ok(out)
    }

    async fn set_status(
        &self,
        instance_id: &str,
        status: HealthStatus,
        reason: &str,
    ) -> RegistryResult<Option<HealthChange>> {
        let row = sqlx::query("SELECT name, status FROM reg_instances WHERE instance_id = ?")
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| RegistryError::NotFound(instance_id.into()))?;
        let name: String = row.try_get("name")?;
        let previous_text: String = row.try_get("status")?;
        let previous = HealthStatus::parse(&previous_text).unwrap_or(HealthStatus::Critical);
        // Compare-and-set: of two writers that saw the same old status, one reports the change.
        let changed =
            sqlx::query("UPDATE reg_instances SET status = ?, status_reason = ? WHERE instance_id = ? AND status = ?")
                .bind(status.as_str())
                .bind(reason)
                .bind(instance_id)
                .bind(&previous_text)
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1;
        Ok((changed && previous != status).then(|| HealthChange {
            service: name,
            instance_id: instance_id.into(),
            from: previous,
            to: status,
            reason: reason.into(),
            heartbeat_lost: false,
        }))
    }
}
