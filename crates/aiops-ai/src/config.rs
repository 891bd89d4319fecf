//! `[ai]` in aiops.toml: which embedder and which chat provider (if any) to use.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{
    AiError, AiResult, Embedder, HashingEmbedder, KeySource, OpenAiEmbedder, OpenAiProvider, ProviderConfig,
    RetryPolicy,
};

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
    /// The OpenAI embeddings endpoint, or a compatible server's.
    Openai {
        /// Model, e.g. `text-embedding-3-small`.
        model: String,
        /// Vector components (1536 for text-embedding-3-small; fewer are requested from the API
        /// when `shorten` is set).
        dimensions: usize,
        /// Ask the API for `dimensions` components (text-embedding-3 models only).
        #[serde(default)]
        shorten: bool,
        /// API root. Default: `https://api.openai.com/v1`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_url: Option<String>,
        /// Environment variable holding the key. Default: `OPENAI_API_KEY`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_env: Option<String>,
        /// File holding the key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_file: Option<PathBuf>,
        /// Timeouts and retries.
        #[serde(default)]
        retry: RetryPolicy,
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
            Self::Openai { model, dimensions, shorten, base_url, api_key_env, api_key_file, retry } => {
                let key = match (api_key_env, api_key_file) {
                    (Some(_), Some(_)) => {
                        return Err(AiError::Invalid("ai.embedder: set api_key_env or api_key_file, not both".into()))
                    }
                    (_, Some(path)) => KeySource::File(path.clone()),
                    (env, None) => KeySource::Env(env.clone().unwrap_or_else(|| "OPENAI_API_KEY".into())),
                };
                let base_url = base_url.as_deref().unwrap_or(OpenAiProvider::DEFAULT_BASE_URL);
                Arc::new(OpenAiEmbedder::new(base_url, model, *dimensions, *shorten, key.load()?, retry.clone())?)
            }
        })
    }

    /// Dimension of the vectors it makes.
    pub fn dimensions(&self) -> usize {
        match self {
            Self::Hashing { dimensions } | Self::Openai { dimensions, .. } => *dimensions,
        }
    }
}
