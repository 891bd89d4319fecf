//! Start-up wiring: config → backends → agents → server, and an orderly shutdown.
//!
//! [`Config`] is the one config tree (each section lives in its part's crate); it loads from
//! built-in defaults, then a TOML file, then `AIOPS__<SECTION>__<KEY>` environment
//! variables, and refuses unknown keys. [`App::start`] builds every backend from it (the only
//! place besides the parts' `build` functions that decides which engine runs), starts the
//! [`aiops_agents::Coordinator`] and the HTTP server, and [`App::shutdown`] stops them without
//! losing an accepted event.

mod app;
mod config;
mod error;
mod replay;

pub use app::{check_embedder, environment_problems, open_knowledge, App, EMBEDDER_NODE};
pub use config::{Config, PatternsConfig, ServerConfig, TokenConfig, ToolsConfig};
pub use error::{AppError, AppResult};
pub use replay::{
    replay, RecordedProblem, ReplayCounts, ReplayReport, ReplayWindow, ReplayedProblem, MATCH_WINDOW_SECS,
};
