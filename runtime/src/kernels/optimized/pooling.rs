//! Int8 average and max pooling, optimized. Average: four channels at a time, each window summed
//! with word loads (on Armv7E-M as two halfword pairs per word, `SXTB16` + `SADD16`, when the window
//! is small enough for 16-bit sums). Max: each window position's channels folded into the output
//! row, four bytes a word (`SSUB8` + `SEL` on Armv7E-M). Integer sums and maxima are exact in any
//! order, so the results are the reference's.

use super::dsp::{max_s8x4, sadd16, sxtb16, sxtb16_ror8};
use crate::kernels::pooling::{average, window};
use crate::kernels::ConvGeometry;
use core::ops::Range;

/// Largest window whose sums fit in 16 bits (`256 * -128 = -32768`).
const MAX_HALFWORD_WINDOW: usize = 256;

/// Same contract and bit-exact result as [`crate::kernels::pooling::average_pool2d_s8`]. `DSP`
/// selects the halfword-pair sums.
pub fn average_pool2d_s8_fast<const DSP: bool>(
    g: &ConvGeometry,
    act_min: i32,
    act_max: i32,
    input: &[i8],
    output: &mut [i8],
) {
    let c = g.output.c;
    for n in 0..g.input.n {
        for oy in 0..g.output.h {
            let rows = window(oy, g.stride_h, g.pad_top, g.kernel_h, g.input.h);
            for ox in 0..g.output.w {
                let cols = window(ox, g.stride_w, g.pad_left, g.kernel_w, g.input.w);
                let count = rows.len() * cols.len();
                let out = &mut output[g.output.index(n, oy, ox, 0)..][..c];
                let mut c0 = 0;
                while c0 + 4 <= c {
                    let sums = if DSP && count <= MAX_HALFWORD_WINDOW {
                        sums4_halfwords(g, input, n, &rows, &cols, c0)
                    } else {
                        sums4(g, input, n, &rows, &cols, c0)
                    };
                    for (o, s) in out[c0..c0 + 4].iter_mut().zip(sums) {
                        *o = average(s, count, act_min, act_max);
                    }
                    c0 += 4;
                }
                for (ch, o) in out.iter_mut().enumerate().skip(c0) {
                    let mut s = 0i32;
                    for iy in rows.clone() {
                        for ix in cols.clone() {
                            s += input[g.input.index(n, iy, ix, ch)] as i32;
                        }
                    }
                    *o = average(s, count, act_min, act_max);
                }
            }
        }
    }
}

/// Same contract and bit-exact result as [`crate::kernels::pooling::max_pool2d_s8`]. `DSP` selects
/// four-byte maxima.
pub fn max_pool2d_s8_fast<const DSP: bool>(
    g: &ConvGeometry,
    act_min: i32,
    act_max: i32,
    input: &[i8],
    output: &mut [i8],
) {
    let c = g.output.c;
    // The reference's maximum starts at -128 and is then raised to `act_min`: starting at
    // `act_min` is the same.
    let floor = act_min.clamp(i8::MIN as i32, i8::MAX as i32) as i8;
    for n in 0..g.input.n {
        for oy in 0..g.output.h {
            let rows = window(oy, g.stride_h, g.pad_top, g.kernel_h, g.input.h);
            for ox in 0..g.output.w {
                let cols = window(ox, g.stride_w, g.pad_left, g.kernel_w, g.input.w);
                let out = &mut output[g.output.index(n, oy, ox, 0)..][..c];
                out.fill(floor);
                for iy in rows.clone() {
                    for ix in cols.clone() {
                        let src = &input[g.input.index(n, iy, ix, 0)..][..c];
                        max_into::<DSP>(out, src);
                    }
                }
                if act_max < i8::MAX as i32 {
                    for o in out.iter_mut() {
                        *o = (*o as i32).min(act_max) as i8;
                    }
                }
            }
        }
    }
}

/// `out[i] = max(out[i], src[i])`.
#[inline(always)]
fn max_into<const DSP: bool>(out: &mut [i8], src: &[i8]) {
    let mut done = 0;
    if DSP {
        for (o, s) in out.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
            if let (Ok(o), Ok(s)) = (<&mut [i8; 4]>::try_from(o), <&[i8; 4]>::try_from(s)) {
                let word = |b: [i8; 4]| u32::from_le_bytes(b.map(|x| x as u8));
                *o = max_s8x4(word(*o), word(*s)).to_le_bytes().map(|x| x as i8);
            }
        }
        done = out.len() / 4 * 4;
    }
    for (o, &s) in out[done..].iter_mut().zip(&src[done..]) {
        *o = (*o).max(s);
    }
}

