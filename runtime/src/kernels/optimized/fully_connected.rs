//! Int8 FullyConnected, optimized for Armv7-M, bit-exact with
//! [`crate::kernels::fully_connected::fully_connected_s8`].
//!
//! Each input row is widened once (per block of output channels) into a stack buffer with the
//! input offset added, then every output channel, two at a time, is one dot product of that buffer
//! with the channel's contiguous filter row (the two rows share the input loads):
//! - with `DSP` (Armv7E-M): the row as 16-bit pairs `(x0, x2)`, `(x1, x3)` of each four values,
//!   the order `SXTB16` gives a weight word's bytes, so four multiply-accumulates are one `LDR`,
//!   two `SXTB16` and two `SMLAD` (input offsets outside what 16 bits hold take the reference);
//! - without (Armv7-M): the row as 32-bit values, four per `LDM`, one `LDRSB` and one `MLA` per
//!   weight.
//!
//! Rows longer than the buffer are done in chunks, with the accumulators of a block of
//! [`CHANNEL_BLOCK`] output channels kept on the stack between chunks. The inner loops are inline
//! assembly on the cores that run them and exact pure-Rust twins elsewhere (the host tests run the
//! twins; `cargo xtask qemu-test` checks the assembly).
#![allow(unsafe_code)]

use super::conv2d::CHANNEL_BLOCK;
use super::dsp::{sadd16, sxtb16, sxtb16_ror8};
use super::{ChannelQuant, RightShiftQuant};
use crate::kernels::{LeI32, OutputQuant};

#[cfg(not(ferrite_dsp))]
use super::dsp::smlad;

/// Words of the stack buffer holding a widened chunk of an input row (512 bytes): 256 values as
/// 16-bit pairs with `DSP`, 128 values of 32 bits without.
const BUFFER_WORDS: usize = 128;

/// Whether the `DSP` kernel can take this quantization: every `x + input_offset` of an int8 `x`
/// fits in 16 bits (always, for the offsets of int8 zero points).
pub fn fits_dsp(q: &OutputQuant<'_>) -> bool {
    (-32640..=32640).contains(&q.input_offset)
}

/// Same contract and bit-exact result as
/// [`crate::kernels::fully_connected::fully_connected_s8`]. `DSP` selects the `SXTB16`/`SMLAD`
/// dot products (exact pure-Rust equivalents off Armv7E-M) and needs [`fits_dsp`].
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn fully_connected_s8_fast<const DSP: bool>(
    batches: usize,
    in_features: usize,
    out_features: usize,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [i8],
) {
    debug_assert!(!DSP || fits_dsp(q));
    let input = &input[..batches * in_features];
    let filter = &filter[..out_features * in_features];
    let output = &mut output[..batches * out_features];
    let mut buffer = [0u32; BUFFER_WORDS];
    let mut accs = [0i32; CHANNEL_BLOCK];
    // Values per chunk, a multiple of four.
    let chunk = if DSP { 2 * BUFFER_WORDS } else { BUFFER_WORDS };
    let single = in_features <= chunk;
    let per_tensor = q.multiplier.len() == 1 && q.shift.len() == 1;
    let tensor_quant = Quant::new(q, 0);
    for b in 0..batches {
        let row = &input[b * in_features..][..in_features];
        let out = &mut output[b * out_features..][..out_features];
        for first in (0..out_features).step_by(CHANNEL_BLOCK) {
            let n = (out_features - first).min(CHANNEL_BLOCK);
            let accs = &mut accs[..n];
            for (k, a) in accs.iter_mut().enumerate() {
                *a = if bias.is_empty() {
                    0
                } else {
                    bias.get(first + k)
                };
            }
            let rows = &filter[first * in_features..][..n * in_features];
            for (c, part) in row.chunks(chunk).enumerate() {
                let from = c * chunk;
                let words = if DSP { part.len() / 2 } else { part.len() };
                // A single chunk is widened once per row.
                if !single || first == 0 {
                    widen::<DSP>(part, q.input_offset, &mut buffer);
                }
                let x = &buffer[..words];
                channel_pairs(rows, in_features, from, part.len(), accs, |w0, w1, acc| {
                    let acc = if DSP {
                        dot_1x2_q15(x.as_chunks::<2>().0, w0, w1, acc)
                    } else {
                        dot_1x2_wide(x, w0, w1, acc)
                    };
                    // The last values of a row that are not a group of four (DSP only).
                    let done = if DSP { part.len() & !3 } else { part.len() };
                    dot_tail(&part[done..], q.input_offset, &w0[done..], &w1[done..], acc)
                });
            }
            for (k, (o, &acc)) in out[first..][..n].iter_mut().zip(accs.iter()).enumerate() {
                let quant = if per_tensor {
                    tensor_quant
                } else {
                    Quant::new(q, first + k)
                };
                *o = quant.requantize(q, acc);
            }
        }
    }
}

