//! `AppState`: what every handler shares (database, list cache, fault switches, admin token, and the
//! optional AI-Ops client).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiops_client::AiopsClient;

use crate::cache::ListCache;
use crate::db::Database;
use crate::error::BookmarksResult;
use crate::faults::Faults;
use crate::BookmarksConfig;

/// Shared state of the service. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    cache: ListCache,
    /// Delay added to every API handler by the `slow_responses` fault; 0 when off.
    slow_delay_ms: AtomicU64,
    admin_token: Option<String>,
    api_token: Option<String>,
    aiops: Option<AiopsClient>,
    faults: Faults,
    titles: Option<(reqwest::Client, String)>,
    /// The page, with the core's instrumentation script when one is configured.
    index_html: String,
    cors_origins: Vec<String>,
}

impl AppState {
    /// Opens the database named in `config` (creating file and tables as needed). Events go
    /// to `aiops` when given; `config.aiops_url` is not looked at here, [`crate::serve`]
    /// starts the client from it.
    ///
    /// # Errors
    /// When the database cannot be opened or its tables created.
    pub async fn open(config: &BookmarksConfig, aiops: Option<AiopsClient>) -> BookmarksResult<Self> {
        let db =
            Database::open(&config.db_path, config.pool_size, Duration::from_millis(config.acquire_timeout_ms)).await?;
        Ok(Self::from_parts(db, config, aiops))
    }

    pub(crate) fn from_parts(db: Database, config: &BookmarksConfig, aiops: Option<AiopsClient>) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                cache: ListCache::default(),
                slow_delay_ms: AtomicU64::new(0),
                admin_token: config.admin_token.clone().filter(|token| !token.is_empty()),
                aiops,
                faults: Faults::new(&config.db_path),
                titles: config.titles_url.clone().map(|url| (reqwest::Client::new(), url)),
                index_html: crate::web::page_html(&crate::PageSettings {
                    aiops_url: config.page_aiops_url.clone().or_else(|| config.aiops_url.clone()),
                    api_token: config.api_token.clone(),
                    ..crate::PageSettings::default()
                }),
                api_token: config.api_token.clone().filter(|token| !token.is_empty()),
                cors_origins: config.cors_origins.iter().map(|o| o.trim_end_matches('/').to_owned()).collect(),
            }),
        }
    }

    /// The HTTP client and base URL of the title service, when one is configured.
    pub(crate) fn titles(&self) -> Option<(&reqwest::Client, &str)> {
        self.inner.titles.as_ref().map(|(http, url)| (http, url.as_str()))
    }

    /// Origins whose pages may call the API.
    pub(crate) fn cors_origins(&self) -> &[String] {
        &self.inner.cors_origins
    }

    /// The front end's page.
    pub(crate) fn index_html(&self) -> &str {
        &self.inner.index_html
    }

    /// The AI-Ops client events go to, if any.
    pub fn aiops(&self) -> Option<&AiopsClient> {
        self.inner.aiops.as_ref()
    }

    /// Closes the database pool. Requests after this answer 503.
    pub async fn close(&self) {
        self.inner.db.close().await;
    }

    pub(crate) fn db(&self) -> &Database {
        &self.inner.db
    }

    pub(crate) fn cache(&self) -> &ListCache {
        &self.inner.cache
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    pub(crate) fn api_token(&self) -> Option<&str> {
        self.inner.api_token.as_deref()
    }

    pub(crate) fn admin_token(&self) -> Option<&str> {
        self.inner.admin_token.as_deref()
    }

    pub(crate) fn slow_delay(&self) -> Option<Duration> {
        match self.inner.slow_delay_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub(crate) fn set_slow_delay(&self, delay: Option<Duration>) {
        let ms = delay.map_or(0, |delay| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self.inner.slow_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Emits a domain event when an AI-Ops client is configured.
    pub(crate) fn emit(&self, event_type: &str, data: serde_json::Value) {
        if let Some(client) = &self.inner.aiops {
            client.emit(event_type, data);
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("pool_size", &self.inner.db.pool_size())
            .field("leaked_connections", &self.inner.db.leaked_connections())
            .field("slow_delay", &self.slow_delay())
            .field("aiops", &self.inner.aiops)
            .finish_non_exhaustive()
    }
}
