//! NORMALIZE: each set of int8 values brought to zero mean and unit variance, then scaled and
//! shifted per channel (`gamma[c] * (x - mean) / sqrt(var + eps) + beta[c]`): layer normalization
//! over the channels of each position, group and instance normalization over all positions of each
//! group of channels. TFLite has no such operator; the arithmetic is Ferrite's own, in integers only,
//! with 32-bit multiplies into 64-bit sums (`SMULL`, `SMLAL` on the Cortex-M3 and up):
//!
//! - Per set of `n` values: `sum` and `sumsq` of the raw int8 values, then
//!   `v = n * sumsq - sum^2 + epsilon` (`n^2` times the variance, in input steps squared, `epsilon`
//!   the quantizer's `eps * n^2 / input_scale^2`).
//! - `m = v << 2k` with `2k` even and `m` in `[2^60, 2^62)`; `y`, `2^61 / sqrt(m)` in `(2^30, 2^31)`,
//!   at most `2^31 - 1`,
//!   from a table of 12 first guesses and three Newton steps on the top 32 bits of `m` (`inverse_root`).
//! - Each value's `d = n * x - sum` gives the normalized value in Q20 as the high word of a 64-bit
//!   product: `t = (d * 2^(k - 9) * y) >> 32` (`y >> (9 - k)` in place of the shift of `d` when
//!   `k < 9`; `|d| * 2^(k - 9)` stays below `2^30`).
//! - The output `clamp((t * gamma[c] + beta[c]) >> 32, act_min, act_max)`, with `gamma[c]` the channel's
//!   `gamma / output_scale` in Q12 and `beta[c]` its `beta / output_scale + output_zero_point` in
//!   Q32 plus `2^31` (the rounding).
//!
//! The same bytes on every target. A set whose values are all equal (`v = 0`) gives `beta` alone.

use serde::{Deserialize, Serialize};

use crate::format::{DType, Operand};
use crate::interpreter::{Views, CORRUPT};
use crate::validate::Check;
use crate::Error;

/// Fraction bits of the normalized value.
pub const NORM_BITS: u32 = 20;
/// Fraction bits of `gamma`: `t * gamma` is in Q32, the output its high word.
pub const GAMMA_BITS: u32 = 32 - NORM_BITS;
/// The largest set: `n * x` stays below `2^24`, `sumsq` at most `2^30`.
pub const MAX_SET: usize = 1 << 16;
/// `epsilon` at most this: `v` stays below `2^62`.
pub const MAX_EPSILON: u64 = 1 << 61;
/// `|beta|` at most this: `t * gamma + beta` stays below `2^63` (`|t| < 2^28`, `|gamma| < 2^31`).
pub const MAX_BETA: i64 = 1 << 61;

/// Normalization of int8 values over sets of positions and channels, int8 only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalize<'a> {
    /// Input, int8, batch first and channels last.
    pub input: Operand,
    /// Output, int8, of the input's shape.
    pub output: Operand,
    /// Groups of consecutive channels normalized apart (1: all channels together).
    pub groups: u16,
    /// A set spans every position of its sample (group and instance normalization); otherwise one
    /// position (layer normalization over the channels).
    pub across_positions: bool,
    /// `eps * n^2 / input_scale^2` rounded, little-endian `u64` (at most [`MAX_EPSILON`]).
    pub epsilon: [u8; 8],
    /// Per channel, little-endian `i32`: `gamma / output_scale` in Q12.
    pub gamma: &'a [u8],
    /// Per channel, little-endian `i64`: `beta / output_scale + output_zero_point` in Q32, plus
    /// `2^31` (at most [`MAX_BETA`] in magnitude).
    pub beta: &'a [u8],
    /// Smallest output (a fused ReLU: the output's zero point).
    pub act_min: i32,
    /// Largest output.
    pub act_max: i32,
}

crate::format::decode_fields!(Normalize<'a> {
    input,
    output,
    groups,
    across_positions,
    epsilon,
    gamma,
    beta,
    act_min,
    act_max
});

