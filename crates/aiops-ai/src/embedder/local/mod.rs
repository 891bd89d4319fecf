//! all-MiniLM-L6-v2 in-process: the same vectors as sentence-transformers.
//!
//! The pipeline is sentence-transformers' own: WordPiece tokens (truncated at 256), the BERT
//! encoder, mean pooling over the text's tokens, L2 normalisation. Two engines run the encoder:
//!
//! - `native.rs` + `f16_gemm.rs`: the encoder written out in Rust, its matrix products in half
//!   precision on AVX512-FP16 (twice float32's arithmetic rate), from `model.safetensors`.
//!   Cosine with the float32 model ≥ 0.99999. Chosen by `runtime = "auto"` when the CPU has
//!   AVX512-FP16.
//! - `onnx.rs`: ONNX Runtime on `model.onnx` (float32), loaded from `libonnxruntime.so.1.32.0`;
//!   every other x86-64 CPU.
//!
//! The files come from `scripts/fetch-model.sh`, which checks their sha256.
//!
//! Speed: texts are sorted by length and run in batches (the ONNX engine pads a batch to its
//! longest text; the native one does not pad at all); `sessions` threads split a call between
//! them, which on two cores beats one session with two threads. A cache keyed by text answers
//! repeats (a recurring problem's signature) without running the model. Inputs longer than
//! `max_input_chars` are cut before tokenising, so a huge text costs no more than a long one.

#[allow(unsafe_code)]
mod f16_gemm;
pub mod native;
mod onnx;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use lru::LruCache;
use serde::{Deserialize, Serialize};
use tokenizers::{Encoding, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};

use self::f16_gemm::F16Kernel;
use self::native::{NativeEncoder, Tokens};
use self::onnx::OnnxEngine;
use super::Embedder;
use crate::{AiError, AiResult};

/// Components of every vector.
pub const MINILM_DIMENSIONS: usize = 384;
/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
/// The runtime file inside the model directory.
pub const RUNTIME_FILE: &str = "libonnxruntime.so.1.32.0";
/// The float32 checkpoint the native engine reads.
const WEIGHTS_FILE: &str = "model.safetensors";
const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// Which engine runs the encoder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalRuntime {
    /// The native engine when the CPU has AVX512-FP16, else ONNX Runtime.
    #[default]
    Auto,
    /// The native half-precision engine; an error on a CPU without AVX512-FP16.
    Native,
    /// ONNX Runtime.
    Onnx,
}

impl LocalRuntime {
    /// Whether this CPU can run the engine (`Native` needs AVX512-FP16).
    pub fn available(self) -> bool {
        self != Self::Native || F16Kernel::detect().is_some()
    }
}

/// How the local model runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEmbedderOptions {
    /// Directory with `tokenizer.json` and the files of the engines: `model.safetensors` (native),
    /// `model.onnx` and the runtime library (ONNX).
    pub model_dir: PathBuf,
    /// Which engine runs the encoder.
    pub runtime: LocalRuntime,
    /// Threads that share a call (ONNX: sessions of one thread each).
    pub sessions: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Texts whose vectors are kept; 0 disables the cache.
    pub cache_entries: usize,
    /// Characters of a text that are embedded; the rest is ignored.
    pub max_input_chars: usize,
}

impl LocalEmbedderOptions {
    /// Defaults for `model_dir`: one session, batches of 8, 4,096 cached texts, 4,096 characters.
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        Self {
            model_dir: model_dir.into(),
            runtime: LocalRuntime::Auto,
            sessions: 1,
            batch_size: 8,
            cache_entries: 4096,
            max_input_chars: 4096,
        }
    }

    /// The engine `runtime` picks on this CPU (`auto` takes ONNX Runtime when the native
    /// engine's checkpoint is missing, as in an install made before it existed).
    pub fn engine(&self) -> LocalRuntime {
        match self.runtime {
            LocalRuntime::Auto if F16Kernel::detect().is_some() && self.model_dir.join(WEIGHTS_FILE).is_file() => {
                LocalRuntime::Native
            }
            LocalRuntime::Auto => LocalRuntime::Onnx,
            chosen => chosen,
        }
    }

    /// The files the chosen engine reads.
    fn files(&self) -> &'static [&'static str] {
        match self.engine() {
            LocalRuntime::Native => &["tokenizer.json", WEIGHTS_FILE],
            _ => &["tokenizer.json", "model.onnx", RUNTIME_FILE],
        }
    }

    /// True when the directory has the chosen engine's files (their content is checked when
    /// loading).
    pub fn files_present(&self) -> bool {
        self.files().iter().all(|file| self.model_dir.join(file).is_file())
    }
}

