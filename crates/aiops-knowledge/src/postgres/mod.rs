//! The PostgreSQL engine: the same tables as SQLite, embeddings in a pgvector column with an
//! HNSW index (cosine distance), for teams that outgrow one machine.
//!
//! Vectors travel as pgvector's text form (`[0.1,0.2,...]`) cast in SQL, so no driver
//! extension is needed. Times are stored as milliseconds since the epoch, like on SQLite, so
//! export/import between the engines is lossless. The store's dimension is fixed when its
//! tables are created (recorded in `kn_meta`); opening it with another dimension is refused.
//! A PostgreSQL restart is survived: the pool discards broken connections and reconnects, and
//! calls made while the server is down fail with [`KnowledgeError::Unavailable`].

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use crate::{
    AuditEntry, AuditLog, Direction, Edge, KnowledgeError, KnowledgeResult, KnowledgeStore, Node, NodeKind, Outcome,
    Reached, Relation, ScoredNode, SimilarityQuery, SolutionStats,
};

#[cfg(test)]
mod tests;

const BACKEND: &str = "postgres";
/// Rows per statement of a bulk write.
const BULK_CHUNK: usize = 5000;

/// Versioned migrations; `{dimensions}` is replaced by the store's dimension.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE kn_meta (dimensions INTEGER NOT NULL);
INSERT INTO kn_meta (dimensions) VALUES ({dimensions});
CREATE TABLE kn_nodes (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    data JSONB NOT NULL,
    embedding vector({dimensions}),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX kn_nodes_kind ON kn_nodes (kind);
CREATE INDEX kn_nodes_embedding ON kn_nodes USING hnsw (embedding vector_cosine_ops);
CREATE TABLE kn_edges (
    src TEXT NOT NULL REFERENCES kn_nodes(id) ON DELETE CASCADE,
    dst TEXT NOT NULL REFERENCES kn_nodes(id) ON DELETE CASCADE,
    relation TEXT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    data JSONB NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (src, dst, relation)
);
CREATE INDEX kn_edges_dst ON kn_edges (dst, relation);
CREATE TABLE kn_solution_stats (
    solution_id TEXT PRIMARY KEY REFERENCES kn_nodes(id) ON DELETE CASCADE,
    attempts BIGINT NOT NULL,
    successes BIGINT NOT NULL,
    total_recover_ms BIGINT NOT NULL,
    last_used BIGINT NOT NULL
);
CREATE TABLE kn_outcomes (
    action_id TEXT PRIMARY KEY,
    problem_id TEXT NOT NULL,
    solution_id TEXT NOT NULL,
    success BOOLEAN NOT NULL,
    recover_ms BIGINT,
    at BIGINT NOT NULL
);
CREATE TABLE audit_log (
    seq BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail JSONB NOT NULL
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
"#,
    r#"
ALTER TABLE kn_nodes ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', name || ' ' || data::text)) STORED;
CREATE INDEX kn_nodes_search ON kn_nodes USING gin (search);
CREATE INDEX kn_nodes_service ON kn_nodes ((data->>'service'));
CREATE INDEX kn_edges_src ON kn_edges (src, relation);
"#,
    r#"
ALTER TABLE kn_outcomes ADD COLUMN pattern TEXT;
CREATE TABLE kn_pattern_stats (
    pattern TEXT PRIMARY KEY,
    attempts BIGINT NOT NULL,
    successes BIGINT NOT NULL,
    total_recover_ms BIGINT NOT NULL,
    last_used BIGINT NOT NULL
);
"#,
];

fn unavailable(err: sqlx::Error) -> KnowledgeError {
    KnowledgeError::Unavailable { backend: BACKEND, source: err.into() }
}

fn backend(err: sqlx::Error) -> KnowledgeError {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            unavailable(err)
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) => {
            // 57P0x: the server is shutting down or restarting; 08xxx: connection failures.
            unavailable(sqlx::Error::Database(db))
        }
        other => KnowledgeError::Backend { backend: BACKEND, source: other.into() },
    }
}

fn vector_text(embedding: &[f32]) -> String {
    let mut text = String::with_capacity(embedding.len() * 10 + 2);
    text.push('[');
    for (idx, value) in embedding.iter().enumerate() {
        if idx > 0 {
            text.push(',');
        }
        text.push_str(&value.to_string());
    }
    text.push(']');
    text
}

