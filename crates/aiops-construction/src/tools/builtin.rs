//! Built-in tools: remediation written in Rust and compiled into the binary.
//!
//! A spec of `[kind] type = "builtin"` names one of [`BUILTIN_NAMES`]. Built-ins follow the
//! same contract as every tool (parameters and capability checked first, `DryRun` does
//! nothing, the spec's timeout applies).

use std::time::Instant;

use async_trait::async_trait;

use crate::error::{ConstructionError, ConstructionResult};
use crate::params::ParamValues;
use crate::spec::{ToolKind, ToolSpec};
use crate::tool::{elapsed_ms, prepare, RunMode, Tool, ToolOutput, ToolTarget};

/// The built-ins a spec may name.
pub const BUILTIN_NAMES: &[&str] = &["noop_probe"];

/// Which built-in a tool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    /// Succeeds and does nothing: for testing the pipeline end to end.
    NoopProbe,
}

impl Builtin {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "noop_probe" => Some(Self::NoopProbe),
            _ => None,
        }
    }

    async fn run(self, _target: &ToolTarget, _params: &ParamValues) -> (bool, String) {
        match self {
            Self::NoopProbe => (true, "noop_probe: did nothing".to_owned()),
        }
    }
}

/// A tool of `[kind] type = "builtin"`.
#[derive(Debug)]
pub struct BuiltinTool {
    spec: ToolSpec,
    builtin: Builtin,
}

impl BuiltinTool {
    /// Builds the tool, validating `spec`.
    ///
    /// # Errors
    /// [`ConstructionError::InvalidSpec`] when the spec does not validate, is not of kind
    /// `builtin`, or names an unknown built-in.
    pub fn new(spec: ToolSpec) -> ConstructionResult<Self> {
        spec.validate()?;
        let invalid = |reason: String| ConstructionError::InvalidSpec {
            origin: format!("tool {}", spec.name),
            line: None,
            reason,
        };
        let ToolKind::Builtin(builtin) = &spec.kind else {
            return Err(invalid(format!("a builtin tool needs kind builtin, not {}", spec.kind.as_str())));
        };
        let builtin =
            Builtin::from_name(&builtin.name).ok_or_else(|| invalid(format!("unknown builtin `{}`", builtin.name)))?;
        Ok(Self { spec, builtin })
    }
}

#[async_trait]
impl Tool for BuiltinTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn run(
        &self,
        target: &ToolTarget,
        params: &serde_json::Value,
        mode: RunMode,
    ) -> ConstructionResult<ToolOutput> {
        let values = prepare(&self.spec, target, params)?;
        let resolved = format!("builtin {}", self.builtin_name());
        if mode == RunMode::DryRun {
            return Ok(ToolOutput {
                success: true,
                exit_code: None,
                http_status: None,
                output: format!("dry run: would run {resolved}"),
                duration_ms: 0,
                resolved,
            });
        }
        let start = Instant::now();
        let (success, output) = tokio::time::timeout(self.spec.timeout(), self.builtin.run(target, &values))
            .await
            .map_err(|_| ConstructionError::Timeout { tool: self.spec.name.clone(), after_ms: self.spec.timeout_ms })?;
        Ok(ToolOutput { success, exit_code: None, http_status: None, output, duration_ms: elapsed_ms(start), resolved })
    }
}

impl BuiltinTool {
    fn builtin_name(&self) -> &'static str {
        match self.builtin {
            Builtin::NoopProbe => "noop_probe",
        }
    }
}

#[cfg(test)]
mod tests;
