//! f32 softmax.

use super::math::exp_f32;

/// Softmax over the last dimension: each of the `outer` rows of `depth` values becomes
/// `e^(beta * (x - max)) / sum`, the row maximum subtracted first so that `exp` cannot overflow.
///
/// `input` and `output` hold `outer * depth` values.
pub fn softmax_f32(beta: f32, outer: usize, depth: usize, input: &[f32], output: &mut [f32]) {
    for row in 0..outer {
        let start = row * depth;
        let x = &input[start..start + depth];
        let y = &mut output[start..start + depth];
        let max = x.iter().fold(f32::MIN, |m, &v| m.max(v));
        let mut sum = 0.0f32;
        for (o, &v) in y.iter_mut().zip(x) {
            *o = exp_f32(beta * (v - max));
            sum += *o;
        }
        let inv = 1.0 / sum;
        for o in y.iter_mut() {
            *o *= inv;
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
        let mut out = [0.0f32; 4];
        // Equal logits share evenly; large logits do not overflow.
        softmax_f32(1.0, 2, 2, &[3.0, 3.0, 1000.0, 1000.0], &mut out);
        assert_eq!(out, [0.5, 0.5, 0.5, 0.5]);
        // ln 3 apart: 1/4 and 3/4.
        let mut out = [0.0f32; 2];
        softmax_f32(1.0, 1, 2, &[0.0, 3f32.ln()], &mut out);
        assert_close_f32(&out, &[0.25, 0.75], "ln 3");
        // beta scales the logits.
        softmax_f32(0.5, 1, 2, &[0.0, 2.0 * 3f32.ln()], &mut out);
        assert_close_f32(&out, &[0.25, 0.75], "beta 0.5");
    }

    #[test]
    fn matches_f64_and_rows_sum_to_one() {
        let mut rng = Rng::new(0x50f7);
        for case in (0..200).take(crate::MIRI_CASES) {
            let outer = rng.range(1, 4) as usize;
            let depth = rng.range(1, 100) as usize;
            let beta = [1.0, 0.5, 2.0, 0.1][rng.range(0, 3) as usize];
            let spread = [1.0, 10.0, 50.0][rng.range(0, 2) as usize];
            let input = f32_vec(&mut rng, outer * depth, -spread, spread);
            let mut out = std::vec![f32::NAN; outer * depth];
            softmax_f32(beta, outer, depth, &input, &mut out);
            let mut want = Vec::new();
            for row in input.chunks(depth) {
                let e: Vec<f64> = row
                    .iter()
                    .map(|&v| (beta as f64 * v as f64).exp())
                    .collect();
                let s: f64 = e.iter().sum();
                want.extend(e.iter().map(|v| v / s));
            }
            // Probabilities are at most 1, so compare in absolute terms (1e-5) and, where not tiny, relatively.
            assert_close_f32(
                &out,
                &want,
                &std::format!("case {case}: beta {beta}, {outer}x{depth}"),
            );
            for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
                if w > 1e-30 {
                    assert!(
                        ((g as f64 - w) / w).abs() < 1e-5,
                        "case {case}: element {i}: got {g}, want {w}"
                    );
                }
            }
            for row in out.chunks(depth) {
                let s: f64 = row.iter().map(|&v| v as f64).sum();
                assert!((s - 1.0).abs() < 1e-5, "case {case}: row sum {s}");
            }
        }
    }
}
