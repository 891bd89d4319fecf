//! all-MiniLM-L6-v2 in-process on ONNX Runtime: the same vectors as sentence-transformers.
//!
//! The pipeline is sentence-transformers' own: WordPiece tokens (padded to the longest text of a
//! batch, truncated at 256 tokens), the BERT encoder, mean pooling over the attention mask, L2
//! normalisation. The files come from `scripts/fetch-model.sh`: `model.onnx`, `tokenizer.json`
//! and the runtime `libonnxruntime.so.1.32.0`, which is loaded when the first embedder is built.
//!
//! Speed: texts are sorted by length and run in batches, so that padding stays small; several
//! sessions (one thread each) split a call between them, which on two cores beats one session
//! with two threads. A cache keyed by text answers repeats (a recurring problem's signature)
//! without running the model. Inputs longer than `max_input_chars` are cut before tokenising, so
//! a huge text costs no more than a long one.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use async_trait::async_trait;
use lru::LruCache;
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};

use super::Embedder;
use crate::{AiError, AiResult};

/// Components of every vector.
pub const MINILM_DIMENSIONS: usize = 384;
/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
/// The runtime file inside the model directory.
pub const RUNTIME_FILE: &str = "libonnxruntime.so.1.32.0";
const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// How the local model runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEmbedderOptions {
    /// Directory with `model.onnx`, `tokenizer.json` and the runtime.
    pub model_dir: PathBuf,
    /// Sessions that share a call, each on one thread.
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
        Self { model_dir: model_dir.into(), sessions: 1, batch_size: 8, cache_entries: 4096, max_input_chars: 4096 }
    }

    /// True when the directory has the three files (their content is checked when loading).
    pub fn files_present(&self) -> bool {
        ["model.onnx", "tokenizer.json", RUNTIME_FILE].iter().all(|file| self.model_dir.join(file).is_file())
    }
}

/// The in-process all-MiniLM-L6-v2 embedder.
pub struct LocalEmbedder {
    inner: Arc<Inner>,
    cache: Option<Mutex<LruCache<String, Arc<[f32]>>>>,
    max_input_chars: usize,
}

struct Inner {
    sessions: Vec<Mutex<Session>>,
    tokenizer: Tokenizer,
    wants_token_type_ids: bool,
    batch_size: usize,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model", &MODEL_NAME)
            .field("sessions", &self.inner.sessions.len())
            .field("batch_size", &self.inner.batch_size)
            .finish_non_exhaustive()
    }
}

/// ONNX Runtime allows one environment per process, built before any session; it lives forever.
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

fn environment(runtime: &Path) -> AiResult<&'static Environment> {
    let environment = ENVIRONMENT.get_or_init(|| {
        ort::init_from(runtime)
            .map_err(|err| format!("cannot load ONNX Runtime from {}: {err}", runtime.display()))?
            .with_name("aiops")
            .build()
            .map_err(|err| format!("cannot start ONNX Runtime: {err}"))
    });
    environment.as_ref().map_err(|err| AiError::Invalid(err.clone()))
}

/// Builds a session; a function of its own because ort's builder errors only convert into
/// `ort::Error` inside a function returning `ort::Result`.
fn build_session(environment: &Environment, model: &Path) -> ort::Result<Session> {
    Session::builder(environment)?
        // ONNX Runtime 1.32's fused SkipLayerNormalization kernel is slower on CPU than the
        // unfused Add + LayerNormalization (measured 64 → 76 sentences/s on one core).
        .with_config_entry("optimization.disable_specified_optimizers", "SkipLayerNormFusion")?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .commit_from_file(model)
}

