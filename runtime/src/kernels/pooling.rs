//! Int8 average and max pooling (TFLite `reference_integer_ops::AveragePool` / `MaxPool`).

use super::ConvGeometry;
use core::ops::Range;

/// Input rows (or columns) covered by the window of output coordinate `out`, clipped to the input.
///
/// TFLite: `origin = out * stride - pad`, window `max(origin, 0) .. min(origin + k, len)`.
#[inline(always)]
pub(crate) fn window(out: usize, stride: usize, pad: usize, k: usize, len: usize) -> Range<usize> {
    let start = (out * stride).saturating_sub(pad);
    let end = (out * stride + k).saturating_sub(pad).min(len);
    start..end
}

/// The mean of `count` values summing to `sum`, clamped to `act_min..=act_max`. TFLite rounds it
/// half away from zero: `sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count`. (TFLite
/// rejects an empty window; it cannot occur with valid padding, and here it yields 0 instead of
/// dividing by zero.)
#[inline(always)]
pub(crate) fn average(sum: i32, count: usize, act_min: i32, act_max: i32) -> i8 {
    rounded_mean(sum, count).max(act_min).min(act_max) as i8
}

/// `sum / count` rounded half away from zero as TFLite's integer average pooling rounds it (int8 and
/// int16 alike); 0 for an empty window. `count` must be at most `i32::MAX` and `|sum| + count / 2`
/// must fit an `i32`.
#[inline(always)]
pub(crate) fn rounded_mean(sum: i32, count: usize) -> i32 {
    let count = count as i32;
    if count == 0 {
        0
    } else if sum > 0 {
        (sum + count / 2) / count
    } else {
        (sum - count / 2) / count
    }
}

/// Int8 average pooling over `g.kernel_h x g.kernel_w` windows (dilation is ignored).
///
/// Windows are clipped to the input, so padded positions are not counted. Input and output share
/// scale and zero point; `act_min..=act_max` is the fused activation clamp. `input` is NHWC
/// `g.input`, `output` is NHWC `g.output` (same channel count).
pub fn average_pool2d_s8(
    g: &ConvGeometry,
    act_min: i32,
    act_max: i32,
    input: &[i8],
    output: &mut [i8],
) {
    for n in 0..g.input.n {
        for oy in 0..g.output.h {
            let rows = window(oy, g.stride_h, g.pad_top, g.kernel_h, g.input.h);
            for ox in 0..g.output.w {
                let cols = window(ox, g.stride_w, g.pad_left, g.kernel_w, g.input.w);
                for c in 0..g.output.c {
                    let mut sum: i32 = 0;
                    let mut count = 0usize;
                    for iy in rows.clone() {
                        for ix in cols.clone() {
                            sum += input[g.input.index(n, iy, ix, c)] as i32;
                            count += 1;
                        }
                    }
                    output[g.output.index(n, oy, ox, c)] = average(sum, count, act_min, act_max);
                }
            }
        }
    }
}