/// Runs `dot(w0, w1, (acc0, acc1))` over values `from..from + len` of the filter rows of each pair
/// of the block's channels (rows of `row_len` weights), and of the last one paired with itself,
/// adding into `accs`.
#[inline(always)]
fn channel_pairs(
    rows: &[i8],
    row_len: usize,
    from: usize,
    len: usize,
    accs: &mut [i32],
    mut dot: impl FnMut(&[i8], &[i8], (i32, i32)) -> (i32, i32),
) {
    let mut pairs = accs.chunks_exact_mut(2);
    for (a, w) in (&mut pairs).zip(rows.chunks_exact(2 * row_len)) {
        let (w0, w1) = w.split_at(row_len);
        (a[0], a[1]) = dot(&w0[from..][..len], &w1[from..][..len], (a[0], a[1]));
    }
    if let [a] = pairs.into_remainder() {
        let w = &rows[rows.len() - row_len..][from..][..len];
        (*a, _) = dot(w, w, (*a, *a));
    }
}

/// Writes `x + input_offset` for the values of `x` into `buffer`: with `DSP`, each four values as
/// the words `(x0, x2)`, `(x1, x3)` of 16-bit halves (the last values that are not a group of four
/// are left out); without, one 32-bit value per word.
#[inline(always)]
fn widen<const DSP: bool>(x: &[i8], input_offset: i32, buffer: &mut [u32]) {
    if DSP {
        let offsets = (input_offset as u16 as u32) * 0x0001_0001;
        let (groups, _) = x.as_chunks::<4>();
        let (pairs, _) = buffer.as_chunks_mut::<2>();
        for (p, g) in pairs.iter_mut().zip(groups) {
            let v = u32::from_le_bytes(g.map(|b| b as u8));
            *p = [
                sadd16(sxtb16(v), offsets),
                sadd16(sxtb16_ror8(v), offsets),
            ];
        }
    } else {
        for (w, &v) in buffer.iter_mut().zip(x) {
            *w = (v as i32).wrapping_add(input_offset) as u32;
        }
    }
}

/// `acc + sum (x + input_offset) * w` for two weight rows over the raw values `x`.
#[inline(always)]
fn dot_tail(x: &[i8], input_offset: i32, w0: &[i8], w1: &[i8], acc: (i32, i32)) -> (i32, i32) {
    let (mut a0, mut a1) = acc;
    for ((&x, &p), &r) in x.iter().zip(w0).zip(w1) {
        let x = (x as i32).wrapping_add(input_offset);
        a0 = a0.wrapping_add(x.wrapping_mul(p as i32));
        a1 = a1.wrapping_add(x.wrapping_mul(r as i32));
    }
    (a0, a1)
}