fn parse_vector(text: &str) -> KnowledgeResult<Vec<f32>> {
    text.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|err| KnowledgeError::Backend { backend: BACKEND, source: err.into() })
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Applies the migrations `component` does not have yet, each in one transaction with its
/// version row. Two instances starting at once on an empty database may race; the loser
/// fails its start with a clear error and succeeds on the next.
///
/// # Errors
/// [`KnowledgeError::SchemaTooNew`] when the database is newer than `migrations`.
pub async fn apply_pg_migrations(pool: &PgPool, component: &str, migrations: &[String]) -> KnowledgeResult<()> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        .execute(pool)
        .await
        .map_err(backend)?;
    let found: i32 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = $1")
        .bind(component)
        .fetch_one(pool)
        .await
        .map_err(backend)?;
    let supported = migrations.len() as i64;
    if i64::from(found) > supported {
        return Err(KnowledgeError::SchemaTooNew { component: component.into(), found: found.into(), supported });
    }
    for (idx, sql) in migrations.iter().enumerate().skip(found as usize) {
        let version = idx + 1;
        // One script per migration, sent through the pool: its tables and its version row
        // commit together. `component` is a compile-time name of ours, never user input.
        let script = format!(
            "BEGIN;\n{sql}\nINSERT INTO schema_migrations (component, version) VALUES ('{component}', {version})
             ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version;\nCOMMIT;"
        );
        sqlx::raw_sql(&script).execute(pool).await.map_err(backend)?;
        tracing::info!(component, version, "Applied database migration.");
    }
    Ok(())
}

/// The knowledge store on PostgreSQL with pgvector.
#[derive(Debug, Clone)]
pub struct PgKnowledgeStore {
    pool: PgPool,
    dimensions: usize,
}

impl PgKnowledgeStore {
    /// Connects, migrates and checks the store's dimension.
    ///
    /// # Errors
    /// [`KnowledgeError::Unavailable`] when the server cannot be reached,
    /// [`KnowledgeError::DimensionMismatch`] when the tables were made for another dimension.
    pub async fn connect(url: &str, dimensions: usize, max_connections: u32) -> KnowledgeResult<Self> {
        if dimensions == 0 || dimensions > 16_000 {
            return Err(KnowledgeError::Invalid(format!(
                "embedding dimensions must be within 1..=16000, got {dimensions}"
            )));
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(unavailable)?;
        let migrations: Vec<String> =
            MIGRATIONS.iter().map(|m| m.replace("{dimensions}", &dimensions.to_string())).collect();
        apply_pg_migrations(&pool, "knowledge", &migrations).await?;
        let stored: i32 =
            sqlx::query_scalar("SELECT dimensions FROM kn_meta").fetch_one(&pool).await.map_err(backend)?;
        if stored as usize != dimensions {
            return Err(KnowledgeError::DimensionMismatch { expected: stored as usize, actual: dimensions });
        }
        Ok(Self { pool, dimensions })
    }

    /// The connection pool (the registry keeps its tables in the same database).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn stats(&self, sql: &str, key: &str) -> KnowledgeResult<Option<SolutionStats>> {
        let row = sqlx::query(sql).bind(key).fetch_optional(&self.pool).await.map_err(backend)?;
        row.map(|row| {
            let attempts: i64 = row.try_get("attempts").map_err(backend)?;
            let successes: i64 = row.try_get("successes").map_err(backend)?;
            let total: i64 = row.try_get("total_recover_ms").map_err(backend)?;
            Ok(SolutionStats {
                attempts: attempts as u64,
                successes: successes as u64,
                failures: (attempts - successes) as u64,
                mean_recover_ms: (successes > 0).then(|| total as f64 / successes as f64),
                last_used: Some(from_millis(row.try_get("last_used").map_err(backend)?)),
            })
        })
        .transpose()
    }

    async fn require_node(&self, id: &str) -> KnowledgeResult<()> {
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM kn_nodes WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        exists.map(|_| ()).ok_or_else(|| KnowledgeError::NotFound { id: id.into() })
    }
}

