//! all-MiniLM-L6-v2's encoder written out in Rust on the half-precision kernel of `f16_gemm`.
//!
//! The same computation as the ONNX graph (BERT: embeddings, 6 post-norm layers of 12-head
//! self-attention and a GELU feed-forward, then mean pooling), from the reference float32
//! checkpoint `model.safetensors`. The four matrix products of each layer run in half precision
//! with float32 sums; everything else (layer norms, softmax, GELU, the residual stream,
//! attention's own small products) stays in float32.
//!
//! Texts are not padded: the tokens of a batch are laid end to end for the matrix products,
//! and attention runs per text, so a short text next to a long one costs only its own tokens.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::f16_gemm::{padded_rows, F16Kernel, PackedWeights};
use crate::{AiError, AiResult};

const HIDDEN: usize = 384;
const HEADS: usize = 12;
const HEAD_DIM: usize = HIDDEN / HEADS;
const INTERMEDIATE: usize = 1536;
const LAYERS: usize = 6;
const MAX_POSITIONS: usize = 512;
const LAYER_NORM_EPS: f32 = 1e-12;

/// A layer norm's scale and shift.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    /// Query, key and value projections as one product of 1,152 columns.
    qkv: PackedWeights,
    attention_out: PackedWeights,
    attention_norm: Norm,
    intermediate: PackedWeights,
    output: PackedWeights,
    output_norm: Norm,
}

/// The encoder's weights, shared by every thread that embeds.
pub(super) struct NativeEncoder {
    kernel: F16Kernel,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

/// One text's tokens, as the tokenizer gave them (without padding).
pub(super) struct Tokens<'a> {
    pub(super) ids: &'a [u32],
    pub(super) type_ids: &'a [u32],
}

/// Buffers of one forward pass, for the batch's tokens padded to whole tiles.
struct Scratch {
    hidden: Vec<f32>,
    halves: Vec<u16>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    intermediate: Vec<f32>,
    intermediate_halves: Vec<u16>,
    scores: Vec<f32>,
    keys_t: Vec<f32>,
}

