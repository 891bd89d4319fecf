//! The one error type of the construction part, grouped by what the caller does next.
//!
//! Expected outcomes are not errors: a command that exits non-zero or an HTTP call answered
//! with a 5xx is an `Ok(ToolOutput { success: false, .. })`. An error means the tool did not
//! run to completion (or was never started). Messages never contain secret values.

use std::path::PathBuf;

/// Result alias of the construction part.
pub type ConstructionResult<T> = Result<T, ConstructionError>;

/// Everything that can go wrong while defining, registering or running a tool.
#[derive(Debug, thiserror::Error)]
pub enum ConstructionError {
    /// A tool spec is malformed: fix the file. Displayed as `origin:line: reason`.
    #[error("{origin}{}: {reason}", line.map(|line| format!(":{line}")).unwrap_or_default())]
    InvalidSpec {
        /// Where the spec came from (a file path, or `tool NAME` for specs built in code).
        origin: String,
        /// 1-based line of the problem, when it could be located.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// The parameters of a call do not fit the tool's spec; nothing was run.
    #[error("tool {tool}: invalid params: {reason}")]
    InvalidParams {
        /// Tool that was called.
        tool: String,
        /// What is wrong.
        reason: String,
    },
    /// The target of a call is unusable (for example its address is not an `http://` URL);
    /// nothing was run.
    #[error("tool {tool}: invalid target: {reason}")]
    InvalidTarget {
        /// Tool that was called.
        tool: String,
        /// What is wrong.
        reason: String,
    },
    /// The target service does not advertise the capability the tool needs; nothing was run.
    #[error("tool {tool} needs capability {capability}, which service {service} does not advertise")]
    MissingCapability {
        /// Tool that was called.
        tool: String,
        /// Capability the tool's spec requires.
        capability: String,
        /// Service that lacks it.
        service: String,
    },
    /// A secret the tool refers to is not configured; nothing was run.
    #[error("tool {tool} needs secret {secret}, which is not configured")]
    MissingSecret {
        /// Tool that was called.
        tool: String,
        /// Name of the missing secret (never its value).
        secret: String,
    },
    /// The run took longer than the spec's `timeout_ms` and was killed or abandoned.
    /// Its effects, if any, are unknown: verify before retrying.
    #[error("tool {tool} timed out after {after_ms} ms")]
    Timeout {
        /// Tool that was called.
        tool: String,
        /// The timeout that was exceeded.
        after_ms: u64,
    },
    /// The tool could not be run to completion: the program could not be spawned, the
    /// connection was refused, the response could not be read. Worth retrying later.
    #[error("tool {tool} failed: {reason}")]
    Failed {
        /// Tool that was called.
        tool: String,
        /// What went wrong, with its cause chain flattened (secrets redacted).
        reason: String,
    },
    /// No tool of that name is registered.
    #[error("tool {name} not found")]
    NotFound {
        /// Name that was looked up.
        name: String,
    },
    /// A tool was registered again without a strictly higher version (or with the same
    /// version and a different spec). Bump `version`.
    #[error("tool {name} version {offered} cannot replace registered version {registered}")]
    VersionConflict {
        /// Tool name.
        name: String,
        /// Highest version already registered.
        registered: u32,
        /// Version that was offered.
        offered: u32,
    },
    /// A spec file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// File or directory that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
