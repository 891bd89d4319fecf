//! `ToolSpec`: the declarative definition of a tool, parsed from TOML and validated.
//!
//! A spec says what a tool is (name, version, risk, the capability it needs), which
//! parameters it takes and how it runs (`[kind]`: an argv, an HTTP call, or a built-in).
//! Parsing is strict (`deny_unknown_fields` everywhere) and every error carries the 1-based
//! line it is about, so a bad file is fixed in one look. This file does not run anything.
//!
//! ```toml
//! name = "clear_cache"
//! version = 1
//! description = "Empties the service's in-memory cache."
//! risk = "low"
//! capability = "cache.clear"
//!
//! [kind]
//! type = "http"
//! method = "POST"
//! path = "/admin/cache/clear"
//! bearer_secret = "admin_token"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aiops_model::{RiskLevel, HOST_CAPABILITY_PREFIX};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ConstructionError, ConstructionResult};
use crate::template::{self, Placeholder};
use crate::tool::ToolTarget;
use crate::tools::builtin::BUILTIN_NAMES;

/// `timeout_ms` when a spec leaves it out.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Largest `timeout_ms` a spec may ask for.
pub const MAX_TIMEOUT_MS: u64 = 300_000;

/// Programs that run their `-c` argument as a shell command line.
const SHELLS: &[&str] =
    &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "fish", "csh", "tcsh", "su", "runuser"];
/// Programs that run the rest of their argv as another program.
const WRAPPERS: &[&str] = &[
    "env", "sudo", "doas", "nice", "nohup", "setsid", "stdbuf", "timeout", "busybox", "ionice", "chrt", "taskset",
    "command", "exec", "xargs",
];

/// The definition of one remediation tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// Unique name, `[a-z0-9_]{1,64}`.
    pub name: String,
    /// Version, at least 1. A catalog replaces a tool only with a strictly higher version.
    pub version: u32,
    /// What the tool does, for people and for an LLM choosing tools.
    pub description: String,
    /// How invasive running it is; policy asks for approval above some level.
    pub risk: RiskLevel,
    /// Longest a run may take, in milliseconds (default 10 000, at most 300 000); a longer
    /// run is killed or abandoned and reported as a timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// A capability the target service must advertise, e.g. `cache.clear`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// The parameters a call may or must give.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParamSpec>,
    /// The tool call that undoes this one, if it can be undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackSpec>,
    /// How the tool runs.
    pub kind: ToolKind,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_required() -> bool {
    true
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Name, `[a-z0-9_]{1,64}`, used as `{name}` in the kind's strings.
    pub name: String,
    /// Whether a call must give it (default `true`). An absent optional parameter renders
    /// as an empty string, except that an argv element made of only its placeholder is
    /// dropped and a body string made of only its placeholder becomes `null`.
    #[serde(default = "default_required")]
    pub required: bool,
    /// What its values must look like.
    pub pattern: ParamPattern,
    /// What it means, for people and for an LLM filling it in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// What a parameter value must look like. Values are strings or numbers; their text is
/// checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamPattern {
    /// 1 to 128 of `[A-Za-z0-9_.-]`, not starting with `-` and not only dots: names, ids,
    /// hosts.
    Word,
    /// A whole number that fits in an `i64`, optionally negative.
    Integer,
    /// A file path of up to 4096 bytes: no control characters, no leading `-`, no `..`
    /// component.
    Path,
    /// Free text of up to 4096 bytes without control characters (tab allowed). It is still
    /// one argv element or one string, never parsed by a shell; but a program may read a
    /// leading `-` as an option, so put it after `--` where that matters.
    AnyText,
}

impl ParamPattern {
    /// The snake_case name used in spec files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Word => "word",
            Self::Integer => "integer",
            Self::Path => "path",
            Self::AnyText => "any_text",
        }
    }
}

/// The call that undoes a tool's effect: another tool and its parameters. String values of
/// `params` may hold this tool's `{param}` and `{target.*}` placeholders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackSpec {
    /// Name of the tool to run.
    pub tool: String,
    /// Its parameters.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, Value>,
}

