//! The SQLite engine: nodes, edges, statistics and audit in one file, plus an in-process
//! vector index.
//!
//! The vector index (see `index`) is rebuilt from the file at open: an exact scan while the
//! store is small, an inverted-file partition once it holds more than `exact_up_to` vectors
//! (`[knowledge.vector_index]`, default 20,000). Writes
//! are serialized by one async mutex so that the database and the index always change in the
//! same order, and a re-partition is planned while searches go on.

use std::path::Path;
use std::str::FromStr;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::Row;

use crate::{
    AuditEntry, AuditLog, Direction, Edge, KnowledgeError, KnowledgeResult, KnowledgeStore, Node, NodeKind, Outcome,
    Reached, Relation, ScoredNode, SimilarityQuery, SolutionStats,
};

mod index;
#[cfg(test)]
mod tests;

use self::index::VectorIndex;

const BACKEND: &str = "sqlite";
/// Longest traversal, in hops.
pub(crate) const MAX_HOPS: usize = 10;
/// Most nodes one traversal returns.
pub(crate) const MAX_REACHED: usize = 10_000;

/// Versioned migrations of the knowledge tables; index + 1 is the version.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE kn_nodes (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    embedding BLOB,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX kn_nodes_kind ON kn_nodes(kind);
CREATE TABLE kn_edges (
    src TEXT NOT NULL REFERENCES kn_nodes(id) ON DELETE CASCADE,
    dst TEXT NOT NULL REFERENCES kn_nodes(id) ON DELETE CASCADE,
    relation TEXT NOT NULL,
    weight REAL NOT NULL,
    data TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (src, dst, relation)
);
CREATE INDEX kn_edges_dst ON kn_edges(dst, relation);
CREATE TABLE kn_solution_stats (
    solution_id TEXT PRIMARY KEY REFERENCES kn_nodes(id) ON DELETE CASCADE,
    attempts INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    total_recover_ms INTEGER NOT NULL,
    last_used INTEGER NOT NULL
);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#,
    r#"
CREATE TABLE kn_outcomes (
    action_id TEXT PRIMARY KEY,
    problem_id TEXT NOT NULL,
    solution_id TEXT NOT NULL,
    success INTEGER NOT NULL,
    recover_ms INTEGER,
    at INTEGER NOT NULL
);
CREATE INDEX kn_outcomes_solution ON kn_outcomes(solution_id);
"#,
    r#"
CREATE VIRTUAL TABLE kn_fts USING fts5(body, tokenize = 'unicode61');
INSERT INTO kn_fts (rowid, body) SELECT rowid, name || ' ' || data FROM kn_nodes;
CREATE TRIGGER kn_fts_insert AFTER INSERT ON kn_nodes
    BEGIN INSERT INTO kn_fts (rowid, body) VALUES (new.rowid, new.name || ' ' || new.data); END;
CREATE TRIGGER kn_fts_update AFTER UPDATE ON kn_nodes BEGIN
    DELETE FROM kn_fts WHERE rowid = old.rowid;
    INSERT INTO kn_fts (rowid, body) VALUES (new.rowid, new.name || ' ' || new.data);
END;
CREATE TRIGGER kn_fts_delete AFTER DELETE ON kn_nodes BEGIN DELETE FROM kn_fts WHERE rowid = old.rowid; END;
CREATE INDEX kn_edges_src ON kn_edges(src, relation);
"#,
    r#"
ALTER TABLE kn_outcomes ADD COLUMN pattern TEXT;
CREATE TABLE kn_pattern_stats (
    pattern TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    total_recover_ms INTEGER NOT NULL,
    last_used INTEGER NOT NULL
);
"#,
];

/// Opens (creating if needed) the shared SQLite database of the embedded engine.
///
/// WAL mode with `synchronous = FULL`: a committed write survives a crash of the process or
/// the machine. Other parts that store through the knowledge database (the registry) open
/// their pool with this function.
///
/// # Errors
/// [`KnowledgeError::Unavailable`] when the file cannot be opened.
pub async fn open_sqlite_pool(path: &Path) -> KnowledgeResult<SqlitePool> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|err| unavailable(err.into()))?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|err| unavailable(err.into()))
}