/// Int8 max pooling over `g.kernel_h x g.kernel_w` windows clipped to the input (dilation is
/// ignored), then the `act_min..=act_max` clamp. Input and output share scale and zero point.
pub fn max_pool2d_s8(
    g: &ConvGeometry,
    act_min: i32,
    act_max: i32,
    input: &[i8],
    output: &mut [i8],
) {
    for n in 0..g.input.n {
        for oy in 0..g.output.h {
            let rows = window(oy, g.stride_h, g.pad_top, g.kernel_h, g.input.h);
            for ox in 0..g.output.w {
                let cols = window(ox, g.stride_w, g.pad_left, g.kernel_w, g.input.w);
                for c in 0..g.output.c {
                    // TFLite starts from the lowest int8 value.
                    let mut max = i8::MIN as i32;
                    for iy in rows.clone() {
                        for ix in cols.clone() {
                            max = max.max(input[g.input.index(n, iy, ix, c)] as i32);
                        }
                    }
                    output[g.output.index(n, oy, ox, c)] = max.max(act_min).min(act_max) as i8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Activation;
    use crate::kernels::conv2d::tests::{act_range, out_len, quant_act, random_act, Pad};
    use crate::kernels::testutil::{assert_close, dequant, Rng};
    use crate::kernels::Nhwc;
    use std::vec;
    use std::vec::Vec;

    fn geometry(
        input: Nhwc,
        k: (usize, usize),
        stride: (usize, usize),
        pad: (Pad, Pad),
    ) -> ConvGeometry {
        let (oh, pt, _) = out_len(input.h, k.0, stride.0, 1, pad.0);
        let (ow, pl, _) = out_len(input.w, k.1, stride.1, 1, pad.1);
        ConvGeometry {
            input,
            output: Nhwc::new(input.n, oh, ow, input.c),
            kernel_h: k.0,
            kernel_w: k.1,
            stride_h: stride.0,
            stride_w: stride.1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pt,
            pad_left: pl,
        }
    }

    /// Float reference: builds the list of real values in each window by scanning the whole input
    /// and keeping the positions that the window (in padded coordinates) covers.
    fn run_pool(g: &ConvGeometry, act: Activation, seed: u64) {
        let mut rng = Rng::new(seed);
        let input = rng.i8_vec(g.input.len());
        let scale = rng.f32(0.01, 0.1);
        let zp = rng.range(-128, 127);
        let (act_min, act_max) = act_range(act, scale, zp);

        let mut want_avg = Vec::new();
        let mut want_max = Vec::new();
        for b in 0..g.output.n {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    for c in 0..g.output.c {
                        let y0 = (oy * g.stride_h) as i64 - g.pad_top as i64;
                        let x0 = (ox * g.stride_w) as i64 - g.pad_left as i64;
                        let mut vals = Vec::new();
                        for iy in 0..g.input.h as i64 {
                            for ix in 0..g.input.w as i64 {
                                let inside = (y0..y0 + g.kernel_h as i64).contains(&iy)
                                    && (x0..x0 + g.kernel_w as i64).contains(&ix);
                                if inside {
                                    let i = ((b * g.input.h + iy as usize) * g.input.w
                                        + ix as usize)
                                        * g.input.c
                                        + c;
                                    vals.push(dequant(input[i], scale, zp));
                                }
                            }
                        }
                        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                        let max = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        want_avg.push(quant_act(mean, act, scale, zp));
                        want_max.push(quant_act(max, act, scale, zp));
                    }
                }
            }
        }

        let mut got = vec![0i8; g.output.len()];
        average_pool2d_s8(g, act_min, act_max, &input, &mut got);
        assert_close(&got, &want_avg, 1);
        max_pool2d_s8(g, act_min, act_max, &input, &mut got);
        assert_close(&got, &want_max, 0);
    }

    #[test]
    fn hand_computed_clipped_windows() {
        // 3x3 input 1..9, 2x2 window, stride 2, SAME (padding after): windows clip at the edges.
        let g = geometry(
            Nhwc::new(1, 3, 3, 1),
            (2, 2),
            (2, 2),
            (Pad::Same, Pad::Same),
        );
        assert_eq!(
            (g.output.h, g.output.w, g.pad_top, g.pad_left),
            (2, 2, 0, 0)
        );
        let input: Vec<i8> = (1..=9).collect();
        let mut out = [0i8; 4];
        average_pool2d_s8(&g, -128, 127, &input, &mut out);
        // [1 2 4 5] -> 3; [3 6] -> 4.5 -> 5; [7 8] -> 7.5 -> 8; [9] -> 9.
        assert_eq!(out, [3, 5, 8, 9]);
        max_pool2d_s8(&g, -128, 127, &input, &mut out);
        assert_eq!(out, [5, 6, 8, 9]);
        max_pool2d_s8(&g, -128, 7, &input, &mut out);
        assert_eq!(out, [5, 6, 7, 7]);
    }

    #[test]
    fn hand_computed_negative_ties_round_away_from_zero() {
        // 1x2 windows over a 1x4 input, stride 2: [-1 -2] -> -1.5 -> -2; [-3 -2] -> -2.5 -> -3.
        let g = geometry(
            Nhwc::new(1, 1, 4, 1),
            (1, 2),
            (1, 2),
            (Pad::Valid, Pad::Valid),
        );
        let input = [-1i8, -2, -3, -2];
        let mut out = [0i8; 2];
        average_pool2d_s8(&g, -128, 127, &input, &mut out);
        assert_eq!(out, [-2, -3]);
        // The clamp applies after the average.
        average_pool2d_s8(&g, -2, 127, &input, &mut out);
        assert_eq!(out, [-2, -2]);
    }

    #[test]
    fn same_odd_padding_batch_2_relu6() {
        // Height 5, kernel 4, stride 1: total padding 3 (1 before, 2 after).
        let g = geometry(
            Nhwc::new(2, 5, 6, 3),
            (4, 3),
            (1, 2),
            (Pad::Same, Pad::Same),
        );
        assert_eq!(g.pad_top, 1);
        run_pool(&g, Activation::Relu6, 31);
    }

    #[test]
    fn explicit_asymmetric_padding_relu() {
        let g = geometry(
            Nhwc::new(1, 6, 7, 2),
            (3, 3),
            (2, 2),
            (Pad::Explicit(2, 0), Pad::Explicit(0, 2)),
        );
        run_pool(&g, Activation::Relu, 32);
    }

    #[test]
    fn random_cases_match_float_reference() {
        let mut rng = Rng::new(0x9001);
        for i in (0..200).take(crate::MIRI_CASES) {
            let input = Nhwc::new(
                rng.range(1, 2) as usize,
                rng.range(3, 8) as usize,
                rng.range(3, 8) as usize,
                rng.range(1, 4) as usize,
            );
            let k = (rng.range(1, 3) as usize, rng.range(1, 3) as usize);
            let stride = (rng.range(1, 2) as usize, rng.range(1, 2) as usize);
            // Explicit padding smaller than the kernel keeps every window non-empty.
            let mut pad = |k: usize| match rng.range(0, 2) {
                0 => Pad::Valid,
                1 => Pad::Same,
                _ => Pad::Explicit(
                    rng.range(0, k as i32 - 1) as usize,
                    rng.range(0, k as i32 - 1) as usize,
                ),
            };
            let pads = (pad(k.0), pad(k.1));
            let g = geometry(input, k, stride, pads);
            let act = random_act(&mut rng);
            run_pool(&g, act, 4000 + i);
        }
    }
}
