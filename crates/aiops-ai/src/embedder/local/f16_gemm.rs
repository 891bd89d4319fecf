//! Half-precision matrix products on AVX512-FP16, the one place in the crate with `unsafe` code.
//!
//! `activations (m × k) · weightsᵀ (k × n) + bias` with every product and the first sums taken in
//! half precision (32 lanes per instruction, twice float32's rate on cores that have
//! AVX512-FP16), and each run of [`FLUSH_PAIRS`] × 2 steps of `k` added into float32, so that
//! the rounding of a long sum stays that of a short one. On all-MiniLM-L6-v2 this keeps the
//! cosine with the float32 model above 0.99999.
//!
//! Layout: weights are packed once into panels of [`PANEL`] output columns; inside a panel, for
//! each pair of steps `(2p, 2p + 1)` of `k`, 32-bit lane `j` holds the two halves
//! `(w[2p][j], w[2p + 1][j])`. Activations stay row-major, so the same pair of one row is a
//! 32-bit value broadcast to every lane: one instruction then does both steps for 16 columns,
//! with the two steps' sums side by side, and they are added at the end.

use std::fmt;

/// Output columns per packed panel: three 512-bit registers of 16 column pairs.
pub(crate) const PANEL: usize = 48;
/// Rows of the activations per tile; the activation buffers are padded to a multiple of it.
pub(crate) const TILE_ROWS: usize = 8;
/// Steps of `k` (in pairs) summed in half precision before the sum is added into float32.
const FLUSH_PAIRS: usize = 96;

/// Proof that this CPU runs the kernel: made only by [`F16Kernel::detect`].
#[derive(Clone, Copy)]
pub(crate) struct F16Kernel(());

impl fmt::Debug for F16Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("F16Kernel(avx512fp16)")
    }
}

/// A weight matrix `n × k` (PyTorch's `Linear` layout) and its bias, packed for the kernel.
pub(crate) struct PackedWeights {
    n: usize,
    k: usize,
    halves: Vec<u16>,
    bias: Vec<f32>,
}

impl PackedWeights {
    /// Packs `weight` (`n` rows of `k`) and `bias` (`n`).
    ///
    /// # Panics
    /// When `n` is not a multiple of [`PANEL`], `k` is odd, or a length does not match: the
    /// model's shapes are checked before packing.
    pub(crate) fn new(kernel: F16Kernel, weight: &[f32], bias: &[f32], n: usize, k: usize) -> Self {
        assert!(
            n.is_multiple_of(PANEL) && k.is_multiple_of(2) && weight.len() == n * k && bias.len() == n,
            "unpackable shape {n}×{k}"
        );
        let mut halves = vec![0u16; n * k];
        let mut at = 0;
        for panel in 0..n / PANEL {
            for pair in 0..k / 2 {
                for column in panel * PANEL..(panel + 1) * PANEL {
                    let row = &weight[column * k..(column + 1) * k];
                    kernel.to_f16(&row[2 * pair..2 * pair + 2], &mut halves[at..at + 2]);
                    at += 2;
                }
            }
        }
        Self { n, k, halves, bias: bias.to_vec() }
    }
}

/// `rows` rounded up to a whole number of tiles: the length activation buffers are made with.
pub(crate) fn padded_rows(rows: usize) -> usize {
    rows.div_ceil(TILE_ROWS) * TILE_ROWS
}