/// Applies `migrations` of `component` that the database does not have yet, in order.
///
/// # Errors
/// [`KnowledgeError::SchemaTooNew`] when the database has a newer version than `migrations`.
pub async fn apply_migrations(pool: &SqlitePool, component: &str, migrations: &[&str]) -> KnowledgeResult<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        .execute(pool)
        .await
        .map_err(backend)?;
    let found: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?")
        .bind(component)
        .fetch_one(pool)
        .await
        .map_err(backend)?;
    let supported = migrations.len() as i64;
    if found > supported {
        return Err(KnowledgeError::SchemaTooNew { component: component.into(), found, supported });
    }
    for (idx, sql) in migrations.iter().enumerate().skip(found as usize) {
        let version = idx + 1;
        // One script per migration, so that its tables and its version row commit together.
        // `component` is a compile-time name of ours, never user input.
        let sql = sql.trim().trim_end_matches(';');
        let script = format!(
            "BEGIN IMMEDIATE;\n{sql};\nINSERT INTO schema_migrations (component, version) VALUES ('{component}', {version})
             ON CONFLICT(component) DO UPDATE SET version = excluded.version;\nCOMMIT;"
        );
        sqlx::raw_sql(&script).execute(pool).await.map_err(backend)?;
        tracing::info!(component, version, "Applied database migration.");
    }
    Ok(())
}

fn unavailable(source: Box<dyn std::error::Error + Send + Sync>) -> KnowledgeError {
    KnowledgeError::Unavailable { backend: BACKEND, source }
}

