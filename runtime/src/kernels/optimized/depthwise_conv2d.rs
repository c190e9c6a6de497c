//! Int8 depthwise 2-D convolution (depth multiplier 1), optimized: blocks of four channels walked
//! over every output position, input offset folded into the accumulator's start, taps from
//! precomputed ranges (no per-tap padding checks).

use super::dsp::{smlabb, smlatt, sxtb16, sxtb16_ror8};
use super::{tap_range, ChannelQuant};
use crate::kernels::{ConvGeometry, LeI32, OutputQuant};

/// Most taps of a kernel whose interior positions take the tap-table loop (5x5).
const MAX_TAPS: usize = 25;

/// Same contract and bit-exact result as [`crate::kernels::depthwise_conv2d::depthwise_conv2d_s8`]
/// with a depth multiplier of 1 (`g.output.c == g.input.c`), any geometry. `DSP` selects the
/// `SXTB16`/`SMLABB`/`SMLATT` tap loop (exact pure-Rust equivalents off Armv7E-M).
pub fn depthwise_conv2d_s8_fast<const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [i8],
) {
    let c = g.output.c;
    let mut c0 = 0;
    while c0 + 4 <= c {
        channel_block::<4, DSP>(g, q, input, filter, bias, output, c0);
        c0 += 4;
    }
    while c0 < c {
        channel_block::<1, DSP>(g, q, input, filter, bias, output, c0);
        c0 += 1;
    }
}

