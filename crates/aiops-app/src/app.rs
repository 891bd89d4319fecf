//! Builds everything from the config, runs it, and shuts it down in order.
//!
//! Shutdown order: stop accepting HTTP requests (in-flight ones finish, so every `202` was
//! already durable), then stop the agents (each finishes its current event; unacknowledged
//! events stay pending in the mesh for the next start), then close the mesh.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aiops_agents::{standard_agents, AgentContext, Coordinator, Streams};
use aiops_ai::AiProvider;
use aiops_construction::{Secrets, ToolCatalog};
use aiops_events::EventBus;
use aiops_knowledge::{Database, Knowledge};
use aiops_patterns::PatternLibrary;
use aiops_registry::{load_services_dir, HealthChecker, PgRegistry, Registry, SqliteRegistry};
use aiops_server::{ApiLimits, ApiState, ApiToken, BrowserIngest};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{AppError, AppResult, Config};

/// Longest wait for agents to finish their current event at shutdown.
const AGENT_STOP_DEADLINE: Duration = Duration::from_secs(20);

/// A running core.
#[derive(Debug)]
pub struct App {
    addr: SocketAddr,
    shutdown: CancellationToken,
    agents_shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
    coordinator: JoinHandle<()>,
    bus: Arc<dyn EventBus>,
    streams: Streams,
    knowledge: Knowledge,
    registry: Arc<dyn Registry>,
}

/// The process-wide Prometheus recorder; installed once, shared by every `App` in the process.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}

/// What `aiops serve` would refuse in this environment although the file is valid: API tokens
/// whose variable is unset, whose file cannot be read, or whose value is too short.
pub fn environment_problems(config: &Config) -> Vec<String> {
    match read_tokens(config) {
        Ok(_) => Vec::new(),
        Err(err) => vec![err.to_string()],
    }
}

fn read_tokens(config: &Config) -> AppResult<Vec<ApiToken>> {
    config
        .server
        .tokens
        .iter()
        .map(|token| {
            let secret = match (&token.value_env, &token.value_file) {
                (Some(var), _) => std::env::var(var).map_err(|_| AppError::Config {
                    origin: "server.tokens".into(),
                    problems: format!("token {}: environment variable {var} is not set", token.name),
                })?,
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|source| AppError::Io {
                        context: format!("reading token file {}", path.display()),
                        source,
                    })?
                    .trim_end()
                    .to_owned(),
                (None, None) => unreachable!("Config::problems requires one of value_env and value_file"),
            };
            // Presented tokens are compared trimmed, so a value is too.
            let secret = secret.trim().to_owned();
            if secret.len() < 16 {
                return Err(AppError::Config {
                    origin: "server.tokens".into(),
                    problems: format!("token {}: the value must be at least 16 characters", token.name),
                });
            }
            Ok(ApiToken { name: token.name.clone(), secret, scopes: token.scopes.clone() })
        })
        .collect::<AppResult<Vec<ApiToken>>>()
        .and_then(|tokens| {
            // With two equal values the first token's scopes would silently win.
            for (i, token) in tokens.iter().enumerate() {
                if let Some(twin) = tokens[..i].iter().find(|other| other.secret == token.secret) {
                    return Err(AppError::Config {
                        origin: "server.tokens".into(),
                        problems: format!("tokens {} and {} have the same value", twin.name, token.name),
                    });
                }
            }
            Ok(tokens)
        })
}

/// Opens the configured knowledge store alone (for `aiops kb`), migrating it if needed.
///
/// # Errors
/// When the store cannot be opened.
pub async fn open_knowledge(config: &Config) -> AppResult<Knowledge> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| AppError::Io {
        context: format!("creating data directory {}", config.data_dir.display()),
        source,
    })?;
    Ok(config.knowledge.build(&config.data_dir, &|name| std::env::var(name).ok()).await?)
}

/// The HTTP client of agents and tools: no proxy, since targets are on the internal network.
pub(crate) fn http_client() -> AppResult<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|err| AppError::Io { context: "building the HTTP client".into(), source: std::io::Error::other(err) })
}

/// The shipped patterns plus the user's (`[patterns] dir`).
pub(crate) fn load_patterns(config: &Config) -> AppResult<PatternLibrary> {
    let mut patterns = PatternLibrary::shipped()?;
    if let Some(dir) = &config.patterns.dir {
        let n_files = patterns.load_dir(dir)?;
        tracing::info!(dir = %dir.display(), files = n_files, "Loaded user patterns.");
    }
    Ok(patterns)
}

/// The shipped tools plus the user's (`[tools] dir`), with the admin token as a secret.
pub(crate) fn load_tools(config: &Config, http: &reqwest::Client) -> AppResult<ToolCatalog> {
    let mut secrets = Secrets::new();
    if let Some(var) = &config.tools.admin_token_env {
        match std::env::var(var) {
            Ok(value) => secrets.insert("admin_token", value),
            Err(_) => {
                tracing::warn!(variable = %var, "tools.admin_token_env names an unset variable; admin calls go without a token.")
            }
        }
    }
    let tools = ToolCatalog::new(http.clone(), secrets).with_shipped_tools()?;
    if let Some(dir) = &config.tools.dir {
        let specs = tools.load_dir(dir)?;
        tracing::info!(dir = %dir.display(), tools = specs.len(), "Loaded user tools.");
    }
    Ok(tools)
}

