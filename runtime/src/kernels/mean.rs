//! Int8 mean over H and W of an NHWC tensor (TFLite Micro `reduce_common.cc` int8 MEAN path).
//!
//! TFLite Micro's `EvalIntegerMean` picks one of two paths: with identical input and output quantization,
//! the raw int8 values are summed and divided by the count with C integer division (truncation toward
//! zero, `reference_ops::Mean`); otherwise the zero-point-corrected sum is rescaled by
//! `input_scale / (output_scale * count)` (`reference_ops::QuantizedMeanOrSum`).

use super::Nhwc;
use crate::ops::MeanParams;

/// Mean over H and W of an NHWC int8 tensor into `output` of shape `(N, 1, 1, C)` (or `(N, C)`).
///
/// `p` must have been prepared with `num_elements = input_shape.h * input_shape.w`. An empty window
/// yields zeros, as TFLite leaves the zero-initialised output.
pub fn mean_hw_s8(p: &MeanParams, input_shape: Nhwc, input: &[i8], output: &mut [i8]) {
    let count = (input_shape.h * input_shape.w) as i32;
    for n in 0..input_shape.n {
        for c in 0..input_shape.c {
            // Sum of the raw values; TFLite's accumulator wraps on overflow.
            let mut sum: i32 = 0;
            for y in 0..input_shape.h {
                for x in 0..input_shape.w {
                    sum = sum.wrapping_add(input[input_shape.index(n, y, x, c)] as i32);
                }
            }
            let out = if count == 0 {
                0
            } else if p.same_quantization {
                // reference_ops::Mean: integer division truncating toward zero.
                sum / count
            } else {
                // reference_ops::QuantizedMeanOrSum: remove the zero point from the sum, rescale, re-centre.
                let shifted = (sum as i64 - p.input_zero_point as i64 * count as i64) as i32;
                (p.requant.apply(shifted).wrapping_add(p.output_zero_point)).clamp(-128, 127)
            };
            output[n * input_shape.c + c] = out as i8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, dequant, quant, Rng};
    use crate::quant::Requant;
    use std::vec;
    use std::vec::Vec;

    fn reference(shape: Nhwc, input: &[i8], (si, zi): (f32, i32), (so, zo): (f32, i32)) -> Vec<i8> {
        let mut want = Vec::new();
        for n in 0..shape.n {
            for c in 0..shape.c {
                let mut acc = 0.0;
                for y in 0..shape.h {
                    for x in 0..shape.w {
                        acc += dequant(input[shape.index(n, y, x, c)], si, zi);
                    }
                }
                want.push(quant(acc / (shape.h * shape.w) as f64, so, zo));
            }
        }
        want
    }

    #[test]
    fn mean_matches_float_reference() {
        let mut rng = Rng::new(3);
        let shapes = [
            Nhwc::new(1, 7, 7, 8),
            Nhwc::new(2, 3, 5, 4),
            Nhwc::new(1, 1, 1, 3),
            Nhwc::new(1, 10, 13, 2),
            Nhwc::new(1, 64, 64, 1),
        ];
        for shape in shapes {
            for trial in 0..10 {
                let (si, zi) = (rng.f32(0.01, 0.2), rng.range(-40, 40));
                let (so, zo) = if trial % 2 == 0 {
                    (si, zi)
                } else {
                    (rng.f32(0.3, 1.5) * si, rng.range(-40, 40))
                };
                let p = MeanParams::prepare(si, zi, so, zo, shape.h * shape.w);
                assert_eq!(p.same_quantization, trial % 2 == 0);
                let input = rng.i8_vec(shape.len());
                let mut out = vec![0i8; shape.n * shape.c];
                mean_hw_s8(&p, shape, &input, &mut out);
                assert_close(&out, &reference(shape, &input, (si, zi), (so, zo)), 1);
            }
        }
    }

    #[test]
    fn same_quantization_truncates_toward_zero() {
        let p = MeanParams::prepare(0.1, 0, 0.1, 0, 2);
        let shape = Nhwc::new(1, 1, 2, 2);
        let mut out = [0i8; 2];
        // Channel 0: (3 + 4) / 2 = 3.5 -> 3; channel 1: (-3 - 4) / 2 = -3.5 -> -3.
        mean_hw_s8(&p, shape, &[3, -3, 4, -4], &mut out);
        assert_eq!(out, [3, -3]);
    }

    #[test]
    fn folded_multiplier_hand_checked() {
        // input/output = 0.5 (2^30, shift 0); n = 4: shift = 2, multiplier (2^30 << 2) / 4 = 2^30, shift -2.
        let p = MeanParams::prepare(0.1, 0, 0.2, 0, 4);
        assert_eq!(
            p.requant,
            Requant {
                multiplier: 1 << 30,
                shift: -2
            }
        );
        // n = 3: shift = 1, multiplier (2^30 << 1) / 3 = 715827882, shift -1.
        let p = MeanParams::prepare(0.1, 0, 0.2, 0, 3);
        assert_eq!(
            p.requant,
            Requant {
                multiplier: 715_827_882,
                shift: -1
            }
        );
        // Sum 10 - 3 * (-5) = 25 real units of 0.1 -> 2.5 / 3 / 0.2 = 4.17 -> 4, + 1.
        let p = MeanParams::prepare(0.1, -5, 0.2, 1, 3);
        let mut out = [0i8; 1];
        mean_hw_s8(&p, Nhwc::new(1, 1, 3, 1), &[2, 3, 5], &mut out);
        assert_eq!(out, [5]);
    }
}