const NODE_COLUMNS: &str = "id, kind, name, data::text AS data, embedding::text AS embedding, created_at, updated_at";
/// The same without the vector, for search hits (callers never need it, and it is the bulk
/// of a row).
const HIT_COLUMNS: &str = "id, kind, name, data::text AS data, NULL::text AS embedding, created_at, updated_at";

fn row_to_node(row: &PgRow, prefix: &str) -> KnowledgeResult<Node> {
    let col = |name: &str| format!("{prefix}{name}");
    let data: String = row.try_get(col("data").as_str()).map_err(backend)?;
    let embedding: Option<String> = row.try_get(col("embedding").as_str()).map_err(backend)?;
    Ok(Node {
        id: row.try_get(col("id").as_str()).map_err(backend)?,
        kind: NodeKind::from_str(&row.try_get::<String, _>(col("kind").as_str()).map_err(backend)?)?,
        name: row.try_get(col("name").as_str()).map_err(backend)?,
        data: serde_json::from_str(&data)
            .map_err(|e| KnowledgeError::Backend { backend: BACKEND, source: e.into() })?,
        embedding: embedding.as_deref().map(parse_vector).transpose()?,
        created_at: from_millis(row.try_get(col("created_at").as_str()).map_err(backend)?),
        updated_at: from_millis(row.try_get(col("updated_at").as_str()).map_err(backend)?),
    })
}

fn row_to_edge(row: &PgRow) -> KnowledgeResult<Edge> {
    let data: String = row.try_get("e_data").map_err(backend)?;
    Ok(Edge {
        from: row.try_get("src").map_err(backend)?,
        to: row.try_get("dst").map_err(backend)?,
        relation: Relation::from_str(&row.try_get::<String, _>("relation").map_err(backend)?)?,
        weight: row.try_get("weight").map_err(backend)?,
        data: serde_json::from_str(&data)
            .map_err(|e| KnowledgeError::Backend { backend: BACKEND, source: e.into() })?,
    })
}

