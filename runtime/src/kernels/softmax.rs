//! Int8 softmax over the last axis with gemmlowp fixed-point exp (TFLite Micro int8 path, `reference_ops::Softmax`).
//!
//! The output is quantized with scale 1/256 and zero point -128, as TFLite requires.

use super::fixedpoint::{exp_on_negative_values, get_reciprocal, rescale};
use crate::ops::SoftmaxParams;
use crate::quant::{
    multiply_by_quantized_multiplier, rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
};

/// Integer bits of the scaled input differences (Q5.26).
pub const SCALED_DIFF_INTEGER_BITS: u32 = 5;
/// Integer bits of the sum of exponentials (Q12.19).
pub const ACCUMULATION_INTEGER_BITS: u32 = 12;

/// exp(beta * input_scale * diff) in Q0.31, or None when the difference is below diff_min. Out of
/// line: both passes over a row call it.
#[inline(never)]
fn exp_of(p: &SoftmaxParams, diff: i32) -> Option<i32> {
    if diff >= p.diff_min {
        let scaled = multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift);
        Some(exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS))
    } else {
        None
    }
}

/// Int8 softmax over `outer` rows of `depth` elements, mirroring TFLite Micro's int8 -> int8 path
/// (`reference_ops::Softmax<int8_t, int8_t>`). Output scale 1/256, zero point -128.
pub fn softmax_s8(p: &SoftmaxParams, outer: usize, depth: usize, input: &[i8], output: &mut [i8]) {
    for (row_in, row_out) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
        .take(outer)
    {
        let max_in_row = row_in.iter().copied().max().unwrap_or(i8::MIN) as i32;

        // Sum of exponentials in Q12.19 (wraps like TFLite beyond 4096 terms).
        let mut sum_of_exps: i32 = 0;
        for &x in row_in {
            if let Some(e) = exp_of(p, x as i32 - max_in_row) {
                sum_of_exps = sum_of_exps.wrapping_add(rescale(e, 0, ACCUMULATION_INTEGER_BITS));
            }
        }

        // 1 / sum = shifted_scale * 2^-num_bits_over_unit; the output has 8 bits, so divide by 2^(bits + 23).
        let (shifted_scale, num_bits_over_unit) =
            get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS as i32);
        // TFLite checks 0 <= exponent <= 31. It exceeds 31 only when the sum reaches 512 (long rows), where every
        // Q0.31 product divided by 2^32 or more rounds to 0; that exact result is produced here instead.
        let exponent = (num_bits_over_unit + 31 - 8).max(0);

        for (&x, o) in row_in.iter().zip(row_out.iter_mut()) {
            *o = match exp_of(p, x as i32 - max_in_row) {
                Some(e) => {
                    let scaled = saturating_rounding_doubling_high_mul(shifted_scale, e);
                    let unsat = if exponent > 31 {
                        0
                    } else {
                        rounding_divide_by_pot(scaled, exponent)
                    };
                    (unsat - 128).clamp(-128, 127) as i8
                }
                None => i8::MIN,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, dequant, quant, Rng};
    use std::vec;
    use std::vec::Vec;

    fn reference(input: &[i8], depth: usize, scale: f32, zero_point: i32, beta: f32) -> Vec<i8> {
        let mut want = Vec::new();
        for row in input.chunks_exact(depth) {
            let reals: Vec<f64> = row.iter().map(|&q| dequant(q, scale, zero_point)).collect();
            let max = reals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = reals
                .iter()
                .map(|&r| ((r - max) * beta as f64).exp())
                .collect();
            let sum: f64 = exps.iter().sum();
            want.extend(exps.iter().map(|&e| quant(e / sum, 1.0 / 256.0, -128)));
        }
        want
    }

    #[test]
    fn softmax_matches_float_reference() {
        let mut rng = Rng::new(4);
        for &depth in &[1usize, 2, 5, 10, 33, 100, 300] {
            for &beta in &[1.0f32, 0.5, 2.0] {
                for _ in 0..6 {
                    let (scale, zero_point) = (rng.f32(0.01, 0.3), rng.range(-50, 50));
                    let outer = 3;
                    let p = SoftmaxParams::prepare(beta, scale);
                    let input = rng.i8_vec(outer * depth);
                    let mut out = vec![0i8; outer * depth];
                    softmax_s8(&p, outer, depth, &input, &mut out);
                    assert_close(&out, &reference(&input, depth, scale, zero_point, beta), 1);
                }
            }
        }
    }

    #[test]
    fn prepare_hand_checked() {
        // beta * scale * 2^26 = 2^-4 * 2^26 = 2^22 = 0.5 * 2^23.
        let p = SoftmaxParams::prepare(1.0, 1.0 / 16.0);
        assert_eq!((p.input_multiplier, p.input_left_shift), (1 << 30, 23));
        // diff_min = -floor(31 * 2^26 / 2^23) = -248.
        assert_eq!(p.diff_min, -248);
        // A huge factor is capped at 2^31 - 1: shift 31, and only the row maximum survives.
        let p = SoftmaxParams::prepare(1.0, 1000.0);
        assert_eq!(
            (p.input_multiplier, p.input_left_shift, p.diff_min),
            (i32::MAX, 31, 0)
        );
        let mut out = [0i8; 3];
        softmax_s8(&p, 1, 3, &[5, 7, 6], &mut out);
        assert_eq!(out, [-128, 127, -128]);
    }

    #[test]
    fn uniform_and_saturated_rows() {
        let p = SoftmaxParams::prepare(1.0, 0.1);
        // Four equal values: 1/4 -> 64 - 128 = -64.
        let mut out = [0i8; 4];
        softmax_s8(&p, 1, 4, &[3, 3, 3, 3], &mut out);
        assert_eq!(out, [-64; 4]);
        // A single element is certain: 1.0 saturates to 127.
        let mut out = [0i8; 1];
        softmax_s8(&p, 1, 1, &[-20], &mut out);
        assert_eq!(out, [127]);
        // Long uniform rows (exponent above 31 in TFLite's formula) give 0 probability.
        let input = vec![0i8; 1000];
        let mut out = vec![0i8; 1000];
        softmax_s8(&p, 1, 1000, &input, &mut out);
        assert!(out.iter().all(|&v| v == -128));
    }
}
