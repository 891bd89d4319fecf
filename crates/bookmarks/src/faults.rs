//! The failures the bookmark manager can be put into for the fault scenarios, each with real
//! mechanics and a real repair, as in production:
//!
//! - `bad_release`: release 1.1.0 goes out with a search query the schema does not have, so
//!   every search fails until `POST /admin/deploy/rollback` goes back to 1.0.0;
//! - `disk_full`: the data directory's spool fills its quota with real files, so every write
//!   fails with ENOSPC until `POST /admin/disk/cleanup` deletes what can be regenerated;
//! - `memory_leak`: every request keeps 256 KiB it never frees, until the heap limit refuses
//!   allocations; `POST /admin/restart` (a soft restart) frees it;
//! - `bad_config`: configuration v2 sets `max_tags = 0`, so every tagged write is refused as
//!   a server error until the configuration is rolled back to v1;
//! - `frontend_auth_dropped`: front end 2.0.1 goes out and sends no API token, so every call
//!   is refused with 401 (when the API has a token) until `POST /admin/frontend/rollback`;
//! - `frontend_skew`: front end 2.0.0 goes out, built against another version of the API: it
//!   saves bookmarks with `link` instead of `url` and deletes them at `/api/bookmark/{id}`, so
//!   those calls fail in the browser (422, 404) until `POST /admin/frontend/rollback`;
//! - `cors_blocked`: configuration v4 lost `cors_origins`, so the preflight of every call from
//!   a page on another origin is refused (403) and the browser blocks the call, until the
//!   configuration is rolled back to v1;
//! - `body_limit_lowered`: configuration v5 sets `max_body_bytes = 32`, so most saves are
//!   refused with 413 until the configuration is rolled back to v1;
//! - `crash_loop`: configuration v3 turns on a cache warmer that panics [`CRASH_AFTER`] after
//!   every start, so the process exits with code 101 and its supervisor starts it again, and
//!   again, until the configuration is rolled back to v1.
//!
//! The configuration lives in a file beside the database (`<name>.config.json`, read on every
//! use), so that it outlives the process as it would in production. It is rolled back by
//! `POST /admin/config/rollback` while the service runs, or by `bookmarks config rollback`
//! (see [`rollback_config_file`]) while it is down.
//! - `slow_queries`: the search index is dropped, so every search scans the whole table (it
//!   takes [`FULL_SCAN`]) and the service logs it as a slow query, until
//!   `POST /admin/db/maintenance` rebuilds the index.
//!
//! `/health` runs the same checks, so a fix is verified only when the service really works.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::BookmarksError;

/// How long a process under configuration v3 lives before its cache warmer panics.
pub const CRASH_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
/// Exit code of a process that panicked.
pub(crate) const PANIC_EXIT_CODE: i32 = 101;

/// The known-good configuration and the two broken ones.
const GOOD_CONFIG: u32 = 1;
const REFUSING_CONFIG: u32 = 2;
const CRASHING_CONFIG: u32 = 3;
const CORS_LOST_CONFIG: u32 = 4;
const SMALL_BODY_CONFIG: u32 = 5;
/// Largest request body configuration v5 accepts, in bytes.
const SMALL_BODY_LIMIT: usize = 32;

/// The good and the broken release.
pub(crate) const GOOD_RELEASE: &str = "1.0.0";
const BAD_RELEASE: &str = "1.1.0";
/// Bytes the spool directory may hold.
pub(crate) const SPOOL_QUOTA_BYTES: u64 = 4 * 1024 * 1024;
/// Memory one request leaks under `memory_leak`, and the heap limit.
const LEAK_PER_REQUEST: usize = 256 * 1024;
const HEAP_LIMIT_BYTES: usize = 12 * 1024 * 1024;

/// What a search costs without its index.
pub(crate) const FULL_SCAN: std::time::Duration = std::time::Duration::from_millis(1200);
/// What `/health`'s search self-test allows.
const SEARCH_BUDGET_MS: u128 = 500;

