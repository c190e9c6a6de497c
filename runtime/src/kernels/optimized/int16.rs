//! int16x8 2-D convolution and fully connected with the Armv7E-M DSP extension, bit-exact with the
//! reference kernels of `kernels::int16`.
//!
//! `SMLAD` multiplies two pairs of signed halfwords and adds both products to a 32-bit accumulator,
//! so int16 inputs need no widening: four inputs `x0..x3` (two words) are repacked as `(x0, x2)` and
//! `(x1, x3)` (two bit-field merges, shared by the four output channels of a block), the pairs
//! `SXTB16` makes of a word of four int8 weights. Output channels go four at a time.
//!
//! The reference accumulates in 64 bits. Here a run of at most [`FLUSH_PRODUCTS`] products is summed
//! in 32 bits and then added to a 64-bit accumulator: `|x * w| <= 32768 * 128 = 2^22`, and a sum of
//! `m` such products stays within `i32` for every sign when `m * 2^22 <= 2^31 - 1`, that is
//! `m <= 511`; `SMLAD` adds products two at a time, so 255 pairs, 510 products. (The 32-bit sums wrap
//! like two's complement arithmetic, so only the run's final sum has to fit, not every partial one.)
//! The bias and the requantization are the reference's.
//!
//! FullyConnected takes this kernel for rows of at least [`FC_MIN_FEATURES`] features only.
//! Depthwise convolution keeps the reference kernel: each output channel needs its own input
//! channel, so a `SMLAD` pair would add two channels' products together; `BENCHMARKS.md` has the
//! reference counts beside the others.

use super::dsp::{smlad, sxtb16, sxtb16_ror8};
use super::tap_range;
use crate::kernels::{ConvGeometry, LeI64, OutputQuant};
use crate::quant::Multiplier64;

/// Largest number of products summed in 32 bits before the sum is added to the 64-bit accumulator
/// (see the module documentation): `i32::MAX / 2^22` rounded down to an even count.
pub const FLUSH_PRODUCTS: usize = ((i32::MAX as usize) >> 22) & !1;

/// Shortest input row for which FullyConnected takes the `SMLAD` kernel on Armv7E-M. Measured on the
/// M4F (`cargo xtask bench --int16`) with every row taking it, the 16- and 24-feature fixtures ran at
/// 0.89x and 0.65x the reference's speed: each output costs about 140 instructions more (block set-up,
/// bias and requantization prepared per block, 32-bit runs flushed), while the `SMLAD` loop saves
/// about 2.75 instructions per multiply-accumulate (2.25 against 5), so the kernel can only pay past
/// about 50 features; 64 leaves a margin.
pub const FC_MIN_FEATURES: usize = 64;

/// `x0` and `x1` as one word, `x0` in the low halfword.
#[inline(always)]
fn halfword_pair(x0: i16, x1: i16) -> u32 {
    (x0 as u16 as u32) | ((x1 as u16 as u32) << 16)
}

/// `(x0, x2)` and `(x1, x3)` of four int16 values: the order `SXTB16` gives a weight word's bytes.
#[inline(always)]
fn interleave(x: &[i16; 4]) -> (u32, u32) {
    let lo = halfword_pair(x[0], x[1]);
    let hi = halfword_pair(x[2], x[3]);
    ((lo & 0xFFFF) | (hi << 16), (hi & 0xFFFF_0000) | (lo >> 16))
}

/// Two `SMLAD`s: `acc` plus the four products of the interleaved inputs and the weight word `w`.
#[inline(always)]
fn mac4(x02: u32, x13: u32, w: &[i8; 4], acc: i32) -> i32 {
    let w = u32::from_le_bytes(w.map(|b| b as u8));
    smlad(x13, sxtb16_ror8(w), smlad(x02, sxtb16(w), acc))
}