/// Channels `c0..c0 + NB` at every output position.
#[inline(never)]
fn channel_block<const NB: usize, const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [i8],
    c0: usize,
) {
    let c = g.output.c;
    let n_taps = g.kernel_h * g.kernel_w;
    let cq: [ChannelQuant; NB] = core::array::from_fn(|j| ChannelQuant::new(q, c0 + j));
    let b: [i32; NB] = core::array::from_fn(|j| if bias.is_empty() { 0 } else { bias.get(c0 + j) });
    // Filter [1, kh, kw, c]: the block's weights of tap t are filter[t * c + c0..][..NB].
    let mut wsum = [0i32; NB];
    for t in 0..n_taps {
        let w = &filter[t * c + c0..][..NB];
        for j in 0..NB {
            wsum[j] = wsum[j].wrapping_add(w[j] as i32);
        }
    }
    // sum w * (x + off) = sum w * x + off * sum w when every tap is inside the input.
    let full: [i32; NB] =
        core::array::from_fn(|j| b[j].wrapping_add(q.input_offset.wrapping_mul(wsum[j])));
    let tap_step = g.dilation_w * c;
    // Interior positions of a four-channel block: tap offsets from the window's first input value
    // and the block's four weights per tap.
    let table = NB == 4 && n_taps <= MAX_TAPS;
    let mut offsets = [0usize; MAX_TAPS];
    let mut weights = [[0i8; 4]; MAX_TAPS];
    if table {
        for t in 0..n_taps {
            let (ky, kx) = (t / g.kernel_w, t % g.kernel_w);
            offsets[t] = (ky * g.dilation_h * g.input.w + kx * g.dilation_w) * c;
            for j in 0..4 {
                weights[t][j] = filter[t * c + c0 + j];
            }
        }
    }
    let (offsets, weights) = (
        &offsets[..n_taps.min(MAX_TAPS)],
        &weights[..n_taps.min(MAX_TAPS)],
    );
    for n in 0..g.input.n {
        for oy in 0..g.output.h {
            let kys = tap_range(
                oy,
                g.stride_h,
                g.pad_top,
                g.dilation_h,
                g.kernel_h,
                g.input.h,
            );
            // Interior positions of this row (every tap inside the input) run as one stretch.
            let (ox_lo, ox_hi) = if table && kys.len() == g.kernel_h {
                interior_columns(g)
            } else {
                (0, 0)
            };
            if ox_lo < ox_hi {
                let iy = oy * g.stride_h - g.pad_top;
                let ix = ox_lo * g.stride_w - g.pad_left;
                let first = g.input.index(n, iy, ix, c0);
                let out_first = g.output.index(n, oy, ox_lo, c0);
                if let (Ok(full), Ok(cq)) = (
                    <[i32; 4]>::try_from(full.as_slice()),
                    <[ChannelQuant; 4]>::try_from(cq.as_slice()),
                ) {
                    interior_stretch::<DSP>(
                        q,
                        &input[first..],
                        g.stride_w * c,
                        &mut output[out_first..],
                        c,
                        ox_hi - ox_lo,
                        offsets,
                        weights,
                        full,
                        cq,
                    );
                }
            }
            for ox in (0..g.output.w).filter(|ox| !(ox_lo..ox_hi).contains(ox)) {
                let kxs = tap_range(
                    ox,
                    g.stride_w,
                    g.pad_left,
                    g.dilation_w,
                    g.kernel_w,
                    g.input.w,
                );
                let interior = kys.len() == g.kernel_h && kxs.len() == g.kernel_w;
                let mut acc = if interior { full } else { b };
                if let (true, Ok(acc4)) = (table, <&mut [i32; 4]>::try_from(acc.as_mut_slice())) {
                    // Border position: the taps inside the input, input offset added per term.
                    let off = q.input_offset;
                    let [mut a0, mut a1, mut a2, mut a3] = *acc4;
                    for ky in kys.clone() {
                        let iy = oy * g.stride_h + ky * g.dilation_h - g.pad_top;
                        for kx in kxs.clone() {
                            let ix = ox * g.stride_w + kx * g.dilation_w - g.pad_left;
                            let x = &input[g.input.index(n, iy, ix, c0)..][..4];
                            let w = &weights[ky * g.kernel_w + kx];
                            a0 = a0.wrapping_add(w[0] as i32 * (x[0] as i32 + off));
                            a1 = a1.wrapping_add(w[1] as i32 * (x[1] as i32 + off));
                            a2 = a2.wrapping_add(w[2] as i32 * (x[2] as i32 + off));
                            a3 = a3.wrapping_add(w[3] as i32 * (x[3] as i32 + off));
                        }
                    }
                    *acc4 = [a0, a1, a2, a3];
                } else if !kxs.is_empty() && !kys.is_empty() {
                    let ix = ox * g.stride_w + kxs.start * g.dilation_w - g.pad_left;
                    for ky in kys.clone() {
                        let iy = oy * g.stride_h + ky * g.dilation_h - g.pad_top;
                        let start = g.input.index(n, iy, ix, c0);
                        // Input taps of this row: NB values every tap_step bytes.
                        let row = &input[start..][..(kxs.len() - 1) * tap_step + NB];
                        let wrow = &filter[(ky * g.kernel_w + kxs.start) * c + c0..]
                            [..(kxs.len() - 1) * c + NB];
                        if interior {
                            taps::<NB, true>(row, wrow, tap_step, c, 0, &mut acc);
                        } else {
                            taps::<NB, false>(row, wrow, tap_step, c, q.input_offset, &mut acc);
                        }
                    }
                }
                let o = g.output.index(n, oy, ox, c0);
                for ((out, &a), cq) in output[o..][..NB].iter_mut().zip(&acc).zip(cq) {
                    *out = cq.requantize(q, a);
                }
            }
        }
    }
}

/// Output columns `ox_lo..ox_hi` whose window lies inside the input's width.
#[inline(always)]
fn interior_columns(g: &ConvGeometry) -> (usize, usize) {
    let lo = g.pad_left.div_ceil(g.stride_w);
    // Last window column: ox * stride - pad + (kw - 1) * dilation < width.
    let span = (g.kernel_w - 1) * g.dilation_w + 1;
    let hi = match (g.input.w + g.pad_left).checked_sub(span) {
        Some(room) => (room / g.stride_w + 1).min(g.output.w),
        None => 0,
    };
    (lo.min(hi), hi)
}

/// `count` interior positions of one output row for four channels: the first window starts at
/// `input[0]`, the next ones every `step` bytes; outputs every `out_step` bytes from `output[0]`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn interior_stretch<const DSP: bool>(
    q: &OutputQuant<'_>,
    input: &[i8],
    step: usize,
    output: &mut [i8],
    out_step: usize,
    count: usize,
    offsets: &[usize],
    weights: &[[i8; 4]],
    full: [i32; 4],
    cq: [ChannelQuant; 4],
) {
    let span = offsets.last().map_or(0, |&o| o + 4);
    for k in 0..count {
        let window = &input[k * step..][..span];
        let mut acc = full;
        interior_taps::<DSP>(window, offsets, weights, &mut acc);
        let out = &mut output[k * out_step..][..4];
        for ((o, a), c) in out.iter_mut().zip(acc).zip(cq) {
            *o = c.requantize(q, a);
        }
    }
}

