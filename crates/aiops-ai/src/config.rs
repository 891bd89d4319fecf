//! `[ai]` in aiops.toml: which embedder and which chat provider (if any) to use.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{
    default_model_dir, AiError, AiResult, Embedder, HashingEmbedder, KeySource, LocalEmbedder, LocalEmbedderOptions,
    LocalRuntime, OpenAiEmbedder, OpenAiProvider, ProviderConfig, RetryPolicy, MINILM_DIMENSIONS,
};

/// The AI section. The default works offline, with or without the local model's files.
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
    /// all-MiniLM-L6-v2 in-process (the default): the vectors of sentence-transformers, offline.
    /// Without `model_dir`, the files are looked for in `$AIOPS_MODEL_DIR`, then in
    /// `~/.cache/aiops-core/models/all-minilm-l6-v2` (`scripts/fetch-model.sh` puts them there);
    /// when they are not there, the hashing embedder is used instead, with a warning.
    Local {
        /// Directory with `tokenizer.json`, `model.safetensors` (native engine), `model.onnx` and
        /// the ONNX Runtime library.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_dir: Option<PathBuf>,
        /// `auto` (default): the native half-precision engine on CPUs with AVX512-FP16, ONNX
        /// Runtime elsewhere; `native` or `onnx` to force one.
        #[serde(default)]
        runtime: LocalRuntime,
        /// Threads that share a call. Default: 1.
        #[serde(default = "defaults::sessions")]
        sessions: usize,
        /// Texts per forward pass. Default: 8.
        #[serde(default = "defaults::batch_size")]
        batch_size: usize,
        /// Texts whose vectors are cached; 0 turns the cache off. Default: 4096.
        #[serde(default = "defaults::cache_entries")]
        cache_entries: usize,
        /// Characters of a text that are embedded (the model reads at most 256 tokens anyway).
        /// Default: 4096.
        #[serde(default = "defaults::max_input_chars")]
        max_input_chars: usize,
    },
    /// Deterministic feature hashing: instant, wording-level similarity; the fallback.
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
        Self::Local {
            model_dir: None,
            runtime: LocalRuntime::Auto,
            sessions: defaults::sessions(),
            batch_size: defaults::batch_size(),
            cache_entries: defaults::cache_entries(),
            max_input_chars: defaults::max_input_chars(),
        }
    }
}

mod defaults {
    pub(super) fn sessions() -> usize {
        1
    }
    pub(super) fn batch_size() -> usize {
        8
    }
    pub(super) fn cache_entries() -> usize {
        4096
    }
    pub(super) fn max_input_chars() -> usize {
        4096
    }
}

impl EmbedderConfig {
    /// Builds the configured embedder.
    ///
    /// # Errors
    /// When its settings are invalid.
    pub fn build(&self) -> AiResult<Arc<dyn Embedder>> {
        Ok(match self {
            Self::Local { model_dir, runtime, sessions, batch_size, cache_entries, max_input_chars } => {
                let options = LocalEmbedderOptions {
                    model_dir: model_dir.clone().unwrap_or_else(default_model_dir),
                    runtime: *runtime,
                    sessions: *sessions,
                    batch_size: *batch_size,
                    cache_entries: *cache_entries,
                    max_input_chars: *max_input_chars,
                };
                if model_dir.is_none() && !options.files_present() {
                    tracing::warn!(
                        dir = %options.model_dir.display(),
                        "The local embedding model is not installed; using the hashing embedder, which matches wording, not meaning. Install it with `bash scripts/fetch-model.sh`."
                    );
                    Arc::new(HashingEmbedder::new(MINILM_DIMENSIONS)?)
                } else {
                    Arc::new(LocalEmbedder::load(&options)?)
                }
            }
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
            Self::Local { .. } => MINILM_DIMENSIONS,
            Self::Hashing { dimensions } | Self::Openai { dimensions, .. } => *dimensions,
        }
    }
}