impl NativeEncoder {
    /// Reads and packs `model.safetensors`.
    ///
    /// # Errors
    /// [`AiError::Invalid`] naming the file and the tensor that is missing or misshapen.
    pub(super) fn load(kernel: F16Kernel, path: &Path) -> AiResult<Self> {
        let bytes =
            std::fs::read(path).map_err(|err| AiError::Invalid(format!("cannot read {}: {err}", path.display())))?;
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|err| AiError::Invalid(format!("{} is not a safetensors file: {err}", path.display())))?;
        let get = |name: &str, shape: &[usize]| -> AiResult<Vec<f32>> {
            let tensor = tensors
                .tensor(name)
                .map_err(|err| AiError::Invalid(format!("{}: tensor {name}: {err}", path.display())))?;
            if tensor.dtype() != Dtype::F32 || tensor.shape() != shape {
                return Err(AiError::Invalid(format!(
                    "{}: tensor {name} is {:?} {:?}, expected F32 {shape:?}",
                    path.display(),
                    tensor.dtype(),
                    tensor.shape()
                )));
            }
            Ok(tensor.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        };
        let norm = |prefix: &str| -> AiResult<Norm> {
            Ok(Norm {
                gamma: get(&format!("{prefix}.weight"), &[HIDDEN])?,
                beta: get(&format!("{prefix}.bias"), &[HIDDEN])?,
            })
        };
        let linear = |names: &[&str], n: usize, k: usize| -> AiResult<PackedWeights> {
            let (mut weight, mut bias) = (Vec::new(), Vec::new());
            for name in names {
                weight.extend(get(&format!("{name}.weight"), &[n / names.len(), k])?);
                bias.extend(get(&format!("{name}.bias"), &[n / names.len()])?);
            }
            Ok(PackedWeights::new(kernel, &weight, &bias, n, k))
        };
        let mut layers = Vec::with_capacity(LAYERS);
        for layer in 0..LAYERS {
            let at = |name: &str| format!("encoder.layer.{layer}.{name}");
            let (q, k, v) = (at("attention.self.query"), at("attention.self.key"), at("attention.self.value"));
            layers.push(Layer {
                qkv: linear(&[&q, &k, &v], 3 * HIDDEN, HIDDEN)?,
                attention_out: linear(&[&at("attention.output.dense")], HIDDEN, HIDDEN)?,
                attention_norm: norm(&at("attention.output.LayerNorm"))?,
                intermediate: linear(&[&at("intermediate.dense")], INTERMEDIATE, HIDDEN)?,
                output: linear(&[&at("output.dense")], HIDDEN, INTERMEDIATE)?,
                output_norm: norm(&at("output.LayerNorm"))?,
            });
        }
        let vocabulary = tensors
            .tensor("embeddings.word_embeddings.weight")
            .map(|t| t.shape().first().copied().unwrap_or(0))
            .map_err(|err| AiError::Invalid(format!("{}: word embeddings: {err}", path.display())))?;
        Ok(Self {
            kernel,
            word: get("embeddings.word_embeddings.weight", &[vocabulary, HIDDEN])?,
            position: get("embeddings.position_embeddings.weight", &[MAX_POSITIONS, HIDDEN])?,
            token_type: get("embeddings.token_type_embeddings.weight", &[2, HIDDEN])?,
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// The mean-pooled, unit-length vector of each text.
    ///
    /// # Errors
    /// [`AiError::Invalid`] for a token id outside the vocabulary or a text past 512 tokens.
    pub(super) fn embed(&self, texts: &[Tokens<'_>]) -> AiResult<Vec<Vec<f32>>> {
        let tokens: usize = texts.iter().map(|t| t.ids.len()).sum();
        let longest = texts.iter().map(|t| t.ids.len()).max().unwrap_or(0);
        if longest > MAX_POSITIONS {
            return Err(AiError::Invalid(format!("a text of {longest} tokens is past the model's {MAX_POSITIONS}")));
        }
        let rows = padded_rows(tokens);
        let keys = longest.div_ceil(KEY_GROUP) * KEY_GROUP;
        let scratch = &mut Scratch {
            hidden: vec![0.0; rows * HIDDEN],
            halves: vec![0; rows * HIDDEN],
            qkv: vec![0.0; rows * 3 * HIDDEN],
            context: vec![0.0; rows * HIDDEN],
            projected: vec![0.0; rows * HIDDEN],
            intermediate: vec![0.0; rows * INTERMEDIATE],
            intermediate_halves: vec![0; rows * INTERMEDIATE],
            scores: vec![0.0; QUERY_BLOCK * keys],
            keys_t: vec![0.0; HEAD_DIM * keys],
        };
        // Everything but the matrix products (which have their own kernel) is inlined into
        // `vectorized`: a closure it does not inline runs at SSE2's width, four times slower.
        self.kernel.vectorized(
            #[inline(always)]
            || {
                self.embeddings(texts, &mut scratch.hidden)?;
                self.kernel.to_f16(&scratch.hidden, &mut scratch.halves);
                for layer in &self.layers {
                    self.layer(layer, texts, scratch);
                }
                AiResult::Ok(())
            },
        )?;
        let mut vectors = Vec::with_capacity(texts.len());
        let mut first = 0;
        for text in texts {
            let mut pooled = vec![0f32; HIDDEN];
            for row in scratch.hidden[first * HIDDEN..(first + text.ids.len()) * HIDDEN].chunks_exact(HIDDEN) {
                pooled.iter_mut().zip(row).for_each(|(sum, x)| *sum += x);
            }
            let count = text.ids.len().max(1) as f32;
            pooled.iter_mut().for_each(|v| *v /= count);
            super::super::normalize(&mut pooled);
            vectors.push(pooled);
            first += text.ids.len();
        }
        Ok(vectors)
    }

    /// Inlined into [`F16Kernel::vectorized`], for AVX-512 code.
    #[inline(always)]
    fn embeddings(&self, texts: &[Tokens<'_>], hidden: &mut [f32]) -> AiResult<()> {
        let mut rows = hidden.chunks_exact_mut(HIDDEN);
        for text in texts {
            for (position, (&id, &type_id)) in text.ids.iter().zip(text.type_ids).enumerate() {
                let (id, type_id) = (id as usize, (type_id as usize).min(1));
                let word = self
                    .word
                    .get(id * HIDDEN..(id + 1) * HIDDEN)
                    .ok_or_else(|| AiError::Invalid(format!("token id {id} is outside the vocabulary")))?;
                let position = &self.position[position * HIDDEN..(position + 1) * HIDDEN];
                let token_type = &self.token_type[type_id * HIDDEN..(type_id + 1) * HIDDEN];
                let row = rows.next().expect("one row per token");
                for (i, x) in row.iter_mut().enumerate() {
                    *x = word[i] + position[i] + token_type[i];
                }
                layer_norm(row, &self.embedding_norm);
            }
        }
        Ok(())
    }

    /// One encoder layer. On entry and on exit, `halves` holds `hidden` in half precision.
    /// Inlined into [`F16Kernel::vectorized`], for AVX-512 code.
    #[inline(always)]
    fn layer(&self, layer: &Layer, texts: &[Tokens<'_>], s: &mut Scratch) {
        let kernel = self.kernel;
        kernel.matmul(&s.halves, &layer.qkv, &mut s.qkv);
        let mut first = 0;
        for text in texts {
            let length = text.ids.len();
            for head in 0..HEADS {
                attention(&s.qkv, first, length, head, &mut s.scores, &mut s.keys_t, &mut s.context);
            }
            first += length;
        }
        kernel.to_f16(&s.context, &mut s.halves);
        kernel.matmul(&s.halves, &layer.attention_out, &mut s.projected);
        add_and_norm(kernel, &mut s.hidden, &mut s.halves, &s.projected, &layer.attention_norm);

        kernel.matmul(&s.halves, &layer.intermediate, &mut s.intermediate);
        // Row by row, so that each row is rounded while it is still in the first-level cache.
        let rows =
            s.intermediate.chunks_exact_mut(INTERMEDIATE).zip(s.intermediate_halves.chunks_exact_mut(INTERMEDIATE));
        for (row, halves) in rows {
            row.iter_mut().for_each(|x| *x = gelu(*x));
            kernel.to_f16(row, halves);
        }
        kernel.matmul(&s.intermediate_halves, &layer.output, &mut s.projected);
        add_and_norm(kernel, &mut s.hidden, &mut s.halves, &s.projected, &layer.output_norm);
    }
}

/// One head of self-attention over one text's rows `first..first + length` of `qkv`, written
/// into the head's columns of `context`. `scores` holds [`QUERY_BLOCK`] rows of the padded
/// length.
#[inline(always)]
fn attention(
    qkv: &[f32],
    first: usize,
    length: usize,
    head: usize,
    scores: &mut [f32],
    keys_t: &mut [f32],
    context: &mut [f32],
) {
    let row = |token: usize, part: usize| -> &[f32; HEAD_DIM] {
        let at = (first + token) * 3 * HIDDEN + part * HIDDEN + head * HEAD_DIM;
        qkv[at..at + HEAD_DIM].try_into().expect("a head's slice")
    };
    // Keys transposed, so that a query's scores are sums of contiguous rows, each padded with
    // zeros to whole groups of 64 keys (four registers), so that every loop has a fixed width.
    let stride = length.div_ceil(KEY_GROUP) * KEY_GROUP;
    let keys_t = &mut keys_t[..HEAD_DIM * stride];
    keys_t.fill(0.0);
    for token in 0..length {
        for (d, &x) in row(token, 1).iter().enumerate() {
            keys_t[d * stride + token] = x;
        }
    }
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    // Four queries at a time: every key and value loaded serves four sums, and the four are
    // independent chains of additions, so they do not wait on each other's latency. A last
    // block past the text repeats its last query and keeps nothing of it.
    for block in (0..length).step_by(QUERY_BLOCK) {
        let query = |i: usize| row((block + i).min(length - 1), 0);
        let (q0, q1, q2, q3) = (query(0), query(1), query(2), query(3));
        let scores = &mut scores[..QUERY_BLOCK * stride];
        for group in 0..stride / KEY_GROUP {
            let (mut a0, mut a1, mut a2, mut a3) =
                ([0f32; KEY_GROUP], [0f32; KEY_GROUP], [0f32; KEY_GROUP], [0f32; KEY_GROUP]);
            for d in 0..HEAD_DIM {
                let keys: &[f32; KEY_GROUP] =
                    keys_t[d * stride + group * KEY_GROUP..][..KEY_GROUP].try_into().expect("a whole group");
                for (i, &k) in keys.iter().enumerate() {
                    a0[i] = q0[d].mul_add(k, a0[i]);
                    a1[i] = q1[d].mul_add(k, a1[i]);
                    a2[i] = q2[d].mul_add(k, a2[i]);
                    a3[i] = q3[d].mul_add(k, a3[i]);
                }
            }
            for (row, sums) in [a0, a1, a2, a3].iter().enumerate() {
                scores[row * stride + group * KEY_GROUP..][..KEY_GROUP].copy_from_slice(sums);
            }
        }
        let inverses = softmax(scores, stride, length, scale);
        let (mut c0, mut c1, mut c2, mut c3) = ([0f32; HEAD_DIM], [0f32; HEAD_DIM], [0f32; HEAD_DIM], [0f32; HEAD_DIM]);
        for key in 0..length {
            let weight = |row: usize| scores[row * stride + key];
            let (w0, w1, w2, w3) = (weight(0), weight(1), weight(2), weight(3));
            for (i, &v) in row(key, 2).iter().enumerate() {
                c0[i] = w0.mul_add(v, c0[i]);
                c1[i] = w1.mul_add(v, c1[i]);
                c2[i] = w2.mul_add(v, c2[i]);
                c3[i] = w3.mul_add(v, c3[i]);
            }
        }
        for (i, (sums, inverse)) in [c0, c1, c2, c3].iter().zip(inverses).enumerate().take(length - block) {
            let target = &mut context[(first + block + i) * HIDDEN + head * HEAD_DIM..][..HEAD_DIM];
            target.iter_mut().zip(sums).for_each(|(t, s)| *t = s * inverse);
        }
    }
}

/// Turns the scores of a block of queries (rows of `stride`) into unnormalised softmax weights,
/// zero past `length`, and returns the inverse of each row's sum. The rows go through each step
/// side by side: one row alone is a chain of steps that each wait on the last.
#[inline(always)]
fn softmax(scores: &mut [f32], stride: usize, length: usize, scale: f32) -> [f32; QUERY_BLOCK] {
    let mut maxima = [[f32::NEG_INFINITY; LANES]; QUERY_BLOCK];
    for block in (0..stride).step_by(LANES) {
        for (row, maxima) in maxima.iter_mut().enumerate() {
            let scores: &[f32; LANES] = scores[row * stride + block..][..LANES].try_into().expect("a whole block");
            maxima.iter_mut().zip(scores).for_each(|(m, &s)| *m = larger(*m, s));
        }
    }
    let maxima = maxima.map(|m| reduce(m, larger));
    let mut sums = [[0f32; LANES]; QUERY_BLOCK];
    for block in (0..stride).step_by(LANES) {
        for (row, sums) in sums.iter_mut().enumerate() {
            let scores: &mut [f32; LANES] =
                (&mut scores[row * stride + block..][..LANES]).try_into().expect("a whole block");
            for (i, (s, sum)) in scores.iter_mut().zip(sums.iter_mut()).enumerate() {
                let weight = if block + i < length { exp((*s - maxima[row]) * scale) } else { 0.0 };
                *s = weight;
                *sum += weight;
            }
        }
    }
    sums.map(|s| 1.0 / reduce(s, |a, b| a + b))
}

/// Queries whose attention is computed together.
const QUERY_BLOCK: usize = 4;
/// Floats per AVX-512 register.
const LANES: usize = 16;
/// Keys whose scores are computed together.
const KEY_GROUP: usize = 4 * LANES;

/// The sum of `values`, in 16 running sums (a single running sum would not vectorise: float
/// addition is not associative, so the compiler keeps its order).
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &v)| *l += v);
    }
    reduce(lanes, |a, b| a + b) + chunks.remainder().iter().sum::<f32>()
}

/// `lanes` folded with `f` in halves (16 → 8 → 4 → 2 → 1), four vector steps rather than a
/// chain of 15 scalar ones, each waiting on the last.
#[inline(always)]
fn reduce(mut lanes: [f32; LANES], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            lanes[i] = f(lanes[i], lanes[i + width]);
        }
        width /= 2;
    }
    lanes[0]
}

