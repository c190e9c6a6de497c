//! f32 average and max pooling.

use crate::format::Activation;
use crate::kernels::ConvGeometry;

/// Calls `f` with every input value of the pooling window of output `(n, oy, ox, c)`, the window
/// clipped to the input (padding taps are skipped, not read as zero).
#[inline(always)]
fn for_each_tap(
    g: &ConvGeometry,
    input: &[f32],
    n: usize,
    oy: usize,
    ox: usize,
    c: usize,
    mut f: impl FnMut(f32),
) {
    for ky in 0..g.kernel_h {
        let py = oy * g.stride_h + ky;
        if py < g.pad_top || py - g.pad_top >= g.input.h {
            continue;
        }
        for kx in 0..g.kernel_w {
            let px = ox * g.stride_w + kx;
            if px < g.pad_left || px - g.pad_left >= g.input.w {
                continue;
            }
            f(input[g.input.index(n, py - g.pad_top, px - g.pad_left, c)]);
        }
    }
}

/// Average pooling over `kernel_h x kernel_w` windows; each output is the mean of the window's taps
/// that fall inside the input (padding is not counted, as in TFLite), then `act`.
///
/// Windows are dense: `dilation_h` and `dilation_w` are ignored (TFLite pooling has none). Padding
/// and stride are as in [`conv2d_f32`](super::conv2d_f32); `g.input.c == g.output.c`. A window with
/// no tap inside the input (impossible with valid padding) gives `act(0)`.
pub fn average_pool2d_f32(g: &ConvGeometry, act: Activation, input: &[f32], output: &mut [f32]) {
    for n in 0..g.output.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for c in 0..g.output.c {
                    let mut sum = 0.0f32;
                    let mut count = 0u32;
                    for_each_tap(g, input, n, oy, ox, c, |v| {
                        sum += v;
                        count += 1;
                    });
                    let average = if count == 0 { 0.0 } else { sum / count as f32 };
                    output[g.output.index(n, oy, ox, c)] = act.apply_f32(average);
                }
            }
        }
    }
}

/// Max pooling over `kernel_h x kernel_w` windows clipped to the input, then `act`.
///
/// Geometry as in [`average_pool2d_f32`]. NaN inputs are skipped; a window with no tap inside the
/// input gives `act(f32::MIN)` (TFLite's `lowest()`).
pub fn max_pool2d_f32(g: &ConvGeometry, act: Activation, input: &[f32], output: &mut [f32]) {
    for n in 0..g.output.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for c in 0..g.output.c {
                    let mut max = f32::MIN;
                    for_each_tap(g, input, n, oy, ox, c, |v| max = max.max(v));
                    output[g.output.index(n, oy, ox, c)] = act.apply_f32(max);
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

    fn geometry(
        input: Nhwc,
        output: Nhwc,
        k: (usize, usize),
        s: (usize, usize),
        pad: (usize, usize),
    ) -> ConvGeometry {
        ConvGeometry {
            input,
            output,
            kernel_h: k.0,
            kernel_w: k.1,
            stride_h: s.0,
            stride_w: s.1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad.0,
            pad_left: pad.1,
        }
    }

    #[test]
    fn hand_computed_same_padding() {
        // 1x3x3x1 input 1..9, 2x2 window, stride 2, SAME (pad below/right): windows clipped at the edge.
        let input: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let g = geometry(
            Nhwc::new(1, 3, 3, 1),
            Nhwc::new(1, 2, 2, 1),
            (2, 2),
            (2, 2),
            (0, 0),
        );
        let mut out = [0.0f32; 4];
        average_pool2d_f32(&g, Activation::None, &input, &mut out);
        assert_eq!(out, [3.0, 4.5, 7.5, 9.0]); // (1+2+4+5)/4, (3+6)/2, (7+8)/2, 9
        max_pool2d_f32(&g, Activation::None, &input, &mut out);
        assert_eq!(out, [5.0, 6.0, 8.0, 9.0]);
        max_pool2d_f32(&g, Activation::Relu6, &input, &mut out);
        assert_eq!(out, [5.0, 6.0, 6.0, 6.0]);
        // Padding above/left: the first window only sees the input's corner.
        let g = geometry(
            Nhwc::new(1, 3, 3, 1),
            Nhwc::new(1, 2, 2, 1),
            (2, 2),
            (2, 2),
            (1, 1),
        );
        average_pool2d_f32(&g, Activation::None, &input, &mut out);
        assert_eq!(out, [1.0, 2.5, 5.5, 7.0]); // 1, (2+3)/2, (4+7)/2, (5+6+8+9)/4
    }

    /// Pools by computing the clipped window bounds first (TFLite's formulation), in f64.
    fn reference(g: &ConvGeometry, input: &[f32], max: bool, act: Activation) -> Vec<f64> {
        let (lo, hi) = act.range();
        let mut out = Vec::new();
        for n in 0..g.output.n {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    for c in 0..g.output.c {
                        let y0 = (oy * g.stride_h) as isize - g.pad_top as isize;
                        let x0 = (ox * g.stride_w) as isize - g.pad_left as isize;
                        let ys = y0.max(0) as usize
                            ..(y0 + g.kernel_h as isize).min(g.input.h as isize) as usize;
                        let xs = x0.max(0) as usize
                            ..(x0 + g.kernel_w as isize).min(g.input.w as isize) as usize;
                        let values: Vec<f64> = ys
                            .flat_map(|y| xs.clone().map(move |x| (y, x)))
                            .map(|(y, x)| input[g.input.index(n, y, x, c)] as f64)
                            .collect();
                        let v = if max {
                            values.iter().cloned().fold(f64::MIN, f64::max)
                        } else {
                            values.iter().sum::<f64>() / values.len() as f64
                        };
                        out.push(v.clamp(lo as f64, hi as f64));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_clipped_window_reference() {
        let mut rng = Rng::new(0x9001);
        for case in (0..300).take(crate::MIRI_CASES) {
            // Pooling has no dilation; reuse the random conv geometry with dilation forced to 1.
            let t = loop {
                let t = random_conv(&mut rng, 1);
                if t.g.dilation_h == 1 && t.g.dilation_w == 1 {
                    break t;
                }
            };
            let g = t.g;
            let input = f32_vec(&mut rng, g.input.len(), -2.0, 2.0);
            let act = random_activation(&mut rng);
            let mut out = std::vec![f32::NAN; g.output.len()];
            average_pool2d_f32(&g, act, &input, &mut out);
            assert_close_f32(
                &out,
                &reference(&g, &input, false, act),
                &std::format!("average case {case}: {g:?}"),
            );
            max_pool2d_f32(&g, act, &input, &mut out);
            assert_close_f32(
                &out,
                &reference(&g, &input, true, act),
                &std::format!("max case {case}: {g:?}"),
            );
        }
    }
}
