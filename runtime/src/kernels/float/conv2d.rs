//! f32 2-D convolution.

use crate::format::Activation;
use crate::kernels::{ConvGeometry, LeF32};

/// 2-D convolution over an NHWC `input` with an OHWI `filter` (`[out_c, kernel_h, kernel_w, in_c]`).
///
/// Taps outside the input read zero: `pad_top` rows above and `pad_left` columns left of the input,
/// with the padding below and to the right implied by the output size. Input row of output row `oy`
/// and kernel row `ky` is `oy * stride_h + ky * dilation_h - pad_top` (columns alike). `bias` holds
/// `out_c` values, or is empty for none. `act` is applied to each output.
///
/// `input` holds `g.input.len()` values, `output` `g.output.len()`, and `g.input.n == g.output.n`.
pub fn conv2d_f32(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    filter: LeF32<'_>,
    bias: LeF32<'_>,
    output: &mut [f32],
) {
    let in_c = g.input.c;
    let out_c = g.output.c;
    for n in 0..g.output.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for oc in 0..out_c {
                    let mut acc = if bias.is_empty() { 0.0 } else { bias.get(oc) };
                    for ky in 0..g.kernel_h {
                        // Row in padded coordinates; rows in the padding contribute nothing.
                        let py = oy * g.stride_h + ky * g.dilation_h;
                        if py < g.pad_top || py - g.pad_top >= g.input.h {
                            continue;
                        }
                        let iy = py - g.pad_top;
                        for kx in 0..g.kernel_w {
                            let px = ox * g.stride_w + kx * g.dilation_w;
                            if px < g.pad_left || px - g.pad_left >= g.input.w {
                                continue;
                            }
                            let ix = px - g.pad_left;
                            let in_base = g.input.index(n, iy, ix, 0);
                            let f_base = ((oc * g.kernel_h + ky) * g.kernel_w + kx) * in_c;
                            for ic in 0..in_c {
                                acc += input[in_base + ic] * filter.get(f_base + ic);
                            }
                        }
                    }
                    output[g.output.index(n, oy, ox, oc)] = act.apply_f32(acc);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::float::testutil::*;
    use crate::kernels::Nhwc;

    #[test]
    fn hand_computed_3x3_same_padding() {
        // 1x3x3x1 input 1..9, 3x3 all-ones filter, SAME padding: each output is the sum of its neighbourhood.
        let input: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let filter = le_bytes(&[1.0; 9]);
        let bias = le_bytes(&[0.5]);
        let g = ConvGeometry {
            input: Nhwc::new(1, 3, 3, 1),
            output: Nhwc::new(1, 3, 3, 1),
            kernel_h: 3,
            kernel_w: 3,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 1,
            pad_left: 1,
        };
        let mut out = [0.0f32; 9];
        conv2d_f32(
            &g,
            Activation::None,
            &input,
            LeF32::new(&filter).unwrap(),
            LeF32::new(&bias).unwrap(),
            &mut out,
        );
        let want = [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0].map(|v: f64| v + 0.5);
        assert_close_f32(&out, &want, "3x3 same");

        // Relu6 clamps, and an empty bias means none.
        conv2d_f32(
            &g,
            Activation::Relu6,
            &input,
            LeF32::new(&filter).unwrap(),
            LeF32::new(&[]).unwrap(),
            &mut out,
        );
        assert_eq!(out, [6.0; 9]);
    }

    #[test]
    fn hand_computed_two_channels_stride_2() {
        // 1x2x2x2 input, two 1x1 filters, stride 2 -> 1x1x1x2 output from pixel (0, 0) only.
        let input: [f32; 8] = [1.0, -2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let filter = le_bytes(&[1.0, 1.0, 2.0, -1.0]);
        let g = ConvGeometry {
            input: Nhwc::new(1, 2, 2, 2),
            output: Nhwc::new(1, 1, 1, 2),
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 2,
            stride_w: 2,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
        };
        let mut out = [0.0f32; 2];
        conv2d_f32(
            &g,
            Activation::Relu,
            &input,
            LeF32::new(&filter).unwrap(),
            LeF32::new(&[]).unwrap(),
            &mut out,
        );
        assert_eq!(out, [0.0, 4.0]); // relu(1 - 2) and 2 + 2
    }

    #[test]
    fn matches_padded_buffer_reference() {
        let mut rng = Rng::new(0xc0417);
        for case in (0..300).take(crate::MIRI_CASES) {
            let t = random_conv(&mut rng, 1);
            let input = f32_vec(&mut rng, t.g.input.len(), -1.0, 1.0);
            let filter = f32_vec(
                &mut rng,
                t.g.output.c * t.g.kernel_h * t.g.kernel_w * t.g.input.c,
                -1.0,
                1.0,
            );
            let bias = if rng.range(0, 3) == 0 {
                std::vec![]
            } else {
                f32_vec(&mut rng, t.g.output.c, -1.0, 1.0)
            };
            let act = random_activation(&mut rng);
            let (fb, bb) = (le_bytes(&filter), le_bytes(&bias));
            let mut out = std::vec![f32::NAN; t.g.output.len()];
            conv2d_f32(
                &t.g,
                act,
                &input,
                LeF32::new(&fb).unwrap(),
                LeF32::new(&bb).unwrap(),
                &mut out,
            );
            let want = grouped_conv_reference(
                &t.g,
                t.pad_bottom,
                t.pad_right,
                1,
                act,
                &input,
                &filter,
                &bias,
            );
            assert_close_f32(&out, &want, &std::format!("case {case}: {:?}", t.g));
        }
    }
}
