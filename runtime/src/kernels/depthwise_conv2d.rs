//! Int8 depthwise 2-D convolution (TFLite `reference_integer_ops::DepthwiseConvPerChannel`).

use super::conv2d::{input_coord, requantize_acc};
use super::{ConvGeometry, Int8Output, LeI32, Nhwc, OutputQuant};

/// Int8 depthwise 2-D convolution with per-channel (or per-tensor) requantization.
///
/// * `input`: NHWC, `g.input` (batches = `g.input.n`).
/// * `filter`: `[1, g.kernel_h, g.kernel_w, g.output.c]`, symmetric (zero point 0).
/// * Output channel `oc = ic * depth_multiplier + m` reads only input channel `ic`;
///   `g.output.c == g.input.c * depth_multiplier`.
/// * `bias`: one `i32` per output channel, or empty.
/// * `output`: int8, or int16 for a wide output.
///
/// Taps in the padding are skipped (padding with the input zero point). Matches TFLite Micro's
/// `reference_integer_ops::DepthwiseConvPerChannel` bit for bit.
pub fn depthwise_conv2d_s8<T: Int8Output>(
    g: &ConvGeometry,
    depth_multiplier: usize,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [T],
) {
    let filter_shape = Nhwc::new(1, g.kernel_h, g.kernel_w, g.output.c);
    for n in 0..g.input.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for ic in 0..g.input.c {
                    for m in 0..depth_multiplier {
                        let oc = ic * depth_multiplier + m;
                        // TFLite: acc += filter[ky, kx, oc] * (input[iy, ix, ic] + input_offset).
                        let mut acc: i32 = 0;
                        for ky in 0..g.kernel_h {
                            let Some(iy) =
                                input_coord(oy, g.stride_h, ky, g.dilation_h, g.pad_top, g.input.h)
                            else {
                                continue;
                            };
                            for kx in 0..g.kernel_w {
                                let Some(ix) = input_coord(
                                    ox,
                                    g.stride_w,
                                    kx,
                                    g.dilation_w,
                                    g.pad_left,
                                    g.input.w,
                                ) else {
                                    continue;
                                };
                                let x = input[g.input.index(n, iy, ix, ic)] as i32;
                                let w = filter[filter_shape.index(0, ky, kx, oc)] as i32;
                                acc = acc.wrapping_add(w * (x + q.input_offset));
                            }
                        }
                        if !bias.is_empty() {
                            acc = acc.wrapping_add(bias.get(oc));
                        }
                        output[g.output.index(n, oy, ox, oc)] = requantize_acc(q, acc, oc);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Activation;
    use crate::kernels::conv2d::tests::{
        act_range, le, multipliers, output_scale_for, quant_act, random_bias, weight_scales, Case,
        Pad, Padded,
    };
    use crate::kernels::testutil::{assert_close, Rng};
    use std::vec;
    use std::vec::Vec;

    /// `case.out_c` is the depth multiplier here.
    fn run_depthwise(case: Case, seed: u64) {
        let mut rng = Rng::new(seed);
        let dm = case.out_c;
        let out_c = case.in_c * dm;
        let (g, after) = case.geometry(out_c);
        let input = rng.i8_vec(g.input.len());
        let filter: Vec<i8> = (0..case.kh * case.kw * out_c)
            .map(|_| rng.range(-127, 127) as i8)
            .collect();
        let in_scale = rng.f32(0.01, 0.1);
        let in_zp = rng.range(-128, 127);
        let w_scales = weight_scales(&mut rng, out_c, case.per_channel);
        let w_scale = |oc: usize| w_scales[if case.per_channel { oc } else { 0 }] as f64;
        let bias = random_bias(&mut rng, out_c, case.bias);

        // Float reference: output channels in order; each finds its input channel by division.
        let padded = Padded::new(&g, after, &input, in_scale, in_zp);
        let mut reals = Vec::new();
        for b in 0..g.output.n {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    for oc in 0..out_c {
                        let ic = oc / dm;
                        let mut sum = bias
                            .get(oc)
                            .map_or(0.0, |&v| v as f64 * in_scale as f64 * w_scale(oc));
                        for ky in 0..case.kh {
                            for kx in 0..case.kw {
                                let y = oy * case.stride.0 + ky * case.dilation.0;
                                let x = ox * case.stride.1 + kx * case.dilation.1;
                                let wr = filter[(ky * case.kw + kx) * out_c + oc] as f64;
                                sum += padded.at(b, y, x, ic) * wr * w_scale(oc);
                            }
                        }
                        reals.push(sum);
                    }
                }
            }
        }
        let (out_scale, out_zp) = output_scale_for(&reals, &mut rng);
        let want: Vec<i8> = reals
            .iter()
            .map(|&x| quant_act(x, case.act, out_scale, out_zp))
            .collect();

        let (m, s) = multipliers(in_scale, &w_scales, out_scale);
        let (act_min, act_max) = act_range(case.act, out_scale, out_zp);
        let q = OutputQuant {
            input_offset: -in_zp,
            output_offset: out_zp,
            act_min,
            act_max,
            multiplier: LeI32::new(&m).unwrap(),
            shift: LeI32::new(&s).unwrap(),
        };
        let bias_bytes = le(&bias);
        let mut got = vec![0i8; g.output.len()];
        depthwise_conv2d_s8(
            &g,
            dm,
            &q,
            &input,
            &filter,
            LeI32::new(&bias_bytes).unwrap(),
            &mut got,
        );
        assert_close(&got, &want, 1);
    }

    #[test]
    fn hand_computed_depth_multiplier_2() {
        // 2x2 input with channels (k, -k), 2x2 filter, depth multiplier 2 -> 4 output channels.
        let g = ConvGeometry {
            input: Nhwc::new(1, 2, 2, 2),
            output: Nhwc::new(1, 1, 1, 4),
            kernel_h: 2,
            kernel_w: 2,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
        };
        let input = [1i8, -1, 2, -2, 3, -3, 4, -4];
        // Per tap: [oc0, oc1, oc2, oc3]; oc0/oc1 read channel 0, oc2/oc3 read channel 1.
        let filter = [1i8, 2, 1, 0, 1, 2, 0, 1, 1, 2, 0, 2, 1, 2, 1, 3];
        let (m, s) = (le(&[1 << 30]), le(&[1])); // factor 1
        let q = OutputQuant {
            input_offset: 0,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
            multiplier: LeI32::new(&m).unwrap(),
            shift: LeI32::new(&s).unwrap(),
        };
        let mut out = [0i8; 4];
        depthwise_conv2d_s8(
            &g,
            2,
            &q,
            &input,
            &filter,
            LeI32::new(&[]).unwrap(),
            &mut out,
        );
        assert_eq!(out, [10, 20, -5, -20]);
    }

    #[test]
    fn depth_multiplier_2_same_odd_padding_stride_2() {
        let case = Case {
            n: 1,
            h: 7,
            w: 6,
            in_c: 3,
            out_c: 2,
            kh: 3,
            kw: 3,
            stride: (2, 2),
            dilation: (1, 1),
            pad_h: Pad::Same,
            pad_w: Pad::Same,
            per_channel: true,
            bias: true,
            act: Activation::Relu6,
        };
        // Width 6, kernel 3, stride 2: total padding 1, all of it after.
        let (g, after) = case.geometry(6);
        assert_eq!((g.pad_left, after.1), (0, 1));
        run_depthwise(case, 11);
    }

    #[test]
    fn dilation_2_batch_2_per_tensor_no_bias_relu() {
        let case = Case {
            n: 2,
            h: 8,
            w: 7,
            in_c: 4,
            out_c: 1,
            kh: 3,
            kw: 3,
            stride: (1, 2),
            dilation: (2, 2),
            pad_h: Pad::Explicit(1, 3),
            pad_w: Pad::Same,
            per_channel: false,
            bias: false,
            act: Activation::Relu,
        };
        run_depthwise(case, 12);
    }

    #[test]
    fn random_cases_match_float_reference() {
        let mut rng = Rng::new(0xD3E9);
        for i in (0..200).take(crate::MIRI_CASES) {
            let mut case = Case::random(&mut rng);
            case.out_c = rng.range(1, 3) as usize;
            run_depthwise(case, 2000 + i);
        }
    }
}