/// How a tool runs, written as a `[kind]` table tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolKind {
    /// Runs a program with an argv (`type = "command"`).
    Command(CommandSpec),
    /// Calls the target over HTTP (`type = "http"`).
    Http(HttpSpec),
    /// Runs code compiled into the binary (`type = "builtin"`).
    Builtin(BuiltinSpec),
}

impl ToolKind {
    /// `command`, `http` or `builtin`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Command(_) => "command",
            Self::Http(_) => "http",
            Self::Builtin(_) => "builtin",
        }
    }
}

/// A program run directly with an argv: never through a shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// Program and arguments. `argv[0]` is fixed text (looked up on `PATH` when it has no
    /// `/`); each later element may hold placeholders, substituted within that element.
    pub argv: Vec<String>,
}

/// An HTTP call to the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// Request method.
    pub method: HttpMethod,
    /// Path relative to the base URL, starting with `/`; may hold a query. Substituted
    /// values are percent-encoded.
    pub path: String,
    /// The base URL to call instead of the target's address: a management API that acts on
    /// the target (a process supervisor, an orchestrator), named by `{target.service}` in
    /// the path. Fixed text: `http://` or `https://`, without query or fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// JSON body (a TOML table or array), sent with `Content-Type: application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Extra request headers; values may hold `{secret:NAME}`, which fails the call with
    /// `MissingSecret` when that secret is not configured.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Name of a secret sent as `Authorization: Bearer <secret>` when it is configured. Unlike
    /// a `{secret:NAME}` header, a missing secret just leaves the header out, so the same
    /// spec works against services with and without an admin token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_secret: Option<String>,
}

/// HTTP request methods a tool may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `GET`: no body.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
}

impl HttpMethod {
    /// The method's name as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

/// A tool implemented in code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltinSpec {
    /// Which built-in: one of [`BUILTIN_NAMES`](crate::BUILTIN_NAMES).
    pub name: String,
}

/// Parses and validates a TOML spec. `origin` names the source in errors (a file path).
///
/// # Errors
/// [`ConstructionError::InvalidSpec`] with the 1-based line of the problem when it can be
/// located: TOML syntax, unknown or missing fields, wrong types, and every rule of
/// [`ToolSpec::validate`].
pub fn parse_spec(text: &str, origin: &str) -> ConstructionResult<ToolSpec> {
    let spec: ToolSpec = toml::from_str(text).map_err(|err| ConstructionError::InvalidSpec {
        origin: origin.to_owned(),
        line: toml_error_line(text, &err),
        reason: err.message().trim_end().to_owned(),
    })?;
    spec.check().map_err(|issue| ConstructionError::InvalidSpec {
        origin: origin.to_owned(),
        line: issue.locator.line_in(text),
        reason: issue.reason,
    })?;
    Ok(spec)
}

/// The 1-based line a TOML error points at. Errors raised inside `[kind]` are reported by
/// serde for the whole table, so an unknown field is looked up by its key within the span.
fn toml_error_line(text: &str, err: &toml::de::Error) -> Option<usize> {
    let span = err.span()?;
    let start = span.start.min(text.len());
    let span_line = line_of_offset(text, start);
    let unknown_key = err.message().strip_prefix("unknown field `").and_then(|rest| rest.split('`').next());
    if let Some(key) = unknown_key {
        let end = span.end.clamp(start, text.len());
        let region = text.get(start..end).unwrap_or_default();
        if let Some(idx) = region.lines().position(|line| line_has_key(line, key)) {
            return Some(span_line + idx);
        }
    }
    Some(span_line)
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset].iter().filter(|&&byte| byte == b'\n').count() + 1
}

/// Whether `line` assigns `key` (`key = ...`, `"key" = ...` or `key.sub = ...`).
fn line_has_key(line: &str, key: &str) -> bool {
    let line = line.trim_start();
    let rest = line.strip_prefix(key).or_else(|| line.strip_prefix(&format!("\"{key}\"")));
    rest.is_some_and(|rest| {
        let rest = rest.trim_start();
        rest.starts_with('=') || rest.starts_with('.')
    })
}

/// A validation problem and where to point in the source for it.
#[derive(Debug)]
struct Issue {
    reason: String,
    locator: Locator,
}

