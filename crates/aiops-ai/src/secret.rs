//! API keys: where they come from and how they stay out of logs, errors and `Debug` output.
//!
//! A key is read from an environment variable or from a file named in the configuration,
//! never from the configuration text itself (the config has no field that could hold one).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{AiError, AiResult};

/// An API key. `Debug` shows `ApiKey(<redacted>)`; there is no `Display` and no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key held by the caller.
    ///
    /// # Errors
    /// [`AiError::Invalid`] for an empty key or one that cannot go into an HTTP header.
    pub fn new(key: impl Into<String>) -> AiResult<Self> {
        let key = key.into();
        let key = key.trim();
        if key.is_empty() {
            return Err(AiError::Invalid("the API key is empty".into()));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AiError::Invalid("the API key holds characters an HTTP header cannot carry".into()));
        }
        Ok(Self(key.to_owned()))
    }

    /// The key itself, for the one place that puts it into a request header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the key in `text`, for details that came from elsewhere.
    pub(crate) fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "<redacted>")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where a provider's key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeySource {
    /// The named environment variable, e.g. `ANTHROPIC_API_KEY`.
    Env(String),
    /// A file holding the key (surrounding whitespace is ignored), e.g. a mounted secret.
    File(PathBuf),
    /// No key: local OpenAI-compatible servers (Ollama, llama.cpp, vLLM) need none.
    None,
}

impl KeySource {
    /// Reads the key.
    ///
    /// # Errors
    /// [`AiError::Invalid`] naming the variable or file (never its content) when it is unset,
    /// unreadable or empty.
    pub fn load(&self) -> AiResult<Option<ApiKey>> {
        match self {
            Self::None => Ok(None),
            Self::Env(name) => {
                let value = std::env::var(name).map_err(|_| {
                    AiError::Invalid(format!("environment variable {name} (the API key) is not set or not UTF-8"))
                })?;
                ApiKey::new(value)
                    .map(Some)
                    .map_err(|err| AiError::Invalid(format!("environment variable {name}: {}", reason(&err))))
            }
            Self::File(path) => {
                let value = read_key_file(path)?;
                ApiKey::new(value)
                    .map(Some)
                    .map_err(|err| AiError::Invalid(format!("key file {}: {}", path.display(), reason(&err))))
            }
        }
    }
}

fn read_key_file(path: &Path) -> AiResult<String> {
    std::fs::read_to_string(path)
        .map_err(|err| AiError::Invalid(format!("cannot read the API key file {}: {err}", path.display())))
}

fn reason(err: &AiError) -> String {
    match err {
        AiError::Invalid(reason) => reason.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::new("sk-ant-secret-123").unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert_eq!(key.redact("bad key sk-ant-secret-123 given"), "bad key <redacted> given");
    }

    #[test]
    fn a_key_file_is_trimmed_and_errors_name_the_file_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "  sk-file-key\n").unwrap();
        let key = KeySource::File(path.clone()).load().unwrap().unwrap();
        assert_eq!(key.expose(), "sk-file-key");

        std::fs::write(&path, "sk-has space").unwrap();
        let err = KeySource::File(path.clone()).load().unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && !err.contains("sk-has"), "{err}");

        let missing = KeySource::File(dir.path().join("nope")).load().unwrap_err().to_string();
        assert!(missing.contains("nope"), "{missing}");
    }

    #[test]
    fn an_unset_variable_is_named() {
        let err = KeySource::Env("AIOPS_TEST_SURELY_UNSET_KEY".into()).load().unwrap_err().to_string();
        assert!(err.contains("AIOPS_TEST_SURELY_UNSET_KEY"), "{err}");
        assert!(KeySource::None.load().unwrap().is_none());
    }
}
