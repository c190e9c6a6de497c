//! int16 standalone ReLU / ReLU6 / ReLU-1..1 and leaky ReLU (TFLite Micro's `ReluQuantized`,
//! `Relu6Quantized` and `QuantizeLeakyRelu` on int16, zero points 0).

use crate::ops::{LeakyReluParams, ReluParams};

/// int16 ReLU-family activation: `out = clamp(requant(x), act_min, act_max)` (ReLU6's identity
/// parameters clamp in the input's domain, as TFLite Micro does).
pub fn relu_s16(p: &ReluParams, input: &[i16], output: &mut [i16]) {
    for (&x, o) in input.iter().zip(output.iter_mut()) {
        let raw = p
            .output_zero_point
            .wrapping_add(p.requant.apply((x as i32).wrapping_sub(p.input_zero_point)));
        *o = raw.clamp(p.act_min, p.act_max) as i16;
    }
}

/// int16 leaky ReLU: the input rescaled by the identity factor when non-negative, by the alpha
/// factor when negative, saturated to int16.
pub fn leaky_relu_s16(p: &LeakyReluParams, input: &[i16], output: &mut [i16]) {
    for (&x, o) in input.iter().zip(output.iter_mut()) {
        let centred = (x as i32).wrapping_sub(p.input_zero_point);
        let factor = if centred >= 0 { &p.identity } else { &p.alpha };
        *o = p
            .output_zero_point
            .wrapping_add(factor.apply(centred))
            .clamp(i16::MIN as i32, i16::MAX as i32) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Activation;
    use std::vec;
    use std::vec::Vec;

    /// A spread of int16 values, the extremes included.
    fn inputs() -> Vec<i16> {
        (-32768i32..=32767)
            .step_by(97)
            .chain([32767])
            .map(|v| v as i16)
            .collect()
    }

    fn quant16(x: f64, scale: f32) -> i32 {
        (x / scale as f64).round().clamp(-32768.0, 32767.0) as i32
    }

    #[test]
    fn relu_matches_float_reference() {
        let input = inputs();
        for (si, so) in [(1e-4f32, 1e-4f32), (1.1173e-4, 9.7459e-5), (3e-4, 1e-3)] {
            for (act, lo, hi) in [
                (Activation::Relu, 0.0, f64::INFINITY),
                (Activation::None, f64::NEG_INFINITY, f64::INFINITY),
                (Activation::ReluN1To1, -1.0, 1.0),
            ] {
                let p = ReluParams::prepare_int16(si, so, act);
                let mut out = vec![0i16; input.len()];
                relu_s16(&p, &input, &mut out);
                for (&x, &got) in input.iter().zip(&out) {
                    let want = quant16((x as f64 * si as f64).clamp(lo, hi), so);
                    assert!(
                        (got as i32 - want).abs() <= 1,
                        "{act:?} {x}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn relu6_clamps_in_the_input_domain() {
        // TFLite Micro ignores the output's scale: 6 / 0.0004469 = 13425.1 -> 13425.
        let p = ReluParams::prepare_int16(0.000_446_923, 0.000_183_111, Activation::Relu6);
        assert_eq!((p.act_min, p.act_max), (0, 13425));
        let mut out = [0i16; 4];
        relu_s16(&p, &[-5, 7, 13426, 32767], &mut out);
        assert_eq!(out, [0, 7, 13425, 13425]);
        // A scale too small for 6 saturates the bound to int16.
        let p = ReluParams::prepare_int16(1e-6, 1e-6, Activation::Relu6);
        assert_eq!((p.act_min, p.act_max), (0, 32767));
    }

    #[test]
    fn leaky_relu_matches_float_reference() {
        let input = inputs();
        for (si, so) in [(2.2346e-4f32, 1.9492e-4f32), (1e-4, 1e-4), (5e-5, 2e-4)] {
            for alpha in [0.0f32, 0.01, 0.1, 1.0, 3.0] {
                let p = LeakyReluParams::prepare(si, 0, alpha, so, 0);
                let mut out = vec![0i16; input.len()];
                leaky_relu_s16(&p, &input, &mut out);
                for (&x, &got) in input.iter().zip(&out) {
                    let real = x as f64 * si as f64;
                    let want = quant16(
                        if real >= 0.0 {
                            real
                        } else {
                            alpha as f64 * real
                        },
                        so,
                    );
                    assert!(
                        (got as i32 - want).abs() <= 1,
                        "{alpha} {x}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn leaky_relu_hand_checked() {
        // Identity 1, alpha 0.5 (both exact): -301 * 0.5 = -150.5 rounds up (the doubling
        // high multiply's ties go toward +inf).
        let p = LeakyReluParams::prepare(1e-3, 0, 0.5, 1e-3, 0);
        let mut out = [0i16; 4];
        leaky_relu_s16(&p, &[-301, 300, -32768, 32767], &mut out);
        assert_eq!(out, [-150, 300, -16384, 32767]);
    }
}
