//! f32 mean over the spatial dimensions.

use crate::kernels::Nhwc;

/// Mean over H and W of an NHWC tensor, keeping N and C: `output` is `[n, 1, 1, c]` (`n * c` values).
///
/// `input` holds `input_shape.len()` values; `h * w` must not be 0.
pub fn mean_hw_f32(input_shape: Nhwc, input: &[f32], output: &mut [f32]) {
    let count = (input_shape.h * input_shape.w) as f32;
    for n in 0..input_shape.n {
        for c in 0..input_shape.c {
            let mut sum = 0.0f32;
            for y in 0..input_shape.h {
                for x in 0..input_shape.w {
                    sum += input[input_shape.index(n, y, x, c)];
                }
            }
            output[n * input_shape.c + c] = sum / count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::float::testutil::*;

    #[test]
    fn hand_computed() {
        // [2, 1, 2, 2]: batch 0 pixels (1, 10), (3, 20); batch 1 pixels (-1, 0), (1, 5).
        let input = [1.0f32, 10.0, 3.0, 20.0, -1.0, 0.0, 1.0, 5.0];
        let mut out = [0.0f32; 4];
        mean_hw_f32(Nhwc::new(2, 1, 2, 2), &input, &mut out);
        assert_eq!(out, [2.0, 15.0, 0.0, 2.5]);
    }

    #[test]
    fn matches_f64_reference() {
        let mut rng = Rng::new(0x3ea);
        for case in (0..200).take(crate::MIRI_CASES) {
            let shape = Nhwc::new(
                rng.range(1, 2) as usize,
                rng.range(1, 9) as usize,
                rng.range(1, 9) as usize,
                rng.range(1, 5) as usize,
            );
            let input = f32_vec(&mut rng, shape.len(), -4.0, 4.0);
            let mut out = std::vec![f32::NAN; shape.n * shape.c];
            mean_hw_f32(shape, &input, &mut out);
            // Reference: accumulate every element into its (n, c) slot in memory order.
            let mut sums = std::vec![0.0f64; shape.n * shape.c];
            let pixels = shape.h * shape.w;
            for (i, &v) in input.iter().enumerate() {
                let c = i % shape.c;
                let n = i / (pixels * shape.c);
                sums[n * shape.c + c] += v as f64;
            }
            let want: std::vec::Vec<f64> = sums.iter().map(|s| s / pixels as f64).collect();
            assert_close_f32(&out, &want, &std::format!("case {case}: {shape:?}"));
        }
    }
}
