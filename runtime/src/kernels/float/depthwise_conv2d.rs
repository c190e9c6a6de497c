//! f32 depthwise 2-D convolution.

use crate::format::Activation;
use crate::kernels::{ConvGeometry, LeF32};

/// Depthwise 2-D convolution: each input channel `ic` is convolved with `depth_multiplier` filters of
/// its own, giving output channels `oc = ic * depth_multiplier + m`.
///
/// `filter` is `[1, kernel_h, kernel_w, out_c]`. Padding, stride, dilation, `bias` (`out_c` values or
/// empty) and `act` are as in [`conv2d_f32`](super::conv2d_f32).
///
/// `input` holds `g.input.len()` values, `output` `g.output.len()`,
/// `g.output.c == g.input.c * depth_multiplier` and `g.input.n == g.output.n`.
pub fn depthwise_conv2d_f32(
    g: &ConvGeometry,
    depth_multiplier: usize,
    act: Activation,
    input: &[f32],
    filter: LeF32<'_>,
    bias: LeF32<'_>,
    output: &mut [f32],
) {
    let out_c = g.output.c;
    for n in 0..g.output.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for ic in 0..g.input.c {
                    for m in 0..depth_multiplier {
                        let oc = ic * depth_multiplier + m;
                        let mut acc = if bias.is_empty() { 0.0 } else { bias.get(oc) };
                        for ky in 0..g.kernel_h {
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
                                let x = input[g.input.index(n, iy, ix, ic)];
                                acc += x * filter.get((ky * g.kernel_w + kx) * out_c + oc);
                            }
                        }
                        output[g.output.index(n, oy, ox, oc)] = act.apply_f32(acc);
                    }
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
    use std::vec::Vec;

    #[test]
    fn hand_computed_multiplier_2() {
        // 1x2x2x1 input, 2x2 kernel, VALID, multiplier 2: one output pixel with two channels.
        let input: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
        // [1, 2, 2, 2]: tap-major, output channel minor.
        let filter = le_bytes(&[1.0, -1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.5]);
        let bias = le_bytes(&[10.0, 0.0]);
        let g = ConvGeometry {
            input: Nhwc::new(1, 2, 2, 1),
            output: Nhwc::new(1, 1, 1, 2),
            kernel_h: 2,
            kernel_w: 2,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
        };
        let mut out = [0.0f32; 2];
        depthwise_conv2d_f32(
            &g,
            2,
            Activation::None,
            &input,
            LeF32::new(&filter).unwrap(),
            LeF32::new(&bias).unwrap(),
            &mut out,
        );
        assert_eq!(out, [20.0, 1.0]); // 10 + (1+2+3+4); -1 + 2 (0.5 * 4)
    }

    /// Depthwise filter `[1, kh, kw, out_c]` rearranged as an OHWI grouped-conv filter `[out_c, kh, kw, 1]`.
    fn as_grouped_filter(filter: &[f32], taps: usize, out_c: usize) -> Vec<f32> {
        let mut grouped = std::vec![0.0; filter.len()];
        for t in 0..taps {
            for oc in 0..out_c {
                grouped[oc * taps + t] = filter[t * out_c + oc];
            }
        }
        grouped
    }

    #[test]
    fn matches_grouped_conv_reference() {
        let mut rng = Rng::new(0xde97);
        for case in (0..300).take(crate::MIRI_CASES) {
            let dm = rng.range(1, 3) as usize;
            let t = random_conv(&mut rng, dm);
            let taps = t.g.kernel_h * t.g.kernel_w;
            let input = f32_vec(&mut rng, t.g.input.len(), -1.0, 1.0);
            let filter = f32_vec(&mut rng, taps * t.g.output.c, -1.0, 1.0);
            let bias = if rng.range(0, 3) == 0 {
                std::vec![]
            } else {
                f32_vec(&mut rng, t.g.output.c, -1.0, 1.0)
            };
            let act = random_activation(&mut rng);
            let (fb, bb) = (le_bytes(&filter), le_bytes(&bias));
            let mut out = std::vec![f32::NAN; t.g.output.len()];
            depthwise_conv2d_f32(
                &t.g,
                dm,
                act,
                &input,
                LeF32::new(&fb).unwrap(),
                LeF32::new(&bb).unwrap(),
                &mut out,
            );
            let grouped = as_grouped_filter(&filter, taps, t.g.output.c);
            let want = grouped_conv_reference(
                &t.g,
                t.pad_bottom,
                t.pad_right,
                t.g.input.c,
                act,
                &input,
                &grouped,
                &bias,
            );
            assert_close_f32(
                &out,
                &want,
                &std::format!("case {case}: multiplier {dm}, {:?}", t.g),
            );
        }
    }
}