/// One row by two output channels over groups of four values as 16-bit pairs
/// `[(x0, x2), (x1, x3)]`: `acc + sum x * w` for `w0` and `w1`, which hold at least `4 * x.len()`
/// weights. On Armv7E-M a group is 11 instructions for 8 multiply-accumulates (`LDRD`, two `LDR`,
/// four `SXTB16`, four `SMLAD`).
#[inline(always)]
fn dot_1x2_q15(x: &[[u32; 2]], w0: &[i8], w1: &[i8], acc: (i32, i32)) -> (i32, i32) {
    let groups = x.len();
    assert!(w0.len() >= 4 * groups && w1.len() >= 4 * groups);
    #[cfg(ferrite_dsp)]
    {
        if groups == 0 {
            return acc;
        }
        let (mut a0, mut a1) = acc;
        let dw = w1.as_ptr() as isize - w0.as_ptr() as isize;
        // One group: the two input words, then each channel's weight word split into its even and
        // odd bytes and multiplied with them.
        macro_rules! group {
            () => {
                concat!(
                    "ldrd r2, r3, [r10], #8\n",
                    "ldr r4, [r11, r12]\n",
                    "sxtb16 r5, r4\n",
                    "sxtb16 r4, r4, ror #8\n",
                    "smlad r1, r2, r5, r1\n",
                    "smlad r1, r3, r4, r1\n",
                    "ldr r4, [r11], #4\n",
                    "sxtb16 r5, r4\n",
                    "sxtb16 r4, r4, ror #8\n",
                    "smlad r0, r2, r5, r0\n",
                    "smlad r0, r3, r4, r0\n",
                )
            };
        }
        // SAFETY: reads `2 * groups` words from `x` (aligned: `LDRD` wants words) and `4 * groups`
        // bytes from each of `w0` and `w1` (= w0 + dw), lengths checked above (LDR of the weights
        // may be unaligned, which Armv7-M allows); writes nothing to memory. SMLAD may set the Q
        // flag, which nothing reads.
        unsafe {
            core::arch::asm!(
                "lsrs lr, lr, #1",
                "bcc 2f",
                group!(),
                "2:",
                // The flags are still those of LSRS: SMLAD and the loads leave N and Z alone.
                "beq 4f",
                "3:",
                group!(),
                group!(),
                "subs lr, lr, #1",
                "bne 3b",
                "4:",
                inout("r10") x.as_ptr() => _,
                inout("r11") w0.as_ptr() => _,
                in("r12") dw,
                inout("lr") groups => _,
                inout("r0") a0,
                inout("r1") a1,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                options(readonly, nostack),
            );
        }
        (a0, a1)
    }
    #[cfg(not(ferrite_dsp))]
    {
        let (mut a0, mut a1) = acc;
        let (c0, _) = w0.as_chunks::<4>();
        let (c1, _) = w1.as_chunks::<4>();
        for ((x, p), r) in x.iter().zip(c0).zip(c1) {
            let wp = u32::from_le_bytes(p.map(|b| b as u8));
            let wr = u32::from_le_bytes(r.map(|b| b as u8));
            a0 = smlad(x[1], sxtb16_ror8(wp), smlad(x[0], sxtb16(wp), a0));
            a1 = smlad(x[1], sxtb16_ror8(wr), smlad(x[0], sxtb16(wr), a1));
        }
        (a0, a1)
    }
}

/// One row by two output channels over values widened to 32 bits: `acc + sum x * w` for `w0` and
/// `w1`, which hold at least `x.len()` weights. On Armv7-M four values are 17 instructions for 8
/// multiply-accumulates (`LDM`, four `LDRSB` and four `MLA` per channel).
#[inline(always)]
fn dot_1x2_wide(x: &[u32], w0: &[i8], w1: &[i8], acc: (i32, i32)) -> (i32, i32) {
    let n = x.len();
    assert!(w0.len() >= n && w1.len() >= n);
    let (mut a0, mut a1) = acc;
    #[cfg(not(ferrite_armv7m))]
    let done = 0;
    #[cfg(ferrite_armv7m)]
    let done = {
        // One value: its weight in each row, loaded with LDRSB, multiplied into each channel.
        macro_rules! one {
            ($x:literal) => {
                concat!(
                    "ldrsb r9, [r11, r12]\n",
                    "ldrsb r8, [r11], #1\n",
                    "mla r0, ",
                    $x,
                    ", r8, r0\n",
                    "mla r1, ",
                    $x,
                    ", r9, r1\n",
                )
            };
        }
        let quads = n / 4;
        if quads > 0 {
            let dw = w1.as_ptr() as isize - w0.as_ptr() as isize;
            // SAFETY: reads `4 * quads <= n` words from `x` and as many bytes from `w0` and `w1`
            // (= w0 + dw), lengths checked above; writes nothing to memory.
            unsafe {
                core::arch::asm!(
                    "1:",
                    "ldm r10!, {{r2, r3, r4, r5}}",
                    one!("r2"),
                    one!("r3"),
                    one!("r4"),
                    one!("r5"),
                    "subs lr, lr, #1",
                    "bne 1b",
                    inout("r10") x.as_ptr() => _,
                    inout("r11") w0.as_ptr() => _,
                    in("r12") dw,
                    inout("lr") quads => _,
                    inout("r0") a0,
                    inout("r1") a1,
                    out("r2") _,
                    out("r3") _,
                    out("r4") _,
                    out("r5") _,
                    out("r8") _,
                    out("r9") _,
                    options(readonly, nostack),
                );
            }
        }
        4 * quads
    };
    for ((&x, &p), &r) in x[done..].iter().zip(&w0[done..]).zip(&w1[done..]) {
        a0 = a0.wrapping_add((x as i32).wrapping_mul(p as i32));
        a1 = a1.wrapping_add((x as i32).wrapping_mul(r as i32));
    }
    (a0, a1)
}