/// The larger of two scores: one `max` instruction (`f32::max` adds NaN handling that scores,
/// sums of finite products, never need).
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// `hidden = layer_norm(hidden + update)` and its half-precision copy, row by row (padding rows
/// included; they are unused).
#[inline(always)]
fn add_and_norm(kernel: F16Kernel, hidden: &mut [f32], halves: &mut [u16], update: &[f32], norm: &Norm) {
    let rows = hidden.chunks_exact_mut(HIDDEN).zip(halves.chunks_exact_mut(HIDDEN)).zip(update.chunks_exact(HIDDEN));
    for ((row, halves), update) in rows {
        row.iter_mut().zip(update).for_each(|(x, u)| *x += u);
        layer_norm(row, norm);
        kernel.to_f16(row, halves);
    }
}

#[inline(always)]
fn layer_norm(row: &mut [f32], norm: &Norm) {
    let mean = sum(row) / HIDDEN as f32;
    row.iter_mut().for_each(|x| *x -= mean);
    let mut squares = [0f32; HIDDEN];
    squares.iter_mut().zip(&*row).for_each(|(s, x)| *s = x * x);
    let variance = sum(&squares) / HIDDEN as f32;
    let inverse = 1.0 / (variance + LAYER_NORM_EPS).sqrt();
    for ((x, gamma), beta) in row.iter_mut().zip(&norm.gamma).zip(&norm.beta) {
        *x = *x * inverse * gamma + beta;
    }
}