#[async_trait]
impl KnowledgeStore for PgKnowledgeStore {
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
        let now = Utc::now().timestamp_millis();
        let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (idx, node) in nodes.iter().enumerate() {
            last.insert(node.id.as_str(), idx);
        }
        let nodes: Vec<&Node> =
            nodes.iter().enumerate().filter(|(idx, n)| last.get(n.id.as_str()) == Some(idx)).map(|(_, n)| n).collect();
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Arrays per column, one statement per chunk: one round trip for thousands of rows.
        for chunk in nodes.chunks(BULK_CHUNK) {
            let ids: Vec<&str> = chunk.iter().map(|n| n.id.as_str()).collect();
            let kinds: Vec<&str> = chunk.iter().map(|n| n.kind.as_str()).collect();
            let names: Vec<&str> = chunk.iter().map(|n| n.name.as_str()).collect();
            let data: Vec<String> = chunk.iter().map(|n| n.data.to_string()).collect();
            let vectors: Vec<Option<String>> = chunk.iter().map(|n| n.embedding.as_deref().map(vector_text)).collect();
            let created: Vec<i64> = chunk.iter().map(|n| n.created_at.timestamp_millis().min(now)).collect();
            sqlx::query(
                "INSERT INTO kn_nodes (id, kind, name, data, embedding, created_at, updated_at)
                 SELECT id, kind, name, data::jsonb, embedding::vector, created_at, $7
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
                     AS t(id, kind, name, data, embedding, created_at)
                 ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, data = EXCLUDED.data,
                     embedding = EXCLUDED.embedding, updated_at = EXCLUDED.updated_at",
            )
            .bind(ids)
            .bind(kinds)
            .bind(names)
            .bind(data)
            .bind(vectors)
            .bind(created)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn link_many(&self, edges: Vec<Edge>) -> KnowledgeResult<()> {
        if let Some(edge) = edges.iter().find(|e| !(0.0..=1.0).contains(&e.weight)) {
            return Err(KnowledgeError::Invalid(format!("edge weight must be within 0..=1, got {}", edge.weight)));
        }
        let now = Utc::now().timestamp_millis();
        // One statement may not touch a row twice: the last of duplicate edges wins, as it
        // would with one statement per edge.
        let mut last: std::collections::HashMap<(&str, &str, Relation), usize> = std::collections::HashMap::new();
        for (idx, edge) in edges.iter().enumerate() {
            last.insert((edge.from.as_str(), edge.to.as_str(), edge.relation), idx);
        }
        let edges: Vec<&Edge> = edges
            .iter()
            .enumerate()
            .filter(|(idx, e)| last.get(&(e.from.as_str(), e.to.as_str(), e.relation)) == Some(idx))
            .map(|(_, e)| e)
            .collect();
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for chunk in edges.chunks(BULK_CHUNK) {
            let from: Vec<&str> = chunk.iter().map(|e| e.from.as_str()).collect();
            let to: Vec<&str> = chunk.iter().map(|e| e.to.as_str()).collect();
            let relation: Vec<&str> = chunk.iter().map(|e| e.relation.as_str()).collect();
            let weight: Vec<f64> = chunk.iter().map(|e| e.weight).collect();
            let data: Vec<String> = chunk.iter().map(|e| e.data.to_string()).collect();
            let done = sqlx::query(
                "INSERT INTO kn_edges (src, dst, relation, weight, data, updated_at)
                 SELECT src, dst, relation, weight, data::jsonb, $6
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[]) AS t(src, dst, relation, weight, data)
                 ON CONFLICT (src, dst, relation) DO UPDATE SET weight = EXCLUDED.weight, data = EXCLUDED.data,
                     updated_at = EXCLUDED.updated_at",
            )
            .bind(from)
            .bind(to)
            .bind(relation)
            .bind(weight)
            .bind(data)
            .bind(now)
            .execute(&mut *tx)
            .await;
            if let Err(err) = done {
                return Err(match &err {
                    sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => {
                        KnowledgeError::NotFound { id: db.message().to_owned() }
                    }
                    _ => backend(err),
                });
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn get_node(&self, id: &str) -> KnowledgeResult<Option<Node>> {
        let row = sqlx::query(&format!("SELECT {NODE_COLUMNS} FROM kn_nodes WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(|r| row_to_node(&r, "")).transpose()
    }

    async fn delete_node(&self, id: &str) -> KnowledgeResult<bool> {
        let done =
            sqlx::query("DELETE FROM kn_nodes WHERE id = $1").bind(id).execute(&self.pool).await.map_err(backend)?;
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
        let done = sqlx::query("DELETE FROM kn_edges WHERE src = $1 AND dst = $2 AND relation = $3")
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
            "SELECT e.src, e.dst, e.relation, e.weight, e.data::text AS e_data,
                    n.id AS n_id, n.kind AS n_kind, n.name AS n_name, n.data::text AS n_data,
                    n.embedding::text AS n_embedding, n.created_at AS n_created_at, n.updated_at AS n_updated_at
             FROM kn_edges e JOIN kn_nodes n ON n.id = e.{other_end}
             WHERE e.{this_end} = $1 AND ($2::text IS NULL OR e.relation = $2)
             ORDER BY e.weight DESC, n.id"
        );
        let rows = sqlx::query(&sql)
            .bind(id)
            .bind(relation.map(Relation::as_str))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(|row| Ok((row_to_edge(row)?, row_to_node(row, "n_")?))).collect()
    }

    async fn similar(&self, query: &SimilarityQuery) -> KnowledgeResult<Vec<ScoredNode>> {
        if query.embedding.len() != self.dimensions {
            return Err(KnowledgeError::DimensionMismatch { expected: self.dimensions, actual: query.embedding.len() });
        }
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // With a filter, keep scanning the HNSW graph until k rows pass it (pgvector ≥ 0.8).
        sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order").execute(&mut *tx).await.map_err(backend)?;
        let sql = format!(
            "SELECT {HIT_COLUMNS}, 1 - (embedding <=> $1::vector) AS score FROM kn_nodes
             WHERE embedding IS NOT NULL AND ($2::text IS NULL OR kind = $2)
               AND ($4::text IS NULL OR data->>'service' = $4) AND ($5::bigint IS NULL OR updated_at >= $5)
             ORDER BY embedding <=> $1::vector LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(vector_text(&query.embedding))
            .bind(query.kind.map(NodeKind::as_str))
            .bind(query.k as i64)
            .bind(query.service.as_deref())
            .bind(query.since.map(|t| t.timestamp_millis()))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let mut hits = Vec::with_capacity(rows.len());
        for row in &rows {
            let score: f64 = row.try_get("score").map_err(backend)?;
            let score = score as f32;
            if score >= query.min_score {
                hits.push(ScoredNode { node: row_to_node(row, "")?, score });
            }
        }
        // relaxed_order may return near-ties slightly out of order.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.node.id.cmp(&b.node.id)));
        Ok(hits)
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
        let sql = format!(
            "WITH RECURSIVE walk(id, depth) AS (
                 SELECT $1::text, 0
                 UNION
                 SELECT e.{to}, w.depth + 1 FROM kn_edges e JOIN walk w ON e.{from} = w.id
                 WHERE e.relation = $2 AND w.depth < $3
             ),
             shortest AS (SELECT id, MIN(depth) AS depth FROM walk WHERE id <> $1 GROUP BY id)
             SELECT {HIT_COLUMNS}, s.depth AS depth FROM shortest s JOIN kn_nodes n USING (id)
             ORDER BY s.depth, id LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(start)
            .bind(relation.as_str())
            .bind(max_hops.min(crate::sqlite::MAX_HOPS) as i32)
            .bind(crate::sqlite::MAX_REACHED as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let depth: i32 = row.try_get("depth").map_err(backend)?;
                Ok(Reached { node: row_to_node(row, "")?, depth: depth as usize })
            })
            .collect()
    }

    async fn hybrid_search(&self, text: &str, query: &SimilarityQuery) -> KnowledgeResult<Vec<ScoredNode>> {
        let vector_query = SimilarityQuery { k: crate::search::CANDIDATES, min_score: f32::MIN, ..query.clone() };
        let by_vector: Vec<String> = self.similar(&vector_query).await?.into_iter().map(|hit| hit.node.id).collect();
        let terms = crate::search::terms(text);
        let by_text: Vec<String> = if terms.is_empty() {
            Vec::new()
        } else {
            // Only plain words reach to_tsquery, joined by OR.
            let tsquery = terms.join(" | ");
            sqlx::query_scalar(
                "SELECT id FROM kn_nodes, to_tsquery('simple', $1) q
                 WHERE search @@ q AND ($2::text IS NULL OR kind = $2)
                   AND ($3::text IS NULL OR data->>'service' = $3) AND ($4::bigint IS NULL OR updated_at >= $4)
                 ORDER BY ts_rank(search, q) DESC, id LIMIT $5",
            )
            .bind(tsquery)
            .bind(query.kind.map(NodeKind::as_str))
            .bind(query.service.as_deref())
            .bind(query.since.map(|t| t.timestamp_millis()))
            .bind(crate::search::CANDIDATES as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
        };
        let mut out = Vec::new();
        for (id, score) in crate::search::fuse(&by_vector, &by_text, query.k) {
            if let Some(mut node) = self.get_node(&id).await? {
                node.embedding = None;
                out.push(ScoredNode { node, score });
            }
        }
        Ok(out)
    }

    async fn record_outcome(&self, outcome: &Outcome) -> KnowledgeResult<SolutionStats> {
        self.require_node(&outcome.problem_id).await?;
        self.require_node(&outcome.solution_id).await?;
        let success = i64::from(outcome.success);
        let recover_ms = if outcome.success { outcome.recover_ms.unwrap_or(0) as i64 } else { 0 };
        let at = outcome.at.timestamp_millis();
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let first_time = sqlx::query(
            "INSERT INTO kn_outcomes (action_id, problem_id, solution_id, success, recover_ms, at, pattern)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (action_id) DO NOTHING",
        )
        .bind(&outcome.action_id)
        .bind(&outcome.problem_id)
        .bind(&outcome.solution_id)
        .bind(outcome.success)
        .bind(outcome.recover_ms.map(|ms| ms as i64))
        .bind(at)
        .bind(outcome.pattern.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        if first_time {
            sqlx::query(
                "INSERT INTO kn_solution_stats (solution_id, attempts, successes, total_recover_ms, last_used)
                 VALUES ($1, 1, $2, $3, $4)
                 ON CONFLICT (solution_id) DO UPDATE SET attempts = kn_solution_stats.attempts + 1,
                     successes = kn_solution_stats.successes + EXCLUDED.successes,
                     total_recover_ms = kn_solution_stats.total_recover_ms + EXCLUDED.total_recover_ms,
                     last_used = GREATEST(kn_solution_stats.last_used, EXCLUDED.last_used)",
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
                    "INSERT INTO kn_pattern_stats (pattern, attempts, successes, total_recover_ms, last_used)
                     VALUES ($1, 1, $2, $3, $4)
                     ON CONFLICT (pattern) DO UPDATE SET attempts = kn_pattern_stats.attempts + 1,
                         successes = kn_pattern_stats.successes + EXCLUDED.successes,
                         total_recover_ms = kn_pattern_stats.total_recover_ms + EXCLUDED.total_recover_ms,
                         last_used = GREATEST(kn_pattern_stats.last_used, EXCLUDED.last_used)",
                )
                .bind(pattern)
                .bind(success)
                .bind(recover_ms)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
            // The solves edge carries this solution's record on this problem.
            sqlx::query(
                "INSERT INTO kn_edges (src, dst, relation, weight, data, updated_at)
                 VALUES ($1, $2, 'solves', $3::float8, jsonb_build_object('attempts', 1, 'successes', $3), $4)
                 ON CONFLICT (src, dst, relation) DO UPDATE SET
                     data = jsonb_build_object(
                         'attempts', COALESCE((kn_edges.data->>'attempts')::bigint, 0) + 1,
                         'successes', COALESCE((kn_edges.data->>'successes')::bigint, 0) + $3),
                     weight = (COALESCE((kn_edges.data->>'successes')::bigint, 0) + $3)::float8
                              / (COALESCE((kn_edges.data->>'attempts')::bigint, 0) + 1),
                     updated_at = $4",
            )
            .bind(&outcome.solution_id)
            .bind(&outcome.problem_id)
            .bind(success)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        self.solution_stats(&outcome.solution_id)
            .await?
            .ok_or_else(|| KnowledgeError::NotFound { id: outcome.solution_id.clone() })
    }

    async fn solution_stats(&self, solution_id: &str) -> KnowledgeResult<Option<SolutionStats>> {
        self.stats(
            "SELECT attempts, successes, total_recover_ms, last_used FROM kn_solution_stats WHERE solution_id = $1",
            solution_id,
        )
        .await
    }

    async fn pattern_stats(&self, pattern: &str) -> KnowledgeResult<Option<SolutionStats>> {
        self.stats(
            "SELECT attempts, successes, total_recover_ms, last_used FROM kn_pattern_stats WHERE pattern = $1",
            pattern,
        )
        .await
    }

    async fn nodes(&self, kind: NodeKind, limit: usize) -> KnowledgeResult<Vec<Node>> {
        let rows = sqlx::query(&format!(
            "SELECT {NODE_COLUMNS} FROM kn_nodes WHERE kind = $1 ORDER BY updated_at DESC, id LIMIT $2"
        ))
        .bind(kind.as_str())
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(|row| row_to_node(row, "")).collect()
    }

    async fn all_edges(&self) -> KnowledgeResult<Vec<Edge>> {
        let rows = sqlx::query(
            "SELECT src, dst, relation, weight, data::text AS e_data FROM kn_edges ORDER BY src, dst, relation",
        )
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
                    success: row.try_get("success").map_err(backend)?,
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
            .map(|row| {
                let kind: String = row.try_get("kind").map_err(backend)?;
                let n: i64 = row.try_get("n").map_err(backend)?;
                Ok((NodeKind::from_str(&kind)?, n as u64))
            })
            .collect()
    }
}

#[async_trait]
impl AuditLog for PgKnowledgeStore {
    async fn append(&self, entry: AuditEntry) -> KnowledgeResult<i64> {
        sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING seq",
        )
        .bind(entry.at.timestamp_millis())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.subject)
        .bind(entry.detail.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }

    async fn recent(&self, limit: usize) -> KnowledgeResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, detail::text AS detail FROM audit_log ORDER BY seq DESC LIMIT $1",
        )
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let detail: String = row.try_get("detail").map_err(backend)?;
                Ok(AuditEntry {
                    seq: row.try_get("seq").map_err(backend)?,
                    at: from_millis(row.try_get("at").map_err(backend)?),
                    actor: row.try_get("actor").map_err(backend)?,
                    action: row.try_get("action").map_err(backend)?,
                    subject: row.try_get("subject").map_err(backend)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}
