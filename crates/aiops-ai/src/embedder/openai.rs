//! The OpenAI embeddings endpoint (`POST {base}/embeddings`), also served by OpenAI-compatible
//! servers (Ollama, vLLM, llama.cpp server with `--embeddings`).

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::json;

use super::{normalize, Embedder};
use crate::transport::{decode_json, RetryPolicy, Transport};
use crate::{AiError, AiResult, ApiKey};

/// Inputs per request; the API takes up to 2,048.
const BATCH: usize = 256;

/// Embeddings from an OpenAI-style HTTP API.
#[derive(Debug)]
pub struct OpenAiEmbedder {
    transport: Transport,
    url: String,
    model: String,
    dimensions: usize,
    /// Send `dimensions` in the request (text-embedding-3 models can shorten their vectors).
    request_dimensions: bool,
}

impl OpenAiEmbedder {
    /// An embedder calling `{base_url}/embeddings` for `model`, whose vectors have
    /// `dimensions` components; `request_dimensions` asks the API to shorten them to that size.
    ///
    /// # Errors
    /// [`AiError::Invalid`] when `dimensions` is 0 or the HTTP client cannot be built.
    pub fn new(
        base_url: &str,
        model: &str,
        dimensions: usize,
        request_dimensions: bool,
        key: Option<ApiKey>,
        policy: RetryPolicy,
    ) -> AiResult<Self> {
        if dimensions == 0 {
            return Err(AiError::Invalid("embedding dimensions must be at least 1".into()));
        }
        Ok(Self {
            transport: Transport::new("openai-embeddings", policy, key)?,
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            model: model.to_owned(),
            dimensions,
            request_dimensions,
        })
    }

    async fn embed_batch(&self, texts: &[String]) -> AiResult<Vec<Vec<f32>>> {
        let mut headers: Vec<(HeaderName, HeaderValue)> =
            vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        if let Some(key) = self.transport.key() {
            headers.push((AUTHORIZATION, self.transport.secret_header(&format!("Bearer {}", key.expose()))?));
        }
        let mut body = json!({"model": self.model, "input": texts, "encoding_format": "float"});
        if self.request_dimensions {
            body["dimensions"] = json!(self.dimensions);
        }
        let answer = self.transport.post(&self.url, &headers, &body, decode_json).await?;
        let list: WireList = serde_json::from_value(answer)
            .map_err(|err| self.transport.malformed(format!("not an embedding list: {err}")))?;
        if list.data.len() != texts.len() {
            return Err(self.transport.malformed(format!("{} embeddings for {} inputs", list.data.len(), texts.len())));
        }
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in list.data {
            if item.embedding.len() != self.dimensions {
                return Err(self.transport.malformed(format!(
                    "an embedding has {} components, {} were configured",
                    item.embedding.len(),
                    self.dimensions
                )));
            }
            let slot = vectors
                .get_mut(item.index)
                .ok_or_else(|| self.transport.malformed(format!("embedding index {} out of range", item.index)))?;
            let mut vector = item.embedding;
            normalize(&mut vector);
            *slot = Some(vector);
        }
        vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| v.ok_or_else(|| self.transport.malformed(format!("no embedding for input {index}"))))
            .collect()
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn embed(&self, texts: &[String]) -> AiResult<Vec<Vec<f32>>> {
        // The API refuses empty inputs; the contract gives them the zero vector.
        let wanted: Vec<usize> = (0..texts.len()).filter(|&i| !texts[i].trim().is_empty()).collect();
        let mut vectors = vec![vec![0.0; self.dimensions]; texts.len()];
        for chunk in wanted.chunks(BATCH) {
            let batch: Vec<String> = chunk.iter().map(|&i| texts[i].clone()).collect();
            for (&index, vector) in chunk.iter().zip(self.embed_batch(&batch).await?) {
                vectors[index] = vector;
            }
        }
        Ok(vectors)
    }
}

#[derive(Debug, Deserialize)]
struct WireList {
    data: Vec<WireEmbedding>,
}

#[derive(Debug, Deserialize)]
struct WireEmbedding {
    index: usize,
    embedding: Vec<f32>,
}
