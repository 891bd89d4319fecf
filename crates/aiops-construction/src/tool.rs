//! The `Tool` boundary trait and the values a run takes and returns.
//!
//! Every kind of tool (command, HTTP, built-in) implements [`Tool`]; callers hold tools as
//! `Arc<dyn Tool>` from a [`ToolCatalog`](crate::ToolCatalog) and never name a concrete type.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::ConstructionResult;
use crate::params::{self, ParamValues};
use crate::spec::ToolSpec;

/// A remediation tool: a [`ToolSpec`] plus the code that runs it.
///
/// # Contract
/// - **Parameters are checked before anything runs.** An unknown parameter, a missing
///   required one, or a value not matching its pattern is
///   [`InvalidParams`](crate::ConstructionError::InvalidParams), in either mode, and nothing
///   is started.
/// - **The target must advertise the spec's capability** (when it names one), else
///   [`MissingCapability`](crate::ConstructionError::MissingCapability), and nothing is
///   started.
/// - **Placeholders are substituted within one string at a time**: one argv element, one
///   header value, one body string, the URL path (percent-encoded). A value is never
///   concatenated into a shell string, so `; rm -rf /` stays one literal argument.
/// - **A run longer than `timeout_ms` is killed (a process) or abandoned (a request)** and
///   reported as [`Timeout`](crate::ConstructionError::Timeout) soon after the deadline.
/// - **`DryRun` touches nothing**: it checks and resolves the call, fills `resolved` with
///   what would run, and returns without starting a process or sending a request.
/// - **An expected failure is an `Ok`**: a non-zero exit or a non-2xx status is
///   `ToolOutput { success: false, .. }`; an `Err` means the run did not complete.
/// - **Secrets never leave the tool**: not in `resolved`, `output`, errors or `Debug`.
///
/// # Errors
/// See [`ConstructionError`](crate::ConstructionError): `InvalidParams`, `InvalidTarget`,
/// `MissingCapability` and `MissingSecret` before a run, `Timeout` and `Failed` during one.
///
/// # Panics
/// Implementations never panic on any input.
#[async_trait]
pub trait Tool: Send + Sync + fmt::Debug + 'static {
    /// The spec this tool was built from.
    fn spec(&self) -> &ToolSpec;

    /// Runs (or, in DryRun mode, only resolves and reports what it would run, touching
    /// nothing).
    async fn run(
        &self,
        target: &ToolTarget,
        params: &serde_json::Value,
        mode: RunMode,
    ) -> ConstructionResult<ToolOutput>;
}

/// The service instance a tool acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolTarget {
    /// Service name, e.g. `bookmarks-backend`.
    pub service: String,
    /// The instance of the service.
    pub instance_id: String,
    /// Base URL, e.g. `http://127.0.0.1:8080`; HTTP tools append their path to it.
    pub address: String,
    /// Capabilities the instance advertises, e.g. `cache.clear`.
    pub capabilities: Vec<String>,
}

/// Whether a run really acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Run for real.
    Execute,
    /// Check and resolve the call only; start nothing, send nothing.
    DryRun,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// Exit code 0, a 2xx status, or a built-in that succeeded. In a dry run: the call
    /// could be made (for a command, its program was found).
    pub success: bool,
    /// Exit code of a command; `None` for other kinds, dry runs, or a process ended by a
    /// signal.
    pub exit_code: Option<i32>,
    /// Status of an HTTP response; `None` for other kinds and dry runs.
    pub http_status: Option<u16>,
    /// Stdout and stderr, or the response body, at most
    /// [`OUTPUT_LIMIT_BYTES`](crate::OUTPUT_LIMIT_BYTES) with a note when cut.
    pub output: String,
    /// Wall time of the run, in milliseconds (0 for a dry run).
    pub duration_ms: u64,
    /// What was (or would be) run, e.g. `sqlite3 /data/app.db 'PRAGMA integrity_check'` or
    /// `POST http://127.0.0.1:8080/admin/cache/clear`. Quoting is for display only: a
    /// command runs as an argv, never through a shell.
    pub resolved: String,
}

/// Checks a call against `spec` and `target` (parameters first, then capability); shared by
/// every tool kind so they agree on the order and wording of refusals.
pub(crate) fn prepare(
    spec: &ToolSpec,
    target: &ToolTarget,
    params: &serde_json::Value,
) -> ConstructionResult<ParamValues> {
    let values = params::resolve(spec, params)?;
    spec.check_target(target)?;
    Ok(values)
}

/// Milliseconds since `start`, saturating.
pub(crate) fn elapsed_ms(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}