/// Knowledge id of the node that names the embedder the stored vectors come from.
pub const EMBEDDER_NODE: &str = "insight:embedder";

/// Compares the embedder with the one the knowledge graph's vectors were made with, and records
/// it when none is recorded (`overwrite`: always, after `aiops kb reembed`). Returns the model
/// recorded before when it differs: vectors of two models are not comparable, so similar past
/// problems are not found until the nodes are embedded again.
///
/// # Errors
/// When the knowledge graph cannot be read or written.
pub async fn check_embedder(
    store: &dyn aiops_knowledge::KnowledgeStore,
    embedder: &dyn aiops_ai::Embedder,
    overwrite: bool,
) -> AppResult<Option<String>> {
    let recorded = store.get_node(EMBEDDER_NODE).await?;
    let previous = recorded.as_ref().and_then(|node| node.data["model"].as_str().map(str::to_owned));
    if previous.as_deref() == Some(embedder.model()) {
        return Ok(None);
    }
    if previous.is_none() || overwrite {
        let node = aiops_knowledge::Node::new(
            EMBEDDER_NODE,
            aiops_knowledge::NodeKind::Insight,
            "embedder of the stored vectors",
            serde_json::json!({
                "text": "The model that embedded the stored nodes; another model's vectors are not comparable.",
                "model": embedder.model(),
                "dimensions": embedder.dimensions(),
            }),
        );
        store.upsert_node(node).await?;
    }
    Ok(previous.filter(|_| !overwrite))
}

impl App {
    /// Starts the core on the configured listen address.
    ///
    /// # Errors
    /// When the address cannot be bound or a backend cannot be opened.
    pub async fn start(config: Config) -> AppResult<Self> {
        let listener = TcpListener::bind(&config.server.listen)
            .await
            .map_err(|source| AppError::Io { context: format!("binding {}", config.server.listen), source })?;
        Self::start_on(config, listener).await
    }

