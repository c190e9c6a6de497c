//! int16 average and max pooling (TFLite `reference_integer_ops::AveragePool` / `MaxPool` on
//! `int16_t`): the int8 arithmetic on int16 values, input and output sharing scale (zero point 0).
//!
//! The average sums a window in an `int32` accumulator and rounds the quotient half away from zero;
//! with at most [`crate::validate::MAX_REDUCTION`] (2^15) values per window the sum stays within
//! `2^30` in magnitude, so it cannot overflow.

use crate::kernels::pooling::{rounded_mean, window};
use crate::kernels::ConvGeometry;

/// int16 average pooling over `g.kernel_h x g.kernel_w` windows (dilation is ignored), clipped to
/// the input so padded positions are not counted, then the `act_min..=act_max` clamp (int16 values).
/// `input` is NHWC `g.input`, `output` is NHWC `g.output` (same batch and channel count).
pub fn average_pool2d_s16(
    g: &ConvGeometry,
    act_min: i32,
    act_max: i32,
    input: &[i16],
    output: &mut [i16],
) {
    for n in 0..g.input.n {
        for oy in 0..g.output.h {
            let rows = window(oy, g.stride_h, g.pad_top, g.kernel_h, g.input.h);
            for ox in 0..g.output.w {
                let cols = window(ox, g.stride_w, g.pad_left, g.kernel_w, g.input.w);
                let count = rows.len() * cols.len();
                for c in 0..g.output.c {
                    let mut sum: i32 = 0;
                    for iy in rows.clone() {
                        for ix in cols.clone() {
                            sum += input[g.input.index(n, iy, ix, c)] as i32;
                        }
                    }
                    let avg = rounded_mean(sum, count).max(act_min).min(act_max);
                    output[g.output.index(n, oy, ox, c)] = avg as i16;
                }
            }
        }
    }
}

