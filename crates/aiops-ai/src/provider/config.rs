//! `[ai.provider]` in aiops.toml: which chat model to ask, how to reach it, what it may spend.
//!
//! There is deliberately no field for the key itself: it comes from `api_key_env` (default
//! `ANTHROPIC_API_KEY` or `OPENAI_API_KEY`) or from the file named by `api_key_file`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{AnthropicProvider, BudgetConfig, BudgetedProvider, OpenAiProvider};
use crate::transport::RetryPolicy;
use crate::{AiError, AiResult, KeySource};

/// Which wire format the provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The Anthropic Messages API.
    Anthropic,
    /// The OpenAI Chat Completions API.
    Openai,
    /// A server with the OpenAI Chat Completions API: Ollama, llama.cpp server, vLLM.
    OpenaiCompatible,
}

/// A chat provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Wire format.
    pub kind: ProviderKind,
    /// Model name, e.g. `claude-sonnet-4-5`, `gpt-4o-mini`, `llama3.1:8b`.
    pub model: String,
    /// API root. Defaults: `https://api.anthropic.com`, `https://api.openai.com/v1`; required
    /// for `openai_compatible` (e.g. `http://localhost:11434/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Environment variable holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// File holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// Ask for a server-sent-event stream instead of one JSON body. Default: false.
    #[serde(default)]
    pub stream: bool,
    /// Timeouts, retries, circuit breaker.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Token and cost budgets.
    #[serde(default)]
    pub budget: BudgetConfig,
}

impl ProviderConfig {
    /// Where the key comes from, with the vendor's usual variable as the default.
    ///
    /// # Errors
    /// [`AiError::Invalid`] when both a variable and a file are named.
    pub fn key_source(&self) -> AiResult<KeySource> {
        match (&self.api_key_env, &self.api_key_file) {
            (Some(_), Some(_)) => {
                Err(AiError::Invalid("ai.provider: set api_key_env or api_key_file, not both".into()))
            }
            (Some(name), None) => Ok(KeySource::Env(name.clone())),
            (None, Some(path)) => Ok(KeySource::File(path.clone())),
            (None, None) => Ok(match self.kind {
                ProviderKind::Anthropic => KeySource::Env("ANTHROPIC_API_KEY".into()),
                ProviderKind::Openai => KeySource::Env("OPENAI_API_KEY".into()),
                ProviderKind::OpenaiCompatible => KeySource::None,
            }),
        }
    }

    /// Builds the provider inside its budgets.
    ///
    /// # Errors
    /// [`AiError::Invalid`] for a missing key, model or base URL.
    pub fn build(&self) -> AiResult<Arc<BudgetedProvider>> {
        if self.model.trim().is_empty() {
            return Err(AiError::Invalid("ai.provider.model is empty".into()));
        }
        let key = self.key_source()?.load()?;
        let base_url = self.base_url.as_deref();
        if let Some(url) = base_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(AiError::Invalid(format!(
                    "ai.provider.base_url must start with http:// or https://, got {url}"
                )));
            }
        }
        let retry = self.retry.clone();
        let missing_key = || AiError::Invalid(format!("ai.provider ({:?}) needs an API key", self.kind));
        let provider: Arc<dyn super::AiProvider> = match self.kind {
            ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(
                base_url.unwrap_or(AnthropicProvider::DEFAULT_BASE_URL),
                &self.model,
                key.ok_or_else(missing_key)?,
                retry,
                self.stream,
            )?),
            ProviderKind::Openai => Arc::new(OpenAiProvider::openai(
                base_url.unwrap_or(OpenAiProvider::DEFAULT_BASE_URL),
                &self.model,
                key.ok_or_else(missing_key)?,
                retry,
                self.stream,
            )?),
            ProviderKind::OpenaiCompatible => {
                let url = base_url.ok_or_else(|| {
                    AiError::Invalid(
                        "ai.provider.base_url is required for openai_compatible (e.g. http://localhost:11434/v1)"
                            .into(),
                    )
                })?;
                Arc::new(OpenAiProvider::compatible(url, &self.model, key, retry, self.stream)?)
            }
        };
        Ok(Arc::new(BudgetedProvider::new(provider, self.budget.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AiProvider;

    /// The config arrives as TOML through the app; JSON exercises the same serde rules here.
    fn parse(json: &str) -> Result<ProviderConfig, String> {
        serde_json::from_str(json).map_err(|err| err.to_string())
    }

    #[test]
    fn a_key_in_the_config_text_is_refused() {
        let err = parse(r#"{"kind": "anthropic", "model": "claude-sonnet-4-5", "api_key": "sk-ant-123"}"#).unwrap_err();
        assert!(err.contains("unknown field `api_key`"), "{err}");
    }

    #[test]
    fn bad_settings_get_precise_errors() {
        let local = parse(r#"{"kind": "openai_compatible", "model": "llama3.1:8b"}"#).unwrap();
        let err = local.build().unwrap_err().to_string();
        assert!(err.contains("base_url is required"), "{err}");

        let both =
            parse(r#"{"kind": "openai", "model": "gpt-4.1", "api_key_env": "X", "api_key_file": "/run/key"}"#).unwrap();
        assert!(both.build().unwrap_err().to_string().contains("not both"));

        let unset =
            parse(r#"{"kind": "anthropic", "model": "claude", "api_key_env": "AIOPS_TEST_UNSET_KEY_VAR"}"#).unwrap();
        assert!(unset.build().unwrap_err().to_string().contains("AIOPS_TEST_UNSET_KEY_VAR"));

        let ftp = parse(r#"{"kind": "openai_compatible", "model": "m", "base_url": "ftp://host"}"#).unwrap();
        assert!(ftp.build().unwrap_err().to_string().contains("http://"));

        let ok =
            parse(r#"{"kind": "openai_compatible", "model": "m", "base_url": "http://127.0.0.1:11434/v1"}"#).unwrap();
        let provider = ok.build().unwrap();
        assert_eq!((provider.name(), provider.model()), ("openai-compatible", "m"));
    }
}