fn backend(err: sqlx::Error) -> KnowledgeError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => unavailable(err.into()),
        other => KnowledgeError::Backend { backend: BACKEND, source: other.into() },
    }
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn encode_embedding(embedding: &[f32]) -> Vec<u8> {
    embedding.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode_embedding(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The default knowledge store.
#[derive(Debug)]
pub struct SqliteKnowledgeStore {
    pool: SqlitePool,
    dimensions: usize,
    index: RwLock<VectorIndex>,
    writes: tokio::sync::Mutex<()>,
}

impl SqliteKnowledgeStore {
    /// Opens the database at `path`, migrates it, and loads the vector index.
    ///
    /// # Errors
    /// When the file cannot be opened, its schema is too new, or a stored embedding has
    /// another dimension than `dimensions`.
    pub async fn open(path: &Path, dimensions: usize) -> KnowledgeResult<Self> {
        Self::open_with(path, dimensions, crate::VectorIndexConfig::default()).await
    }

    /// [`Self::open`] with the vector index's settings.
    ///
    /// # Errors
    /// As [`Self::open`], and when `probe_share` is not within (0, 1].
    pub async fn open_with(
        path: &Path,
        dimensions: usize,
        vector_index: crate::VectorIndexConfig,
    ) -> KnowledgeResult<Self> {
        if dimensions == 0 {
            return Err(KnowledgeError::Invalid("embedding dimensions must be at least 1".into()));
        }
        if !(vector_index.probe_share > 0.0 && vector_index.probe_share <= 1.0) {
            return Err(KnowledgeError::Invalid(format!(
                "vector_index.probe_share must be within (0, 1], got {}",
                vector_index.probe_share
            )));
        }
        let mut index = VectorIndex::new(dimensions, vector_index);
        let pool = open_sqlite_pool(path).await?;
        apply_migrations(&pool, "knowledge", MIGRATIONS).await?;
        let rows = sqlx::query(
            "SELECT id, kind, embedding, json_extract(data, '$.service') AS service, updated_at
             FROM kn_nodes WHERE embedding IS NOT NULL",
        )
        .fetch_all(&pool)
        .await
        .map_err(backend)?;
        for row in rows {
            let id: String = row.get("id");
            let kind = NodeKind::from_str(row.get::<&str, _>("kind"))?;
            let embedding = decode_embedding(row.get::<&[u8], _>("embedding"));
            if embedding.len() != dimensions {
                return Err(KnowledgeError::DimensionMismatch { expected: dimensions, actual: embedding.len() });
            }
            let service: Option<String> = row.try_get("service").ok().flatten();
            index.insert(id, kind, service, row.get("updated_at"), &embedding);
        }
        tracing::debug!(vectors = index.len(), "Loaded the knowledge vector index.");
        let store = Self { pool, dimensions, index: RwLock::new(index), writes: tokio::sync::Mutex::new(()) };
        store.maintain_index();
        Ok(store)
    }

    /// Partitions the vector index anew when its size has doubled or halved since it was last
    /// planned. Callers hold `writes` (or are `open`), so the plan made under the read lock
    /// is still right when it is installed.
    fn maintain_index(&self) {
        let plan = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            if !index.needs_partition() {
                return;
            }
            let started = std::time::Instant::now();
            let plan = index.plan_partition();
            tracing::info!(
                vectors = index.len(),
                ms = started.elapsed().as_millis() as u64,
                "Planned the knowledge vector index."
            );
            plan
        };
        self.index_write().install(plan);
    }

    /// The connection pool, for parts that store their own tables in the same database.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn index_write(&self) -> std::sync::RwLockWriteGuard<'_, VectorIndex> {
        // Index mutations are single inserts/removes, so a poisoned lock still holds a
        // consistent map.
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    async fn stats(&self, sql: &str, key: &str) -> KnowledgeResult<Option<SolutionStats>> {
        let row = sqlx::query(sql).bind(key).fetch_optional(&self.pool).await.map_err(backend)?;
        Ok(row.map(|row| {
            let attempts: i64 = row.get("attempts");
            let successes: i64 = row.get("successes");
            let total: i64 = row.get("total_recover_ms");
            SolutionStats {
                attempts: attempts as u64,
                successes: successes as u64,
                failures: (attempts - successes) as u64,
                mean_recover_ms: (successes > 0).then(|| total as f64 / successes as f64),
                last_used: Some(from_millis(row.get("last_used"))),
            }
        }))
    }

    /// The nodes of `hits` (without embeddings) in the hits' order, read in one query; a node
    /// deleted since the search is left out.
    async fn scored_nodes(&self, hits: Vec<(String, f32)>) -> KnowledgeResult<Vec<ScoredNode>> {
        let ids = serde_json::Value::from(hits.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>()).to_string();
        let rows = sqlx::query(
            "SELECT id, kind, name, data, NULL AS embedding, created_at, updated_at FROM kn_nodes
             WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut nodes = rows
            .iter()
            .map(|row| row_to_node(row, "").map(|node| (node.id.clone(), node)))
            .collect::<KnowledgeResult<std::collections::HashMap<_, _>>>()?;
        Ok(hits
            .into_iter()
            .filter_map(|(id, score)| nodes.remove(&id).map(|node| ScoredNode { node, score }))
            .collect())
    }

    async fn require_node(&self, id: &str) -> KnowledgeResult<()> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM kn_nodes WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        exists.map(|_| ()).ok_or_else(|| KnowledgeError::NotFound { id: id.into() })
    }
}

fn row_to_node(row: &SqliteRow, prefix: &str) -> KnowledgeResult<Node> {
    let col = |name: &str| format!("{prefix}{name}");
    let data: &str = row.try_get(col("data").as_str()).map_err(backend)?;
    let embedding: Option<&[u8]> = row.try_get(col("embedding").as_str()).map_err(backend)?;
    Ok(Node {
        id: row.try_get(col("id").as_str()).map_err(backend)?,
        kind: NodeKind::from_str(row.try_get(col("kind").as_str()).map_err(backend)?)?,
        name: row.try_get(col("name").as_str()).map_err(backend)?,
        data: serde_json::from_str(data).map_err(|e| KnowledgeError::Backend { backend: BACKEND, source: e.into() })?,
        embedding: embedding.map(decode_embedding),
        created_at: from_millis(row.try_get(col("created_at").as_str()).map_err(backend)?),
        updated_at: from_millis(row.try_get(col("updated_at").as_str()).map_err(backend)?),
    })
}

fn row_to_edge(row: &SqliteRow) -> KnowledgeResult<Edge> {
    let data: &str = row.try_get("e_data").map_err(backend)?;
    Ok(Edge {
        from: row.try_get("src").map_err(backend)?,
        to: row.try_get("dst").map_err(backend)?,
        relation: Relation::from_str(row.try_get("relation").map_err(backend)?)?,
        weight: row.try_get("weight").map_err(backend)?,
        data: serde_json::from_str(data).map_err(|e| KnowledgeError::Backend { backend: BACKEND, source: e.into() })?,
    })
}

#[async_trait]
impl KnowledgeStore for SqliteKnowledgeStore {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn upsert_node(&self, node: Node) -> KnowledgeResult<()> {
        self.upsert_nodes(vec![node]).await
    }

    async fn upsert_nodes(&self, nodes: Vec<Node>) -> KnowledgeResult<()> {
        for node in &nodes {
            node.validate(self.dimensions)?;
        }
        let _write = self.writes.lock().await;
        let now = millis(Utc::now());
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for node in &nodes {
            sqlx::query(
                "INSERT INTO kn_nodes (id, kind, name, data, embedding, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, name = excluded.name, data = excluded.data,
                     embedding = excluded.embedding, updated_at = excluded.updated_at",
            )
            .bind(&node.id)
            .bind(node.kind.as_str())
            .bind(&node.name)
            .bind(node.data.to_string())
            .bind(node.embedding.as_deref().map(encode_embedding))
            .bind(millis(node.created_at).min(now))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        let mut index = self.index_write();
        for node in nodes {
            match node.embedding {
                Some(vector) => {
                    let service = node.data.get("service").and_then(|v| v.as_str()).map(str::to_owned);
                    index.insert(node.id, node.kind, service, now, &vector);
                }
                None => {
                    index.remove(&node.id);
                }
            }
        }
        drop(index);
        self.maintain_index();
        Ok(())
    }

    async fn link_many(&self, edges: Vec<Edge>) -> KnowledgeResult<()> {
        if let Some(edge) = edges.iter().find(|e| !(0.0..=1.0).contains(&e.weight)) {
            return Err(KnowledgeError::Invalid(format!("edge weight must be within 0..=1, got {}", edge.weight)));
        }
        let _write = self.writes.lock().await;
        let now = millis(Utc::now());
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for edge in &edges {
            let done = sqlx::query(
                "INSERT INTO kn_edges (src, dst, relation, weight, data, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT(src, dst, relation) DO UPDATE SET weight = excluded.weight, data = excluded.data,
                     updated_at = excluded.updated_at",
            )
            .bind(&edge.from)
            .bind(&edge.to)
            .bind(edge.relation.as_str())
            .bind(edge.weight)
            .bind(edge.data.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await;
            // A missing end is a foreign key failure: report which edge, write nothing.
            if let Err(err) = done {
                return Err(match &err {
                    sqlx::Error::Database(db) if db.message().contains("FOREIGN KEY") => {
                        KnowledgeError::NotFound { id: format!("{} or {}", edge.from, edge.to) }
                    }
                    _ => backend(err),
                });
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn get_node(&self, id: &str) -> KnowledgeResult<Option<Node>> {
        let row = sqlx::query("SELECT * FROM kn_nodes WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|r| row_to_node(&r, "")).transpose()
    }

    async fn delete_node(&self, id: &str) -> KnowledgeResult<bool> {
        let _write = self.writes.lock().await;
        let done =
            sqlx::query("DELETE FROM kn_nodes WHERE id = ?").bind(id).execute(&self.pool).await.map_err(backend)?;
        self.index_write().remove(id);
        self.maintain_index();
        Ok(done.rows_affected() > 0)
    }

    async fn link(&self, edge: Edge) -> KnowledgeResult<()> {
        if !(0.0..=1.0).contains(&edge.weight) {
            return Err(KnowledgeError::Invalid(format!("edge weight must be within 0..=1, got {}", edge.weight)));
        }
        // Checked first so that the error names the missing node.
        self.require_node(&edge.from).await?;
        self.require_node(&edge.to).await?;
        self.link_many(vec![edge]).await
    }

    async fn unlink(&self, from: &str, to: &str, relation: Relation) -> KnowledgeResult<bool> {
        let _write = self.writes.lock().await;
        let done = sqlx::query("DELETE FROM kn_edges WHERE src = ? AND dst = ? AND relation = ?")
            .bind(from)
            .bind(to)
            .bind(relation.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn neighbors(
        &self,
        id: &str,
        relation: Option<Relation>,
        direction: Direction,
    ) -> KnowledgeResult<Vec<(Edge, Node)>> {
        let (this_end, other_end) = match direction {
            Direction::Outgoing => ("src", "dst"),
            Direction::Incoming => ("dst", "src"),
        };
        let sql = format!(
            "SELECT e.src, e.dst, e.relation, e.weight, e.data AS e_data,
                    n.id AS n_id, n.kind AS n_kind, n.name AS n_name, n.data AS n_data, n.embedding AS n_embedding,
                    n.created_at AS n_created_at, n.updated_at AS n_updated_at
             FROM kn_edges e JOIN kn_nodes n ON n.id = e.{other_end}
             WHERE e.{this_end} = ? AND (? IS NULL OR e.relation = ?)
             ORDER BY e.weight DESC, n.id"
        );
        let relation = relation.map(Relation::as_str);
        let rows =
            sqlx::query(&sql).bind(id).bind(relation).bind(relation).fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(|row| Ok((row_to_edge(row)?, row_to_node(row, "n_")?))).collect()
    }

    async fn similar(&self, query: &SimilarityQuery) -> KnowledgeResult<Vec<ScoredNode>> {
        if query.embedding.len() != self.dimensions {
            return Err(KnowledgeError::DimensionMismatch { expected: self.dimensions, actual: query.embedding.len() });
        }
        let hits = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            index.top_k(query)
        };
        self.scored_nodes(hits).await
    }

    async fn traverse(
        &self,
        start: &str,
        relation: Relation,
        direction: Direction,
        max_hops: usize,
    ) -> KnowledgeResult<Vec<Reached>> {
        let (from, to) = match direction {
            Direction::Outgoing => ("src", "dst"),
            Direction::Incoming => ("dst", "src"),
        };
        // One JSON array instead of a row per node: sqlx hands SQLite rows over one by one,
        // which cost more than the walk itself.
        let sql = format!(
            "WITH RECURSIVE walk(id, depth) AS (
                 SELECT ?1, 0
                 UNION
                 SELECT e.{to}, w.depth + 1 FROM kn_edges e JOIN walk w ON e.{from} = w.id
                 WHERE e.relation = ?2 AND w.depth < ?3
             ),
             shortest AS (SELECT id, MIN(depth) AS depth FROM walk WHERE id <> ?1 GROUP BY id
                          ORDER BY depth, id LIMIT ?4)
             SELECT json_group_array(json_array(n.id, n.kind, n.name, json(n.data), n.created_at, n.updated_at, s.depth))
             FROM shortest s JOIN kn_nodes n ON n.id = s.id"
        );
        let reached: String = sqlx::query_scalar(&sql)
            .bind(start)
            .bind(relation.as_str())
            .bind(max_hops.min(MAX_HOPS) as i64)
            .bind(MAX_REACHED as i64)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        type ReachedRow = (String, String, String, serde_json::Value, i64, i64, usize);
        let rows: Vec<ReachedRow> = serde_json::from_str(&reached)
            .map_err(|e| KnowledgeError::Backend { backend: BACKEND, source: e.into() })?;
        let mut reached = rows
            .into_iter()
            .map(|(id, kind, name, data, created_at, updated_at, depth)| {
                let node = Node {
                    id,
                    kind: NodeKind::from_str(&kind)?,
                    name,
                    data,
                    embedding: None,
                    created_at: from_millis(created_at),
                    updated_at: from_millis(updated_at),
                };
                Ok(Reached { node, depth })
            })
            .collect::<KnowledgeResult<Vec<_>>>()?;
        reached.sort_by(|a, b| a.depth.cmp(&b.depth).then_with(|| a.node.id.cmp(&b.node.id)));
        Ok(reached)
    }

    async fn hybrid_search(&self, text: &str, query: &SimilarityQuery) -> KnowledgeResult<Vec<ScoredNode>> {
        let vector_query = SimilarityQuery { k: crate::search::CANDIDATES, min_score: f32::MIN, ..query.clone() };
        let by_vector: Vec<String> = self.similar(&vector_query).await?.into_iter().map(|hit| hit.node.id).collect();
        let terms = crate::search::terms(text);
        let by_text: Vec<String> = if terms.is_empty() {
            Vec::new()
        } else {
            // Each term quoted: FTS5 query syntax never sees user text.
            let matched = terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" OR ");
            let rows = sqlx::query(
                "SELECT n.id AS id FROM kn_fts JOIN kn_nodes n ON n.rowid = kn_fts.rowid
                 WHERE kn_fts MATCH ?1 AND (?2 IS NULL OR n.kind = ?2)
                   AND (?3 IS NULL OR json_extract(n.data, '$.service') = ?3) AND (?4 IS NULL OR n.updated_at >= ?4)
                 ORDER BY kn_fts.rank LIMIT ?5",
            )
            .bind(matched)
            .bind(query.kind.map(NodeKind::as_str))
            .bind(query.service.as_deref())
            .bind(query.since.map(millis))
            .bind(crate::search::CANDIDATES as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
            rows.iter().map(|row| row.get::<String, _>("id")).collect()
        };
        self.scored_nodes(crate::search::fuse(&by_vector, &by_text, query.k)).await
    }

    async fn record_outcome(&self, outcome: &Outcome) -> KnowledgeResult<SolutionStats> {
        self.require_node(&outcome.problem_id).await?;
        self.require_node(&outcome.solution_id).await?;
        let success = i64::from(outcome.success);
        let recover_ms = if outcome.success { outcome.recover_ms.unwrap_or(0) as i64 } else { 0 };
        let at = millis(outcome.at);
        let _write = self.writes.lock().await;
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let first_time = sqlx::query(
            "INSERT OR IGNORE INTO kn_outcomes (action_id, problem_id, solution_id, success, recover_ms, at, pattern)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&outcome.action_id)
        .bind(&outcome.problem_id)
        .bind(&outcome.solution_id)
        .bind(success)
        .bind(outcome.recover_ms.map(|ms| ms as i64))
        .bind(at)
        .bind(outcome.pattern.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if !first_time {
            tx.rollback().await.map_err(backend)?;
            drop(_write);
            return self
                .solution_stats(&outcome.solution_id)
                .await?
                .ok_or_else(|| KnowledgeError::NotFound { id: outcome.solution_id.clone() });
        }
        sqlx::query(
            "INSERT INTO kn_solution_stats (solution_id, attempts, successes, total_recover_ms, last_used) VALUES (?, 1, ?, ?, ?)
             ON CONFLICT(solution_id) DO UPDATE SET attempts = attempts + 1, successes = successes + excluded.successes,
                 total_recover_ms = total_recover_ms + excluded.total_recover_ms, last_used = MAX(last_used, excluded.last_used)",
        )
        .bind(&outcome.solution_id)
        .bind(success)
        .bind(recover_ms)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some(pattern) = &outcome.pattern {
            sqlx::query(
                "INSERT INTO kn_pattern_stats (pattern, attempts, successes, total_recover_ms, last_used) VALUES (?, 1, ?, ?, ?)
                 ON CONFLICT(pattern) DO UPDATE SET attempts = attempts + 1, successes = successes + excluded.successes,
                     total_recover_ms = total_recover_ms + excluded.total_recover_ms, last_used = MAX(last_used, excluded.last_used)",
            )
            .bind(pattern)
            .bind(success)
            .bind(recover_ms)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        // The solves edge carries this solution's record on this problem: weight is its
        // success rate there, data holds the counts.
        sqlx::query(
            "INSERT INTO kn_edges (src, dst, relation, weight, data, updated_at)
             VALUES (?1, ?2, 'solves', ?3, json_object('attempts', 1, 'successes', ?3), ?4)
             ON CONFLICT(src, dst, relation) DO UPDATE SET
                 data = json_object('attempts', COALESCE(json_extract(data, '$.attempts'), 0) + 1,
                                    'successes', COALESCE(json_extract(data, '$.successes'), 0) + ?3),
                 weight = CAST(COALESCE(json_extract(data, '$.successes'), 0) + ?3 AS REAL)
                          / (COALESCE(json_extract(data, '$.attempts'), 0) + 1),
                 updated_at = ?4",
        )
        .bind(&outcome.solution_id)
        .bind(&outcome.problem_id)
        .bind(success)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        drop(_write);
        self.solution_stats(&outcome.solution_id)
            .await?
            .ok_or_else(|| KnowledgeError::NotFound { id: outcome.solution_id.clone() })
    }

    async fn solution_stats(&self, solution_id: &str) -> KnowledgeResult<Option<SolutionStats>> {
        self.stats(
            "SELECT attempts, successes, total_recover_ms, last_used FROM kn_solution_stats WHERE solution_id = ?",
            solution_id,
        )
        .await
    }

    async fn pattern_stats(&self, pattern: &str) -> KnowledgeResult<Option<SolutionStats>> {
        self.stats(
            "SELECT attempts, successes, total_recover_ms, last_used FROM kn_pattern_stats WHERE pattern = ?",
            pattern,
        )
        .await
    }

    async fn nodes(&self, kind: NodeKind, limit: usize) -> KnowledgeResult<Vec<Node>> {
        let rows = sqlx::query("SELECT * FROM kn_nodes WHERE kind = ? ORDER BY updated_at DESC, id LIMIT ?")
            .bind(kind.as_str())
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(|row| row_to_node(row, "")).collect()
    }

    async fn all_edges(&self) -> KnowledgeResult<Vec<Edge>> {
        let rows =
            sqlx::query("SELECT src, dst, relation, weight, data AS e_data FROM kn_edges ORDER BY src, dst, relation")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        rows.iter().map(row_to_edge).collect()
    }

    async fn outcomes(&self) -> KnowledgeResult<Vec<Outcome>> {
        let rows = sqlx::query("SELECT * FROM kn_outcomes ORDER BY at, action_id")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(Outcome {
                    action_id: row.try_get("action_id").map_err(backend)?,
                    pattern: row.try_get("pattern").map_err(backend)?,
                    problem_id: row.try_get("problem_id").map_err(backend)?,
                    solution_id: row.try_get("solution_id").map_err(backend)?,
                    success: row.try_get::<i64, _>("success").map_err(backend)? != 0,
                    recover_ms: row.try_get::<Option<i64>, _>("recover_ms").map_err(backend)?.map(|ms| ms as u64),
                    at: from_millis(row.try_get("at").map_err(backend)?),
                })
            })
            .collect()
    }

    async fn count_nodes(&self) -> KnowledgeResult<Vec<(NodeKind, u64)>> {
        let rows = sqlx::query("SELECT kind, COUNT(*) AS n FROM kn_nodes GROUP BY kind ORDER BY kind")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| Ok((NodeKind::from_str(row.get::<&str, _>("kind"))?, row.get::<i64, _>("n") as u64)))
            .collect()
    }
}

#[async_trait]
impl AuditLog for SqliteKnowledgeStore {
    async fn append(&self, entry: AuditEntry) -> KnowledgeResult<i64> {
        let done = sqlx::query("INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)")
            .bind(millis(entry.at))
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.subject)
            .bind(entry.detail.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.last_insert_rowid())
    }

    async fn recent(&self, limit: usize) -> KnowledgeResult<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT ?")
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let detail: &str = row.get("detail");
                Ok(AuditEntry {
                    seq: row.get("seq"),
                    at: from_millis(row.get("at")),
                    actor: row.get("actor"),
                    action: row.get("action"),
                    subject: row.get("subject"),
                    detail: serde_json::from_str(detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}
