//! The AI layer: embeddings that let the knowledge graph find a past problem worded
//! differently, and chat completion that can sharpen a diagnosis.
//!
//! Boundaries: [`Embedder`] and [`AiProvider`].
//! - `embedder/`: [`HashingEmbedder`] (offline feature hashing, the documented fallback) and
//!   [`OpenAiEmbedder`] (the OpenAI embeddings endpoint).
//! - `provider/`: [`AnthropicProvider`], [`OpenAiProvider`] (hosted and OpenAI-compatible local
//!   servers) and [`BudgetedProvider`], which puts any provider inside token and cost budgets.
//! - `transport.rs`: timeouts, retries with backoff and `retry-after`, the circuit breaker.
//! - `secret.rs`: [`ApiKey`] and [`KeySource`]: keys never reach logs, errors or `Debug`.
//! - `sse.rs`: server-sent events, for streamed answers.
//!
//! No agent depends on an [`AiProvider`] being configured: everything works without one.

mod config;
mod embedder;
mod error;
mod provider;
mod secret;
mod sse;
mod transport;

pub use config::{AiConfig, EmbedderConfig};
pub use embedder::{Embedder, HashingEmbedder, OpenAiEmbedder};
pub use error::{AiError, AiResult};
pub use provider::{
    AiProvider, AnthropicProvider, BudgetConfig, BudgetedProvider, ChatMessage, ChatRequest, ChatResponse, ChatRole,
    OpenAiProvider, ProviderConfig, ProviderKind, StopReason, ToolCall, ToolDefinition, Usage, UsageRecord,
    UsageReport, RESPOND_TOOL,
};
pub use secret::{ApiKey, KeySource};
pub use transport::RetryPolicy;