    /// Starts the core on an already bound listener (tests bind port 0).
    ///
    /// # Errors
    /// When a backend cannot be opened or the config is inconsistent.
    pub async fn start_on(config: Config, listener: TcpListener) -> AppResult<Self> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(AppError::Config { origin: "start".into(), problems: problems.join("\n") });
        }
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| AppError::Io {
            context: format!("creating data directory {}", data_dir.display()),
            source,
        })?;
        let bus = config.events.build(data_dir).await?;
        let knowledge = config.knowledge.build(data_dir, &|name| std::env::var(name).ok()).await?;
        let registry: Arc<dyn Registry> = match &knowledge.database {
            Database::Sqlite(pool) => Arc::new(SqliteRegistry::from_pool(pool.clone()).await?),
            Database::Postgres(pool) => Arc::new(PgRegistry::from_pool(pool.clone()).await?),
        };
        if let Some(dir) = &config.registry.services_dir {
            let registrations = load_services_dir(dir)?;
            for registration in &registrations {
                registry.register(registration.clone()).await?;
            }
            tracing::info!(dir = %dir.display(), services = registrations.len(), "Registered services from files.");
        }
        let embedder = config.ai.embedder.build()?;
        if let Some(previous) = check_embedder(knowledge.store.as_ref(), embedder.as_ref(), false).await? {
            tracing::warn!(
                stored = %previous,
                current = %embedder.model(),
                "The knowledge graph's vectors come from another embedder, so similar past problems will not be found; run `aiops kb reembed`."
            );
        }
        let ai = match &config.ai.provider {
            Some(provider) => {
                let built = provider.build()?;
                tracing::info!(provider = %built.name(), model = %built.model(), "Diagnosis consults a language model.");
                Some(built)
            }
            None => None,
        };
        let patterns = load_patterns(&config)?;
        let new_versions = aiops_agents::record_pattern_versions(knowledge.store.as_ref(), &patterns)
            .await
            .map_err(|err| AppError::Config { origin: "patterns".into(), problems: err.to_string() })?;
        if new_versions > 0 {
            tracing::info!(versions = new_versions, "Recorded new pattern versions in the knowledge graph.");
        }
        let http = http_client()?;
        let tools = load_tools(&config, &http)?;
        let restored = aiops_agents::restore_tools(knowledge.store.as_ref(), &tools).await.map_err(|err| {
            AppError::Io { context: "restoring admitted tools".into(), source: std::io::Error::other(err.to_string()) }
        })?;
        if restored > 0 {
            tracing::info!(tools = restored, "Restored tools admitted earlier.");
        }
        let streams = Streams::default();
        // Unique per start, also for two cores in one process: it names this core's consumers
        // and the health checks it leases.
        let instance = format!("aiops-{}-{}", std::process::id(), &aiops_model::new_id()[24..]);
        let ctx = AgentContext {
            bus: bus.clone(),
            streams: streams.clone(),
            knowledge: knowledge.store.clone(),
            audit: knowledge.audit.clone(),
            registry: registry.clone(),
            health: Arc::new(HealthChecker::new(config.registry.clone(), http.clone(), instance.clone())),
            embedder,
            ai: ai.clone().map(|provider| provider as Arc<dyn AiProvider>),
            tools: tools.clone(),
            patterns: Arc::new(patterns),
            http,
            instance: instance.clone(),
        };
        // Two tokens, so that shutdown stops the server before the agents.
        let shutdown = CancellationToken::new();
        let agents_shutdown = CancellationToken::new();
        let coordinator =
            tokio::spawn(Coordinator::new(ctx, standard_agents(&config.agents)).run(agents_shutdown.clone()));

        let metrics = metrics_handle();
        let state = ApiState {
            bus: bus.clone(),
            streams: streams.clone(),
            knowledge: knowledge.store.clone(),
            audit: knowledge.audit.clone(),
            registry: registry.clone(),
            balancer: Default::default(),
            tools,
            tokens: Arc::new(read_tokens(&config)?),
            render_metrics: Arc::new(move || metrics.render()),
            limits: ApiLimits {
                max_body_bytes: config.server.max_body_bytes,
                max_batch: config.server.max_batch,
                ..ApiLimits::default()
            },
            ai,
            browser: Arc::new(BrowserIngest::new(
                config.server.browser.allowed_origins.clone(),
                config.server.browser.batches_per_second,
            )),
        };
        let addr = listener
            .local_addr()
            .map_err(|source| AppError::Io { context: "reading the bound address".into(), source })?;
        let server_shutdown = shutdown.clone();
        let server = tokio::spawn(aiops_server::serve(listener, aiops_server::router(state), async move {
            server_shutdown.cancelled().await;
        }));
        tracing::info!(%addr, data_dir = %data_dir.display(), "AI-Ops core started.");
        Ok(Self { addr, shutdown, agents_shutdown, server, coordinator, bus, streams, knowledge, registry })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The event mesh.
    pub fn bus(&self) -> Arc<dyn EventBus> {
        self.bus.clone()
    }

    /// Stream names.
    pub fn streams(&self) -> &Streams {
        &self.streams
    }

    /// The knowledge backends.
    pub fn knowledge(&self) -> &Knowledge {
        &self.knowledge
    }

    /// The registry.
    pub fn registry(&self) -> Arc<dyn Registry> {
        self.registry.clone()
    }

    /// Stops the server, then the agents, then closes the mesh.
    ///
    /// # Errors
    /// When the mesh cannot be closed cleanly (nothing acknowledged is lost either way).
    pub async fn shutdown(self) -> AppResult<()> {
        self.shutdown.cancel();
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "The HTTP server stopped with an error."),
            Err(err) => tracing::warn!(error = %err, "The HTTP server task failed."),
        }
        self.agents_shutdown.cancel();
        if tokio::time::timeout(AGENT_STOP_DEADLINE, self.coordinator).await.is_err() {
            tracing::warn!("Agents did not stop in time; their unacknowledged events stay pending.");
        }
        self.bus.close().await?;
        tracing::info!("AI-Ops core stopped.");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_store_remembers_its_embedder_and_names_a_different_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = aiops_knowledge::SqliteKnowledgeStore::open(&dir.path().join("kb.db"), 384).await.unwrap();
        let first = aiops_ai::HashingEmbedder::new(384).unwrap();
        let other = aiops_ai::HashingEmbedder::new(16).unwrap();
        assert_eq!(check_embedder(&store, &first, false).await.unwrap(), None, "recorded on first use");
        assert_eq!(check_embedder(&store, &first, false).await.unwrap(), None);
        assert_eq!(check_embedder(&store, &other, false).await.unwrap().as_deref(), Some("hashing-fnv1a-384"));
        assert_eq!(check_embedder(&store, &other, true).await.unwrap(), None, "reembed records the new one");
        assert_eq!(check_embedder(&store, &other, false).await.unwrap(), None);
    }

    #[test]
    fn tokens_that_could_never_work_as_meant_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let with_tokens = |values: &[&str]| {
            let mut text = String::new();
            for (i, value) in values.iter().enumerate() {
                let file = dir.path().join(format!("t{i}"));
                std::fs::write(&file, value).unwrap();
                text += &format!("[[server.tokens]]\nname = \"t{i}\"\nvalue_file = {file:?}\nscopes = [\"read\"]\n");
            }
            let path = dir.path().join("aiops.toml");
            std::fs::write(&path, text).unwrap();
            environment_problems(&Config::load(Some(&path), Vec::new()).unwrap())
        };
        assert_eq!(with_tokens(&["read-secret-0123456789\n"]), Vec::<String>::new());
        let blank = with_tokens(&[&" ".repeat(24)]);
        assert!(blank[0].contains("at least 16 characters"), "{blank:?}");
        let twins = with_tokens(&["same-secret-0123456789", "same-secret-0123456789 "]);
        assert!(twins[0].contains("tokens t0 and t1 have the same value"), "{twins:?}");
    }
}
