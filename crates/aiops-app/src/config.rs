//! The config tree and how it loads.
//!
//! Layers, later ones winning: built-in defaults (the embedded, offline setup: an empty file
//! is a valid config), the TOML file, then environment variables `AIOPS__<SECTION>__<KEY>`
//! (for example `AIOPS__SERVER__LISTEN=0.0.0.0:7070`; values parse as TOML scalars when they
//! can, as strings otherwise). Every struct refuses unknown keys, and after loading every
//! problem is reported at once with its key path.

use std::path::{Path, PathBuf};

use aiops_agents::AgentsConfig;
use aiops_ai::AiConfig;
use aiops_events::EventsConfig;
use aiops_knowledge::KnowledgeConfig;
use aiops_registry::RegistryConfig;
use aiops_server::Scope;
use serde::{Deserialize, Serialize};

use crate::{AppError, AppResult};

const ENV_PREFIX: &str = "AIOPS__";

/// The whole configuration of `aiops serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded backends keep their files. Default: `./aiops-data`.
    pub data_dir: PathBuf,
    /// The HTTP API.
    pub server: ServerConfig,
    /// The event mesh.
    pub events: EventsConfig,
    /// The knowledge graph (and the registry and audit tables of the embedded engine).
    pub knowledge: KnowledgeConfig,
    /// The service registry: check defaults, and a directory of registrations.
    pub registry: RegistryConfig,
    /// Embeddings and language models.
    pub ai: AiConfig,
    /// Failure patterns beyond the shipped ones.
    pub patterns: PatternsConfig,
    /// Remediation tools beyond the shipped ones.
    pub tools: ToolsConfig,
    /// Agent thresholds and healing limits.
    pub agents: AgentsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("aiops-data"),
            server: ServerConfig::default(),
            events: EventsConfig::default(),
            knowledge: KnowledgeConfig::default(),
            registry: RegistryConfig::default(),
            ai: AiConfig::default(),
            patterns: PatternsConfig::default(),
            tools: ToolsConfig::default(),
            agents: AgentsConfig::default(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default: `127.0.0.1:7070` (loopback only).
    pub listen: String,
    /// Largest request body, in bytes. Default: 1048576.
    pub max_body_bytes: usize,
    /// Most events in one ingest batch. Default: 500.
    pub max_batch: usize,
    /// API tokens. None configured means the API is open; configure tokens before listening
    /// on anything but loopback.
    pub tokens: Vec<TokenConfig>,
    /// Browser reports from pages that include `/v1/browser.js`.
    pub browser: BrowserConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7070".into(),
            max_body_bytes: 1024 * 1024,
            max_batch: 500,
            tokens: Vec::new(),
            browser: BrowserConfig::default(),
        }
    }
}

/// Who may send browser reports. A page cannot keep a secret, so these take no token: only
/// pages served from the listed origins may send them, at a bounded rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowserConfig {
    /// Origins (`scheme://host[:port]`) whose pages may report, or `*` for any. Default: none.
    pub allowed_origins: Vec<String>,
    /// Batches per second one origin may send (bursts of twice that). Default: 20.
    pub batches_per_second: f64,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), batches_per_second: 20.0 }
    }
}

/// One API token. Its value comes from an environment variable or a file, never from the
/// config text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Name recorded in the audit log.
    pub name: String,
    /// Environment variable holding the token.
    #[serde(default)]
    pub value_env: Option<String>,
    /// File holding the token (trailing whitespace is ignored).
    #[serde(default)]
    pub value_file: Option<PathBuf>,
    /// What it may do: `read`, `ingest`, `admin`.
    pub scopes: Vec<Scope>,
}

/// `[patterns]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatternsConfig {
    /// Directory of user pattern files (`*.toml`), loaded after the shipped ones.
    pub dir: Option<PathBuf>,
}

/// `[tools]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// Directory of user tool specs (`*.toml`), registered after the shipped ones.
    pub dir: Option<PathBuf>,
    /// Environment variable holding the bearer token HTTP tools send to services' admin
    /// endpoints (the `admin_token` secret).
    pub admin_token_env: Option<String>,
}