/// `acc[j] + sum_i x[i] * w[j][i]` for four weight rows (each at least `x.len()` long), in 32 bits:
/// `x.len() <= FLUSH_PRODUCTS`.
#[inline(always)]
fn dot4(x: &[i16], w: [&[i8]; 4], acc: [i32; 4]) -> [i32; 4] {
    let n = x.len();
    let (xq, xt) = x.as_chunks::<4>();
    let (q0, t0) = w[0][..n].as_chunks::<4>();
    let (q1, t1) = w[1][..n].as_chunks::<4>();
    let (q2, t2) = w[2][..n].as_chunks::<4>();
    let (q3, t3) = w[3][..n].as_chunks::<4>();
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    for ((((x4, w0), w1), w2), w3) in xq.iter().zip(q0).zip(q1).zip(q2).zip(q3) {
        let (x02, x13) = interleave(x4);
        a0 = mac4(x02, x13, w0, a0);
        a1 = mac4(x02, x13, w1, a1);
        a2 = mac4(x02, x13, w2, a2);
        a3 = mac4(x02, x13, w3, a3);
    }
    [
        dot_tail(xt, t0, a0),
        dot_tail(xt, t1, a1),
        dot_tail(xt, t2, a2),
        dot_tail(xt, t3, a3),
    ]
}

/// `acc + sum_i x[i] * w[i]` for one weight row, in 32 bits: `x.len() <= FLUSH_PRODUCTS`.
#[inline(always)]
fn dot1(x: &[i16], w: &[i8], acc: i32) -> i32 {
    let n = x.len();
    let (xq, xt) = x.as_chunks::<4>();
    let (wq, wt) = w[..n].as_chunks::<4>();
    let acc = xq.iter().zip(wq).fold(acc, |a, (x4, w4)| {
        let (x02, x13) = interleave(x4);
        mac4(x02, x13, w4, a)
    });
    dot_tail(xt, wt, acc)
}

/// The last values of a run, one product at a time.
#[inline(always)]
fn dot_tail(x: &[i16], w: &[i8], acc: i32) -> i32 {
    x.iter()
        .zip(w)
        .fold(acc, |a, (&x, &w)| a.wrapping_add(x as i32 * w as i32))
}

/// Adds `sum_i x[i] * rows[j][offset + i]` to `acc[j]` for the `count` (1 to 4) rows, in runs of at
/// most [`FLUSH_PRODUCTS`] products summed in 32 bits.
#[inline(always)]
fn accumulate(x: &[i16], rows: [&[i8]; 4], count: usize, offset: usize, acc: &mut [i64; 4]) {
    let mut start = 0;
    while start < x.len() {
        let len = (x.len() - start).min(FLUSH_PRODUCTS);
        let run = &x[start..start + len];
        let at = offset + start;
        if count == 4 {
            let sums = dot4(run, rows.map(|r| &r[at..]), [0; 4]);
            for (a, s) in acc.iter_mut().zip(sums) {
                *a += s as i64;
            }
        } else {
            for (a, r) in acc.iter_mut().zip(rows).take(count) {
                *a += dot1(run, &r[at..], 0) as i64;
            }
        }
        start += len;
    }
}

/// One output channel's bias and requantization, prepared once for every position.
#[derive(Clone, Copy, Default)]
struct Stage {
    bias: i64,
    multiplier: Multiplier64,
}

impl Stage {
    /// The stages of channels `first..first + count`; missing ones repeat the last (never stored).
    #[inline(always)]
    fn block(q: &OutputQuant<'_>, bias: LeI64<'_>, first: usize, count: usize) -> [Stage; 4] {
        core::array::from_fn(|j| {
            let c = first + j.min(count - 1);
            Stage {
                bias: if bias.is_empty() { 0 } else { bias.get(c) },
                multiplier: Multiplier64::new(
                    q.multiplier.get_or_first(c),
                    q.shift.get_or_first(c),
                ),
            }
        })
    }
}

/// Requantizes a block's `count` accumulators into `out[..count]`, as
/// [`crate::kernels::int16::requantize_acc64`] does.
#[inline(always)]
fn store(q: &OutputQuant<'_>, stages: &[Stage; 4], count: usize, acc: [i64; 4], out: &mut [i16]) {
    for ((o, s), a) in out[..count].iter_mut().zip(stages).zip(acc) {
        let scaled = s.multiplier.apply(a + s.bias);
        *o = scaled.max(q.act_min).min(q.act_max) as i16;
    }
}

/// The filter rows of output channels `first..first + count` (`len` values each); missing rows
/// repeat the first (never accumulated).
#[inline(always)]
fn rows(filter: &[i8], first: usize, count: usize, len: usize) -> [&[i8]; 4] {
    core::array::from_fn(|j| {
        let c = first + if j < count { j } else { 0 };
        &filter[c * len..][..len]
    })
}

