//! Int8 Logistic, Tanh (gemmlowp fixed point), standalone ReLU / ReLU6, leaky ReLU and PReLU (TFLite
//! Micro reference paths).

use super::fixedpoint;
use crate::ops::{LeakyReluParams, LogisticParams, PReluParams, ReluParams, TanhParams};
use crate::quant::{multiply_by_quantized_multiplier, rounding_divide_by_pot};

/// Integer bits of the rescaled Logistic/Tanh input (Q4.27), as in TFLite Micro's Prepare.
pub const INPUT_INTEGER_BITS: u32 = 4;

/// Int8 logistic, mirroring TFLite `reference_integer_ops::Logistic` (int8): output scale 1/256, zero point -128.
pub fn logistic_s8(p: &LogisticParams, input: &[i8], output: &mut [i8]) {
    for (&x, o) in input.iter().zip(output.iter_mut()) {
        let centred = x as i32 - p.input_zero_point;
        *o = if centred <= -p.input_range_radius {
            i8::MIN
        } else if centred >= p.input_range_radius {
            i8::MAX
        } else {
            let q4 =
                multiply_by_quantized_multiplier(centred, p.input_multiplier, p.input_left_shift);
            let q0 = fixedpoint::logistic(q4, INPUT_INTEGER_BITS);
            // Q0.31 -> multiples of 1/256, re-centred on -128.
            (rounding_divide_by_pot(q0, 31 - 8) - 128).clamp(-128, 127) as i8
        };
    }
}

/// Int8 tanh, mirroring TFLite `reference_integer_ops::Tanh` (int8): output scale 1/128, zero point 0.
pub fn tanh_s8(p: &TanhParams, input: &[i8], output: &mut [i8]) {
    for (&x, o) in input.iter().zip(output.iter_mut()) {
        let centred = x as i32 - p.input_zero_point;
        *o = if centred <= -p.input_range_radius {
            i8::MIN
        } else if centred >= p.input_range_radius {
            i8::MAX
        } else {
            let q4 =
                multiply_by_quantized_multiplier(centred, p.input_multiplier, p.input_left_shift);
            let q0 = fixedpoint::tanh(q4, INPUT_INTEGER_BITS);
            // Q0.31 -> multiples of 1/128.
            rounding_divide_by_pot(q0, 31 - 7).clamp(-128, 127) as i8
        };
    }
}

/// Int8 ReLU-family activation, mirroring TFLite Micro's `ReluQuantized` (and `Relu6Quantized` through the
/// identity parameters `ReluParams::prepare` builds for ReLU6):
/// `out = clamp(zp_out + requant(x - zp_in), act_min, act_max)`.
pub fn relu_s8(p: &ReluParams, input: &[i8], output: &mut [i8]) {
    for (&x, o) in input.iter().zip(output.iter_mut()) {
        let raw = p
            .output_zero_point
            .wrapping_add(p.requant.apply(x as i32 - p.input_zero_point));
        *o = raw.clamp(p.act_min, p.act_max) as i8;
    }
}

/// Int8 leaky ReLU, mirroring TFLite `reference_ops::QuantizeLeakyRelu`: the input (minus its zero
/// point) rescaled by the identity factor when non-negative, by the alpha factor when negative, plus
/// the output zero point, saturated to int8.
pub fn leaky_relu_s8(p: &LeakyReluParams, input: &[i8], output: &mut [i8]) {
    for (&x, o) in input.iter().zip(output.iter_mut()) {
        let centred = x as i32 - p.input_zero_point;
        let factor = if centred >= 0 { &p.identity } else { &p.alpha };
        *o = p
            .output_zero_point
            .wrapping_add(factor.apply(centred))
            .clamp(-128, 127) as i8;
    }
}

