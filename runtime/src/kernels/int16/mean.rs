//! int16 mean over H and W of an NHWC tensor (TFLite Micro `reduce_common.cc`, `MEAN` on `int16_t`).
//!
//! TFLite Micro runs int16 MEAN through `reference_ops::QuantizedMeanOrSum<int16_t, int32_t>` in every
//! case (there is no path dividing the raw sum when input and output quantization agree): the values
//! are summed in an `int32`, the sum is scaled by `input_scale / output_scale` with `1 / count` folded
//! into the multiplier (`MeanParams::prepare16`), by the 32-bit
//! `MultiplyByQuantizedMultiplier`, then clamped to int16. Zero points are 0.

use crate::kernels::Nhwc;
use crate::ops::MeanParams;

/// Mean over H and W of an NHWC int16 tensor into `output` of shape `(N, 1, 1, C)` (or `(N, C)`).
///
/// `p` must have been prepared with `num_elements = input_shape.h * input_shape.w`, at most
/// [`crate::validate::MAX_REDUCTION`] (the sum then stays within `2^30` in magnitude). An empty window
/// yields zeros, as TFLite leaves the zero-initialised output.
pub fn mean_hw_s16(p: &MeanParams, input_shape: Nhwc, input: &[i16], output: &mut [i16]) {
    let count = (input_shape.h * input_shape.w) as i64;
    for n in 0..input_shape.n {
        for c in 0..input_shape.c {
            let mut sum: i32 = 0;
            for y in 0..input_shape.h {
                for x in 0..input_shape.w {
                    sum = sum.wrapping_add(input[input_shape.index(n, y, x, c)] as i32);
                }
            }
            let out = if count == 0 {
                0
            } else {
                let shifted = (sum as i64 - p.input_zero_point as i64 * count) as i32;
                p.requant
                    .apply(shifted)
                    .wrapping_add(p.output_zero_point)
                    .clamp(i16::MIN as i32, i16::MAX as i32)
            };
            output[n * input_shape.c + c] = out as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::Rng;
    use crate::quant::Requant;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn equal_quantization_rounds_the_rescaled_sum() {
        // Scale ratio 1 (2^30, shift 1) with n = 2 folds to (2^30, shift 0): x / 2 rounded as
        // SaturatingRoundingDoublingHighMul rounds, ties toward +inf: 3.5 -> 4, -3.5 -> -3.
        let p = MeanParams::prepare16(0.1, 0.1, 2);
        assert!(!p.same_quantization);
        assert_eq!(
            p.requant,
            Requant {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        let mut out = [0i16; 2];
        mean_hw_s16(&p, Nhwc::new(1, 1, 2, 2), &[3, -3, 4, -4], &mut out);
        assert_eq!(out, [4, -3]);
    }

    #[test]
    fn folded_multiplier_hand_checked() {
        // input / output = 4 (2^30, shift 3); n = 3: shift 1, multiplier (2^30 << 1) / 3 = 715827882,
        // shift 2. Sum 30000 -> 30000 * 4 / 3 = 40000, clamped to 32767; sum 3000 -> 4000.
        let p = MeanParams::prepare16(0.5, 0.125, 3);
        assert_eq!(
            p.requant,
            Requant {
                multiplier: 715_827_882,
                shift: 2
            }
        );
        let mut out = [0i16; 2];
        mean_hw_s16(
            &p,
            Nhwc::new(1, 3, 1, 2),
            &[10000, 1000, 10000, 1000, 10000, 1000],
            &mut out,
        );
        assert_eq!(out, [32767, 4000]);
    }

    #[test]
    fn extreme_sums_do_not_overflow() {
        // 2^15 values of -32768: the sum is -2^30.
        let shape = Nhwc::new(1, 128, 256, 1);
        let p = MeanParams::prepare16(0.5, 0.5, shape.h * shape.w);
        let mut out = [0i16; 1];
        mean_hw_s16(&p, shape, &vec![i16::MIN; shape.len()], &mut out);
        assert_eq!(out, [i16::MIN]);
        mean_hw_s16(&p, shape, &vec![i16::MAX; shape.len()], &mut out);
        assert_eq!(out, [i16::MAX]);
    }

    #[test]
    fn random_means_match_float_reference() {
        let mut rng = Rng::new(0x16);
        let shapes = [
            Nhwc::new(1, 7, 7, 8),
            Nhwc::new(2, 3, 5, 4),
            Nhwc::new(1, 1, 1, 3),
            Nhwc::new(1, 10, 13, 2),
        ];
        for shape in shapes {
            for _ in 0..10 {
                let si = rng.f32(1e-4, 1e-3);
                let so = rng.f32(0.3, 3.0) * si;
                let p = MeanParams::prepare16(si, so, shape.h * shape.w);
                let input: Vec<i16> = (0..shape.len())
                    .map(|_| (rng.next_u64() >> 48) as u16 as i16)
                    .collect();
                let mut out = vec![0i16; shape.n * shape.c];
                mean_hw_s16(&p, shape, &input, &mut out);
                for n in 0..shape.n {
                    for c in 0..shape.c {
                        let mut sum = 0.0f64;
                        for y in 0..shape.h {
                            for x in 0..shape.w {
                                sum += input[shape.index(n, y, x, c)] as f64;
                            }
                        }
                        let real = sum / (shape.h * shape.w) as f64 * si as f64 / so as f64;
                        let want = real.round().clamp(-32768.0, 32767.0);
                        let got = out[n * shape.c + c] as f64;
                        assert!((got - want).abs() <= 1.0, "{got} vs {want} ({real})");
                    }
                }
            }
        }
    }
}
