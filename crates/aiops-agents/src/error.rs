//! Errors of agents, split into retryable and not.

/// Result of agent work.
pub type AgentResult<T> = Result<T, AgentError>;

/// Why an agent could not handle an event.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The event's payload is not what its type promises. Retrying won't help: it is
    /// acknowledged and logged.
    #[error("malformed {event_type} event {id}: {reason}")]
    Malformed {
        /// Event type.
        event_type: String,
        /// Event id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The event mesh failed; retry.
    #[error("event mesh: {0}")]
    Events(#[from] aiops_events::EventsError),
    /// The knowledge graph failed; retry.
    #[error("knowledge graph: {0}")]
    Knowledge(#[from] aiops_knowledge::KnowledgeError),
    /// The registry failed; retry.
    #[error("registry: {0}")]
    Registry(#[from] aiops_registry::RegistryError),
    /// The AI layer failed; retry.
    #[error("ai: {0}")]
    Ai(#[from] aiops_ai::AiError),
}

impl AgentError {
    /// Whether handling the same event again may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Malformed { .. })
    }
}
