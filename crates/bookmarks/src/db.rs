//! SQLite storage: the schema, the queries, and the connection pool that the faults and the
//! remediation endpoints act on.
//!
//! The pool sits behind a lock so that `reset_pool` can swap in a fresh one; every query
//! clones the current pool (an `Arc` inside) and never holds the lock across an `.await`.
//! Leaked connections are real `PoolConnection`s kept in a list, exactly what a code path
//! that forgot to release its connections would leave behind; only a pool reset frees them.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};

use crate::error::{BookmarksError, BookmarksResult};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bookmarks (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    title TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS bookmark_tags (
    bookmark_id INTEGER NOT NULL REFERENCES bookmarks(id) ON DELETE CASCADE,
    tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (bookmark_id, tag_id)
);
CREATE INDEX IF NOT EXISTS bookmark_tags_by_tag ON bookmark_tags(tag_id);
";

/// Every bookmark query selects these columns, tags as a JSON array.
const SELECT_BOOKMARK: &str = "
SELECT b.id, b.url, b.title, b.created_at,
    (SELECT json_group_array(t.name) FROM bookmark_tags bt JOIN tags t ON t.id = bt.tag_id
     WHERE bt.bookmark_id = b.id) AS tags
FROM bookmarks b";

/// One stored bookmark, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bookmark {
    /// Its id.
    pub id: i64,
    /// The http(s) URL.
    pub url: String,
    /// Optional title.
    pub title: Option<String>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// When it was created, RFC 3339 in UTC.
    pub created_at: String,
}

/// A search over bookmarks; also the key of the list cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ListQuery {
    /// Substring of the title or URL.
    pub(crate) text: Option<String>,
    /// Exact tag.
    pub(crate) tag: Option<String>,
    /// Most results.
    pub(crate) limit: u32,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a push, a take or a swap that cannot stop half-way, so a
    // poisoned lock still guards consistent data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The database and its swappable connection pool.
pub(crate) struct Database {
    connect_options: SqliteConnectOptions,
    pool_size: u32,
    acquire_timeout: Duration,
    pool: RwLock<SqlitePool>,
    leaked: Mutex<Vec<PoolConnection<Sqlite>>>,
}

impl Database {
    /// Opens (creating if needed) the database file, switches it to WAL and creates the tables.
    pub(crate) async fn open(path: &Path, pool_size: u32, acquire_timeout: Duration) -> BookmarksResult<Self> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(|source| BookmarksError::Io {
                context: format!("creating the database folder {}", parent.display()),
                source,
            })?;
        }
        let connect_options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool_size = pool_size.max(1);
        let pool = pool_options(pool_size, acquire_timeout).connect_with(connect_options.clone()).await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Self {
            connect_options,
            pool_size,
            acquire_timeout,
            pool: RwLock::new(pool),
            leaked: Mutex::new(Vec::new()),
        })
    }

    /// The current pool.
    pub(crate) fn pool(&self) -> SqlitePool {
        self.pool.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many connections the pool may open.
    pub(crate) fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// How many connections are leaked right now.
    pub(crate) fn leaked_connections(&self) -> usize {
        lock(&self.leaked).len()
    }

    /// Whether a connection can be acquired and `SELECT 1` runs, each within the acquire
    /// timeout. The error is the message to show.
    pub(crate) async fn ping(&self) -> Result<(), String> {
        let pool = self.pool();
        let mut conn = pool.acquire().await.map_err(|err| err.to_string())?;
        match tokio::time::timeout(self.acquire_timeout, sqlx::query("SELECT 1").execute(&mut *conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("SELECT 1 took longer than {} ms", self.acquire_timeout.as_millis())),
        }
    }

    /// The `db_pool_exhausted` fault: acquires every connection the pool can give and keeps
    /// them, like a code path that forgot to release its connections. Waits for connections
    /// in use to come back, at most the acquire timeout each. Returns how many are leaked now.
    pub(crate) async fn leak_all_connections(&self) -> usize {
        let pool = self.pool();
        let target = usize::try_from(self.pool_size).unwrap_or(usize::MAX);
        let mut newly_leaked = Vec::new();
        while self.leaked_connections() + newly_leaked.len() < target {
            match pool.acquire().await {
                Ok(conn) => newly_leaked.push(conn),
                Err(err) => {
                    tracing::warn!(error = %err, leaked = newly_leaked.len(), "Could not leak every connection.");
                    break;
                }
            }
        }
        let mut leaked = lock(&self.leaked);
        leaked.extend(newly_leaked);
        leaked.len()
    }

    /// Closes the current pool and opens a fresh one, releasing every leaked connection.
    /// Returns how many leaked connections were released.
    pub(crate) async fn reset_pool(&self) -> usize {
        // Lazy: the new pool opens connections on first use, so swapping cannot fail.
        let fresh = pool_options(self.pool_size, self.acquire_timeout).connect_lazy_with(self.connect_options.clone());
        let old = std::mem::replace(&mut *self.pool.write().unwrap_or_else(PoisonError::into_inner), fresh);
        let leaked = std::mem::take(&mut *lock(&self.leaked));
        let released = leaked.len();
        drop(leaked);
        // `close` waits for connections still checked out by in-flight requests; they finish
        // quickly, but the answer to the remediation tool must not wait on a stuck one.
        if tokio::time::timeout(Duration::from_secs(1), old.close()).await.is_err() {
            tracing::warn!("The old pool did not close within 1 s; it closes when its last connection returns.");
        }
        released
    }

    /// Closes the pool, e.g. on shutdown.
    pub(crate) async fn close(&self) {
        lock(&self.leaked).clear();
        self.pool().close().await;
    }
}