/// int16 max pooling over `g.kernel_h x g.kernel_w` windows clipped to the input (dilation is
/// ignored), then the `act_min..=act_max` clamp. An empty window gives the clamped `i16::MIN`, the
/// value TFLite starts from.
pub fn max_pool2d_s16(
    g: &ConvGeometry,
    act_min: i32,
    act_max: i32,
    input: &[i16],
    output: &mut [i16],
) {
    for n in 0..g.input.n {
        for oy in 0..g.output.h {
            let rows = window(oy, g.stride_h, g.pad_top, g.kernel_h, g.input.h);
            for ox in 0..g.output.w {
                let cols = window(ox, g.stride_w, g.pad_left, g.kernel_w, g.input.w);
                for c in 0..g.output.c {
                    let mut max = i16::MIN as i32;
                    for iy in rows.clone() {
                        for ix in cols.clone() {
                            max = max.max(input[g.input.index(n, iy, ix, c)] as i32);
                        }
                    }
                    output[g.output.index(n, oy, ox, c)] = max.max(act_min).min(act_max) as i16;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::Rng;
    use crate::kernels::Nhwc;
    use std::vec;
    use std::vec::Vec;

    /// Geometry of a `k` window with `stride` and explicit (top, left) padding; the output size is
    /// given so that any padding after the input can be tested.
    fn geometry(
        input: Nhwc,
        out_hw: (usize, usize),
        k: (usize, usize),
        stride: (usize, usize),
        pad: (usize, usize),
    ) -> ConvGeometry {
        ConvGeometry {
            input,
            output: Nhwc::new(input.n, out_hw.0, out_hw.1, input.c),
            kernel_h: k.0,
            kernel_w: k.1,
            stride_h: stride.0,
            stride_w: stride.1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad.0,
            pad_left: pad.1,
        }
    }

    /// Reference: the window's values found by scanning the whole input in padded coordinates; the
    /// mean rounded half away from zero in f64 (exact for these magnitudes) and the maximum.
    fn reference(g: &ConvGeometry, input: &[i16], clamp: (i32, i32)) -> (Vec<i16>, Vec<i16>) {
        let (mut avg, mut max) = (Vec::new(), Vec::new());
        for n in 0..g.output.n {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    for c in 0..g.output.c {
                        let y0 = (oy * g.stride_h) as i64 - g.pad_top as i64;
                        let x0 = (ox * g.stride_w) as i64 - g.pad_left as i64;
                        let mut vals = Vec::new();
                        for iy in 0..g.input.h {
                            for ix in 0..g.input.w {
                                if (y0..y0 + g.kernel_h as i64).contains(&(iy as i64))
                                    && (x0..x0 + g.kernel_w as i64).contains(&(ix as i64))
                                {
                                    vals.push(input[g.input.index(n, iy, ix, c)] as i64);
                                }
                            }
                        }
                        let mean = vals.iter().sum::<i64>() as f64 / vals.len() as f64;
                        let m = *vals.iter().max().unwrap();
                        avg.push((mean.round() as i64).clamp(clamp.0 as i64, clamp.1 as i64) as i16);
                        max.push(m.clamp(clamp.0 as i64, clamp.1 as i64) as i16);
                    }
                }
            }
        }
        (avg, max)
    }

    #[test]
    fn hand_computed_clipped_windows() {
        // 3x3 input, 2x2 window, stride 2, padding after: the windows clip at the right and bottom.
        let g = geometry(Nhwc::new(1, 3, 3, 1), (2, 2), (2, 2), (2, 2), (0, 0));
        let input: Vec<i16> = [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9001]
            .into_iter()
            .collect();
        let mut out = [0i16; 4];
        average_pool2d_s16(&g, -32768, 32767, &input, &mut out);
        // [1000 2000 4000 5000] -> 3000; [3000 6000] -> 4500; [7000 8000] -> 7500; [9001].
        assert_eq!(out, [3000, 4500, 7500, 9001]);
        max_pool2d_s16(&g, -32768, 32767, &input, &mut out);
        assert_eq!(out, [5000, 6000, 8000, 9001]);
        max_pool2d_s16(&g, -32768, 7000, &input, &mut out);
        assert_eq!(out, [5000, 6000, 7000, 7000]);
    }

    #[test]
    fn hand_computed_ties_round_away_from_zero() {
        // 1x2 windows over a 1x6 input, stride 2.
        let g = geometry(Nhwc::new(1, 1, 6, 1), (1, 3), (1, 2), (1, 2), (0, 0));
        let input = [-1i16, -2, 3, 4, -32768, -32767];
        let mut out = [0i16; 3];
        average_pool2d_s16(&g, -32768, 32767, &input, &mut out);
        // -1.5 -> -2; 3.5 -> 4; -32767.5 -> -32768.
        assert_eq!(out, [-2, 4, -32768]);
        // The clamp applies after the average.
        average_pool2d_s16(&g, -1, 3, &input, &mut out);
        assert_eq!(out, [-1, 3, -1]);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        // A 181x181 window (32761 values) of the largest magnitude: |sum| just below 2^30.
        let g = geometry(
            Nhwc::new(1, 181, 181, 1),
            (1, 1),
            (181, 181),
            (1, 1),
            (0, 0),
        );
        let mut out = [0i16; 1];
        for v in [i16::MIN, i16::MAX] {
            let input = vec![v; 181 * 181];
            average_pool2d_s16(&g, -32768, 32767, &input, &mut out);
            assert_eq!(out, [v]);
            max_pool2d_s16(&g, -32768, 32767, &input, &mut out);
            assert_eq!(out, [v]);
        }
    }

    #[test]
    fn random_cases_match_reference() {
        let mut rng = Rng::new(0x1616);
        for _ in (0..300).take(crate::MIRI_CASES) {
            let input = Nhwc::new(
                rng.range(1, 2) as usize,
                rng.range(1, 8) as usize,
                rng.range(1, 8) as usize,
                rng.range(1, 4) as usize,
            );
            let k = (rng.range(1, 4) as usize, rng.range(1, 4) as usize);
            let stride = (rng.range(1, 3) as usize, rng.range(1, 3) as usize);
            // Padding before the input smaller than the window keeps every window non-empty; the
            // output reaches as far as a window still starts inside the input.
            let pad = (
                rng.range(0, k.0 as i32 - 1) as usize,
                rng.range(0, k.1 as i32 - 1) as usize,
            );
            let out_hw = (
                (input.h + pad.0 - 1) / stride.0 + 1,
                (input.w + pad.1 - 1) / stride.1 + 1,
            );
            let g = geometry(input, out_hw, k, stride, pad);
            let x: Vec<i16> = (0..input.len())
                .map(|_| (rng.next_u64() >> 48) as u16 as i16)
                .collect();
            let lo = rng.range(-32768, 0);
            let clamp = (lo, rng.range(lo, 32767));
            let (want_avg, want_max) = reference(&g, &x, clamp);
            let mut got = vec![0i16; g.output.len()];
            average_pool2d_s16(&g, clamp.0, clamp.1, &x, &mut got);
            assert_eq!(got, want_avg);
            max_pool2d_s16(&g, clamp.0, clamp.1, &x, &mut got);
            assert_eq!(got, want_max);
        }
    }
}