/// The front-end release the service serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum FrontendRelease {
    /// 1.0.0, built against this API.
    #[default]
    Good,
    /// 2.0.0, built against another API version (`link` for `url`, `/api/bookmark/{id}`).
    Skewed,
    /// 2.0.1, which no longer sends the API token.
    NoAuth,
}

#[derive(Debug, Default)]
struct State {
    index_dropped: bool,
    bad_release: bool,
    frontend: FrontendRelease,
    leaking: bool,
    leaked: Vec<Vec<u8>>,
}

/// The fault switches and what they hold.
#[derive(Debug)]
pub(crate) struct Faults {
    state: Mutex<State>,
    spool: PathBuf,
    config: PathBuf,
}

fn fault(kind: &'static str, message: String) -> BookmarksError {
    BookmarksError::Fault { kind, message }
}

impl Faults {
    /// Faults of a service whose database is at `db_path` (the spool lives beside it).
    pub(crate) fn new(db_path: &Path) -> Self {
        Self { state: Mutex::new(State::default()), spool: beside(db_path, "spool"), config: config_path(db_path) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn release(&self) -> &'static str {
        if self.lock().bad_release {
            BAD_RELEASE
        } else {
            GOOD_RELEASE
        }
    }

    pub(crate) fn deploy_bad_release(&self) {
        self.lock().bad_release = true;
    }

    /// Goes back to the previous release; returns the release running now.
    pub(crate) fn rollback_release(&self) -> &'static str {
        self.lock().bad_release = false;
        GOOD_RELEASE
    }

    fn config_version(&self) -> u32 {
        read_config(&self.config)
    }

    pub(crate) fn load_bad_config(&self) -> std::io::Result<()> {
        write_config(&self.config, REFUSING_CONFIG)
    }

    /// Loads configuration v3; this process crashes like every later one (see
    /// [`Faults::crash_reason`]).
    pub(crate) fn load_crashing_config(&self) -> std::io::Result<()> {
        write_config(&self.config, CRASHING_CONFIG)
    }

    /// Loads configuration v4, which lost the `cors_origins` setting: every cross-origin page
    /// is refused.
    pub(crate) fn load_cors_lost_config(&self) -> std::io::Result<()> {
        write_config(&self.config, CORS_LOST_CONFIG)
    }

    /// Loads configuration v5, whose `max_body_bytes = 32` refuses most saves.
    pub(crate) fn load_small_body_config(&self) -> std::io::Result<()> {
        write_config(&self.config, SMALL_BODY_CONFIG)
    }

    /// The body limit the configuration sets below the built-in one, if any.
    pub(crate) fn body_limit(&self) -> Option<usize> {
        (self.config_version() == SMALL_BODY_CONFIG).then_some(SMALL_BODY_LIMIT)
    }

    /// Whether a page served from `origin` may call the API: it must be one of `configured`,
    /// which configuration v4 lost.
    pub(crate) fn cors_allows(&self, configured: &[String], origin: &str) -> Result<(), String> {
        if self.config_version() == CORS_LOST_CONFIG {
            return Err(format!(
                "CORS preflight refused: origin {origin} is not allowed (configuration v{CORS_LOST_CONFIG} has no cors_origins)"
            ));
        }
        if configured.iter().any(|allowed| allowed == origin) {
            Ok(())
        } else {
            Err(format!("CORS preflight refused: origin {origin} is not in cors_origins"))
        }
    }

    /// Restores configuration v1; returns whether it changed anything.
    pub(crate) fn rollback_config(&self) -> std::io::Result<bool> {
        rollback_config_at(&self.config)
    }

    /// Why the cache warmer panics, [`CRASH_AFTER`] after a start or a reload: only under
    /// configuration v3, read when the warmer runs.
    pub(crate) fn crash_reason(&self) -> Option<String> {
        (self.config_version() == CRASHING_CONFIG).then(|| {
            format!(
                "thread 'cache-warmer' panicked at src/cache.rs:88:21: configuration v{CRASHING_CONFIG}: \
                 warm_cache_entries = -1 is not a valid size"
            )
        })
    }