super::operand_fields!(Normalize<'_>: input => output);

/// Positions, channels and values per set of an operand normalized by `u`; `None` if the shape is
/// unusable (no channels or positions, groups not dividing the channels).
fn layout(u: &Normalize<'_>) -> Option<(usize, usize, usize)> {
    let shape = &u.input.shape;
    let channels = shape.last();
    let batch = *shape.dims().first()? as usize;
    let groups = u.groups as usize;
    if channels == 0 || batch == 0 || groups == 0 || !channels.is_multiple_of(groups) {
        return None;
    }
    let positions = shape.elements()? / batch / channels;
    if positions == 0 {
        return None;
    }
    let rows = if u.across_positions { positions } else { 1 };
    Some((positions, channels, rows * (channels / groups)))
}

pub(crate) fn validate(u: &Normalize<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    check.unary(&u.input, &u.output, true)?;
    if u.input.shape != u.output.shape {
        return check.bad("normalize input and output shapes differ");
    }
    let Some((_, channels, set)) = layout(u) else {
        return check.bad("normalize groups do not divide the channels");
    };
    if set > MAX_SET {
        return check.bad("normalize set larger than 65536 values");
    }
    if u64::from_le_bytes(u.epsilon) > MAX_EPSILON {
        return check.bad("normalize epsilon out of range");
    }
    if u.gamma.len() != channels * 4 || u.beta.len() != channels * 8 {
        return check.bad("normalize needs a gamma and a beta per channel");
    }
    if u.beta
        .chunks_exact(8)
        .any(|b| le_i64(b).unsigned_abs() > MAX_BETA as u64)
    {
        return check.bad("normalize beta out of range");
    }
    if !(-128 <= u.act_min && u.act_min <= u.act_max && u.act_max <= 127) {
        return check.bad("normalize output range outside int8");
    }
    Ok(())
}

#[inline(always)]
fn le_i64(b: &[u8]) -> i64 {
    i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[inline(always)]
fn le_i32(b: &[u8]) -> i32 {
    i32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

pub(crate) fn run(u: &Normalize<'_>, arena: &mut [u8]) -> Result<(), Error> {
    if u.input.dtype != DType::I8 {
        return Err(CORRUPT);
    }
    let (positions, channels, _) = layout(u).ok_or(CORRUPT)?;
    let mut v = Views::new(arena, &u.output)?;
    let p = Params {
        positions,
        channels,
        groups: u.groups as usize,
        across_positions: u.across_positions,
        epsilon: u64::from_le_bytes(u.epsilon),
        gamma: u.gamma,
        beta: u.beta,
        act_min: u.act_min,
        act_max: u.act_max,
    };
    normalize_s8(&p, v.i8(&u.input)?, v.out_i8());
    Ok(())
}

/// The kernel's parameters, as [`Normalize`] stores them with its operands' shape.
pub struct Params<'a> {
    /// Positions per sample (the product of the dimensions between batch and channels).
    pub positions: usize,
    /// Channels (the last dimension).
    pub channels: usize,
    /// Groups of consecutive channels.
    pub groups: usize,
    /// A set spans every position of its sample.
    pub across_positions: bool,
    /// `eps * n^2 / input_scale^2`.
    pub epsilon: u64,
    /// `i32` per channel, little-endian (Q12).
    pub gamma: &'a [u8],
    /// `i64` per channel, little-endian (Q32, rounding included).
    pub beta: &'a [u8],
    /// Smallest output.
    pub act_min: i32,
    /// Largest output.
    pub act_max: i32,
}

/// `round(2^31 / sqrt((i + 0.5) / 4))` for `i` in `4..16`: first guesses of `2^31 / sqrt(m')` for
/// `m'` in `[i / 4, (i + 1) / 4)`, within 6% of it.
const FIRST_GUESS: [u32; 12] = [
    2024667000, 1831380208, 1684624773, 1568300315, 1473161629, 1393471397, 1325455684, 1266516759,
    1214800200, 1168942037, 1127913670, 1090922784,
];

/// `2^61 / sqrt(m)` for `m` in `[2^60, 2^62)`, within `2^-26` of it relatively: the top 32 bits
/// `m'` of `m` (`m >> 30`, Q30 of `[1, 4)`), a first guess `y` (Q31) by `m'`'s top four bits, then
/// three Newton steps `y = y * (3 - m' * y^2) / 2`, the result at most `2^31 - 1`.
#[inline]
fn inverse_root(m: u64) -> u32 {
    let m = (m >> 30) as u32 as u64;
    let mut y = FIRST_GUESS[(m >> 28) as usize - 4] as u64;
    for _ in 0..3 {
        let y2 = (y * y) >> 31; // Q31
        let my2 = (m * y2) >> 31; // Q30
        let w = (3u64 << 30) - my2; // Q30, near 2
        y = (y * w) >> 31; // Q31 (the halving included)
    }
    y.min(i32::MAX as u64) as u32
}

/// Normalizes `input` (samples of `positions x channels`, channels last) into `output` (see the
/// module docs).
///
/// # Panics
/// Unless the lengths match, the groups divide the channels, `gamma` and `beta` hold a value per
/// channel and a set has at most [`MAX_SET`] values (what validation checks of a model).
pub fn normalize_s8(p: &Params<'_>, input: &[i8], output: &mut [i8]) {
    let per_group = p.channels / p.groups;
    let rows = if p.across_positions { p.positions } else { 1 };
    let n = (rows * per_group) as i32;
    let sample = p.positions * p.channels;
    for start in (0..input.len()).step_by(sample.max(1)) {
        for row in (0..p.positions).step_by(rows) {
            for g in 0..p.groups {
                let first = start + row * p.channels + g * per_group;
                let set = (0..rows).map(|r| first + r * p.channels);
                let (mut sum, mut sumsq) = (0i32, 0i32);
                for base in set.clone() {
                    for &x in &input[base..base + per_group] {
                        sum += x as i32;
                        sumsq += x as i32 * x as i32;
                    }
                }
                let v = (n as i64 * sumsq as i64 - sum as i64 * sum as i64) as u64 + p.epsilon;
                // d << left, times y: the normalized value's Q20 in the product's high word.
                let (left, y) = if v == 0 {
                    (0, 0)
                } else {
                    let two_k = (v.leading_zeros() - 2) & !1;
                    let y = inverse_root(v << two_k) as i32;
                    let k = (two_k / 2) as i32;
                    if k >= 9 {
                        ((k - 9) as u32, y)
                    } else {
                        (0, y >> (9 - k))
                    }
                };
                let gammas = &p.gamma[g * per_group * 4..(g + 1) * per_group * 4];
                let betas = &p.beta[g * per_group * 8..(g + 1) * per_group * 8];
                for base in set {
                    let x = &input[base..base + per_group];
                    let o = &mut output[base..base + per_group];
                    for (((o, &x), gm), bt) in o
                        .iter_mut()
                        .zip(x)
                        .zip(gammas.chunks_exact(4))
                        .zip(betas.chunks_exact(8))
                    {
                        let d = (n * x as i32 - sum) << left;
                        let t = ((d as i64 * y as i64) >> 32) as i32;
                        let acc = t as i64 * le_i32(gm) as i64 + le_i64(bt);
                        *o = ((acc >> 32) as i32).clamp(p.act_min, p.act_max) as i8;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Shape, Tensor};
    use crate::ops::testutil::{one_op_model, refusal};
    use crate::ops::Op;
    use crate::{Interpreter, Model};
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn first_guesses_are_the_midpoints_inverse_roots() {
        for (j, &g) in FIRST_GUESS.iter().enumerate() {
            let m = (j as f64 + 4.5) / 4.0;
            assert_eq!(g, (2f64.powi(31) / m.sqrt()).round() as u32, "entry {j}");
        }
    }

    proptest! {
        /// Within 2^-26 (relative) of `2^61 / sqrt(m)` over `[2^60, 2^62)`.
        #[test]
        fn the_inverse_root_is_close(m in (1u64 << 60)..(1u64 << 62)) {
            let want = 2f64.powi(61) / (m as f64).sqrt();
            let got = inverse_root(m) as f64;
            prop_assert!((got - want).abs() <= want * 2f64.powi(-26), "{m}: {got} vs {want}");
        }
    }

    /// `gamma` and `beta` of each channel as the quantizer writes them, for an output step
    /// `s_out` and zero point `zp`.
    fn affine(gamma: &[f64], beta: &[f64], s_out: f64, zp: i32) -> (Vec<u8>, Vec<u8>) {
        let g = gamma
            .iter()
            .flat_map(|&v| ((v / s_out * (1u64 << GAMMA_BITS) as f64).round() as i32).to_le_bytes())
            .collect();
        let b = beta
            .iter()
            .flat_map(|&v| {
                let q32 = ((v / s_out + zp as f64) * 2f64.powi(32)).round() as i64;
                (q32 + (1 << 31)).to_le_bytes()
            })
            .collect();
        (g, b)
    }

    /// The float normalization of the dequantized input, quantized to the output grid.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[i8],
        positions: usize,
        channels: usize,
        groups: usize,
        across: bool,
        eps: f64,
        s_in: f64,
        gamma: &[f64],
        beta: &[f64],
        s_out: f64,
        zp: i32,
    ) -> Vec<f64> {
        let per_group = channels / groups;
        let rows = if across { positions } else { 1 };
        let mut out = std::vec![0.0; x.len()];
        for start in (0..x.len()).step_by(positions * channels) {
            for row in (0..positions).step_by(rows) {
                for g in 0..groups {
                    let idx: Vec<usize> = (0..rows)
                        .flat_map(|r| {
                            let b = start + (row + r) * channels + g * per_group;
                            b..b + per_group
                        })
                        .collect();
                    let vals: Vec<f64> = idx.iter().map(|&i| x[i] as f64 * s_in).collect();
                    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                    let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>()
                        / vals.len() as f64;
                    for (&i, &v) in idx.iter().zip(&vals) {
                        let c = i % channels;
                        let norm = if var + eps > 0.0 {
                            (v - mean) / (var + eps).sqrt()
                        } else {
                            0.0
                        };
                        let y = gamma[c] * norm + beta[c];
                        out[i] = (y / s_out + zp as f64).round().clamp(-128.0, 127.0);
                    }
                }
            }
        }
        out
    }

    proptest! {
        /// Within one output step of the float normalization of the dequantized values, for sets
        /// of one position's channels and of every position's group of channels.
        #[test]
        fn outputs_are_within_one_step_of_the_float_normalization(
            positions in 1usize..6,
            per_group in 1usize..7,
            groups in 1usize..4,
            across in any::<bool>(),
            seed in any::<u64>(),
            s_in in 0.005f64..0.5,
            s_out in 0.01f64..0.1,
            zp in -20i32..20,
            eps_exp in -7i32..-1,
        ) {
            let channels = per_group * groups;
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let x: Vec<i8> = (0..2 * positions * channels).map(|_| next() as i8).collect();
            let gamma: Vec<f64> = (0..channels).map(|_| (next() % 2000) as f64 / 1000.0 - 1.0).collect();
            let beta: Vec<f64> = (0..channels).map(|_| (next() % 2000) as f64 / 2000.0 - 0.5).collect();
            let eps = 10f64.powi(eps_exp);
            let rows = if across { positions } else { 1 };
            let n = (rows * per_group) as f64;
            let epsilon = (eps * n * n / (s_in * s_in)).round() as u64;
            let (g, b) = affine(&gamma, &beta, s_out, zp);
            let p = Params {
                positions, channels, groups, across_positions: across,
                epsilon, gamma: &g, beta: &b, act_min: -128, act_max: 127,
            };
            let mut out = std::vec![0i8; x.len()];
            normalize_s8(&p, &x, &mut out);
            // eps as the kernel holds it (rounded to an integer of n^2 steps squared).
            let eps_held = epsilon as f64 * s_in * s_in / (n * n);
            let want = reference(&x, positions, channels, groups, across, eps_held, s_in, &gamma, &beta, s_out, zp);
            for (i, (&o, &w)) in out.iter().zip(&want).enumerate() {
                prop_assert!((o as f64 - w).abs() <= 1.0, "element {}: {} vs {}", i, o, w);
            }
        }
    }

    #[test]
    fn equal_values_give_beta() {
        let (g, b) = affine(&[1.0, 2.0], &[0.25, -0.5], 0.05, 3);
        let p = Params {
            positions: 2,
            channels: 2,
            groups: 1,
            across_positions: false,
            epsilon: 0,
            gamma: &g,
            beta: &b,
            act_min: -128,
            act_max: 127,
        };
        let mut out = [0i8; 4];
        normalize_s8(&p, &[9, 9, -4, -4], &mut out);
        // beta / 0.05 + 3: 8 and -7.
        assert_eq!(out, [8, -7, 8, -7]);
    }

    /// The largest set, the widest values and the extreme parameters stay within the 64-bit sums
    /// (a debug build panics on overflow): two values apart from the rest, every other one equal.
    #[test]
    fn extremes_do_not_overflow() {
        let n = MAX_SET;
        let mut x = std::vec![-128i8; n];
        x[0] = 127;
        x[1] = 127;
        for (gamma, beta, epsilon) in [
            (i32::MAX, MAX_BETA, 0),
            (i32::MIN, -MAX_BETA, 0),
            (i32::MAX, -MAX_BETA, MAX_EPSILON),
            (1, 0, 1),
        ] {
            let (g, b) = (gamma.to_le_bytes(), beta.to_le_bytes());
            let p = Params {
                positions: n,
                channels: 1,
                groups: 1,
                across_positions: true,
                epsilon,
                gamma: &g,
                beta: &b,
                act_min: -128,
                act_max: 127,
            };
            let mut out = std::vec![0i8; n];
            normalize_s8(&p, &x, &mut out);
        }
        // Two values of 65536 apart: about 181 standard deviations above the mean (`t` near 2^27.5),
        // the others 0.006 below it.
        let (g, b) = ((1i32 << 12).to_le_bytes(), (1i64 << 31).to_le_bytes());
        let p = Params {
            positions: n,
            channels: 1,
            groups: 1,
            across_positions: true,
            epsilon: 0,
            gamma: &g,
            beta: &b,
            act_min: -128,
            act_max: 127,
        };
        let mut out = std::vec![0i8; n];
        normalize_s8(&p, &x, &mut out);
        // gamma 1 in output steps: each value is its z-score, saturated.
        assert_eq!((out[0], out[1], out[2]), (127, 127, 0));
    }

    /// A model of one Normalize over `[1, 2, 3, 4]` int8 in two groups per position.
    fn model(edit: impl FnOnce(&mut Normalize<'_>)) -> Vec<u8> {
        let shape = Shape::new(&[1, 2, 3, 4]).unwrap();
        let tensor = |name, offset, scale, zero_point| Tensor {
            name,
            dtype: DType::I8,
            shape,
            scale,
            zero_point,
            offset,
            first: 0,
            last: 0,
            in_place: false,
        };
        let tensors = [tensor("x", 0, 0.1, 0), tensor("y", 32, 0.05, 0)];
        let (g, b) = affine(&[1.0; 4], &[0.0; 4], 0.05, 0);
        let mut op = Normalize {
            input: tensors[0].operand(0),
            output: tensors[1].operand(1),
            groups: 2,
            across_positions: false,
            epsilon: 0u64.to_le_bytes(),
            gamma: std::boxed::Box::leak(g.into_boxed_slice()),
            beta: std::boxed::Box::leak(b.into_boxed_slice()),
            act_min: -128,
            act_max: 127,
        };
        edit(&mut op);
        one_op_model(&tensors, 64, false, Op::Normalize(op))
    }

    #[test]
    fn a_model_runs_each_pair_of_channels_apart() {
        let bytes = model(|_| {});
        let m = Model::from_bytes(&bytes).unwrap();
        let mut arena = std::vec![0u8; m.arena_size()];
        let mut it = Interpreter::new(&m, &mut arena).unwrap();
        let x: Vec<i8> = (0..24).map(|i| (i * 7 % 23) as i8 - 11).collect();
        it.input_i8_mut(0).unwrap().copy_from_slice(&x);
        it.invoke().unwrap();
        // Two values a set: each is one standard deviation from its mean, +-1 / 0.05 = +-20.
        let want: Vec<i8> = x
            .chunks_exact(2)
            .flat_map(|p| match p[0].cmp(&p[1]) {
                core::cmp::Ordering::Less => [-20, 20],
                core::cmp::Ordering::Greater => [20, -20],
                core::cmp::Ordering::Equal => [0, 0],
            })
            .collect();
        assert_eq!(it.output_i8(0).unwrap(), want.as_slice());
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(
            refusal(&model(|u| u.groups = 3)),
            "normalize groups do not divide the channels"
        );
        assert_eq!(
            refusal(&model(|u| u.groups = 0)),
            "normalize groups do not divide the channels"
        );
        assert_eq!(
            refusal(&model(|u| u.epsilon = (MAX_EPSILON + 1).to_le_bytes())),
            "normalize epsilon out of range"
        );
        assert_eq!(
            refusal(&model(|u| u.gamma = &[0; 12])),
            "normalize needs a gamma and a beta per channel"
        );
        let huge: &'static [u8] = std::boxed::Box::leak(
            [0i64, i64::MIN, 0, MAX_BETA + 1]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
                .into_boxed_slice(),
        );
        assert_eq!(
            refusal(&model(|u| u.beta = huge)),
            "normalize beta out of range"
        );
        let range = "normalize output range outside int8";
        assert_eq!(refusal(&model(|u| u.act_min = -129)), range);
        assert_eq!(refusal(&model(|u| (u.act_min, u.act_max) = (5, 4))), range);
    }
}