/// Adds the products of every tap of an interior position for four channels: input values at
/// `window[offsets[t]..][..4]`, weights `weights[t]`.
#[inline(always)]
fn interior_taps<const DSP: bool>(
    window: &[i8],
    offsets: &[usize],
    weights: &[[i8; 4]],
    acc: &mut [i32; 4],
) {
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    for (&o, w) in offsets.iter().zip(weights) {
        let x = &window[o..o + 4];
        if DSP {
            let xv = u32::from_le_bytes([x[0] as u8, x[1] as u8, x[2] as u8, x[3] as u8]);
            let wv = u32::from_le_bytes(w.map(|v| v as u8));
            // Even channels in (lo, hi) = (0, 2), odd ones in (1, 3).
            let (xe, we) = (sxtb16(xv), sxtb16(wv));
            let (xo, wo) = (sxtb16_ror8(xv), sxtb16_ror8(wv));
            a0 = smlabb(xe, we, a0);
            a2 = smlatt(xe, we, a2);
            a1 = smlabb(xo, wo, a1);
            a3 = smlatt(xo, wo, a3);
        } else {
            a0 = a0.wrapping_add(x[0] as i32 * w[0] as i32);
            a1 = a1.wrapping_add(x[1] as i32 * w[1] as i32);
            a2 = a2.wrapping_add(x[2] as i32 * w[2] as i32);
            a3 = a3.wrapping_add(x[3] as i32 * w[3] as i32);
        }
    }
    *acc = [a0, a1, a2, a3];
}

/// Adds the products of one row of taps: input values `NB` at a time every `tap_step` bytes of
/// `row`, weights `NB` at a time every `c` bytes of `wrow`; `input_offset` is added to each input
/// value unless `FOLDED`.
#[inline(always)]
fn taps<const NB: usize, const FOLDED: bool>(
    row: &[i8],
    wrow: &[i8],
    tap_step: usize,
    c: usize,
    input_offset: i32,
    acc: &mut [i32; NB],
) {
    let term = |x: i8| {
        if FOLDED {
            x as i32
        } else {
            x as i32 + input_offset
        }
    };
    if let Ok(acc4) = <&mut [i32; 4]>::try_from(acc.as_mut_slice()) {
        // Four channels: accumulators in registers.
        let [mut a0, mut a1, mut a2, mut a3] = *acc4;
        for (xs, ws) in row.chunks(tap_step).zip(wrow.chunks(c)) {
            let (xs, ws) = (&xs[..4], &ws[..4]);
            a0 = a0.wrapping_add(ws[0] as i32 * term(xs[0]));
            a1 = a1.wrapping_add(ws[1] as i32 * term(xs[1]));
            a2 = a2.wrapping_add(ws[2] as i32 * term(xs[2]));
            a3 = a3.wrapping_add(ws[3] as i32 * term(xs[3]));
        }
        *acc4 = [a0, a1, a2, a3];
    } else {
        for (xs, ws) in row.chunks(tap_step).zip(wrow.chunks(c)) {
            for ((a, &x), &w) in acc.iter_mut().zip(xs).zip(ws) {
                *a = a.wrapping_add(w as i32 * term(x));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testgen::{problems, Problem};
    use super::*;
    use crate::kernels::depthwise_conv2d::depthwise_conv2d_s8;
    use proptest::prelude::*;
    use std::vec;

    fn check<const DSP: bool>(p: &Problem) -> Result<(), TestCaseError> {
        let q = p.quant();
        let bias = LeI32::new(&p.bias).unwrap();
        let mut want = vec![0i8; p.g.output.len()];
        depthwise_conv2d_s8(&p.g, 1, &q, &p.input, &p.filter, bias, &mut want);
        let mut got = vec![0i8; p.g.output.len()];
        depthwise_conv2d_s8_fast::<DSP>(&p.g, &q, &p.input, &p.filter, bias, &mut got);
        prop_assert_eq!(got, want);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        #[test]
        fn portable_matches_reference(p in problems(11, true)) {
            check::<false>(&p)?;
        }

        #[test]
        fn dsp_matches_reference(p in problems(11, true)) {
            check::<true>(&p)?;
        }
    }
}