/// How to find the line of an [`Issue`] in the source text.
#[derive(Debug)]
enum Locator {
    /// The first line assigning this key.
    Key(&'static str),
    /// The first line containing this text.
    Text(String),
}

impl Locator {
    fn line_in(&self, text: &str) -> Option<usize> {
        let mut lines = text.lines();
        let idx = match self {
            Self::Key(key) => lines.position(|line| line_has_key(line, key)),
            Self::Text(needle) => lines.position(|line| line.contains(needle.as_str())),
        };
        idx.map(|idx| idx + 1)
    }
}

fn issue(locator: Locator, reason: impl Into<String>) -> Issue {
    Issue { reason: reason.into(), locator }
}

/// Where a template string sits in a spec, for the rules on which placeholders it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Argv,
    Path,
    Header,
    Body,
    Rollback,
}

impl ToolSpec {
    /// Checks every rule a parsed spec must also satisfy: name and version, timeout range,
    /// argv not empty and never a shell's `-c` string, placeholders that refer to a declared
    /// parameter or a `{target.*}` field, no declared parameter left unused, and so on.
    ///
    /// # Errors
    /// [`ConstructionError::InvalidSpec`] with `origin` = `tool NAME` and no line. Use
    /// [`parse_spec`] to get lines.
    pub fn validate(&self) -> ConstructionResult<()> {
        self.check().map_err(|issue| ConstructionError::InvalidSpec {
            origin: format!("tool {}", self.name),
            line: None,
            reason: issue.reason,
        })
    }

    /// Checks a call's parameters without running anything: unknown names, missing
    /// required ones, values not matching their pattern.
    ///
    /// # Errors
    /// [`ConstructionError::InvalidParams`].
    pub fn check_params(&self, params: &Value) -> ConstructionResult<()> {
        crate::params::resolve(self, params).map(drop)
    }

