//! `CommandTool`: runs a program with an argv, never through a shell.
//!
//! Each argv element is substituted on its own, so a parameter value is always exactly one
//! argument, whatever characters it holds. The child gets no stdin and a minimal
//! environment (only `PATH`, forwarded from this process so programs are found as usual):
//! secrets that the agent itself was started with never reach a tool. Stdout and stderr are
//! captured and capped. On timeout the child is killed (`kill_on_drop` covers a caller
//! dropping the run, too).
//!
//! FIXME: grandchildren a tool leaves behind are not killed (that needs a process group
//! and a signal to it, which needs `unsafe` or a libc binding); the run still ends at its
//! deadline because it stops waiting for their pipes then.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aiops_model::HOST_CAPABILITY_PREFIX;
use async_trait::async_trait;

use crate::error::{ConstructionError, ConstructionResult};
use crate::output::{combine_streams, read_capped, OUTPUT_LIMIT_BYTES};
use crate::params::ParamValues;
use crate::spec::{CommandSpec, ToolKind, ToolSpec};
use crate::template::{self, Escape};
use crate::tool::{elapsed_ms, prepare, RunMode, Tool, ToolOutput, ToolTarget};

/// How long to wait for a killed child to be reaped before giving up on it.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// A tool of `[kind] type = "command"`.
#[derive(Debug)]
pub struct CommandTool {
    spec: ToolSpec,
    command: CommandSpec,
}

impl CommandTool {
    /// Builds the tool, validating `spec`.
    ///
    /// # Errors
    /// [`ConstructionError::InvalidSpec`] when the spec does not validate or is not of kind
    /// `command`.
    pub fn new(spec: ToolSpec) -> ConstructionResult<Self> {
        spec.validate()?;
        let ToolKind::Command(command) = &spec.kind else {
            return Err(ConstructionError::InvalidSpec {
                origin: format!("tool {}", spec.name),
                line: None,
                reason: format!("a command tool needs kind command, not {}", spec.kind.as_str()),
            });
        };
        let command = command.clone();
        Ok(Self { spec, command })
    }

    /// The argv with placeholders substituted; an element that is only the placeholder of
    /// an absent optional parameter is dropped.
    fn resolve_argv(&self, target: &ToolTarget, values: &ParamValues) -> ConstructionResult<Vec<String>> {
        let ctx = template::Context { tool: &self.spec.name, params: values, target, secrets: None };
        let mut argv = Vec::with_capacity(self.command.argv.len());
        for arg in &self.command.argv {
            if template::sole_param(arg).is_some_and(|name| values.get(name).is_none()) {
                continue;
            }
            argv.push(template::render(arg, &ctx, Escape::Raw)?);
        }
        Ok(argv)
    }

    fn failed(&self, reason: String) -> ConstructionError {
        ConstructionError::Failed { tool: self.spec.name.clone(), reason }
    }
}

#[async_trait]
impl Tool for CommandTool {
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
        // The spec rule (a command naming its target needs a `host.` capability) holds for
        // the target handed in as a parameter too: by a rollback's `{target.*}`, a pattern or
        // a language model.
        if !self.spec.acts_on_host() {
            if let Some(name) = values.holding(&[&target.service, &target.instance_id, &target.address]) {
                return Err(ConstructionError::InvalidParams {
                    tool: self.spec.name.clone(),
                    reason: format!(
                        "param `{name}` names the target, which a command runs on the core's machine for only \
                         with a `{HOST_CAPABILITY_PREFIX}` capability"
                    ),
                });
            }
        }
        let argv = self.resolve_argv(target, &values)?;
        let resolved = display_argv(&argv);
        let (program, args) = argv.split_first().ok_or_else(|| self.failed("argv is empty".to_owned()))?;
        let search_path = std::env::var_os("PATH");

        if mode == RunMode::DryRun {
            let found = find_program(program, search_path.as_ref());
            let output = match &found {
                Some(path) => format!("dry run: would run {resolved} ({})", path.display()),
                None => format!("dry run: program `{program}` not found"),
            };
            return Ok(ToolOutput {
                success: found.is_some(),
                exit_code: None,
                http_status: None,
                output,
                duration_ms: 0,
                resolved,
            });
        }

        tracing::debug!(tool = %self.spec.name, resolved = %resolved, "Running command tool.");
        let start = Instant::now();
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear()
            .kill_on_drop(true);
        if let Some(search_path) = &search_path {
            command.env("PATH", search_path);
        }
        let mut child = command.spawn().map_err(|err| self.failed(format!("cannot start `{program}`: {err}")))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let finished =
            tokio::time::timeout(self.spec.timeout(), async {
                tokio::join!(
                    read_capped(stdout, OUTPUT_LIMIT_BYTES),
                    read_capped(stderr, OUTPUT_LIMIT_BYTES),
                    child.wait(),
                )
            })
            .await;
        let Ok((stdout, stderr, status)) = finished else {
            // Killing can only fail if the child is already gone, which is what we want.
            let _ = child.start_kill();
            let _ = tokio::time::timeout(REAP_GRACE, child.wait()).await;
            tracing::warn!(tool = %self.spec.name, after_ms = self.spec.timeout_ms, "Command tool timed out and was killed.");
            return Err(ConstructionError::Timeout { tool: self.spec.name.clone(), after_ms: self.spec.timeout_ms });
        };
        let status = status.map_err(|err| self.failed(format!("waiting for `{program}`: {err}")))?;
        let stdout = stdout.map_err(|err| self.failed(format!("reading stdout: {err}")))?;
        let stderr = stderr.map_err(|err| self.failed(format!("reading stderr: {err}")))?;
        Ok(ToolOutput {
            success: status.success(),
            exit_code: status.code(),
            http_status: None,
            output: combine_streams(&stdout, &stderr),
            duration_ms: elapsed_ms(start),
            resolved,
        })
    }
}

/// The argv as one line, each element quoted like a POSIX shell would need, so a reader
/// sees where elements begin and end. Display only: nothing parses this string.
pub(crate) fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '=' | '@' | '%' | '+' | ',')
                });
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where `program` would be found: itself when it holds a `/`, else the first regular file
/// of that name in `search_path`.
fn find_program(program: &str, search_path: Option<&OsString>) -> Option<PathBuf> {
    if program.contains('/') {
        let path = Path::new(program);
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::split_paths(search_path?).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests;
