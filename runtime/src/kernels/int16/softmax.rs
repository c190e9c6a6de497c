//! int16 softmax over the last axis (TFLite `reference_ops::SoftmaxInt16`): the exponentials and the
//! reciprocal of their sum come from two interpolated 513-entry tables, the output has scale 1/32768.
//!
//! The tables depend on no model: they are the constants of `softmax_tables.rs`, the values
//! TFLite Micro's Prepare computes for every int16 softmax.

use super::softmax_tables::{EXP_LUT, ONE_OVER_ONE_PLUS_X_LUT};
use crate::ops::SoftmaxParams;
use crate::quant::multiply_by_quantized_multiplier;

/// Entries of an int16 interpolation table: 512 segments and the end of the last one.
pub const LUT_LEN: usize = 513;

/// TFLite's int16 `LUTLookup`: the top 9 bits of `value + 32768` pick a segment of `lut`, the low 7
/// bits interpolate linearly inside it (rounded half up).
#[inline(always)]
pub fn lut_lookup(value: i16, lut: &[i16; LUT_LEN]) -> i16 {
    let index = (256 + (value as i32 >> 7)) as usize;
    let offset = (value & 0x7f) as i32;
    let base = lut[index] as i32;
    // The difference of two entries, truncated to 16 bits as TFLite's `int16_t slope` is.
    let slope = (lut[index + 1] as i32 - base) as i16 as i32;
    let delta = (slope * offset + 64) >> 7;
    (base + delta) as i16
}

/// `exp(beta * input_scale * diff)` in Q0.15 for `diff = x - row maximum <= 0`: the difference scaled
/// so that `[-65535, 0]` spans `[-10, 0]`, moved to `[-32768, 32767]` and looked up.
#[inline(always)]
fn exp_q015(p: &SoftmaxParams, diff: i32) -> i16 {
    let scaled = multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift);
    let centred = scaled.saturating_add(32767).clamp(-32768, 32767);
    lut_lookup(centred as i16, &EXP_LUT)
}