/// Same contract and bit-exact result as [`crate::kernels::int16::conv::conv2d_s16`].
pub fn conv2d_s16_dsp(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i16],
    filter: &[i8],
    bias: LeI64<'_>,
    output: &mut [i16],
) {
    let (in_c, out_c) = (g.input.c, g.output.c);
    let len = g.kernel_h * g.kernel_w * in_c;
    let mut first = 0;
    while first < out_c {
        let count = (out_c - first).min(4);
        let block = rows(filter, first, count, len);
        let stages = Stage::block(q, bias, first, count);
        for n in 0..g.output.n {
            for oy in 0..g.output.h {
                let ky = tap_range(
                    oy,
                    g.stride_h,
                    g.pad_top,
                    g.dilation_h,
                    g.kernel_h,
                    g.input.h,
                );
                for ox in 0..g.output.w {
                    let kx = tap_range(
                        ox,
                        g.stride_w,
                        g.pad_left,
                        g.dilation_w,
                        g.kernel_w,
                        g.input.w,
                    );
                    let mut acc = [0i64; 4];
                    for ky in ky.clone() {
                        let iy = oy * g.stride_h + ky * g.dilation_h - g.pad_top;
                        // Contiguous taps of a kernel row form one run of the input and the filter.
                        let (taps, step) = if g.dilation_w == 1 && !kx.is_empty() {
                            (kx.start..kx.start + 1, kx.len())
                        } else {
                            (kx.clone(), 1)
                        };
                        for kx in taps {
                            let ix = ox * g.stride_w + kx * g.dilation_w - g.pad_left;
                            let x = &input[g.input.index(n, iy, ix, 0)..][..step * in_c];
                            let offset = (ky * g.kernel_w + kx) * in_c;
                            accumulate(x, block, count, offset, &mut acc);
                        }
                    }
                    let out = &mut output[g.output.index(n, oy, ox, first)..];
                    store(q, &stages, count, acc, out);
                }
            }
        }
        first += count;
    }
}

