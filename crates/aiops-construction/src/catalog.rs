//! `ToolCatalog`: the versioned registry of tools an agent may run.
//!
//! Tools are registered from specs (parsed files, the shipped set embedded in the binary,
//! or specs the Builder agent constructs). Each name keeps every version registered, and
//! [`ToolCatalog::get`] returns the highest. The catalog is cheap to clone and safe to
//! share between tasks; it does not run tools itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use crate::error::{ConstructionError, ConstructionResult};
use crate::secrets::Secrets;
use crate::spec::{parse_spec, ToolSpec};
use crate::tool::Tool;
use crate::tools::build_tool;

/// The tool specs shipped with the binary: file name and text.
pub(crate) const SHIPPED_TOOLS: &[(&str, &str)] = &[
    ("clear_cache.toml", include_str!("../tools/clear_cache.toml")),
    ("clear_faults.toml", include_str!("../tools/clear_faults.toml")),
    ("free_disk_space.toml", include_str!("../tools/free_disk_space.toml")),
    ("noop_probe.toml", include_str!("../tools/noop_probe.toml")),
    ("rebuild_indexes.toml", include_str!("../tools/rebuild_indexes.toml")),
    ("reload_certificate.toml", include_str!("../tools/reload_certificate.toml")),
    ("reset_db_pool.toml", include_str!("../tools/reset_db_pool.toml")),
    ("restart_service.toml", include_str!("../tools/restart_service.toml")),
    ("rollback_config.toml", include_str!("../tools/rollback_config.toml")),
    ("rollback_deploy.toml", include_str!("../tools/rollback_deploy.toml")),
    ("rollback_frontend.toml", include_str!("../tools/rollback_frontend.toml")),
    ("scale_workers.toml", include_str!("../tools/scale_workers.toml")),
    ("sqlite_integrity_check.toml", include_str!("../tools/sqlite_integrity_check.toml")),
    ("start_service.toml", include_str!("../tools/start_service.toml")),
    ("throttle_upstream.toml", include_str!("../tools/throttle_upstream.toml")),
    ("warm_cache.toml", include_str!("../tools/warm_cache.toml")),
];

/// Parses the specs shipped with the binary (from `crates/aiops-construction/tools/`).
///
/// # Errors
/// [`ConstructionError::InvalidSpec`] if a shipped file is broken, which a test rules out.
pub fn shipped_specs() -> ConstructionResult<Vec<ToolSpec>> {
    SHIPPED_TOOLS.iter().map(|(file, text)| parse_spec(text, &format!("shipped tools/{file}"))).collect()
}

/// Registered tools by name, then by version.
type Versions = BTreeMap<String, BTreeMap<u32, Arc<dyn Tool>>>;

/// A thread-safe, versioned set of tools. Clones share the same tools.
#[derive(Debug, Clone)]
pub struct ToolCatalog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    secrets: Secrets,
    // A std lock: critical sections are map lookups and inserts, never an `.await`.
    tools: RwLock<Versions>,
}

impl ToolCatalog {
    /// An empty catalog. HTTP tools share `http`; `secrets` are what their headers may use.
    pub fn new(http: reqwest::Client, secrets: Secrets) -> Self {
        Self { inner: Arc::new(Inner { http, secrets, tools: RwLock::new(BTreeMap::new()) }) }
    }

    /// This catalog with the [`shipped_specs`] registered.
    ///
    /// # Errors
    /// As [`ToolCatalog::register`], e.g. when a shipped tool's name is already registered
    /// with a higher version.
    pub fn with_shipped_tools(self) -> ConstructionResult<Self> {
        for spec in shipped_specs()? {
            self.register(spec)?;
        }
        Ok(self)
    }

    /// Validates `spec`, builds its tool and registers it; returns the version registered.
    /// A name already registered needs a strictly higher version; registering a version
    /// again with an identical spec is a no-op.
    ///
    /// # Errors
    /// [`ConstructionError::InvalidSpec`] when the spec does not validate;
    /// [`ConstructionError::VersionConflict`] when the version is not higher than the
    /// registered one (and is not an identical re-registration).
    pub fn register(&self, spec: ToolSpec) -> ConstructionResult<u32> {
        let name = spec.name.clone();
        let version = spec.version;
        let tool = build_tool(spec, &self.inner.http, &self.inner.secrets)?;
        let mut tools = self.inner.tools.write().unwrap_or_else(PoisonError::into_inner);
        let versions = tools.entry(name.clone()).or_default();
        if let Some(existing) = versions.get(&version) {
            if existing.spec() == tool.spec() {
                return Ok(version);
            }
        }
        if let Some((&registered, _)) = versions.last_key_value() {
            if version <= registered {
                return Err(ConstructionError::VersionConflict { name, registered, offered: version });
            }
        }
        versions.insert(version, tool);
        tracing::info!(tool = %name, version, "Tool registered.");
        Ok(version)
    }

    /// The highest registered version of the tool `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        let tools = self.inner.tools.read().unwrap_or_else(PoisonError::into_inner);
        tools.get(name).and_then(|versions| versions.last_key_value()).map(|(_, tool)| Arc::clone(tool))
    }

    /// A specific registered version of the tool `name`.
    pub fn get_version(&self, name: &str, version: u32) -> Option<Arc<dyn Tool>> {
        let tools = self.inner.tools.read().unwrap_or_else(PoisonError::into_inner);
        tools.get(name).and_then(|versions| versions.get(&version)).map(Arc::clone)
    }

    /// The registered versions of the tool `name`, ascending (empty when unknown).
    pub fn versions(&self, name: &str) -> Vec<u32> {
        let tools = self.inner.tools.read().unwrap_or_else(PoisonError::into_inner);
        tools.get(name).map(|versions| versions.keys().copied().collect()).unwrap_or_default()
    }

    /// The spec of the highest version of every tool, sorted by name.
    pub fn specs(&self) -> Vec<ToolSpec> {
        let tools = self.inner.tools.read().unwrap_or_else(PoisonError::into_inner);
        tools.values().filter_map(|versions| versions.last_key_value()).map(|(_, tool)| tool.spec().clone()).collect()
    }

    /// Parses every `*.toml` file in `dir` and registers the specs (by name, then version).
    /// Every file is parsed before any is registered, so a broken file registers nothing.
    ///
    /// # Errors
    /// [`ConstructionError::Io`] when the directory or a file cannot be read;
    /// [`ConstructionError::InvalidSpec`] for the first broken file (in name order);
    /// [`ConstructionError::VersionConflict`] as in [`ToolCatalog::register`].
    pub fn load_dir(&self, dir: &Path) -> ConstructionResult<Vec<ToolSpec>> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ConstructionError::Io { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
            let path = entry.map_err(io_error(dir))?.path();
            if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut specs = Vec::with_capacity(files.len());
        for path in &files {
            let text = std::fs::read_to_string(path).map_err(io_error(path))?;
            specs.push(parse_spec(&text, &path.display().to_string())?);
        }
        specs.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        for spec in &specs {
            self.register(spec.clone())?;
        }
        Ok(specs)
    }
}

#[cfg(test)]
mod tests;
