//! `aiops serve`: runs the core until Ctrl-C or SIGTERM, then shuts down in order.

use std::path::PathBuf;

use aiops_app::{App, Config};
use anyhow::Context;

pub(crate) async fn run(
    config_path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    listen: Option<String>,
) -> anyhow::Result<bool> {
    let mut config = Config::load(config_path.as_deref(), std::env::vars())?;
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    let app = App::start(config).await.context("starting the core")?;
    eprintln!("aiops listening on {}", app.url());
    wait_for_signal().await;
    tracing::info!("Shutting down.");
    app.shutdown().await.context("shutting down")?;
    Ok(true)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
