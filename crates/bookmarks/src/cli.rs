//! The command line: `ServeArgs` (the flags of `serve`) and `run_cli`, shared by the
//! `bookmarks` binary and the `aiops bookmarks serve` re-exec.
//!
//! `run_cli` prints exactly one line to stdout, `listening on http://ADDR`, once the database
//! is open and the socket accepts connections; scripts and tests wait for that line. Logs go
//! to stderr (set up by the binary, not here).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::BookmarksConfig;

/// Flags of `bookmarks serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// SQLite database file, created with its folder if missing.
    #[arg(long, value_name = "PATH", default_value = "bookmarks.db")]
    pub db: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Base URL of the AI-Ops core; without it no events are sent.
    #[arg(long, env = "AIOPS_URL", value_name = "URL")]
    pub aiops_url: Option<String>,
    /// Service name to register with the AI-Ops core.
    #[arg(long, default_value = "bookmarks")]
    pub service_name: String,
    /// Most database connections open at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub pool_size: u32,
    /// How long a request waits for a free database connection, in milliseconds.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub acquire_timeout_ms: u64,
    /// Bearer token required by the admin endpoints; they are open without it.
    #[arg(long, env = "BOOKMARKS_ADMIN_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// Base URL of the title service (`bookmarks titles`), asked for a title when a bookmark
    /// comes without one; without it such bookmarks keep no title.
    #[arg(long, value_name = "URL")]
    pub titles_url: Option<String>,
    /// Base URL of the AI-Ops core as browsers reach it, for the page's instrumentation
    /// script. Default: `--aiops-url`.
    #[arg(long, value_name = "URL")]
    pub page_aiops_url: Option<String>,
    /// An origin (`scheme://host[:port]`) whose pages may call the API (CORS); repeatable.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Bearer token the API requires (the page is given it); the API is open without it.
    #[arg(long, env = "BOOKMARKS_API_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub api_token: Option<String>,
}

impl ServeArgs {
    /// The service configuration these flags describe.
    pub fn to_config(&self) -> BookmarksConfig {
        BookmarksConfig {
            db_path: self.db.clone(),
            service_name: self.service_name.clone(),
            aiops_url: self.aiops_url.clone().filter(|url| !url.is_empty()),
            pool_size: self.pool_size,
            acquire_timeout_ms: self.acquire_timeout_ms,
            admin_token: self.admin_token.clone().filter(|token| !token.is_empty()),
            titles_url: self.titles_url.clone().filter(|url| !url.is_empty()),
            page_aiops_url: self.page_aiops_url.clone().filter(|url| !url.is_empty()),
            cors_origins: self.cors_origins.clone(),
            api_token: self.api_token.clone().filter(|token| !token.is_empty()),
        }
    }
}

/// Flags of `bookmarks config rollback`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigRollbackArgs {
    /// SQLite database file of the service; its configuration file lies beside it.
    #[arg(long, value_name = "PATH", default_value = "bookmarks.db")]
    pub db: PathBuf,
}

/// Rolls the configuration back to v1 whether the service runs or not, and prints one JSON
/// line: `{"config":"v1","changed":bool}`.
///
/// # Errors
/// When the configuration file cannot be written.
pub fn config_rollback(args: &ConfigRollbackArgs) -> anyhow::Result<()> {
    let changed = crate::rollback_config_file(&args.db)
        .with_context(|| format!("rolling back the configuration of {}", args.db.display()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::json!({ "config": "v1", "changed": changed })).context("writing to stdout")?;
    Ok(())
}

/// Binds `--listen`, opens the database, prints `listening on http://ADDR` to stdout, and
/// serves until Ctrl-C or SIGTERM, then shuts down gracefully.
///
/// # Errors
/// When binding, opening the database, starting the AI-Ops client or serving fails.
pub async fn run_cli(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.to_config();
    let listener = TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let local_addr = listener.local_addr().context("reading the listen address")?;
    let state = crate::prepare(&config, &listener)
        .await
        .with_context(|| format!("starting with database {}", config.db_path.display()))?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{local_addr}").context("writing to stdout")?;
        stdout.flush().context("flushing stdout")?;
    }
    tracing::info!(addr = %local_addr, db = %config.db_path.display(), aiops = ?config.aiops_url, "Bookmarks is serving.");
    crate::serve_state(state, listener, shutdown_signal()).await.context("serving")?;
    tracing::info!("Bookmarks stopped.");
    Ok(())
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "Cannot listen for Ctrl-C.");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "Cannot listen for SIGTERM.");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("Shutdown requested; finishing in-flight requests.");
}