fn pool_options(pool_size: u32, acquire_timeout: Duration) -> SqlitePoolOptions {
    SqlitePoolOptions::new().max_connections(pool_size).min_connections(0).acquire_timeout(acquire_timeout)
}

fn bookmark_from_row(row: &SqliteRow) -> Result<Bookmark, sqlx::Error> {
    let tags_json: Option<String> = row.try_get("tags")?;
    let mut tags: Vec<String> = match tags_json {
        Some(json) => serde_json::from_str(&json).map_err(|err| sqlx::Error::Decode(Box::new(err)))?,
        None => Vec::new(),
    };
    tags.sort();
    Ok(Bookmark {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        title: row.try_get("title")?,
        tags,
        created_at: row.try_get("created_at")?,
    })
}

async fn fetch_one(conn: &mut sqlx::SqliteConnection, id: i64) -> Result<Option<Bookmark>, sqlx::Error> {
    let sql = format!("{SELECT_BOOKMARK} WHERE b.id = ?1");
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(bookmark_from_row).transpose()
}

async fn attach_tags(conn: &mut sqlx::SqliteConnection, id: i64, tags: &[String]) -> Result<(), sqlx::Error> {
    for tag in tags {
        sqlx::query("INSERT INTO tags (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")
            .bind(tag)
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT OR IGNORE INTO bookmark_tags (bookmark_id, tag_id) SELECT ?1, id FROM tags WHERE name = ?2",
        )
        .bind(id)
        .bind(tag)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn drop_orphan_tags(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM tags WHERE id NOT IN (SELECT tag_id FROM bookmark_tags)").execute(&mut *conn).await?;
    Ok(())
}

/// Stores a new bookmark with its tags and returns it.
pub(crate) async fn create(
    pool: &SqlitePool,
    url: &str,
    title: Option<&str>,
    tags: &[String],
) -> Result<Bookmark, sqlx::Error> {
    let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut tx = pool.begin().await?;
    let id = sqlx::query("INSERT INTO bookmarks (url, title, created_at) VALUES (?1, ?2, ?3)")
        .bind(url)
        .bind(title)
        .bind(&created_at)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
    attach_tags(&mut tx, id, tags).await?;
    let bookmark = fetch_one(&mut tx, id).await?.ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    Ok(bookmark)
}

/// The bookmark with this id.
pub(crate) async fn get(pool: &SqlitePool, id: i64) -> Result<Option<Bookmark>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    fetch_one(&mut conn, id).await
}

/// Bookmarks matching the query, newest first.
pub(crate) async fn list(pool: &SqlitePool, query: &ListQuery) -> Result<Vec<Bookmark>, sqlx::Error> {
    let pattern = query.text.as_deref().map(|text| format!("%{}%", escape_like(text)));
    let sql = format!(
        "{SELECT_BOOKMARK}
        WHERE (?1 IS NULL OR b.title LIKE ?1 ESCAPE '\\' OR b.url LIKE ?1 ESCAPE '\\')
          AND (?2 IS NULL OR EXISTS (
              SELECT 1 FROM bookmark_tags bt JOIN tags t ON t.id = bt.tag_id
              WHERE bt.bookmark_id = b.id AND t.name = ?2))
        ORDER BY b.id DESC
        LIMIT ?3"
    );
    let rows =
        sqlx::query(&sql).bind(pattern).bind(query.tag.as_deref()).bind(i64::from(query.limit)).fetch_all(pool).await?;
    rows.iter().map(bookmark_from_row).collect()
}

/// Replaces a bookmark's tags. `None` when there is no such bookmark.
pub(crate) async fn set_tags(pool: &SqlitePool, id: i64, tags: &[String]) -> Result<Option<Bookmark>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let exists =
        sqlx::query("SELECT 1 FROM bookmarks WHERE id = ?1").bind(id).fetch_optional(&mut *tx).await?.is_some();
    if !exists {
        return Ok(None);
    }
    sqlx::query("DELETE FROM bookmark_tags WHERE bookmark_id = ?1").bind(id).execute(&mut *tx).await?;
    attach_tags(&mut tx, id, tags).await?;
    drop_orphan_tags(&mut tx).await?;
    let bookmark = fetch_one(&mut tx, id).await?;
    tx.commit().await?;
    Ok(bookmark)
}

/// Deletes a bookmark. `false` when there was no such bookmark.
pub(crate) async fn delete(pool: &SqlitePool, id: i64) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let deleted =
        sqlx::query("DELETE FROM bookmarks WHERE id = ?1").bind(id).execute(&mut *tx).await?.rows_affected() > 0;
    drop_orphan_tags(&mut tx).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Escapes `%`, `_` and the escape character itself for `LIKE ... ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