    /// Deploys a broken front-end release.
    pub(crate) fn deploy_frontend(&self, release: FrontendRelease) {
        self.lock().frontend = release;
    }

    /// Goes back to the front end that matches the API; returns whether it changed anything.
    pub(crate) fn rollback_frontend(&self) -> bool {
        std::mem::take(&mut self.lock().frontend) != FrontendRelease::Good
    }

    /// The front-end release being served.
    pub(crate) fn frontend(&self) -> FrontendRelease {
        self.lock().frontend
    }

    pub(crate) fn drop_index(&self) {
        self.lock().index_dropped = true;
    }

    /// Rebuilds the search index; returns whether it was missing.
    pub(crate) fn rebuild_index(&self) -> bool {
        std::mem::take(&mut self.lock().index_dropped)
    }

    /// The extra time a search takes, and the slow-query log line, while the index is gone.
    pub(crate) fn search_cost(&self) -> Option<(std::time::Duration, String)> {
        self.lock().index_dropped.then(|| {
            let message = format!(
                "slow query: full table scan on bookmarks took {} ms (index bookmarks_title_idx missing)",
                FULL_SCAN.as_millis()
            );
            (FULL_SCAN, message)
        })
    }

    pub(crate) fn start_leaking(&self) {
        self.lock().leaking = true;
    }

    /// A soft restart: leaked memory is freed and the leak stops (it came from state the
    /// restart drops). Returns the bytes freed.
    pub(crate) fn restart(&self) -> usize {
        let mut state = self.lock();
        state.leaking = false;
        std::mem::take(&mut state.leaked).iter().map(Vec::len).sum()
    }

    pub(crate) fn leaked_bytes(&self) -> usize {
        self.lock().leaked.iter().map(Vec::len).sum()
    }

    /// Fills the spool to its quota with real files; returns the bytes written.
    pub(crate) fn fill_spool(&self) -> std::io::Result<u64> {
        std::fs::create_dir_all(&self.spool)?;
        let chunk = vec![0_u8; 512 * 1024];
        let mut written = self.spool_bytes();
        let mut n = 0;
        while written < SPOOL_QUOTA_BYTES {
            std::fs::write(self.spool.join(format!("export-{n}.tmp")), &chunk)?;
            written += chunk.len() as u64;
            n += 1;
        }
        Ok(written)
    }

