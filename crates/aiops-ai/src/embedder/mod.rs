//! The `Embedder` trait and its implementations.
//!
//! - `hashing.rs`: [`HashingEmbedder`], offline feature hashing, the documented fallback.

mod hashing;

use std::fmt;

use async_trait::async_trait;

use crate::AiResult;

pub use hashing::HashingEmbedder;

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
