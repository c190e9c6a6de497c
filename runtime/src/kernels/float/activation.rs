//! f32 element-wise activations.

use super::math::{exp_f32, tanh_scalar_f32};
use crate::format::Activation;
use crate::kernels::LeF32;

/// `output[i] = 1 / (1 + e^-input[i])`. Slices have equal lengths.
pub fn logistic_f32(input: &[f32], output: &mut [f32]) {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = 1.0 / (1.0 + exp_f32(-x));
    }
}

/// `output[i] = tanh(input[i])`. Slices have equal lengths.
pub fn tanh_f32(input: &[f32], output: &mut [f32]) {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = tanh_scalar_f32(x);
    }
}

/// `output[i] = act(input[i])`: the standalone Relu, Relu6 and ReluN1To1 operators (`None` copies).
/// Slices have equal lengths.
pub fn relu_f32(act: Activation, input: &[f32], output: &mut [f32]) {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = act.apply_f32(x);
    }
}

/// `output[i] = input[i]` where non-negative, `alpha * input[i]` below: the standalone LeakyRelu.
/// Slices have equal lengths.
pub fn leaky_relu_f32(alpha: f32, input: &[f32], output: &mut [f32]) {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = if x >= 0.0 { x } else { alpha * x };
    }
}

/// `output[i] = input[i]` where non-negative, `alpha[i % alpha.len()] * input[i]` below: PReLU with
/// one slope or one per channel of the last axis. Slices have equal lengths.
pub fn prelu_f32(alpha: LeF32<'_>, input: &[f32], output: &mut [f32]) {
    let mut c = 0;
    for (o, &x) in output.iter_mut().zip(input) {
        *o = if x >= 0.0 { x } else { alpha.get(c) * x };
        c += 1;
        if c >= alpha.len() {
            c = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::float::testutil::*;
    use std::vec::Vec;

    #[test]
    fn hand_computed() {
        let mut out = [0.0f32; 5];
        logistic_f32(&[0.0, 200.0, -200.0, 3f32.ln(), f32::INFINITY], &mut out);
        assert_eq!(out[..3], [0.5, 1.0, 0.0]);
        assert!((out[3] - 0.75).abs() < 1e-7);
        assert_eq!(out[4], 1.0);
        tanh_f32(
            &[0.0, 100.0, -100.0, 0.5 * 3f32.ln(), -0.5 * 3f32.ln()],
            &mut out,
        );
        assert_eq!(out[..3], [0.0, 1.0, -1.0]);
        assert!((out[3] - 0.5).abs() < 1e-7 && (out[4] + 0.5).abs() < 1e-7);
        let input = [-2.0f32, -0.5, 0.5, 7.0, f32::NEG_INFINITY];
        relu_f32(Activation::Relu, &input, &mut out);
        assert_eq!(out, [0.0, 0.0, 0.5, 7.0, 0.0]);
        relu_f32(Activation::Relu6, &input, &mut out);
        assert_eq!(out, [0.0, 0.0, 0.5, 6.0, 0.0]);
        relu_f32(Activation::ReluN1To1, &input, &mut out);
        assert_eq!(out, [-1.0, -0.5, 0.5, 1.0, -1.0]);
        relu_f32(Activation::None, &input, &mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn match_std_in_f64() {
        let mut rng = Rng::new(0xac7);
        let input: Vec<f32> = (0..20_000)
            .take(crate::MIRI_CASES.saturating_mul(100))
            .map(|i| {
                if i % 2 == 0 {
                    rng.f32(-20.0, 20.0)
                } else {
                    rng.f32(-1.0, 1.0)
                }
            })
            .collect();
        let mut out = std::vec![0.0f32; input.len()];
        let relative = |got: &[f32], want: &dyn Fn(f64) -> f64, what: &str| {
            for (&x, &g) in input.iter().zip(got) {
                let w = want(x as f64);
                assert!(
                    ((g as f64 - w) / w).abs() < 1e-6,
                    "{what}({x}): got {g}, want {w}"
                );
            }
        };
        logistic_f32(&input, &mut out);
        relative(&out, &|x| 1.0 / (1.0 + (-x).exp()), "logistic");
        tanh_f32(&input, &mut out);
        relative(&out, &f64::tanh, "tanh");
    }

    #[test]
    fn prelu_per_channel_and_shared() {
        let bytes: Vec<u8> = [0.5f32, -2.0]
            .iter()
            .flat_map(|a| a.to_le_bytes())
            .collect();
        let mut out = [0.0f32; 4];
        prelu_f32(
            LeF32::new(&bytes).unwrap(),
            &[-2.0, -3.0, 4.0, -1.0],
            &mut out,
        );
        assert_eq!(out, [-1.0, 6.0, 4.0, 2.0]);
        let one = 0.25f32.to_le_bytes();
        prelu_f32(LeF32::new(&one).unwrap(), &[-2.0, 3.0, -4.0, 0.0], &mut out);
        assert_eq!(out, [-0.5, 3.0, -1.0, 0.0]);
    }
}
