//! The model on ONNX Runtime: `model.onnx` (float32) run by `libonnxruntime.so.1.32.0`, loaded
//! from the model directory when the first such embedder is built. The engine for CPUs without
//! AVX512-FP16.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;
use tokenizers::Encoding;

use super::{lock, MINILM_DIMENSIONS};
use crate::{AiError, AiResult};

/// Sessions of one thread each; a call's batches are dealt between them.
pub(super) struct OnnxEngine {
    sessions: Vec<Mutex<Session>>,
    wants_token_type_ids: bool,
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

impl OnnxEngine {
    pub(super) fn load(model: &Path, runtime: &Path, sessions: usize) -> AiResult<Self> {
        let environment = environment(runtime)?;
        let sessions = (0..sessions)
            .map(|_| {
                build_session(environment, model)
                    .map(Mutex::new)
                    .map_err(|err| AiError::Invalid(format!("cannot load {}: {err}", model.display())))
            })
            .collect::<AiResult<Vec<_>>>()?;
        let wants_token_type_ids = lock(&sessions[0]).inputs().iter().any(|input| input.name() == "token_type_ids");
        Ok(Self { sessions, wants_token_type_ids })
    }

    pub(super) fn workers(&self) -> usize {
        self.sessions.len()
    }

    /// One forward pass of a padded batch on session `worker`; the last hidden states, row-major
    /// `[text][token][384]`.
    pub(super) fn hidden_states(&self, worker: usize, encodings: &[Encoding]) -> AiResult<(usize, Vec<f32>)> {
        let failed = |what: &str, err: &dyn std::fmt::Display| AiError::Invalid(format!("{what}: {err}"));
        let batch = encodings.len();
        let length = encodings.iter().map(Encoding::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * length);
        let mut mask = Vec::with_capacity(batch * length);
        let mut types = Vec::with_capacity(batch * length);
        for encoding in encodings {
            ids.extend(encoding.get_ids().iter().map(|&x| i64::from(x)));
            mask.extend(encoding.get_attention_mask().iter().map(|&x| i64::from(x)));
            types.extend(encoding.get_type_ids().iter().map(|&x| i64::from(x)));
        }
        let shape = [batch as i64, length as i64];
        let ids = Tensor::from_array((shape, ids)).map_err(|e| failed("input_ids", &e))?;
        let mask = Tensor::from_array((shape, mask)).map_err(|e| failed("attention_mask", &e))?;
        let mut session = lock(&self.sessions[worker]);
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
        Ok((length, hidden.to_vec()))
    }
}
