//! Start-up errors.

/// Result of start-up.
pub type AppResult<T> = Result<T, AppError>;

/// Why the core could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is wrong; the message lists every problem with its key.
    #[error("invalid configuration ({origin}):\n{problems}")]
    Config {
        /// File name or `environment`.
        origin: String,
        /// One problem per line.
        problems: String,
    },
    /// The event mesh could not be opened.
    #[error("event mesh")]
    Events(#[from] aiops_events::EventsError),
    /// The knowledge store could not be opened.
    #[error("knowledge store")]
    Knowledge(#[from] aiops_knowledge::KnowledgeError),
    /// The registry could not be opened.
    #[error("registry")]
    Registry(#[from] aiops_registry::RegistryError),
    /// The AI layer could not be set up.
    #[error("ai")]
    Ai(#[from] aiops_ai::AiError),
    /// Pattern files are invalid.
    #[error("patterns")]
    Patterns(#[from] aiops_patterns::PatternError),
    /// Tool specs are invalid.
    #[error("tools")]
    Tools(#[from] aiops_construction::ConstructionError),
    /// An agent failed while replaying history.
    #[error("agent")]
    Agent(#[from] aiops_agents::AgentError),
    /// An I/O step failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