    /// Checks that `target` advertises the capability this tool needs, if any.
    ///
    /// # Errors
    /// [`ConstructionError::MissingCapability`].
    pub fn check_target(&self, target: &ToolTarget) -> ConstructionResult<()> {
        match &self.capability {
            Some(capability) if !target.capabilities.iter().any(|cap| cap == capability) => {
                Err(ConstructionError::MissingCapability {
                    tool: self.name.clone(),
                    capability: capability.clone(),
                    service: target.service.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the tool requires a `host.` capability of its target: only then may a command
    /// act on the target from the core's own machine.
    pub fn acts_on_host(&self) -> bool {
        self.capability.as_deref().is_some_and(|c| c.starts_with(HOST_CAPABILITY_PREFIX))
    }

    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The rollback call for a run of this tool with `params` on `target`: the rollback
    /// tool's name and its parameters with placeholders substituted. `None` when the spec
    /// has no rollback.
    ///
    /// # Errors
    /// [`ConstructionError::InvalidParams`] when `params` do not fit this spec.
    pub fn rollback_call(&self, target: &ToolTarget, params: &Value) -> ConstructionResult<Option<(String, Value)>> {
        let Some(rollback) = &self.rollback else {
            return Ok(None);
        };
        let values = crate::params::resolve(self, params)?;
        let ctx = template::Context { tool: &self.name, params: &values, target, secrets: None };
        let params = template::render_json(&Value::Object(rollback.params.clone()), &ctx)?;
        Ok(Some((rollback.tool.clone(), params)))
    }

    fn check(&self) -> Result<(), Issue> {
        if !template::is_param_name(&self.name) {
            return Err(issue(
                Locator::Key("name"),
                format!("name `{}` must be 1 to 64 lowercase letters, digits or `_`", self.name),
            ));
        }
        if self.version == 0 {
            return Err(issue(Locator::Key("version"), "version must be at least 1"));
        }
        if self.description.trim().is_empty() {
            return Err(issue(Locator::Key("description"), "description must not be empty"));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(issue(
                Locator::Key("timeout_ms"),
                format!("timeout_ms must be between 1 and {MAX_TIMEOUT_MS}, not {}", self.timeout_ms),
            ));
        }
        if let Some(capability) = &self.capability {
            let valid = (1..=128).contains(&capability.len())
                && capability
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
            if !valid {
                return Err(issue(
                    Locator::Key("capability"),
                    format!(
                        "capability `{capability}` must be 1 to 128 lowercase letters, \
                         digits, `_`, `.` or `-`"
                    ),
                ));
            }
        }
        let mut declared = BTreeSet::new();
        for param in &self.params {
            let locator = || Locator::Text(format!("\"{}\"", param.name));
            if !template::is_param_name(&param.name) {
                return Err(issue(
                    locator(),
                    format!("param name `{}` must be 1 to 64 lowercase letters, digits or `_`", param.name),
                ));
            }
            if !declared.insert(param.name.as_str()) {
                return Err(issue(locator(), format!("param `{}` is declared twice", param.name)));
            }
        }

        let mut used = BTreeSet::new();
        let mut check_template = |text: &str, slot: Slot| -> Result<(), Issue> {
            let here = || Locator::Text(text.to_owned());
            for placeholder in template::placeholders(text).map_err(|reason| issue(here(), reason))? {
                match placeholder {
                    Placeholder::Param(name) => {
                        if !declared.contains(name) {
                            return Err(issue(
                                Locator::Text(format!("{{{name}}}")),
                                format!("placeholder `{{{name}}}` refers to no declared param"),
                            ));
                        }
                        used.insert(name.to_owned());
                    }
                    Placeholder::Target(_) => {}
                    Placeholder::Secret(name) if slot != Slot::Header => {
                        return Err(issue(
                            Locator::Text(format!("{{secret:{name}}}")),
                            format!("`{{secret:{name}}}` may only appear in header values"),
                        ));
                    }
                    Placeholder::Secret(_) => {}
                }
            }
            Ok(())
        };

        match &self.kind {
            ToolKind::Command(command) => {
                check_argv(&command.argv)?;
                for arg in &command.argv {
                    check_template(arg, Slot::Argv)?;
                }
                // A command runs on the core's own machine: one that acts on its target by
                // name (`systemctl start {target.service}`) may only do so for services that
                // advertise a `host.` capability, which only an admin can register.
                let names_target = command.argv.iter().any(|arg| {
                    template::placeholders(arg)
                        .is_ok_and(|found| found.iter().any(|p| matches!(p, Placeholder::Target(_))))
                });
                if names_target && !self.acts_on_host() {
                    return Err(issue(
                        Locator::Key("capability"),
                        format!(
                            "a command that names its target runs on the core's machine, so it must require a \
                             `{HOST_CAPABILITY_PREFIX}` capability (which only an admin can register)"
                        ),
                    ));
                }
            }
            ToolKind::Http(http) => {
                check_http(http)?;
                check_template(&http.path, Slot::Path)?;
                for value in http.headers.values() {
                    check_template(value, Slot::Header)?;
                }
                if let Some(body) = &http.body {
                    for_each_string(body, &mut |text| check_template(text, Slot::Body))?;
                }
            }
            ToolKind::Builtin(builtin) => {
                if !BUILTIN_NAMES.contains(&builtin.name.as_str()) {
                    return Err(issue(
                        Locator::Text(format!("\"{}\"", builtin.name)),
                        format!("unknown builtin `{}`; known: {}", builtin.name, BUILTIN_NAMES.join(", ")),
                    ));
                }
            }
        }
        if let Some(rollback) = &self.rollback {
            if !template::is_param_name(&rollback.tool) {
                return Err(issue(
                    Locator::Key("tool"),
                    format!("rollback tool `{}` is not a valid tool name", rollback.tool),
                ));
            }
            for value in rollback.params.values() {
                for_each_string(value, &mut |text| check_template(text, Slot::Rollback))?;
            }
        }

        // A built-in reads its parameters in code, so only declarative kinds can leave one
        // unused, which is always a mistake (a typo in a placeholder, or a dead parameter).
        if !matches!(self.kind, ToolKind::Builtin(_)) {
            if let Some(unused) = self.params.iter().find(|param| !used.contains(&param.name)) {
                return Err(issue(
                    Locator::Text(format!("\"{}\"", unused.name)),
                    format!("param `{}` is declared but never used as `{{{}}}`", unused.name, unused.name),
                ));
            }
        }
        Ok(())
    }
}

fn for_each_string(value: &Value, visit: &mut dyn FnMut(&str) -> Result<(), Issue>) -> Result<(), Issue> {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter().try_for_each(|item| for_each_string(item, visit)),
        Value::Object(map) => map.values().try_for_each(|item| for_each_string(item, visit)),
        _ => Ok(()),
    }
}

fn basename(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// Whether `arg` is `-c` or a cluster of short options holding `c` (`-ec`, `-lc`).
fn is_dash_c(arg: &str) -> bool {
    arg.strip_prefix('-').is_some_and(|flags| {
        !flags.starts_with('-') && flags.contains('c') && flags.chars().all(|c| c.is_ascii_alphabetic())
    })
}

fn check_argv(argv: &[String]) -> Result<(), Issue> {
    let here = || Locator::Key("argv");
    let Some(program) = argv.first() else {
        return Err(issue(here(), "argv must not be empty"));
    };
    if program.trim().is_empty() {
        return Err(issue(here(), "argv[0] must name a program"));
    }
    if template::placeholders(program).is_ok_and(|found| !found.is_empty()) {
        return Err(issue(here(), "argv[0] must name a fixed program, not hold a placeholder"));
    }
    if argv.iter().any(|arg| arg.contains('\0')) {
        return Err(issue(here(), "argv elements cannot hold NUL bytes"));
    }
    // Walk through wrappers (`env VAR=1 sudo bash -c ...`) to the program that really runs.
    for (idx, arg) in argv.iter().enumerate() {
        let name = basename(arg);
        if SHELLS.contains(&name) {
            if argv[idx + 1..].iter().any(|later| is_dash_c(later)) {
                return Err(issue(
                    here(),
                    format!(
                        "argv runs `{name} -c`: tools run argv, never a shell string; \
                         call the program directly"
                    ),
                ));
            }
            break;
        }
        if idx > 0 && (arg == "-S" || arg.starts_with("--split-string")) {
            return Err(issue(
                here(),
                "argv runs `env -S`, which splits a string into a command line: \
                 tools run argv, never a shell string",
            ));
        }
        let wrapper_arg =
            idx > 0 && (arg.starts_with('-') || arg.contains('=') || arg.starts_with(|c: char| c.is_ascii_digit()));
        if !(WRAPPERS.contains(&name) || wrapper_arg) {
            break;
        }
    }
    Ok(())
}

fn check_http(http: &HttpSpec) -> Result<(), Issue> {
    if !http.path.starts_with('/') {
        return Err(issue(
            Locator::Key("path"),
            format!("path `{}` must start with `/` (it is relative to the target's address)", http.path),
        ));
    }
    if http.path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(issue(Locator::Key("path"), "path cannot hold whitespace or control characters"));
    }
    if http.method == HttpMethod::Get && http.body.is_some() {
        return Err(issue(Locator::Key("body"), "a GET request carries no body"));
    }
    if let Some(base) = &http.base_url {
        let valid = reqwest::Url::parse(base).is_ok_and(|url| {
            matches!(url.scheme(), "http" | "https") && url.query().is_none() && url.fragment().is_none()
        });
        if !valid {
            return Err(issue(
                Locator::Key("base_url"),
                format!("base_url `{base}` must be an http:// or https:// URL without query or fragment"),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (name, value) in &http.headers {
        let here = || Locator::Text(name.clone());
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(issue(here(), format!("`{name}` is not a valid header name")));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(issue(here(), format!("header `{name}` is set twice")));
        }
        if http.bearer_secret.is_some() && name.eq_ignore_ascii_case("authorization") {
            return Err(issue(here(), "header `Authorization` conflicts with `bearer_secret`"));
        }
        if value.chars().any(char::is_control) {
            return Err(issue(here(), format!("header `{name}` cannot hold control characters")));
        }
    }
    if let Some(secret) = &http.bearer_secret {
        let valid = (1..=64).contains(&secret.len()) && secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(issue(Locator::Key("bearer_secret"), "bearer_secret must be 1 to 64 letters, digits or `_`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
