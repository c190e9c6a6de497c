//! f32 fully connected layer.

use crate::format::Activation;
use crate::kernels::LeF32;

/// `output[b][o] = act(bias[o] + sum_i input[b][i] * filter[o][i])`.
///
/// `input` is `[batches, in_features]`, `filter` `[out_features, in_features]`, `bias`
/// `out_features` values or empty for none, `output` `[batches, out_features]`.
#[allow(clippy::too_many_arguments)] // signature fixed by the kernel API
pub fn fully_connected_f32(
    batches: usize,
    in_features: usize,
    out_features: usize,
    act: Activation,
    input: &[f32],
    filter: LeF32<'_>,
    bias: LeF32<'_>,
    output: &mut [f32],
) {
    for b in 0..batches {
        let row = &input[b * in_features..(b + 1) * in_features];
        for o in 0..out_features {
            let mut acc = if bias.is_empty() { 0.0 } else { bias.get(o) };
            for (i, &x) in row.iter().enumerate() {
                acc += x * filter.get(o * in_features + i);
            }
            output[b * out_features + o] = act.apply_f32(acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::float::testutil::*;

    #[test]
    fn hand_computed() {
        // Two batches of three features, two outputs.
        let input: [f32; 6] = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
        let filter = le_bytes(&[1.0, 0.0, -1.0, 0.5, 0.5, 0.5]);
        let bias = le_bytes(&[1.0, -3.0]);
        let mut out = [0.0f32; 4];
        fully_connected_f32(
            2,
            3,
            2,
            Activation::None,
            &input,
            LeF32::new(&filter).unwrap(),
            LeF32::new(&bias).unwrap(),
            &mut out,
        );
        assert_eq!(out, [-1.0, 0.0, -1.0, -3.0]);
        fully_connected_f32(
            2,
            3,
            2,
            Activation::Relu,
            &input,
            LeF32::new(&filter).unwrap(),
            LeF32::new(&[]).unwrap(),
            &mut out,
        );
        assert_eq!(out, [0.0, 3.0, 0.0, 0.0]);
    }

    #[test]
    fn matches_f64_reference() {
        let mut rng = Rng::new(0xfc);
        for case in (0..200).take(crate::MIRI_CASES) {
            let batches = rng.range(1, 3) as usize;
            let in_f = rng.range(1, 40) as usize;
            let out_f = rng.range(1, 12) as usize;
            let act = random_activation(&mut rng);
            let input = f32_vec(&mut rng, batches * in_f, -1.0, 1.0);
            let filter = f32_vec(&mut rng, out_f * in_f, -1.0, 1.0);
            let bias = if rng.range(0, 3) == 0 {
                std::vec![]
            } else {
                f32_vec(&mut rng, out_f, -1.0, 1.0)
            };
            let (fb, bb) = (le_bytes(&filter), le_bytes(&bias));
            let mut out = std::vec![f32::NAN; batches * out_f];
            fully_connected_f32(
                batches,
                in_f,
                out_f,
                act,
                &input,
                LeF32::new(&fb).unwrap(),
                LeF32::new(&bb).unwrap(),
                &mut out,
            );
            // Reference: output as a matrix product input * filter^T, built column by column in f64.
            let (lo, hi) = act.range();
            let mut want = std::vec![0.0f64; batches * out_f];
            for (o, filter_row) in filter.chunks(in_f).enumerate() {
                for (b, input_row) in input.chunks(in_f).enumerate() {
                    let dot: f64 = input_row
                        .iter()
                        .zip(filter_row)
                        .map(|(&x, &w)| x as f64 * w as f64)
                        .sum();
                    let b0 = bias.get(o).copied().unwrap_or(0.0) as f64;
                    want[b * out_f + o] = (dot + b0).clamp(lo as f64, hi as f64);
                }
            }
            assert_close_f32(
                &out,
                &want,
                &std::format!("case {case}: {batches}x{in_f} -> {out_f}"),
            );
        }
    }
}