/// The in-process all-MiniLM-L6-v2 embedder.
pub struct LocalEmbedder {
    inner: Arc<Inner>,
    cache: Option<Mutex<LruCache<String, Arc<[f32]>>>>,
    max_input_chars: usize,
}

struct Inner {
    engine: Engine,
    tokenizer: Tokenizer,
    batch_size: usize,
}

enum Engine {
    Native { encoder: NativeEncoder, threads: usize },
    Onnx(OnnxEngine),
}

impl Engine {
    fn workers(&self) -> usize {
        match self {
            Self::Native { threads, .. } => *threads,
            Self::Onnx(onnx) => onnx.workers(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Native { .. } => "native (AVX512-FP16)",
            Self::Onnx(_) => "ONNX Runtime",
        }
    }
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model", &MODEL_NAME)
            .field("engine", &self.inner.engine.name())
            .field("threads", &self.inner.engine.workers())
            .field("batch_size", &self.inner.batch_size)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// Loads the model.
    ///
    /// # Errors
    /// [`AiError::Invalid`] naming the missing or unreadable file and the command that fetches it.
    pub fn load(options: &LocalEmbedderOptions) -> AiResult<Self> {
        let dir = &options.model_dir;
        for file in options.files() {
            if !dir.join(file).is_file() {
                return Err(AiError::Invalid(format!(
                    "{} is missing; fetch the model with `bash scripts/fetch-model.sh {}`",
                    dir.join(file).display(),
                    dir.display()
                )));
            }
        }
        if options.sessions == 0 || options.batch_size == 0 || options.max_input_chars == 0 {
            return Err(AiError::Invalid("sessions, batch_size and max_input_chars must be at least 1".into()));
        }
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|err| AiError::Invalid(format!("cannot read {}: {err}", dir.join("tokenizer.json").display())))?;
        // The shipped tokenizer.json pads and truncates at a fixed 128 tokens; sentence-transformers
        // pads to the longest text of a batch and truncates at 256.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id: 0,
            pad_type_id: 0,
            pad_token: "[PAD]".into(),
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                ..TruncationParams::default()
            }))
            .map_err(|err| AiError::Invalid(format!("cannot configure the tokenizer: {err}")))?;
        let engine = match options.engine() {
            LocalRuntime::Native => {
                let kernel = F16Kernel::detect().ok_or_else(|| {
                    AiError::Invalid(
                        "runtime = \"native\" needs a CPU with AVX512-FP16; use \"auto\" or \"onnx\"".into(),
                    )
                })?;
                Engine::Native {
                    encoder: NativeEncoder::load(kernel, &dir.join(WEIGHTS_FILE))?,
                    threads: options.sessions,
                }
            }
            _ => Engine::Onnx(OnnxEngine::load(&dir.join("model.onnx"), &dir.join(RUNTIME_FILE), options.sessions)?),
        };
        tracing::debug!(engine = engine.name(), threads = engine.workers(), "local embedding model loaded");
        let cache = NonZeroUsize::new(options.cache_entries).map(|n| Mutex::new(LruCache::new(n)));
        Ok(Self {
            inner: Arc::new(Inner { engine, tokenizer, batch_size: options.batch_size }),
            cache,
            max_input_chars: options.max_input_chars,
        })
    }

    /// Texts whose vectors are in the cache.
    pub fn cached_texts(&self) -> usize {
        self.cache.as_ref().map_or(0, |cache| lock(cache).len())
    }

    fn cached(&self, text: &str) -> Option<Arc<[f32]>> {
        self.cache.as_ref().and_then(|cache| lock(cache).get(text).cloned())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn dimensions(&self) -> usize {
        MINILM_DIMENSIONS
    }

    fn model(&self) -> &str {
        MODEL_NAME
    }

    async fn embed(&self, texts: &[String]) -> AiResult<Vec<Vec<f32>>> {
        let texts: Vec<String> = texts.iter().map(|text| cut(text, self.max_input_chars)).collect();
        let mut vectors: Vec<Option<Vec<f32>>> = texts
            .iter()
            .map(|text| {
                if text.trim().is_empty() {
                    Some(vec![0.0; MINILM_DIMENSIONS])
                } else {
                    self.cached(text).map(|v| v.to_vec())
                }
            })
            .collect();
        let mut missing: Vec<String> =
            texts.iter().zip(&vectors).filter(|(_, v)| v.is_none()).map(|(t, _)| t.clone()).collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let inner = Arc::clone(&self.inner);
            let computed = {
                let missing = missing.clone();
                tokio::task::spawn_blocking(move || inner.embed_all(&missing))
                    .await
                    .map_err(|err| AiError::Invalid(format!("the embedding task failed: {err}")))??
            };
            let computed: std::collections::HashMap<&str, Vec<f32>> =
                missing.iter().map(String::as_str).zip(computed).collect();
            if let Some(cache) = &self.cache {
                let mut cache = lock(cache);
                for (text, vector) in &computed {
                    cache.put((*text).to_owned(), Arc::from(vector.as_slice()));
                }
            }
            for (text, slot) in texts.iter().zip(vectors.iter_mut()) {
                if slot.is_none() {
                    *slot = computed.get(text.as_str()).cloned();
                }
            }
        }
        Ok(vectors.into_iter().map(|v| v.unwrap_or_else(|| vec![0.0; MINILM_DIMENSIONS])).collect())
    }
}