impl Config {
    /// Loads defaults, then `file` (if given), then the `AIOPS__*` variables of `env`.
    ///
    /// # Errors
    /// [`AppError::Config`] naming the file or variable and every problem found.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> AppResult<Self> {
        let (mut table, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| AppError::Io { context: format!("reading {}", path.display()), source })?;
                let table: toml::Table = toml::from_str(&text).map_err(|err| AppError::Config {
                    origin: path.display().to_string(),
                    problems: err.to_string(),
                })?;
                (table, path.display().to_string())
            }
            None => (toml::Table::new(), "defaults".to_owned()),
        };
        let mut overridden = Vec::new();
        for (key, value) in env {
            let Some(path) = key.strip_prefix(ENV_PREFIX) else { continue };
            let path: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(AppError::Config { origin: key, problems: "empty key segment".into() });
            }
            set_path(&mut table, &path, parse_scalar(&value))
                .map_err(|problem| AppError::Config { origin: key.clone(), problems: problem })?;
            overridden.push(key);
        }
        let origin = if overridden.is_empty() { origin } else { format!("{origin} + {}", overridden.join(", ")) };
        let config: Config = Config::deserialize(toml::Value::Table(table))
            .map_err(|err| AppError::Config { origin: origin.clone(), problems: err.to_string() })?;
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(AppError::Config { origin, problems: problems.join("\n") });
        }
        Ok(config)
    }

    /// Every semantic problem, each with its key path.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.server.listen.parse::<std::net::SocketAddr>() {
            Err(_) => {
                problems.push(format!("server.listen: {:?} is not an address like 127.0.0.1:7070", self.server.listen))
            }
            Ok(addr) if !addr.ip().is_loopback() && self.server.tokens.is_empty() => problems.push(format!(
                "server.listen: {addr} is reachable from other machines, so server.tokens must be configured"
            )),
            Ok(_) => {}
        }
        if self.server.max_batch == 0 {
            problems.push("server.max_batch: must be at least 1".into());
        }
        if self.server.max_body_bytes < 1024 {
            problems.push("server.max_body_bytes: must be at least 1024".into());
        }
        let browser = &self.server.browser;
        if !(browser.batches_per_second > 0.0 && browser.batches_per_second.is_finite()) {
            problems.push("server.browser.batches_per_second: must be above 0".into());
        }
        for (idx, origin) in browser.allowed_origins.iter().enumerate() {
            let valid = origin == "*"
                || reqwest::Url::parse(origin).is_ok_and(|url| {
                    matches!(url.scheme(), "http" | "https") && url.path() == "/" && url.query().is_none()
                });
            if !valid {
                problems.push(format!(
                    "server.browser.allowed_origins[{idx}]: {origin:?} is not an origin (scheme://host[:port]) or *"
                ));
            }
        }
        for (idx, token) in self.server.tokens.iter().enumerate() {
            if token.value_env.is_some() == token.value_file.is_some() {
                problems.push(format!("server.tokens[{idx}]: set exactly one of value_env and value_file"));
            }
            if token.scopes.is_empty() {
                problems.push(format!("server.tokens[{idx}].scopes: name at least one scope"));
            }
        }
        if self.knowledge.dimensions() != self.ai.embedder.dimensions() {
            problems.push(format!(
                "knowledge.dimensions ({}) must equal the embedder's dimensions ({})",
                self.knowledge.dimensions(),
                self.ai.embedder.dimensions()
            ));
        }
        if let KnowledgeConfig::Sqlite(sqlite) = &self.knowledge {
            let share = sqlite.vector_index.probe_share;
            if !(share > 0.0 && share <= 1.0) {
                problems.push(format!("knowledge.vector_index.probe_share: must be within (0, 1], got {share}"));
            }
        }
        problems.extend(self.registry.problems());
        let monitor = &self.agents.monitor;
        if !(monitor.error_ratio_threshold > 0.0 && monitor.error_ratio_threshold <= 1.0) {
            problems.push("agents.monitor.error_ratio_threshold: must be within (0, 1]".into());
        }
        if monitor.window.min_requests == 0 || monitor.window.window_ms == 0 {
            problems.push("agents.monitor.window: window_ms and min_requests must be at least 1".into());
        }
        if monitor.crash_loop_restarts < 2 || monitor.crash_loop_window_ms == 0 {
            problems.push(
                "agents.monitor.crash_loop_restarts must be at least 2 and crash_loop_window_ms at least 1".into(),
            );
        }
        let metrics = &monitor.metrics;
        if !(metrics.anomaly_threshold > 0.0 && metrics.anomaly_threshold <= 1.0) || metrics.max_series == 0 {
            problems.push(
                "agents.monitor.metrics: anomaly_threshold must be within (0, 1] and max_series at least 1".into(),
            );
        }
        let anomaly = &metrics.anomaly;
        let alphas_ok = anomaly.baseline_alphas.iter().chain([&anomaly.seasonal_alpha]).all(|a| *a > 0.0 && *a <= 1.0);
        let buckets: u64 = match anomaly.seasonal_bucket_secs {
            0 => 0,
            width => anomaly.seasonal_periods_secs.iter().map(|period| period.div_ceil(width)).sum(),
        };
        if !alphas_ok || anomaly.baseline_alphas.is_empty() || buckets > MAX_SEASONAL_BUCKETS {
            problems.push(format!(
                "agents.monitor.metrics.anomaly: baseline_alphas (at least one) and seasonal_alpha must be within (0, 1], \
                 and the seasons at most {MAX_SEASONAL_BUCKETS} buckets per series in all (they have {buckets})"
            ));
        }
        let shape_ok = (0.0..=1.0).contains(&anomaly.shape_weight)
            && (1..=MAX_SHAPE_STEP).contains(&anomaly.shape_step)
            && (2..=MAX_SHAPE_WARMUP).contains(&anomaly.shape_warmup)
            && anomaly.shape_categories <= MAX_SHAPE_CATEGORIES;
        if !shape_ok {
            problems.push(format!(
                "agents.monitor.metrics.anomaly: shape_weight must be within [0, 1], shape_step within 1 to \
                 {MAX_SHAPE_STEP}, shape_warmup within 2 to {MAX_SHAPE_WARMUP} and shape_categories at most \
                 {MAX_SHAPE_CATEGORIES}"
            ));
        }
        for (name, bound) in &metrics.bounds {
            let ordered = match (bound.above, bound.below) {
                (None, None) => false,
                (Some(above), Some(below)) => below < above,
                _ => true,
            };
            if !ordered {
                problems.push(format!(
                    "agents.monitor.metrics.bounds.{name}: needs `above`, `below` or both, with below < above"
                ));
            }
        }
        if self.agents.healing.max_attempts_per_problem == 0 {
            problems.push("agents.healing.max_attempts_per_problem: must be at least 1".into());
        }
        problems
    }

    /// The default configuration as TOML.
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Config::default()).unwrap_or_default()
    }
}

