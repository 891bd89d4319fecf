//! How bad a problem or event is.

use serde::{Deserialize, Serialize};

/// Ordered from least to most urgent, so `Severity::Critical > Severity::Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth recording; nothing to do.
    Info,
    /// Degraded but serving.
    Warning,
    /// Failing for some users.
    Error,
    /// Down or failing for everyone.
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
        })
    }
}