/// Int8 PReLU, mirroring TFLite `reference_ops::BroadcastPrelu4DSlow` with `alpha` broadcast over the
/// last axis (one value, or one per channel: element `i` uses `alpha[i % alpha.len()]`): the input
/// (minus its zero point) rescaled by the identity factor when non-negative; below, its product with
/// `alpha - alpha_zero_point` rescaled by the alpha factor; plus the output zero point, saturated.
pub fn prelu_s8(p: &PReluParams, alpha: &[i8], input: &[i8], output: &mut [i8]) {
    let mut c = 0;
    for (&x, o) in input.iter().zip(output.iter_mut()) {
        let centred = x as i32 - p.input_zero_point;
        let scaled = if centred >= 0 {
            p.identity.apply(centred)
        } else {
            let a = alpha.get(c).map_or(0, |&a| a as i32 - p.alpha_zero_point);
            p.alpha.apply(centred * a)
        };
        *o = p.output_zero_point.wrapping_add(scaled).clamp(-128, 127) as i8;
        c += 1;
        if c >= alpha.len() {
            c = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Activation;
    use crate::kernels::testutil::{assert_close, dequant, quant};
    use std::vec::Vec;

    /// Every int8 value once.
    fn all_inputs() -> Vec<i8> {
        (i8::MIN..=i8::MAX).collect()
    }

    const INPUT_QUANTS: [(f32, i32); 7] = [
        (0.1, 0),
        (0.05, -20),
        (0.02, 10),
        (0.15, 60),
        (1.0 / 16.0, -128),
        (0.0078125, 0),
        (0.3, 5),
    ];

    #[test]
    fn logistic_matches_float_reference_over_full_range() {
        let input = all_inputs();
        for (scale, zero_point) in INPUT_QUANTS {
            let p = LogisticParams::prepare(scale, zero_point);
            let mut out = [0i8; 256];
            logistic_s8(&p, &input, &mut out);
            let want: Vec<i8> = input
                .iter()
                .map(|&q| {
                    quant(
                        1.0 / (1.0 + (-dequant(q, scale, zero_point)).exp()),
                        1.0 / 256.0,
                        -128,
                    )
                })
                .collect();
            assert_close(&out, &want, 1);
        }
    }

    #[test]
    fn tanh_matches_float_reference_over_full_range() {
        let input = all_inputs();
        for (scale, zero_point) in INPUT_QUANTS {
            let p = TanhParams::prepare(scale, zero_point);
            let mut out = [0i8; 256];
            tanh_s8(&p, &input, &mut out);
            let want: Vec<i8> = input
                .iter()
                .map(|&q| quant(dequant(q, scale, zero_point).tanh(), 1.0 / 128.0, 0))
                .collect();
            assert_close(&out, &want, 1);
        }
    }

    #[test]
    fn logistic_tanh_prepare_hand_checked() {
        // 0.1f32 is 13421773 * 2^-27, so 0.1f32 * 2^27 = 13421773 = (13421773 / 2^24) * 2^24: multiplier
        // 13421773 * 2^7, shift 24,
        // radius floor(15 * 2^27 / 2^24) = 120.
        let p = LogisticParams::prepare(0.1, 3);
        assert_eq!(
            p,
            LogisticParams {
                input_zero_point: 3,
                input_range_radius: 120,
                input_multiplier: 1_717_986_944,
                input_left_shift: 24
            }
        );
        let t = TanhParams::prepare(0.1, 3);
        assert_eq!(
            (t.input_range_radius, t.input_multiplier, t.input_left_shift),
            (120, 1_717_986_944, 24)
        );
        // Zero maps to the middle of the output range.
        let mut out = [0i8; 1];
        logistic_s8(&p, &[3], &mut out);
        assert_eq!(out, [0]);
        tanh_s8(&t, &[3], &mut out);
        assert_eq!(out, [0]);
    }

    #[test]
    fn relu_matches_float_reference() {
        let input = all_inputs();
        let quants = [
            ((0.1, 0), (0.1, 0)),
            ((0.1, -20), (0.05, -128)),
            ((0.02, 10), (0.03, -5)),
            ((0.2, 30), (0.1, 0)),
        ];
        for ((si, zi), (so, zo)) in quants {
            for (act, lo, hi) in [
                (Activation::Relu, 0.0, f64::INFINITY),
                (Activation::None, f64::NEG_INFINITY, f64::INFINITY),
                (Activation::ReluN1To1, -1.0, 1.0),
            ] {
                let p = ReluParams::prepare(si, zi, so, zo, act);
                let mut out = [0i8; 256];
                relu_s8(&p, &input, &mut out);
                let want: Vec<i8> = input
                    .iter()
                    .map(|&q| quant(dequant(q, si, zi).clamp(lo, hi), so, zo))
                    .collect();
                assert_close(&out, &want, 1);
            }
        }
    }

    #[test]
    fn leaky_relu_matches_float_reference() {
        let input = all_inputs();
        let quants = [
            ((0.1, 0), (0.1, 0)),
            ((0.1, -20), (0.05, 40)),
            ((0.02, 10), (0.03, -5)),
            ((0.2, 30), (0.01, -128)),
        ];
        for ((si, zi), (so, zo)) in quants {
            for alpha in [0.0f32, 0.01, 0.2, 1.0, 3.0] {
                let p = LeakyReluParams::prepare(si, zi, alpha, so, zo);
                let mut out = [0i8; 256];
                leaky_relu_s8(&p, &input, &mut out);
                let want: Vec<i8> = input
                    .iter()
                    .map(|&q| {
                        let x = dequant(q, si, zi);
                        quant(if x >= 0.0 { x } else { alpha as f64 * x }, so, zo)
                    })
                    .collect();
                assert_close(&out, &want, 1);
            }
        }
    }

    #[test]
    fn leaky_relu_hand_checked() {
        // Scales 0.5 -> 0.25: identity factor 2 (2^30, shift 2), alpha 0.25 -> factor 0.5 (2^30, 0).
        let p = LeakyReluParams::prepare(0.5, 3, 0.25, 0.25, -1);
        assert_eq!((p.identity.multiplier, p.identity.shift), (1 << 30, 2));
        assert_eq!((p.alpha.multiplier, p.alpha.shift), (1 << 30, 0));
        let mut out = [0i8; 5];
        leaky_relu_s8(&p, &[3, 10, -4, -128, 127], &mut out);
        // 0 -> -1; 7 * 2 - 1 = 13; the doubling high multiply rounds half up: -7 * 0.5 -> -3, then
        // -1 -> -4, and -131 * 0.5 -> -65 -> -66; 124 * 2 - 1 = 247 saturates to 127.
        assert_eq!(out, [-1, 13, -4, -66, 127]);
    }

    #[test]
    fn relu6_clamps_in_the_input_domain() {
        let input = all_inputs();
        for (scale, zero_point) in [(0.05f32, -20), (0.1, 0), (0.03, -128), (0.0235, -100)] {
            // TFLite Micro's Relu6 keeps the input quantization: output = clamp(x, zp, quantize(6)).
            let p = ReluParams::prepare(scale, zero_point, 0.5, 7, Activation::Relu6);
            let mut out = [0i8; 256];
            relu_s8(&p, &input, &mut out);
            let six = (zero_point + (6.0f32 / scale).round() as i32).clamp(-128, 127);
            for (&x, &o) in input.iter().zip(out.iter()) {
                assert_eq!(o as i32, (x as i32).clamp(zero_point, six));
            }
            let want: Vec<i8> = input
                .iter()
                .map(|&q| {
                    quant(
                        dequant(q, scale, zero_point).clamp(0.0, 6.0),
                        scale,
                        zero_point,
                    )
                })
                .collect();
            assert_close(&out, &want, 1);
        }
    }

    /// A scale so small that a bound lies beyond `i32`: the bounds saturate to the int8 range instead
    /// of overflowing (found by fuzzing the TFLite converter).
    #[test]
    fn bounds_of_a_tiny_scale_saturate() {
        for zero_point in [-128, 0, 127] {
            let p = ReluParams::prepare(1e-38, zero_point, 1e-38, zero_point, Activation::Relu6);
            assert_eq!((p.act_min, p.act_max), (zero_point, 127));
            let p =
                ReluParams::prepare(1e-38, zero_point, 1e-38, zero_point, Activation::ReluN1To1);
            assert_eq!((p.act_min, p.act_max), (-128, 127));
            let clamp = crate::format::quantized_clamp(-6.0, 6.0, 1e-38, zero_point);
            assert_eq!(clamp, (-128, 127));
        }
    }

    #[test]
    fn prelu_matches_float_reference() {
        let input = all_inputs();
        let quants = [
            ((0.1, 0), (0.1, 0)),
            ((0.1, -20), (0.05, 40)),
            ((0.02, 10), (0.03, -5)),
            ((0.2, 30), (0.01, -128)),
        ];
        // Alpha as TFLite's converter stores it: int8 with its own scale and zero point.
        let alphas: [(&[i8], f32, i32); 4] = [
            (&[25], 0.01, 0),
            (&[-128, -60, 0, 37, 127], 0.004, -128),
            (&[10, -3, 100, 127], 0.02, 5),
            (&[-100, 50, 0, 90], 0.03, -10),
        ];
        for ((si, zi), (so, zo)) in quants {
            for (alpha, sa, za) in alphas {
                let p = PReluParams::prepare(si, zi, sa, za, so, zo);
                let mut out = [0i8; 256];
                prelu_s8(&p, alpha, &input, &mut out);
                let want: Vec<i8> = input
                    .iter()
                    .enumerate()
                    .map(|(i, &q)| {
                        let x = dequant(q, si, zi);
                        let a = dequant(alpha[i % alpha.len()], sa, za);
                        quant(if x >= 0.0 { x } else { a * x }, so, zo)
                    })
                    .collect();
                assert_close(&out, &want, 1);
            }
        }
    }

    #[test]
    fn prelu_hand_checked() {
        // Scales 0.5 -> 0.25: identity factor 2 (2^30, shift 2); alpha scale 0.125: factor 0.25
        // (2^30, shift -1). Alpha zero point 2: alphas 6 and -2 are 4 and -4 (0.5 and -0.5).
        let p = PReluParams::prepare(0.5, 3, 0.125, 2, 0.25, -1);
        assert_eq!((p.identity.multiplier, p.identity.shift), (1 << 30, 2));
        assert_eq!((p.alpha.multiplier, p.alpha.shift), (1 << 30, -1));
        let mut out = [0i8; 6];
        prelu_s8(&p, &[6, -2], &[3, 10, -4, -4, -128, 127], &mut out);
        // 0 -> -1; 7 * 2 - 1 = 13; channel 0: -7 * 4 * 0.25 = -7, -1 -> -8; channel 1: -7 * -4 *
        // 0.25 = 7 -> 6; channel 0: -131 * 4 * 0.25 = -131, -1 saturates to -128; 124 * 2 - 1 -> 127.
        assert_eq!(out, [-1, 13, -8, 6, -128, 127]);
    }
}