/// Seasonal buckets one metric series may keep (5-minute buckets over a week), so that
/// `max_series` series stay within a known memory.
const MAX_SEASONAL_BUCKETS: u64 = 2_016;
/// Most points per downsampled value of the shape detector.
const MAX_SHAPE_STEP: usize = 3_600;
/// Most warm-up vectors (128 bytes each) and categories (144 bytes each) of a shape detector.
const MAX_SHAPE_WARMUP: usize = 1_024;
const MAX_SHAPE_CATEGORIES: usize = 1_024;

fn parse_scalar(text: &str) -> toml::Value {
    // Parse as the value of a one-key table, so `5`, `true`, `0.2` and `["a"]` keep their type.
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut current = table;
    for segment in parents {
        let entry = current.entry(segment.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| format!("{segment} is not a section"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aiops.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn empty_file_is_the_embedded_default() {
        let (_dir, path) = write("");
        assert_eq!(Config::load(Some(&path), []).unwrap(), Config::default());
    }

    #[test]
    fn misspelt_key_is_refused_with_its_name() {
        let (_dir, path) = write("[server]\nlisten_addr = \"127.0.0.1:1\"\n");
        let err = Config::load(Some(&path), []).unwrap_err().to_string();
        assert!(err.contains("listen_addr"), "{err}");
        let err = Config::load(None, [("AIOPS__AGENTS__HEALING__MAX_ACTIONS".to_owned(), "3".to_owned())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_actions") && err.contains("AIOPS__AGENTS__HEALING__MAX_ACTIONS"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file_with_typed_values() {
        let (_dir, path) = write("[server]\nlisten = \"127.0.0.1:1000\"\n");
        let env = [
            ("AIOPS__SERVER__LISTEN".to_owned(), "127.0.0.1:2000".to_owned()),
            ("AIOPS__AGENTS__HEALING__MAX_ACTIONS_PER_SERVICE".to_owned(), "2".to_owned()),
            ("AIOPS__AGENTS__HEALING__DRY_RUN".to_owned(), "true".to_owned()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let config = Config::load(Some(&path), env).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:2000");
        assert_eq!(config.agents.healing.max_actions_per_service, 2);
        assert!(config.agents.healing.dry_run);
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let (_dir, path) = write(
            "[server]\nlisten = \"nowhere\"\n[agents.monitor]\nerror_ratio_threshold = 2.0\n[agents.monitor.metrics.bounds.queue]\nabove = 1.0\nbelow = 5.0\n[agents.monitor.metrics.anomaly]\nseasonal_bucket_secs = 1\n[knowledge]\nbackend = \"sqlite\"\ndimensions = 12\n",
        );
        let err = Config::load(Some(&path), []).unwrap_err().to_string();
        for key in [
            "server.listen",
            "error_ratio_threshold",
            "metrics.bounds.queue",
            "metrics.anomaly",
            "knowledge.dimensions",
        ] {
            assert!(err.contains(key), "{key} missing from: {err}");
        }
    }

    #[test]
    fn shape_settings_out_of_bounds_are_refused() {
        for setting in [
            "shape_weight = inf",
            "shape_weight = -0.5",
            "shape_step = 0",
            "shape_warmup = 1000000",
            "shape_categories = 100000",
        ] {
            let (_dir, path) = write(&format!("[agents.monitor.metrics.anomaly]\n{setting}\n"));
            let err = Config::load(Some(&path), []).unwrap_err().to_string();
            assert!(err.contains("shape_weight must be within [0, 1]"), "{setting}: {err}");
        }
    }

    #[test]
    fn example_config_is_current() {
        let example = include_str!("../../../config/aiops.example.toml");
        assert_eq!(
            example,
            Config::default_toml(),
            "config/aiops.example.toml is out of date: regenerate it with `aiops config default > config/aiops.example.toml`"
        );
    }
}