/// Vectors with the position of their text.
type Indexed = Vec<(usize, Vec<f32>)>;

impl Inner {
    /// Embeds distinct texts, longest first in batches, split between the sessions.
    fn embed_all(&self, texts: &[String]) -> AiResult<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let batches: Vec<&[usize]> = order.chunks(self.batch_size).collect();
        let workers = self.engine.workers().min(batches.len()).max(1);
        let mut results: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let outcomes: Vec<AiResult<Indexed>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|worker| {
                    // Batches are dealt round-robin, so every worker gets long and short ones.
                    let mine: Vec<&[usize]> = batches.iter().skip(worker).step_by(workers).copied().collect();
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        for batch in mine {
                            let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i].as_str()).collect();
                            let vectors = self.run(worker, &batch_texts)?;
                            done.extend(batch.iter().copied().zip(vectors));
                        }
                        Ok(done)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(AiError::Invalid("an embedding worker panicked".into()))))
                .collect()
        });
        for outcome in outcomes {
            for (index, vector) in outcome? {
                results[index] = vector;
            }
        }
        Ok(results)
    }

    /// One forward pass, then mean pooling and normalisation.
    fn run(&self, worker: usize, texts: &[&str]) -> AiResult<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|err| AiError::Invalid(format!("tokenizing: {err}")))?;
        match &self.engine {
            Engine::Native { encoder, .. } => {
                // Padding is at the end; the native engine takes each text's own tokens only.
                let tokens: Vec<Tokens<'_>> = encodings
                    .iter()
                    .map(|encoding| {
                        let length = encoding.get_attention_mask().iter().filter(|&&m| m != 0).count();
                        Tokens { ids: &encoding.get_ids()[..length], type_ids: &encoding.get_type_ids()[..length] }
                    })
                    .collect();
                encoder.embed(&tokens)
            }
            Engine::Onnx(onnx) => {
                let (length, hidden) = onnx.hidden_states(worker, &encodings)?;
                Ok(encodings
                    .iter()
                    .enumerate()
                    .map(|(row, encoding)| mean_pool(&hidden, row, length, encoding))
                    .collect())
            }
        }
    }
}

/// The unit-length mean of text `row`'s hidden states over its attention mask.
fn mean_pool(hidden: &[f32], row: usize, length: usize, encoding: &Encoding) -> Vec<f32> {
    let mut pooled = vec![0f32; MINILM_DIMENSIONS];
    let mut weight = 0f32;
    for (token, &mask) in encoding.get_attention_mask().iter().enumerate() {
        if mask == 0 {
            continue;
        }
        weight += 1.0;
        let start = (row * length + token) * MINILM_DIMENSIONS;
        pooled.iter_mut().zip(&hidden[start..start + MINILM_DIMENSIONS]).for_each(|(sum, &x)| *sum += x);
    }
    pooled.iter_mut().for_each(|v| *v /= weight.max(1e-9));
    super::normalize(&mut pooled);
    pooled
}

/// The first `max_chars` characters of `text`.
fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// The default model directory: `$AIOPS_MODEL_DIR`, else `~/.cache/aiops-core/models/all-minilm-l6-v2`
/// (where `scripts/fetch-model.sh` puts the files).
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AIOPS_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/aiops-core/models/all-minilm-l6-v2")
}