/// BERT's exact GELU, `x Φ(x)`, with `erf` from a rational approximation.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `erf` to about 1e-7 without branches or calls, so that loops over it vectorise: an odd
/// rational function of degree 13/8 on [-4, 4], where float32's `erf` is already ±1 outside.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let numerator = horner(
        x2,
        [
            -2.726_142_3e-10,
            2.770_681_4e-8,
            -2.101_024e-6,
            -5.692_506_4e-5,
            -7.349_906_3e-4,
            -2.954_600_1e-3,
            -1.609_603_3e-2,
        ],
    ) * x;
    let denominator = horner(x2, [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329e-3, -1.426_474e-2]);
    numerator / denominator
}

/// `e^x` for `x ≤ 0` (softmax's arguments) to a few ulps, vectorisable: `2^n · p(r)` with
/// `x = n ln 2 + r`.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Adding 1.5 · 2^23 rounds to an integer, which lands in the low bits of the sum: taken
    // back as a float, and as an integer for the power of two, with no conversion call.
    const SHIFTER: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + SHIFTER;
    let n = shifted - SHIFTER;
    let power = (shifted.to_bits().wrapping_sub(SHIFTER.to_bits()).wrapping_add(127)) << 23;
    let r = x - n * std::f32::consts::LN_2;
    let p = horner(r, [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0]);
    p * f32::from_bits(power)
}

