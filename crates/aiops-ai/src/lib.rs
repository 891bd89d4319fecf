//! The AI layer: embeddings that let the knowledge graph find a past problem worded
//! differently, and chat completion that can sharpen a diagnosis.
//!
//! Boundaries: [`Embedder`] and [`AiProvider`].
//! - `embedder/`: [`LocalEmbedder`] (all-MiniLM-L6-v2 in-process, the default),
//!   [`OpenAiEmbedder`] (the OpenAI embeddings endpoint) and [`HashingEmbedder`] (offline
//!   feature hashing, the fallback when the model files are missing).
//! - `provider/`: [`AnthropicProvider`], [`OpenAiProvider`] (hosted and OpenAI-compatible local
//!   servers) and [`BudgetedProvider`], which puts any provider inside token and cost budgets.
//! - `transport.rs`: timeouts, retries with backoff and `retry-after`, the circuit breaker.
//! - `secret.rs`: [`ApiKey`] and [`KeySource`]: keys never reach logs, errors or `Debug`.
//! - `sse.rs`: server-sent events, for streamed answers.
//!
//! No agent depends on an [`AiProvider`] being configured: everything works without one.

mod config;
pub mod embedder;
mod error;
mod provider;
mod secret;
mod sse;
mod transport;

pub use config::{AiConfig, EmbedderConfig};
pub use embedder::{
    default_model_dir, Embedder, HashingEmbedder, LocalEmbedder, LocalEmbedderOptions, LocalRuntime, OpenAiEmbedder,
    MINILM_DIMENSIONS, RUNTIME_FILE,
};
pub use error::{AiError, AiResult};
pub use provider::{
    AiProvider, AnthropicProvider, BudgetConfig, BudgetedProvider, ChatMessage, ChatRequest, ChatResponse, ChatRole,
    OpenAiProvider, ProviderConfig, ProviderKind, StopReason, ToolCall, ToolDefinition, Usage, UsageRecord,
    UsageReport, RESPOND_TOOL,
};
pub use secret::{ApiKey, KeySource};
pub use transport::RetryPolicy;