/// int16 softmax over `outer` rows of `depth` elements, mirroring TFLite Micro's int16 -> int16 path.
/// The output (scale 1/32768, zero point 0) is in `0..=32767`. Rows hold at most 65535 elements (the
/// format's largest dimension), so the sum of their exponentials (each at most 32767) fits `i32`.
pub fn softmax_s16(
    p: &SoftmaxParams,
    outer: usize,
    depth: usize,
    input: &[i16],
    output: &mut [i16],
) {
    for (row_in, row_out) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
        .take(outer)
    {
        let max_in_row = row_in.iter().copied().max().unwrap_or(i16::MIN) as i32;

        // The exponentials (Q0.15) go to the output first; their sum is Q16.15.
        let mut sum_of_exps: i32 = 0;
        for (&x, o) in row_in.iter().zip(row_out.iter_mut()) {
            *o = exp_q015(p, x as i32 - max_in_row);
            sum_of_exps = sum_of_exps.saturating_add(*o as i32);
        }

        // The row maximum contributes exp(0) (about 32767), so the sum is positive and at least
        // 2^14: `headroom_plus_one` is in 1..=17 and the rescaling shift in 14..=30.
        let headroom_plus_one = (sum_of_exps as u32).leading_zeros().clamp(1, 17);
        // The sum normalised to [2^30, 2^31), kept to 17 bits: 1 + x with x in [0, 1) as Q1.16,
        // moved from [65536, 131071] to [-32768, 32767] for the 1/(1 + x) table.
        let shifted_sum = (((sum_of_exps as i64) << (headroom_plus_one - 1)) + (1 << 13)) >> 14;
        let centred = (shifted_sum - ((1 << 15) + (1 << 16))).clamp(-32768, 32767);
        let reciprocal_q015 = lut_lookup(centred as i16, &ONE_OVER_ONE_PLUS_X_LUT) as i64;

        let right_shift = 31 - headroom_plus_one;
        let round = 1i64 << (right_shift - 1);
        for o in row_out.iter_mut() {
            let scaled = (*o as i64 * reciprocal_q015 + round) >> right_shift;
            *o = scaled.clamp(0, 32767) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::int16::softmax_tables::{EXP_LUT, ONE_OVER_ONE_PLUS_X_LUT};

    fn params(beta: f32, input_scale: f32) -> SoftmaxParams {
        SoftmaxParams::prepare_int16(beta, input_scale)
    }

    #[test]
    fn lookup_interpolates_between_entries() {
        let mut lut = [0i16; LUT_LEN];
        for (i, v) in lut.iter_mut().enumerate() {
            *v = (i as i32 * 64 - 16384).clamp(-32768, 32767) as i16;
        }
        // value -32768: segment 0, offset 0.
        assert_eq!(lut_lookup(-32768, &lut), -16384);
        // value 0: segment 256, offset 0.
        assert_eq!(lut_lookup(0, &lut), 0);
        // value 64: half way through segment 256 (slope 64): 64 * 64 / 128 = 32.
        assert_eq!(lut_lookup(64, &lut), 32);
        // value 1: 64 * 1 / 128 = 0.5, rounded half up.
        assert_eq!(lut_lookup(1, &lut), 1);
        // value -1: segment 255, offset 127: -64 + round(64 * 127 / 128) = -64 + 64.
        assert_eq!(lut_lookup(-1, &lut), 0);
    }

    #[test]
    fn tables_are_monotonic_and_lookups_stay_in_range() {
        assert!(EXP_LUT.windows(2).all(|w| w[0] <= w[1]));
        assert!(ONE_OVER_ONE_PLUS_X_LUT.windows(2).all(|w| w[0] >= w[1]));
        // Every input natively; a sample under Miri, which interprets each instruction.
        let step = if cfg!(miri) { 97 } else { 1 };
        for v in (i16::MIN..=i16::MAX).step_by(step) {
            let e = lut_lookup(v, &EXP_LUT);
            assert!((0..=32767).contains(&e), "exp({v}) = {e}");
            let r = lut_lookup(v, &ONE_OVER_ONE_PLUS_X_LUT);
            assert!((16384..=32767).contains(&r), "1/(1+x)({v}) = {r}");
        }
        // exp(0) and exp(-10) (1.49 in Q0.15, moved up by the interpolation correction), 1/(1 + 0)
        // and 1/(1 + 1).
        assert_eq!(EXP_LUT[512], 32767);
        assert_eq!(EXP_LUT[0], 2);
        assert_eq!(ONE_OVER_ONE_PLUS_X_LUT[0], 32767);
        assert_eq!(ONE_OVER_ONE_PLUS_X_LUT[512], 16384);
    }

    #[test]
    fn uniform_row_splits_evenly() {
        // Four equal inputs: exp(0) each, the output a quarter (8192 in Q0.15, within rounding).
        let p = params(1.0, 1.0 / 4096.0);
        let mut out = [0i16; 4];
        softmax_s16(&p, 1, 4, &[100, 100, 100, 100], &mut out);
        for &o in &out {
            assert!((8190..=8193).contains(&o), "{out:?}");
        }
        assert!(out.iter().all(|&o| o == out[0]));
    }

    #[test]
    fn rows_follow_the_real_softmax() {
        let scale = 1.0 / 2048.0;
        let p = params(1.0, scale);
        let x: [i16; 6] = [0, 2048, 4096, -4096, 30000, -30000];
        let mut out = [0i16; 6];
        softmax_s16(&p, 2, 3, &x, &mut out);
        for row in 0..2 {
            let xs = &x[3 * row..][..3];
            let max = xs
                .iter()
                .map(|&v| v as f64 * scale as f64)
                .fold(f64::MIN, f64::max);
            let sum: f64 = xs
                .iter()
                .map(|&v| (v as f64 * scale as f64 - max).exp())
                .sum();
            for c in 0..3 {
                let want = (xs[c] as f64 * scale as f64 - max).exp() / sum;
                let got = out[3 * row + c] as f64 / 32768.0;
                assert!((want - got).abs() < 2e-3, "row {row}: {got} vs {want}");
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "a row of 65535 elements: too slow interpreted")]
    fn largest_rows_do_not_overflow() {
        // 65535 equal elements: the sum of exponentials is near 2^31.
        let p = params(1.0, 1.0 / 32768.0);
        let x = std::vec![i16::MAX; 65535];
        let mut out = std::vec![0i16; 65535];
        softmax_s16(&p, 1, 65535, &x, &mut out);
        assert!(out.iter().all(|&o| o == out[0] && o <= 1));
        // Differences beyond -10 count as exp(-10), the table's first entry.
        let mut out = [0i16; 2];
        softmax_s16(&params(1.0, 1.0), 1, 2, &[i16::MIN, i16::MAX], &mut out);
        assert_eq!(out, [2, 32766]);
    }
}