/// The output quantization of one channel (or of the tensor), prepared once.
#[derive(Clone, Copy)]
struct Quant {
    channel: ChannelQuant,
    fast: Option<RightShiftQuant>,
}

impl Quant {
    #[inline(always)]
    fn new(q: &OutputQuant<'_>, channel: usize) -> Self {
        let channel = ChannelQuant::new(q, channel);
        Self {
            channel,
            fast: RightShiftQuant::new(channel, q),
        }
    }

    /// Same arithmetic as `kernels::conv2d::requantize_acc`.
    #[inline(always)]
    fn requantize(self, q: &OutputQuant<'_>, acc: i32) -> i8 {
        match self.fast {
            Some(fast) => fast.requantize(q, acc),
            None => self.channel.requantize(q, acc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::fully_connected::fully_connected_s8;
    use crate::kernels::testutil::Rng;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    fn le(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    proptest! {
        #![proptest_config(crate::proptest_config(300))]

        #[test]
        fn fast_kernels_match_reference(
            batches in 1..=3usize,
            inf in prop_oneof![1..=40usize, 1..=300usize],
            outf in 1..=40usize,
            per_channel: bool,
            has_bias: bool,
            input_zero_point in -128..=127i32,
            output_offset in -128..=127i32,
            clamp in (-128..=127i32, -128..=127i32),
            seed: u64,
        ) {
            let mut rng = Rng::new(seed);
            let channels = if per_channel { outf } else { 1 };
            let multiplier: Vec<i32> =
                (0..channels).map(|_| rng.range(1 << 30, i32::MAX)).collect();
            let shift: Vec<i32> = (0..channels).map(|_| rng.range(-14, 2)).collect();
            let bias: Vec<i32> = if has_bias {
                (0..outf).map(|_| rng.range(-100_000, 100_000)).collect()
            } else {
                Vec::new()
            };
            let (m, s, bias) = (le(&multiplier), le(&shift), le(&bias));
            let q = OutputQuant {
                input_offset: -input_zero_point,
                output_offset,
                act_min: clamp.0.min(clamp.1),
                act_max: clamp.0.max(clamp.1),
                multiplier: LeI32::new(&m).unwrap(),
                shift: LeI32::new(&s).unwrap(),
            };
            let bias = LeI32::new(&bias).unwrap();
            let input = rng.i8_vec(batches * inf);
            // The format's weights are symmetric int8 (-127..=127), but any byte must work.
            let filter = rng.i8_vec(outf * inf);
            let mut want = vec![0i8; batches * outf];
            fully_connected_s8(batches, inf, outf, &q, &input, &filter, bias, &mut want);
            let mut got = vec![0i8; batches * outf];
            fully_connected_s8_fast::<true>(batches, inf, outf, &q, &input, &filter, bias, &mut got);
            prop_assert_eq!(&got, &want);
            let mut got = vec![0i8; batches * outf];
            fully_connected_s8_fast::<false>(batches, inf, outf, &q, &input, &filter, bias, &mut got);
            prop_assert_eq!(&got, &want);
        }
    }

    #[test]
    fn dsp_takes_the_offsets_of_int8_zero_points() {
        let (m, s) = (le(&[1 << 30]), le(&[-3]));
        let mut q = OutputQuant {
            input_offset: 128,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
            multiplier: LeI32::new(&m).unwrap(),
            shift: LeI32::new(&s).unwrap(),
        };
        assert!(fits_dsp(&q));
        q.input_offset = -127;
        assert!(fits_dsp(&q));
        q.input_offset = 40_000;
        assert!(!fits_dsp(&q));
    }
}
