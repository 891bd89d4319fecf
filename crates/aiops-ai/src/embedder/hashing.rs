//! Feature hashing: the offline embedder that needs no model files.

use async_trait::async_trait;

use super::Embedder;
use crate::{AiError, AiResult};

/// Feature hashing of lowercased word unigrams and bigrams into a fixed number of buckets,
/// with a hashed sign, then L2 normalisation.
///
/// It captures shared wording, not meaning: two problems described with the same words come
/// out close, paraphrases do not. It needs nothing but the text, so it is the offline default.
#[derive(Debug, Clone)]
pub struct HashingEmbedder {
    dimensions: usize,
    model: String,
}

impl HashingEmbedder {
    /// An embedder producing vectors of `dimensions` components.
    ///
    /// # Errors
    /// [`AiError::Invalid`] when `dimensions` is 0.
    pub fn new(dimensions: usize) -> AiResult<Self> {
        if dimensions == 0 {
            return Err(AiError::Invalid("embedding dimensions must be at least 1".into()));
        }
        Ok(Self { dimensions, model: format!("hashing-fnv1a-{dimensions}") })
    }

    fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut vector = vec![0f32; self.dimensions];
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let mut add = |feature: &str, weight: f32| {
            let hash = fnv1a(feature.as_bytes());
            let bucket = (hash % self.dimensions as u64) as usize;
            let sign = if (hash >> 63) & 1 == 0 { 1.0 } else { -1.0 };
            vector[bucket] += sign * weight;
        };
        for word in &words {
            add(word, 1.0);
        }
        for pair in words.windows(2) {
            add(&format!("{} {}", pair[0], pair[1]), 0.5);
        }
        super::normalize(&mut vector);
        vector
    }
}

/// FNV-1a, chosen because it is stable across Rust versions and platforms (std's hasher is not
/// guaranteed to be), so stored embeddings stay comparable after an upgrade.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[async_trait]
impl Embedder for HashingEmbedder {
    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn embed(&self, texts: &[String]) -> AiResult<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[tokio::test]
    async fn same_words_are_close_and_different_words_are_not() {
        let embedder = HashingEmbedder::new(384).unwrap();
        let texts = [
            "service bookmarks symptom http_error_ratio | pool timed out waiting for connection",
            "service bookmarks symptom http_error_ratio | pool timed out waiting for a connection",
            "service billing symptom http_latency | disk full on /var",
        ]
        .map(String::from);
        let v = embedder.embed(&texts).await.unwrap();
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(|x| x.len() == 384));
        let norm: f32 = v[0].iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(cosine(&v[0], &v[1]) > 0.85, "{}", cosine(&v[0], &v[1]));
        assert!(cosine(&v[0], &v[2]) < 0.4, "{}", cosine(&v[0], &v[2]));
        assert_eq!(embedder.embed(&texts[..1]).await.unwrap()[0], v[0], "not deterministic");
        assert!(HashingEmbedder::new(0).is_err());
    }
}