    /// Deletes the spool's regenerable files; returns the bytes freed.
    pub(crate) fn clean_spool(&self) -> std::io::Result<u64> {
        let mut freed = 0;
        let Ok(entries) = std::fs::read_dir(&self.spool) else { return Ok(0) };
        for entry in entries.filter_map(Result::ok) {
            if entry.path().extension().is_some_and(|e| e == "tmp") {
                freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(freed)
    }

    pub(crate) fn spool_bytes(&self) -> u64 {
        std::fs::read_dir(&self.spool)
            .map(|entries| entries.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }

    /// Every request: under `memory_leak` it keeps memory, and fails once the heap is full.
    pub(crate) fn on_request(&self) -> Result<(), BookmarksError> {
        let mut state = self.lock();
        if !state.leaking {
            return Ok(());
        }
        let held: usize = state.leaked.iter().map(Vec::len).sum();
        if held + LEAK_PER_REQUEST > HEAP_LIMIT_BYTES {
            return Err(fault(
                "memory",
                format!(
                    "cannot allocate memory: heap limit of {} MiB reached (memory grows on every request)",
                    HEAP_LIMIT_BYTES >> 20
                ),
            ));
        }
        state.leaked.push(vec![1_u8; LEAK_PER_REQUEST]);
        Ok(())
    }

    /// A search: the bad release's query names a column the schema does not have.
    pub(crate) fn on_search(&self) -> Result<(), BookmarksError> {
        if self.lock().bad_release {
            return Err(fault(
                "release",
                format!("release {BAD_RELEASE} (new version, deployed today): search query failed: no such column: bookmarks.title_fts"),
            ));
        }
        Ok(())
    }

    /// A write: needs room in the data directory, and tags must be allowed by the config.
    pub(crate) fn on_write(&self, tags: usize) -> Result<(), BookmarksError> {
        if self.spool_bytes() >= SPOOL_QUOTA_BYTES {
            return Err(fault(
                "disk",
                "write to the data directory failed: No space left on device (os error 28)".to_owned(),
            ));
        }
        if tags > 0 && self.config_version() == REFUSING_CONFIG {
            return Err(fault(
                "config",
                format!(
                    "invalid setting in configuration v{REFUSING_CONFIG}: max_tags = 0 refuses every tagged bookmark"
                ),
            ));
        }
        Ok(())
    }

    /// What `/health` says is wrong, if anything.
    pub(crate) fn health(&self) -> Option<String> {
        if let Some((cost, message)) = self.search_cost() {
            if cost.as_millis() > SEARCH_BUDGET_MS {
                return Some(format!("search self-test over its {SEARCH_BUDGET_MS} ms budget: {message}"));
            }
        }
        let checks = [self.on_search(), self.on_write(1)];
        let memory = {
            let state = self.lock();
            let held: usize = state.leaked.iter().map(Vec::len).sum();
            (state.leaking && held + LEAK_PER_REQUEST > HEAP_LIMIT_BYTES).then(|| "heap limit reached".to_owned())
        };
        checks.into_iter().find_map(|c| c.err().map(|e| e.cause().unwrap_or_default())).or(memory)
    }

    /// Names of the active faults.
    pub(crate) fn active(&self) -> Vec<&'static str> {
        let state = self.lock();
        let mut active = Vec::new();
        if state.index_dropped {
            active.push("slow_queries");
        }
        if state.bad_release {
            active.push("bad_release");
        }
        match state.frontend {
            FrontendRelease::Good => {}
            FrontendRelease::Skewed => active.push("frontend_skew"),
            FrontendRelease::NoAuth => active.push("frontend_auth_dropped"),
        }
        if state.leaking {
            active.push("memory_leak");
        }
        drop(state);
        match self.config_version() {
            REFUSING_CONFIG => active.push("bad_config"),
            CRASHING_CONFIG => active.push("crash_loop"),
            CORS_LOST_CONFIG => active.push("cors_blocked"),
            SMALL_BODY_CONFIG => active.push("body_limit_lowered"),
            _ => {}
        }
        if self.spool_bytes() >= SPOOL_QUOTA_BYTES {
            active.push("disk_full");
        }
        active
    }
}

/// `<dir>/<db stem>.<suffix>`: where the service keeps a file that belongs to its database.
fn beside(db_path: &Path, suffix: &str) -> PathBuf {
    let dir = db_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = db_path.file_stem().and_then(|s| s.to_str()).unwrap_or("bookmarks");
    dir.join(format!("{name}.{suffix}"))
}

fn config_path(db_path: &Path) -> PathBuf {
    beside(db_path, "config.json")
}

/// The configuration version in `path`; v1 when there is no file yet or it cannot be read
/// (the service starts on its defaults, as it did before the file existed).
fn read_config(path: &Path) -> u32 {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|value| value["version"].as_u64())
        .and_then(|version| u32::try_from(version).ok())
        .unwrap_or(GOOD_CONFIG)
}

/// Writes the file whole (to a temporary file, then renamed over it), so a reader never sees
/// half of it.
fn write_config(path: &Path, version: u32) -> std::io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, serde_json::json!({ "version": version }).to_string())?;
    std::fs::rename(&temporary, path)
}

fn rollback_config_at(path: &Path) -> std::io::Result<bool> {
    if read_config(path) == GOOD_CONFIG {
        return Ok(false);
    }
    write_config(path, GOOD_CONFIG)?;
    Ok(true)
}

/// Rolls the configuration of the service whose database is `db_path` back to v1, whether
/// the service runs or not; returns whether it changed anything. A crash-looping service is
/// healed this way: its supervisor's next start reads the good configuration.
///
/// # Errors
/// When the configuration file cannot be written.
pub fn rollback_config_file(db_path: &Path) -> std::io::Result<bool> {
    rollback_config_at(&config_path(db_path))
}
