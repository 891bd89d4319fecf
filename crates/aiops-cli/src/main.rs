//! The `aiops` command. Parses argv and hands off to `commands`; the only crate that knows argv.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// AI-Ops Core: watches services, detects and diagnoses problems, heals them safely, and
/// learns from every outcome.
#[derive(Debug, Parser)]
#[command(name = "aiops", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the core: HTTP API, event mesh, knowledge graph and all agents.
    Serve {
        /// Config file (TOML). Without it, the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Overrides `data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Overrides `server.listen`.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Shows the whole loop on a real bookmark manager: injects a fault twice and heals it,
    /// faster the second time.
    Demo {
        /// Print one JSON object with the scenarios as the last line of stdout.
        #[arg(long)]
        json: bool,
        /// Times each fault is injected, one after the other.
        #[arg(long, default_value_t = 2)]
        occurrences: u32,
        /// Fault to inject (repeatable): db_pool_exhausted (default), bad_release, disk_full,
        /// memory_leak, bad_config, slow_queries, or all.
        #[arg(long = "fault")]
        faults: Vec<String>,
    },
    /// Replays the recorded history through a (changed) policy in dry run: what it would have
    /// detected and done, beside what happened. Nothing live is changed.
    Replay {
        /// Config of the core whose history to replay. Without it, the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Config whose agents, patterns and tools to judge. Default: the same config.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Replay from this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Replay up to this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Print the report as one JSON object as the last line of stdout.
        #[arg(long)]
        json: bool,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The knowledge graph of the configured store: export, import, show, search.
    Kb {
        /// Config file (TOML). Without it, the embedded defaults.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// Overrides `data_dir` (as `aiops serve --data-dir` does).
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: KbCommand,
    },
    /// Remediation tools of a running core.
    Tools {
        #[command(subcommand)]
        command: ToolsCommand,
    },
    /// Events that consumer groups gave up on, in a running core.
    DeadLetters {
        #[command(subcommand)]
        command: DeadLettersCommand,
    },
    /// The service registry of a running core: list, watch, register, pick, graph.
    Services {
        /// Base URL of the core.
        #[arg(long, global = true, default_value = DEFAULT_URL)]
        url: String,
        #[command(subcommand)]
        command: ServicesCommand,
    },
    /// Fixes waiting for a human in a running core: list, approve, deny.
    Approvals {
        /// Base URL of the core.
        #[arg(long, global = true, default_value = DEFAULT_URL)]
        url: String,
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// The healing kill switch of a running core.
    Healing {
        /// Base URL of the core.
        #[arg(long, global = true, default_value = DEFAULT_URL)]
        url: String,
        #[command(subcommand)]
        command: HealingCommand,
    },
    /// Prints the audit log of a running core, newest first.
    Audit {
        /// Base URL of the core.
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Lists the latest problems of a running core with their status.
    Problems {
        /// Base URL of the core.
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// The bookmark manager the demo heals, as its own process.
    Bookmarks {
        #[command(subcommand)]
        command: BookmarksCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Prints the complete default configuration.
    Default,
    /// Loads a config file with the environment overrides and reports every problem.
    Check {
        /// Config file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KbCommand {
    /// Writes every node, outcome, edge and audit entry as JSON Lines.
    Export {
        /// Output file; standard output when left out.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Reads an export into the store (to move from SQLite to PostgreSQL, for example).
    Import {
        /// The JSON Lines file.
        file: PathBuf,
    },
    /// Shows a node with its edges and statistics.
    Show {
        /// Node id.
        id: String,
    },
    /// Finds the nodes that best match a text, by meaning and by wording.
    Search {
        /// The text.
        text: String,
        /// Only nodes of this kind (problem, solution, pattern, insight, tool).
        #[arg(long)]
        kind: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 10)]
        k: usize,
    },
    /// Embeds every embedded node again with the configured embedder (after switching embedder).
    Reembed,
    /// How often the fixes each diagnosis source (rules, knowledge, LLM) proposed healed.
    Sources,
    /// Problems no pattern explained that keep coming, each with a draft pattern to review.
    Candidates,
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// Lists pending requests (all, with their outcome, with --all).
    List {
        /// Include decided and expired requests.
        #[arg(long)]
        all: bool,
    },
    /// Approves a fix; the Healing agent runs it.
    Approve {
        /// The request's id.
        id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Denies a fix.
    Deny {
        /// The request's id.
        id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum HealingCommand {
    /// Shows whether the kill switch is engaged.
    Status,
    /// Engages the kill switch: no remediation runs until `resume`.
    Stop {
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Releases the kill switch.
    Resume {
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
}

/// Which instances to show.
#[derive(Debug, clap::Args)]
struct ServiceFilter {
    /// Service name.
    #[arg(long)]
    name: Option<String>,
    /// Has this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Has this capability.
    #[arg(long)]
    capability: Option<String>,
    /// Include instances that are not passing.
    #[arg(long)]
    all: bool,
}

impl From<ServiceFilter> for commands::services::Filter {
    fn from(f: ServiceFilter) -> Self {
        Self { name: f.name, tag: f.tag, capability: f.capability, all: f.all }
    }
}

#[derive(Debug, Subcommand)]
enum ServicesCommand {
    /// Lists instances (passing ones unless --all).
    List(ServiceFilter),
    /// Prints the instances again after every change, until interrupted.
    Watch(ServiceFilter),
    /// Shows one instance with its checks.
    Show {
        /// Instance id.
        id: String,
    },
    /// Registers the instance described in a TOML or JSON file.
    Register {
        /// The registration file.
        file: PathBuf,
    },
    /// Removes an instance.
    Deregister {
        /// Instance id.
        id: String,
    },
    /// Picks a healthy instance of a service and prints its id and address.
    Pick {
        /// Service name.
        name: String,
        /// round_robin, least_outstanding, weighted_random or consistent_hash.
        #[arg(long, default_value = "round_robin")]
        strategy: String,
        /// What consistent_hash hashes.
        #[arg(long)]
        key: Option<String>,
    },
    /// Prints the dependency graph and which services a failing dependency impacts.
    Graph,
}

#[derive(Debug, Subcommand)]
enum ToolsCommand {
    /// Proposes a tool spec (TOML) to a running core and prints the Builder agent's verdict.
    Propose {
        /// The spec file.
        file: PathBuf,
        /// Base URL of the core.
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLettersCommand {
    /// Lists the dead letters of a stream, newest first.
    List {
        /// `control` or `telemetry` (or another stream name).
        #[arg(long, default_value = "control")]
        stream: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Base URL of the core.
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
    },
    /// Publishes dead-lettered events to their stream again (needs the admin scope).
    Redrive {
        /// The stream whose dead letters to re-drive.
        #[arg(long, default_value = "control")]
        stream: String,
        /// Offsets in the dead-letter stream, as `list` shows them.
        #[arg(required = true)]
        offsets: Vec<u64>,
        /// Base URL of the core.
        #[arg(long, default_value = DEFAULT_URL)]
        url: String,
    },
}

const DEFAULT_URL: &str = "http://127.0.0.1:7070";

#[derive(Debug, Subcommand)]
enum BookmarksCommand {
    /// Runs the bookmark manager.
    Serve(bookmarks::ServeArgs),
    /// Runs the title service the bookmark manager depends on (with `serve --titles-url`).
    Titles(bookmarks::TitlesArgs),
    /// Manages the bookmark manager's configuration file.
    #[command(subcommand)]
    Config(BookmarksConfigCommand),
}

#[derive(Debug, Subcommand)]
enum BookmarksConfigCommand {
    /// Rolls the configuration back to v1, whether the bookmark manager runs or not.
    Rollback(bookmarks::ConfigRollbackArgs),
}

fn init_logs(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIOPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config, data_dir, listen } => {
                init_logs("info");
                commands::serve::run(config, data_dir, listen).await
            }
            Command::Demo { json, occurrences, faults } => {
                init_logs("error");
                commands::demo::run(json, occurrences, faults).await
            }
            Command::Replay { config, policy, since, until, json } => {
                commands::replay::run(config, policy, since, until, json).await
            }
            Command::Config { command: ConfigCommand::Default } => commands::config::print_default(),
            Command::Config { command: ConfigCommand::Check { config } } => commands::config::check(config),
            Command::Kb { config, data_dir, command } => {
                let store = &commands::kb::Store { config, data_dir };
                match command {
                    KbCommand::Export { output } => commands::kb::export(store, output).await,
                    KbCommand::Import { file } => commands::kb::import(store, file).await,
                    KbCommand::Show { id } => commands::kb::show(store, id).await,
                    KbCommand::Search { text, kind, k } => commands::kb::search(store, text, kind, k).await,
                    KbCommand::Reembed => commands::kb::reembed(store).await,
                    KbCommand::Sources => commands::kb::sources(store).await,
                    KbCommand::Candidates => commands::kb::candidates(store).await,
                }
            }
            Command::Tools { command: ToolsCommand::Propose { file, url } } => {
                commands::remote::propose_tool(&url, &file).await
            }
            Command::DeadLetters { command: DeadLettersCommand::List { stream, limit, url } } => {
                commands::remote::dead_letters(&url, &stream, limit).await
            }
            Command::DeadLetters { command: DeadLettersCommand::Redrive { stream, offsets, url } } => {
                commands::remote::redrive(&url, &stream, &offsets).await
            }
            Command::Services { url, command } => match command {
                ServicesCommand::List(filter) => commands::services::list(&url, &filter.into()).await,
                ServicesCommand::Watch(filter) => commands::services::watch(&url, &filter.into()).await,
                ServicesCommand::Show { id } => commands::services::show(&url, &id).await,
                ServicesCommand::Register { file } => commands::services::register(&url, &file).await,
                ServicesCommand::Deregister { id } => commands::services::deregister(&url, &id).await,
                ServicesCommand::Pick { name, strategy, key } => {
                    commands::services::pick(&url, &name, &strategy, key.as_deref()).await
                }
                ServicesCommand::Graph => commands::services::graph(&url).await,
            },
            Command::Approvals { url, command } => match command {
                ApprovalsCommand::List { all } => commands::healing::approvals(&url, all).await,
                ApprovalsCommand::Approve { id, reason } => commands::healing::decide(&url, &id, true, &reason).await,
                ApprovalsCommand::Deny { id, reason } => commands::healing::decide(&url, &id, false, &reason).await,
            },
            Command::Healing { url, command } => match command {
                HealingCommand::Status => commands::healing::status(&url).await,
                HealingCommand::Stop { reason } => commands::healing::kill_switch(&url, true, &reason).await,
                HealingCommand::Resume { reason } => commands::healing::kill_switch(&url, false, &reason).await,
            },
            Command::Audit { url, limit } => commands::healing::audit(&url, limit).await,
            Command::Problems { url, limit } => commands::remote::problems(&url, limit).await,
            Command::Bookmarks { command: BookmarksCommand::Serve(args) } => {
                init_logs("info");
                bookmarks::run_cli(args).await.map(|()| true)
            }
            Command::Bookmarks { command: BookmarksCommand::Titles(args) } => {
                init_logs("info");
                bookmarks::run_titles(args).await.map(|()| true)
            }
            Command::Bookmarks { command: BookmarksCommand::Config(BookmarksConfigCommand::Rollback(args)) } => {
                bookmarks::config_rollback(&args).map(|()| true)
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // A reader that stopped early (`| head`) is not a failure of the command.
        Err(_) if commands::stdout_closed() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