impl LocalEmbedder {
    /// Loads the model.
    ///
    /// # Errors
    /// [`AiError::Invalid`] naming the missing or unreadable file and the command that fetches it.
    pub fn load(options: &LocalEmbedderOptions) -> AiResult<Self> {
        let dir = &options.model_dir;
        for file in ["model.onnx", "tokenizer.json", RUNTIME_FILE] {
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
        let environment = environment(&dir.join(RUNTIME_FILE))?;
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
        let model = dir.join("model.onnx");
        let mut sessions = Vec::with_capacity(options.sessions);
        for _ in 0..options.sessions {
            let session = build_session(environment, &model)
                .map_err(|err| AiError::Invalid(format!("cannot load {}: {err}", model.display())))?;
            sessions.push(Mutex::new(session));
        }
        let wants_token_type_ids = lock(&sessions[0]).inputs().iter().any(|input| input.name() == "token_type_ids");
        let cache = NonZeroUsize::new(options.cache_entries).map(|n| Mutex::new(LruCache::new(n)));
        Ok(Self {
            inner: Arc::new(Inner { sessions, tokenizer, wants_token_type_ids, batch_size: options.batch_size }),
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
        let workers = self.sessions.len().min(batches.len()).max(1);
        let mut results: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let outcomes: Vec<AiResult<Indexed>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|worker| {
                    // Batches are dealt round-robin, so every worker gets long and short ones.
                    let mine: Vec<&[usize]> = batches.iter().skip(worker).step_by(workers).copied().collect();
                    let session = &self.sessions[worker];
                    scope.spawn(move || {
                        let mut session = lock(session);
                        let mut done = Vec::new();
                        for batch in mine {
                            let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i].as_str()).collect();
                            let vectors = self.run(&mut session, &batch_texts)?;
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
    fn run(&self, session: &mut Session, texts: &[&str]) -> AiResult<Vec<Vec<f32>>> {
        let failed = |what: &str, err: &dyn std::fmt::Display| AiError::Invalid(format!("{what}: {err}"));
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| failed("tokenizing", &e))?;
        let batch = encodings.len();
        let length = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * length);
        let mut mask = Vec::with_capacity(batch * length);
        let mut types = Vec::with_capacity(batch * length);
        for encoding in &encodings {
            ids.extend(encoding.get_ids().iter().map(|&x| i64::from(x)));
            mask.extend(encoding.get_attention_mask().iter().map(|&x| i64::from(x)));
            types.extend(encoding.get_type_ids().iter().map(|&x| i64::from(x)));
        }
        let shape = [batch as i64, length as i64];
        let mask_weights: Vec<f32> = mask.iter().map(|&m| m as f32).collect();
        let ids = Tensor::from_array((shape, ids)).map_err(|e| failed("input_ids", &e))?;
        let mask = Tensor::from_array((shape, mask)).map_err(|e| failed("attention_mask", &e))?;
        let outputs = if self.wants_token_type_ids {
            let types = Tensor::from_array((shape, types)).map_err(|e| failed("token_type_ids", &e))?;
            session.run(ort::inputs!["input_ids" => ids, "attention_mask" => mask, "token_type_ids" => types])
        } else {
            session.run(ort::inputs!["input_ids" => ids, "attention_mask" => mask])
        }
        .map_err(|e| failed("running the model", &e))?;
        let (out_shape, hidden) =
            outputs[0].try_extract_tensor::<f32>().map_err(|e| failed("reading the output", &e))?;
        if out_shape.len() != 3
            || out_shape[0] as usize != batch
            || out_shape[1] as usize != length
            || out_shape[2] as usize != MINILM_DIMENSIONS
        {
            return Err(AiError::Invalid(format!(
                "the model's output has shape {out_shape:?}, expected [{batch}, {length}, {MINILM_DIMENSIONS}]"
            )));
        }
        let mut vectors = Vec::with_capacity(batch);
        for row in 0..batch {
            let mut pooled = vec![0f32; MINILM_DIMENSIONS];
            let mut weight = 0f32;
            for token in 0..length {
                let m = mask_weights[row * length + token];
                if m == 0.0 {
                    continue;
                }
                weight += m;
                let start = (row * length + token) * MINILM_DIMENSIONS;
                for (sum, &x) in pooled.iter_mut().zip(&hidden[start..start + MINILM_DIMENSIONS]) {
                    *sum += x * m;
                }
            }
            let weight = weight.max(1e-9);
            pooled.iter_mut().for_each(|v| *v /= weight);
            super::normalize(&mut pooled);
            vectors.push(pooled);
        }
        Ok(vectors)
    }
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
