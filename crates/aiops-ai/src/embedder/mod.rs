//! The `Embedder` trait and its implementations.
//!
//! - `hashing.rs`: [`HashingEmbedder`], offline feature hashing, the documented fallback.
//! - `local/`: [`LocalEmbedder`], all-MiniLM-L6-v2 in-process (the default), on a native
//!   half-precision engine or on ONNX Runtime.
//! - `openai.rs`: [`OpenAiEmbedder`], the OpenAI embeddings endpoint and compatible servers.

mod hashing;
pub mod local;
mod openai;

use std::fmt;

use async_trait::async_trait;

use crate::AiResult;

pub use hashing::HashingEmbedder;
pub use local::{
    default_model_dir, LocalEmbedder, LocalEmbedderOptions, LocalRuntime, MINILM_DIMENSIONS, RUNTIME_FILE,
};
pub use openai::OpenAiEmbedder;

/// Turns texts into unit-length vectors whose cosine similarity reflects similarity of meaning.
///
/// # Contract
/// - Every vector has exactly [`Embedder::dimensions`] components and unit L2 norm (or is all
///   zeros for a text with nothing to embed).
/// - The same text always gives the same vector for one model.
/// - The output has one vector per input text, in order.
///
/// # Errors
/// [`crate::AiError::Invalid`] for a batch the model cannot take; [`crate::AiError::Unavailable`] when a
/// remote model cannot be reached.
#[async_trait]
pub trait Embedder: Send + Sync + fmt::Debug + 'static {
    /// Number of components of every vector.
    fn dimensions(&self) -> usize;
    /// Name of the model, recorded with stored embeddings.
    fn model(&self) -> &str;
    /// Embeds a batch of texts.
    async fn embed(&self, texts: &[String]) -> AiResult<Vec<Vec<f32>>>;
}

/// Scales `vector` to unit L2 norm (a zero vector stays zero).
pub(crate) fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
}