impl F16Kernel {
    /// The kernel, when this CPU has AVX512-FP16 (Intel Sapphire Rapids and later).
    pub(crate) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512fp16")
        {
            return Some(Self(()));
        }
        None
    }

    /// Rounds `source` to half precision (nearest even) into `target`, which is as long.
    pub(crate) fn to_f16(self, source: &[f32], target: &mut [u16]) {
        assert_eq!(source.len(), target.len());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `detect` checked that the CPU has AVX512F; the lengths are equal.
        unsafe {
            x86::to_f16(source, target);
        }
    }

    /// Runs `f` compiled for AVX-512 and FMA, so that its loops (which should be
    /// `#[inline(always)]` functions) vectorise 16 floats wide: the crate itself is built for
    /// baseline x86-64, whose SSE2 is four floats wide.
    pub(crate) fn vectorized<R>(self, f: impl FnOnce() -> R) -> R {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `detect` checked that the CPU has every feature `x86::wide` enables.
        unsafe {
            x86::wide(f)
        }
        #[cfg(not(target_arch = "x86_64"))]
        f()
    }

    /// `out = activations · weightsᵀ + bias`.
    ///
    /// `activations` holds `rows` rows of `weights.k()` halves and `out` rows of `weights.n()`
    /// floats, both padded to [`padded_rows`] (the padding rows are computed and ignored).
    ///
    /// # Panics
    /// When a buffer's length does not match.
    pub(crate) fn matmul(self, activations: &[u16], weights: &PackedWeights, out: &mut [f32]) {
        let (n, k) = (weights.n, weights.k);
        let rows = activations.len() / k;
        assert!(activations.len() == rows * k && rows.is_multiple_of(TILE_ROWS), "activations are not whole tiles");
        assert_eq!(out.len(), rows * n, "output does not match the activations");
        for first_row in (0..rows).step_by(TILE_ROWS) {
            for panel in 0..n / PANEL {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `detect` checked AVX512F/BW/FP16. The tile reads rows
                // `first_row..first_row + TILE_ROWS` of `activations` (k halves each), the
                // panel's `PANEL × k` halves and `PANEL` biases, and writes `TILE_ROWS` rows of
                // `PANEL` floats at column `panel × PANEL` of `out`: all inside the buffers,
                // whose lengths were asserted above.
                unsafe {
                    x86::tile(
                        activations.as_ptr().add(first_row * k),
                        k,
                        weights.halves.as_ptr().add(panel * PANEL * k),
                        weights.bias.as_ptr().add(panel * PANEL),
                        out.as_mut_ptr().add(first_row * n + panel * PANEL),
                        n,
                    );
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{FLUSH_PAIRS, PANEL, TILE_ROWS};

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    #[inline]
    pub(super) unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn to_f16(source: &[f32], target: &mut [u16]) {
        let whole = source.len() / 16 * 16;
        for (from, to) in source[..whole].chunks_exact(16).zip(target[..whole].chunks_exact_mut(16)) {
            let halves = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm512_loadu_ps(from.as_ptr()));
            _mm256_storeu_si256(to.as_mut_ptr().cast(), halves);
        }
        for (from, to) in source[whole..].iter().zip(&mut target[whole..]) {
            let halves = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set1_ps(*from));
            *to = _mm_extract_epi16::<0>(halves) as u16;
        }
    }

    /// One tile: `TILE_ROWS` rows × one panel, over the whole of `k`.
    ///
    /// # Safety
    /// The CPU has AVX512F/BW/FP16; `a` has `TILE_ROWS` rows of `k` halves at stride `k`, `b` a
    /// packed panel of `PANEL × k` halves, `bias` `PANEL` floats, and `c` `TILE_ROWS` rows of
    /// `PANEL` writable floats at stride `ldc`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512fp16")]
    pub(super) unsafe fn tile(a: *const u16, k: usize, b: *const u16, bias: *const f32, c: *mut f32, ldc: usize) {
        // Lane i of the two halves' floats, read as one 32-float table: the even and the odd
        // step of each of 16 columns.
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let pairs = k / 2;
        let mut start = 0;
        while start < pairs {
            let end = (start + FLUSH_PAIRS).min(pairs);
            let mut acc = [[_mm512_setzero_ph(); 3]; TILE_ROWS];
            for pair in start..end {
                let panel = b.add(pair * PANEL * 2);
                let b0 = _mm512_castsi512_ph(_mm512_loadu_si512(panel.cast()));
                let b1 = _mm512_castsi512_ph(_mm512_loadu_si512(panel.add(32).cast()));
                let b2 = _mm512_castsi512_ph(_mm512_loadu_si512(panel.add(64).cast()));
                // Indexed, not iterated: the loop must unroll fully for the 24 sums to stay in
                // registers (iterating made the compiler spill them to the stack, at half speed).
                #[allow(clippy::needless_range_loop)]
                for row in 0..TILE_ROWS {
                    let both = a.add(row * k + 2 * pair).cast::<i32>().read_unaligned();
                    let both = _mm512_castsi512_ph(_mm512_set1_epi32(both));
                    acc[row][0] = _mm512_fmadd_ph(both, b0, acc[row][0]);
                    acc[row][1] = _mm512_fmadd_ph(both, b1, acc[row][1]);
                    acc[row][2] = _mm512_fmadd_ph(both, b2, acc[row][2]);
                }
            }
            // Into float32: each step's sum widened, the two steps of a column added, the
            // result added to the output (the bias is its first value).
            for (row, acc) in acc.iter().enumerate() {
                for (third, halves) in acc.iter().enumerate() {
                    let bits = _mm512_castph_si512(*halves);
                    let low = _mm512_cvtph_ps(_mm512_castsi512_si256(bits));
                    let high = _mm512_cvtph_ps(_mm512_extracti64x4_epi64::<1>(bits));
                    let sums =
                        _mm512_add_ps(_mm512_permutex2var_ps(low, even, high), _mm512_permutex2var_ps(low, odd, high));
                    let out = c.add(row * ldc + third * 16);
                    let before = if start == 0 { _mm512_loadu_ps(bias.add(third * 16)) } else { _mm512_loadu_ps(out) };
                    _mm512_storeu_ps(out, _mm512_add_ps(before, sums));
                }
            }
            start = end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }

    #[test]
    fn products_match_float32_within_half_precision_rounding() {
        let Some(kernel) = F16Kernel::detect() else {
            eprintln!("skipped: this CPU has no AVX512-FP16");
            return;
        };
        // k past several flushes and not a multiple of them; rows not a whole tile.
        let (rows, n, k) = (13, 96, 1538);
        let a = numbers(rows * k, 1, 4.0);
        let w = numbers(n * k, 2, 0.2);
        let bias = numbers(n, 3, 1.0);
        let packed = PackedWeights::new(kernel, &w, &bias, n, k);
        let mut halves = vec![0u16; padded_rows(rows) * k];
        kernel.to_f16(&a, &mut halves[..rows * k]);
        let mut out = vec![f32::NAN; padded_rows(rows) * n];
        kernel.matmul(&halves, &packed, &mut out);
        let mut worst = 0f32;
        for r in 0..rows {
            for c in 0..n {
                let exact: f32 = bias[c] + (0..k).map(|i| a[r * k + i] * w[c * k + i]).sum::<f32>();
                let scale: f32 = (0..k).map(|i| (a[r * k + i] * w[c * k + i]).abs()).sum();
                worst = worst.max((out[r * n + c] - exact).abs() / scale);
            }
        }
        // Inputs rounded to half precision alone put about 2^-11 of each product's size into
        // the sum; a whole sum in half precision would reach ~1e-2 here.
        assert!(worst < 2e-3, "worst error relative to the sum of magnitudes: {worst}");
    }

    #[test]
    fn half_precision_rounds_to_nearest_and_keeps_special_values() {
        let Some(kernel) = F16Kernel::detect() else {
            eprintln!("skipped: this CPU has no AVX512-FP16");
            return;
        };
        let source: Vec<f32> = [1.0, -2.5, 0.0, 65504.0, 1.0e6, 1.0 + 1.0 / 4096.0].repeat(3);
        let mut target = vec![0u16; source.len()];
        kernel.to_f16(&source, &mut target);
        // The first 16 values take the vector path, the last two the scalar one.
        assert_eq!(&target[..6], &[0x3c00, 0xc100, 0x0000, 0x7bff, 0x7c00, 0x3c00]);
        assert_eq!(&target[12..], &target[..6]);
    }
}
