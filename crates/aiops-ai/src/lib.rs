//! The AI layer: embeddings that let the knowledge graph find a past problem worded
//! differently, and chat completion that can sharpen a diagnosis.
//!
//! Boundaries: [`Embedder`] and [`AiProvider`]. Implementations:
//! - [`HashingEmbedder`]: deterministic feature hashing, offline, no model files; the
//!   documented last-resort fallback and the embedded default.
//!
//! No agent depends on an [`AiProvider`] being configured: everything works without one.

mod config;
mod embedder;
mod error;
mod provider;

pub use config::{AiConfig, EmbedderConfig};
pub use embedder::{Embedder, HashingEmbedder};
pub use error::{AiError, AiResult};
pub use provider::{AiProvider, ChatMessage, ChatRequest, ChatResponse, ChatRole, ToolCall, ToolDefinition, Usage};