/// Calls `f` with channels `c0..c0 + 4` of every input position of the window.
#[inline(always)]
fn window_words(
    g: &ConvGeometry,
    input: &[i8],
    n: usize,
    rows: &Range<usize>,
    cols: &Range<usize>,
    c0: usize,
    mut f: impl FnMut([i8; 4]),
) {
    let c = g.input.c;
    for iy in rows.clone() {
        let row = &input[g.input.index(n, iy, 0, c0)..];
        for ix in cols.clone() {
            if let Some(&[a, b, d, e]) = row.get(ix * c..ix * c + 4) {
                f([a, b, d, e]);
            }
        }
    }
}

/// The window sums of channels `c0..c0 + 4` as `i32`.
#[inline(always)]
fn sums4(
    g: &ConvGeometry,
    input: &[i8],
    n: usize,
    rows: &Range<usize>,
    cols: &Range<usize>,
    c0: usize,
) -> [i32; 4] {
    let [mut s0, mut s1, mut s2, mut s3] = [0i32; 4];
    window_words(g, input, n, rows, cols, c0, |[a, b, d, e]| {
        s0 += a as i32;
        s1 += b as i32;
        s2 += d as i32;
        s3 += e as i32;
    });
    [s0, s1, s2, s3]
}

/// [`sums4`] with halfword-pair sums: channels (0, 2) and (1, 3) in one word each.
#[inline(always)]
fn sums4_halfwords(
    g: &ConvGeometry,
    input: &[i8],
    n: usize,
    rows: &Range<usize>,
    cols: &Range<usize>,
    c0: usize,
) -> [i32; 4] {
    let (mut even, mut odd) = (0u32, 0u32);
    window_words(g, input, n, rows, cols, c0, |w| {
        let v = u32::from_le_bytes(w.map(|x| x as u8));
        even = sadd16(even, sxtb16(v));
        odd = sadd16(odd, sxtb16_ror8(v));
    });
    let lo = |w: u32| w as u16 as i16 as i32;
    let hi = |w: u32| (w >> 16) as u16 as i16 as i32;
    [lo(even), lo(odd), hi(even), hi(odd)]
}

#[cfg(test)]
mod tests {
    use super::super::testgen::problems;
    use super::*;
    use crate::kernels::pooling::average_pool2d_s8;
    use crate::kernels::Nhwc;
    use proptest::prelude::*;
    use std::vec;

    proptest! {
        #![proptest_config(crate::proptest_config(400))]

        #[test]
        fn matches_reference(p in problems(11, true), act in any::<(i8, i8)>()) {
            use crate::kernels::pooling::max_pool2d_s8;
            type Pool = fn(&ConvGeometry, i32, i32, &[i8], &mut [i8]);
            let (act_min, act_max) = (act.0.min(act.1) as i32, act.0.max(act.1) as i32);
            let kernels: [(Pool, [Pool; 2]); 2] = [
                (
                    average_pool2d_s8,
                    [average_pool2d_s8_fast::<false>, average_pool2d_s8_fast::<true>],
                ),
                (max_pool2d_s8, [max_pool2d_s8_fast::<false>, max_pool2d_s8_fast::<true>]),
            ];
            for (reference, fast) in kernels {
                let mut want = vec![0i8; p.g.output.len()];
                reference(&p.g, act_min, act_max, &p.input, &mut want);
                for kernel in fast {
                    let mut got = vec![0i8; p.g.output.len()];
                    kernel(&p.g, act_min, act_max, &p.input, &mut got);
                    prop_assert_eq!(&got, &want);
                }
            }
        }
    }

    #[test]
    fn global_pools_of_extreme_values_match_reference() {
        // Windows of 256 (the largest with 16-bit sums) and 257 values, all -128 or all 127.
        for (h, w) in [(16, 16), (1, 257)] {
            for v in [-128i8, 127] {
                let g = ConvGeometry {
                    input: Nhwc::new(1, h, w, 8),
                    output: Nhwc::new(1, 1, 1, 8),
                    kernel_h: h,
                    kernel_w: w,
                    stride_h: 1,
                    stride_w: 1,
                    dilation_h: 1,
                    dilation_w: 1,
                    pad_top: 0,
                    pad_left: 0,
                };
                let input = vec![v; g.input.len()];
                let mut want = vec![0i8; 8];
                average_pool2d_s8(&g, -128, 127, &input, &mut want);
                let mut got = vec![0i8; 8];
                average_pool2d_s8_fast::<true>(&g, -128, 127, &input, &mut got);
                assert_eq!(got, want);
                assert_eq!(got, vec![v; 8]);
            }
        }
    }
}
