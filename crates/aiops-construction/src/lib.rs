//! Tool construction: remediation tools behind one trait, defined by validated specs and
//! kept in a versioned catalog.
//!
//! A tool is a [`ToolSpec`] (usually a TOML file: name, version, risk, the capability it
//! needs from the target, its parameters and how it runs) plus the code for its kind. The
//! contract every tool keeps is on [`Tool`]: parameters and capability are checked before
//! anything runs, values are substituted per argv element or per string (never into a shell
//! string), runs are bounded by the spec's timeout, `DryRun` touches nothing, and secrets
//! never leave the tool.
//!
//! Kinds, in [`tools`]:
//! - [`CommandTool`] runs a program with an argv, never through a shell.
//! - [`HttpTool`] calls the target's HTTP API; `Authorization: Bearer` from a named secret.
//! - [`BuiltinTool`] runs code compiled in (for now `noop_probe`).
//!
//! The `conformance` module (in tests, or with the `conformance` feature) holds the suite of
//! the contract that every kind passes.
//!
//! [`ToolCatalog`] registers tools by name and version, loads spec directories and the
//! specs shipped in `crates/aiops-construction/tools/`. This crate runs what it is told;
//! policy (approvals, budgets, verification, rollback decisions) belongs to the Healing
//! agent.

mod catalog;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
mod output;
mod params;
mod secrets;
mod spec;
mod template;
mod tool;
pub mod tools;

pub use catalog::{shipped_specs, ToolCatalog};
pub use error::{ConstructionError, ConstructionResult};
pub use output::OUTPUT_LIMIT_BYTES;
pub use secrets::{Secrets, REDACTED};
pub use spec::{
    parse_spec, BuiltinSpec, CommandSpec, HttpMethod, HttpSpec, ParamPattern, ParamSpec, RollbackSpec, ToolKind,
    ToolSpec, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS,
};
pub use tool::{RunMode, Tool, ToolOutput, ToolTarget};
pub use tools::build_tool;
pub use tools::builtin::{BuiltinTool, BUILTIN_NAMES};
pub use tools::command::CommandTool;
pub use tools::http::HttpTool;