/// Same contract and bit-exact result as
/// [`crate::kernels::int16::fully_connected::fully_connected_s16`].
#[allow(clippy::too_many_arguments)]
pub fn fully_connected_s16_dsp(
    batches: usize,
    in_features: usize,
    out_features: usize,
    q: &OutputQuant<'_>,
    input: &[i16],
    filter: &[i8],
    bias: LeI64<'_>,
    output: &mut [i16],
) {
    let mut first = 0;
    while first < out_features {
        let count = (out_features - first).min(4);
        let block = rows(filter, first, count, in_features);
        let stages = Stage::block(q, bias, first, count);
        for b in 0..batches {
            let x = &input[b * in_features..][..in_features];
            let mut acc = [0i64; 4];
            accumulate(x, block, count, 0, &mut acc);
            store(
                q,
                &stages,
                count,
                acc,
                &mut output[b * out_features + first..],
            );
        }
        first += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::int16::{conv::conv2d_s16, fully_connected::fully_connected_s16};
    use crate::kernels::testutil::Rng;
    use crate::kernels::{LeI32, Nhwc};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// The bound: `FLUSH_PRODUCTS` extreme products fit `i32`, one more pair would not.
    #[test]
    fn flush_bound_is_the_largest_even_count_that_fits() {
        let largest = 32768i64 * 128;
        assert_eq!(FLUSH_PRODUCTS, 510);
        assert!(FLUSH_PRODUCTS as i64 * largest <= i32::MAX as i64);
        assert!((FLUSH_PRODUCTS as i64 + 2) * largest > i32::MAX as i64);
        // The most negative product, 32767 * -128, is smaller in size.
        assert!(32767i64 * -128 > -largest);
    }

    /// How values are drawn: uniformly, only the extremes (`-32768` inputs, `-128` weights, whose
    /// products are all `+2^22`), or half extremes (either sign) and half uniform.
    #[derive(Clone, Copy, Debug)]
    enum Values {
        Uniform,
        Extreme,
        Mixed,
    }

    fn values() -> impl Strategy<Value = Values> {
        prop_oneof![
            Just(Values::Uniform),
            Just(Values::Extreme),
            Just(Values::Mixed)
        ]
    }

    fn draw_input(rng: &mut Rng, v: Values) -> i16 {
        match v {
            Values::Uniform => rng.range(-32768, 32767) as i16,
            Values::Extreme => -32768,
            Values::Mixed => match rng.range(0, 3) {
                0 => -32768,
                1 => 32767,
                _ => rng.range(-32768, 32767) as i16,
            },
        }
    }

    fn draw_weight(rng: &mut Rng, v: Values) -> i8 {
        match v {
            Values::Uniform => rng.i8(),
            Values::Extreme => -128,
            Values::Mixed => match rng.range(0, 3) {
                0 => -128,
                1 => 127,
                _ => rng.i8(),
            },
        }
    }

    /// Output quantization and bias for `channels` outputs: per-channel or per-tensor factors, int64
    /// biases (or none), a clamp inside the int16 range.
    struct Quant {
        multiplier: Vec<u8>,
        shift: Vec<u8>,
        bias: Vec<u8>,
        act_min: i32,
        act_max: i32,
    }

    impl Quant {
        fn new(rng: &mut Rng, channels: usize, per_channel: bool, has_bias: bool) -> Self {
            let le = |v: Vec<i32>| v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let n = if per_channel { channels } else { 1 };
            let bias: Vec<i64> = if has_bias {
                (0..channels)
                    .map(|_| rng.range(-(1 << 30), 1 << 30) as i64 * rng.range(1, 64) as i64)
                    .collect()
            } else {
                Vec::new()
            };
            let (a, b) = (rng.range(-32768, 32767), rng.range(-32768, 32767));
            let full = rng.range(0, 1) == 0;
            Quant {
                multiplier: le((0..n).map(|_| rng.range(1 << 30, i32::MAX)).collect()),
                shift: le((0..n).map(|_| rng.range(-24, 0)).collect()),
                bias: bias.iter().flat_map(|x| x.to_le_bytes()).collect(),
                act_min: if full { -32768 } else { a.min(b) },
                act_max: if full { 32767 } else { a.max(b) },
            }
        }

        fn quant(&self) -> OutputQuant<'_> {
            OutputQuant {
                input_offset: 0,
                output_offset: 0,
                act_min: self.act_min,
                act_max: self.act_max,
                multiplier: LeI32::new(&self.multiplier).unwrap(),
                shift: LeI32::new(&self.shift).unwrap(),
            }
        }

        fn bias(&self) -> LeI64<'_> {
            LeI64::new(&self.bias).unwrap()
        }
    }

    fn check_conv(g: &ConvGeometry, v: Values, seed: u64) -> Result<(), TestCaseError> {
        let mut rng = Rng::new(seed);
        let q = Quant::new(&mut rng, g.output.c, seed & 1 == 0, seed & 2 == 0);
        let input: Vec<i16> = (0..g.input.len())
            .map(|_| draw_input(&mut rng, v))
            .collect();
        let filter: Vec<i8> = (0..g.output.c * g.kernel_h * g.kernel_w * g.input.c)
            .map(|_| draw_weight(&mut rng, v))
            .collect();
        let mut want = std::vec![0i16; g.output.len()];
        conv2d_s16(g, &q.quant(), &input, &filter, q.bias(), &mut want);
        let mut got = std::vec![0i16; g.output.len()];
        conv2d_s16_dsp(g, &q.quant(), &input, &filter, q.bias(), &mut got);
        prop_assert_eq!(got, want);
        Ok(())
    }

    fn check_fc(
        batches: usize,
        i: usize,
        o: usize,
        v: Values,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let mut rng = Rng::new(seed);
        let q = Quant::new(&mut rng, o, seed & 1 == 0, seed & 2 == 0);
        let input: Vec<i16> = (0..batches * i).map(|_| draw_input(&mut rng, v)).collect();
        let filter: Vec<i8> = (0..o * i).map(|_| draw_weight(&mut rng, v)).collect();
        let mut want = std::vec![0i16; batches * o];
        fully_connected_s16(
            batches,
            i,
            o,
            &q.quant(),
            &input,
            &filter,
            q.bias(),
            &mut want,
        );
        let mut got = std::vec![0i16; batches * o];
        fully_connected_s16_dsp(
            batches,
            i,
            o,
            &q.quant(),
            &input,
            &filter,
            q.bias(),
            &mut got,
        );
        prop_assert_eq!(got, want);
        Ok(())
    }

    /// One dimension: (input length, kernel, stride, dilation, pad before, output length).
    fn dim() -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize)> {
        (1..=8usize, 1..=4usize, 1..=3usize, 1..=2usize).prop_flat_map(|(len, k, s, d)| {
            let span = (k - 1) * d + 1;
            (0..span, 0..span).prop_filter_map("empty output", move |(before, after)| {
                let padded = len + before + after;
                (padded >= span).then(|| (len, k, s, d, before, (padded - span) / s + 1))
            })
        })
    }

    fn geometry(max_c: usize) -> impl Strategy<Value = ConvGeometry> {
        (dim(), dim(), 1..=2usize, 1..=max_c, 1..=max_c).prop_map(|(h, w, n, in_c, out_c)| {
            ConvGeometry {
                input: Nhwc::new(n, h.0, w.0, in_c),
                output: Nhwc::new(n, h.5, w.5, out_c),
                kernel_h: h.1,
                kernel_w: w.1,
                stride_h: h.2,
                stride_w: w.2,
                dilation_h: h.3,
                dilation_w: w.3,
                pad_top: h.4,
                pad_left: w.4,
            }
        })
    }

    proptest! {
        #![proptest_config(crate::proptest_config(300))]

        #[test]
        fn conv_matches_reference(g in geometry(11), v in values(), seed: u64) {
            check_conv(&g, v, seed)?;
        }

        #[test]
        fn fully_connected_matches_reference(
            batches in 1..=3usize, i in 1..=40usize, o in 1..=9usize, v in values(), seed: u64,
        ) {
            check_fc(batches, i, o, v, seed)?;
        }
    }

    proptest! {
        // Runs longer than a flush (more than 510 products per kernel row or row of features).
        #![proptest_config(crate::proptest_config(24))]

        #[test]
        #[cfg_attr(miri, ignore = "too slow under Miri")]
        fn long_runs_match_reference(
            g in geometry(3), in_c in 100..=700usize, i in 400..=1600usize, v in values(), seed: u64,
        ) {
            let g = ConvGeometry { input: Nhwc { c: in_c, ..g.input }, ..g };
            check_conv(&g, v, seed)?;
            check_fc(1, i, 5, v, seed)?;
        }
    }

    /// At the bound: runs of exactly 510 extreme products (all `+2^22`, a 32-bit sum of
    /// 2,139,095,040), one more, two runs, and a kernel row of three taps of 170 channels (510
    /// values in one run), all equal to the reference and to the exact sum.
    #[test]
    fn extreme_values_at_the_flush_bound() {
        let q = Quant {
            multiplier: (1i32 << 30).to_le_bytes().to_vec(),
            shift: 0i32.to_le_bytes().to_vec(),
            bias: Vec::new(),
            act_min: -32768,
            act_max: 32767,
        };
        for i in [509, 510, 511, 512, 1020, 1021, 2048] {
            let input = std::vec![-32768i16; i];
            let filter = std::vec![-128i8; 2 * i];
            let mut want = std::vec![0i16; 2];
            fully_connected_s16(1, i, 2, &q.quant(), &input, &filter, q.bias(), &mut want);
            let mut got = std::vec![0i16; 2];
            fully_connected_s16_dsp(1, i, 2, &q.quant(), &input, &filter, q.bias(), &mut got);
            assert_eq!(got, want, "{i} features");
        }
        // A requantization by 2^-25 (multiplier 2^30 and shift -24: 0.5 * 2^-24) shows the sum.
        let exact = Quant {
            shift: (-24i32).to_le_bytes().to_vec(),
            ..q
        };
        for in_c in [170, 171, 255, 256] {
            let g = ConvGeometry {
                input: Nhwc::new(1, 1, 3, in_c),
                output: Nhwc::new(1, 1, 1, 5),
                kernel_h: 1,
                kernel_w: 3,
                stride_h: 1,
                stride_w: 1,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: 0,
                pad_left: 0,
            };
            let input = std::vec![-32768i16; 3 * in_c];
            let filter = std::vec![-128i8; 5 * 3 * in_c];
            let mut want = std::vec![0i16; 5];
            conv2d_s16(&g, &exact.quant(), &input, &filter, exact.bias(), &mut want);
            let mut got = std::vec![0i16; 5];
            conv2d_s16_dsp(&g, &exact.quant(), &input, &filter, exact.bias(), &mut got);
            assert_eq!(got, want, "{in_c} channels");
            // sum = 3 * in_c * 2^22, times 2^-25, rounded half up.
            let sum = 3 * in_c as i64 * (1 << 22);
            assert_eq!(got[0] as i64, (sum + (1 << 24)) >> 25, "{in_c} channels");
        }
    }
}
