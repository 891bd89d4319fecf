//! `[ai]` in aiops.toml: which embedder and which chat provider (if any) to use.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{AiResult, Embedder, HashingEmbedder, ProviderConfig};

/// The AI section. The default works offline with no model files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// Which embedder turns problem descriptions into vectors.
    pub embedder: EmbedderConfig,
    /// The chat model that assists diagnosis. Default: none; everything works without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderConfig>,
}

/// The embedder; its dimension must equal the knowledge store's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbedderConfig {
    /// Deterministic feature hashing (default): offline, instant, wording-level similarity.
    Hashing {
        /// Vector components. Default: 384.
        dimensions: usize,
    },
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self::Hashing { dimensions: 384 }
    }
}

impl EmbedderConfig {
    /// Builds the configured embedder.
    ///
    /// # Errors
    /// When its settings are invalid.
    pub fn build(&self) -> AiResult<Arc<dyn Embedder>> {
        Ok(match self {
            Self::Hashing { dimensions } => Arc::new(HashingEmbedder::new(*dimensions)?),
        })
    }

    /// Dimension of the vectors it makes.
    pub fn dimensions(&self) -> usize {
        match self {
            Self::Hashing { dimensions } => *dimensions,
        }
    }
}
