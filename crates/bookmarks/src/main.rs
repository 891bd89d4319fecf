//! The `bookmarks` binary: a thin clap wrapper around [`bookmarks::run_cli`], with logs to
//! stderr (filter with `RUST_LOG`, default `info`). Stdout carries only the
//! `listening on http://ADDR` line.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The bookmark manager watched and healed by AI-Ops Core.
#[derive(Debug, Parser)]
#[command(name = "bookmarks", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the bookmarks API until Ctrl-C or SIGTERM.
    Serve(bookmarks::ServeArgs),
    /// Serve the title service the bookmark manager asks for missing titles.
    Titles(bookmarks::TitlesArgs),
    /// Manage the service's configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Roll the configuration back to v1, whether the service runs or not.
    Rollback(bookmarks::ConfigRollbackArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => bookmarks::run_cli(args).await,
        Command::Titles(args) => bookmarks::run_titles(args).await,
        Command::Config(ConfigCommand::Rollback(args)) => bookmarks::config_rollback(&args),
    }
}