/// The polynomial with `coefficients` (highest power first) at `x`, by Horner's rule in fused
/// multiply-adds.
#[inline(always)]
fn horner<const N: usize>(x: f32, coefficients: [f32; N]) -> f32 {
    coefficients[1..].iter().fold(coefficients[0], |p, &c| p.mul_add(x, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_exp_match_the_standard_library() {
        let mut worst_erf = 0f64;
        let mut worst_exp = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 / 10_000.0;
            worst_erf = worst_erf.max((f64::from(erf(x)) - libm_erf(f64::from(x))).abs());
            if x <= 0.0 {
                let want = f64::from(x).exp();
                worst_exp = worst_exp.max((f64::from(exp(x)) - want).abs() / want);
            }
        }
        assert!(worst_erf < 5e-7, "erf is off by {worst_erf}");
        assert!(worst_exp < 1e-6, "exp is off by {worst_exp} relative");
        assert_eq!(exp(-200.0), exp(-87.0), "softmax's far tail is clamped, not NaN");
    }

    /// erf in double precision (the standard library has none): its Taylor series up to 3, and
    /// past 3 the asymptotic series of erfc, whose smallest term there is below 1e-8.
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        if a > 3.0 {
            let y = 1.0 / (2.0 * a * a);
            let series = 1.0 - y + 3.0 * y * y - 15.0 * y.powi(3) + 105.0 * y.powi(4) - 945.0 * y.powi(5);
            return x.signum() * (1.0 - (-a * a).exp() / (a * std::f64::consts::PI.sqrt()) * series);
        }
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / f64::from(n);
            sum += term / f64::from(2 * n + 1);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}
