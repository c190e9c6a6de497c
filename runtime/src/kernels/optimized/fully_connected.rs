//! Int8 FullyConnected, optimized for Armv7-M, bit-exact with
//! [`crate::kernels::fully_connected::fully_connected_s8`].
//!
//! Each input row is widened once into a stack buffer with the input offset added; then every
//! output channel is one dot product of that buffer with the channel's contiguous filter row,
//! several channels per pass sharing the input loads, each accumulator starting from its bias:
//! - with `DSP` (Armv7E-M): the row as 16-bit pairs `(x0, x2)`, `(x1, x3)` of each four values,
//!   the order `SXTB16` gives a weight word's bytes, so four multiply-accumulates are one `LDR`,
//!   two `SXTB16` and two `SMLAD`; four channels per pass (then two, then one). Input offsets
//!   that 16 bits cannot hold take the reference kernel ([`fits_dsp`]).
//! - without (Armv7-M): the row as 32-bit values, four per `LDM`, one `LDRSB` and one `MLA` per
//!   weight; two channels per pass.
//!
//! Output channels go in blocks of 32, whose accumulators stay on the stack until they are
//! requantized (a per-tensor quantization of the usual right-shift form has a loop of its own).
//! Rows longer than the buffer are done in chunks, the accumulators carried from one chunk to the
//! next. Stack: the 512-byte buffer and the 128 bytes of accumulators. The inner loops are inline
//! assembly on the cores that run them and exact pure-Rust twins elsewhere (the host tests run
//! the twins; `cargo xtask qemu-test` checks the assembly).
#![allow(unsafe_code)]

use super::conv2d::CHANNEL_BLOCK;
use super::conv_loops::requantize_row_folded;
use super::dsp::{sadd16, sxtb16, sxtb16_ror8};
use super::{ChannelQuant, RightShiftQuant};
use crate::kernels::{Int8Output, LeI32, OutputQuant};
use core::mem::MaybeUninit;

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
pub fn fully_connected_s8_fast<const DSP: bool, T: Int8Output>(
    batches: usize,
    in_features: usize,
    out_features: usize,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [T],
) {
    debug_assert!(!DSP || fits_dsp(q));
    if in_features == 0 || (!bias.is_empty() && bias.len() < out_features) {
        // Empty rows, or a short bias (read as zeros past its end): the reference's business.
        crate::kernels::fully_connected::fully_connected_s8(
            batches,
            in_features,
            out_features,
            q,
            input,
            filter,
            bias,
            output,
        );
        return;
    }
    let input = &input[..batches * in_features];
    let filter = &filter[..out_features * in_features];
    let output = &mut output[..batches * out_features];
    // Neither array is zeroed (that would cost more than a small layer's dot products): only
    // widened words are read, and the accumulators are first written from the bias.
    let mut buffer = [MaybeUninit::<u32>::uninit(); BUFFER_WORDS];
    let mut accs = [MaybeUninit::<i32>::uninit(); CHANNEL_BLOCK];
    // Values per chunk, a multiple of four.
    let chunk = if DSP { 2 * BUFFER_WORDS } else { BUFFER_WORDS };
    let single = in_features <= chunk;
    let folded = per_tensor_folded(q);
    let right_shift = if folded.is_none() {
        per_tensor_right_shift(q)
    } else {
        None
    };
    for b in 0..batches {
        let row = &input[b * in_features..][..in_features];
        let out = &mut output[b * out_features..][..out_features];
        for first in (0..out_features).step_by(CHANNEL_BLOCK) {
            let n = (out_features - first).min(CHANNEL_BLOCK);
            let rows = &filter[first * in_features..][..n * in_features];
            // The accumulators' start: the block's biases (little-endian words, any alignment).
            let mut start = if bias.is_empty() {
                ZEROS.as_ptr().cast::<u8>()
            } else {
                bias.0[4 * first..][..4 * n].as_ptr()
            };
            for (c, part) in row.chunks(chunk).enumerate() {
                let groups = part.len() / 4;
                let words = if DSP { 2 * groups } else { 4 * groups };
                // A single chunk is widened once per row.
                if !single || first == 0 {
                    widen::<DSP>(part, q.input_offset, &mut buffer[..words]);
                }
                // SAFETY: `widen` wrote the first `words` words, for this chunk or (a single
                // chunk) for this row at the first block.
                let x = unsafe { assume_init(&buffer[..words]) };
                let from = c * chunk;
                // SAFETY: `start` holds `n` words: the block's biases, `ZEROS` or `accs`.
                unsafe {
                    dot_block::<DSP>(x, groups, &rows[from..], in_features, start, &mut accs[..n])
                };
                start = accs.as_ptr().cast::<u8>();
                // SAFETY: `dot_block` wrote the first `n`.
                let accs = unsafe { assume_init_mut(&mut accs[..n]) };
                // The last values of a row that are not a group of four.
                let (done, tail) = part.split_at(4 * groups);
                if !tail.is_empty() {
                    for (k, a) in accs.iter_mut().enumerate() {
                        let w = &rows[k * in_features + from + done.len()..][..tail.len()];
                        *a = dot_tail(tail, q.input_offset, w, *a);
                    }
                }
            }
            // SAFETY: the chunk loop (at least one chunk: `in_features > 0`) wrote the first `n`.
            let accs = unsafe { assume_init(&accs[..n]) };
            let out = &mut out[first..][..n];
            let Some(out) = T::narrow(out) else {
                // A wide output: each channel's own requantization, into int16.
                for (k, (o, &a)) in out.iter_mut().zip(accs).enumerate() {
                    *o = ChannelQuant::new(q, first + k).requantize_to(q, a);
                }
                continue;
            };
            let act = (q.act_min, q.act_max);
            match (folded, right_shift) {
                (Some(f), _) if act == (-128, 127) => requantize_row_folded::<0>(f, accs, out, act),
                (Some(f), _) if act.1 == 127 => requantize_row_folded::<1>(f, accs, out, act),
                (Some(f), _) => requantize_row_folded::<2>(f, accs, out, act),
                (None, Some(parts)) => requantize_right_shift(q, parts, accs, out),
                (None, None) => requantize(q, first, accs, out),
            }
        }
    }
}

/// The start of the accumulators of a layer without bias.
static ZEROS: [i32; CHANNEL_BLOCK] = [0; CHANNEL_BLOCK];

/// Writes `x + input_offset` for the groups of four values of `x` into `buffer` (as many as it
/// holds): with `DSP`, each group as the words `(x0, x2)`, `(x1, x3)` of 16-bit halves; without,
/// one 32-bit value per word. On Armv7-M, assembly: a group is 6 instructions with `DSP` (one
/// `LDR`, two `SXTB16`, two `SADD16`, half an `STM`, a quarter of the loop), 12 without (one `LDR`, three `SXTB`,
/// one `ASR`, four `ADD`, one `STM`, loop).
#[inline(always)]
fn widen<const DSP: bool>(x: &[i8], input_offset: i32, buffer: &mut [MaybeUninit<u32>]) {
    let (groups, _) = x.as_chunks::<4>();
    let groups = &groups[..groups.len().min(buffer.len() / if DSP { 2 } else { 4 })];
    if groups.is_empty() {
        return;
    }
    #[cfg(ferrite_dsp)]
    if DSP {
        let offsets = (input_offset as u16 as u32) * 0x0001_0001;
        // Two groups: four halfword pairs, stored with one STM.
        macro_rules! two {
            () => {
                concat!(
                    "ldr r4, [{x}], #4\n",
                    "ldr r5, [{x}], #4\n",
                    "sxtb16 r0, r4\n",
                    "sxtb16 r1, r4, ror #8\n",
                    "sxtb16 r2, r5\n",
                    "sxtb16 r3, r5, ror #8\n",
                    "sadd16 r0, r0, {off}\n",
                    "sadd16 r1, r1, {off}\n",
                    "sadd16 r2, r2, {off}\n",
                    "sadd16 r3, r3, {off}\n",
                    "stm {buf}!, {{r0, r1, r2, r3}}\n",
                )
            };
        }
        // SAFETY: reads the `groups.len()` words of `groups` (`LDR` may be unaligned, which
        // Armv7-M allows) and writes twice as many words of `buffer` (checked above); nothing
        // else. SADD16 sets the GE flags, which nothing reads.
        unsafe {
            core::arch::asm!(
                // groups % 4 first, then four at a time.
                "lsrs {n}, {n}, #1",
                "bcc 1f",
                "ldr r4, [{x}], #4",
                "sxtb16 r0, r4",
                "sxtb16 r1, r4, ror #8",
                "sadd16 r0, r0, {off}",
                "sadd16 r1, r1, {off}",
                "stm {buf}!, {{r0, r1}}",
                "1:",
                "lsrs {n}, {n}, #1",
                "bcc 2f",
                two!(),
                "2:",
                // The flags are still those of the last LSRS: SADD16 sets only GE.
                "beq 4f",
                "3:",
                two!(),
                two!(),
                "subs {n}, {n}, #1",
                "bne 3b",
                "4:",
                x = inout(reg) groups.as_ptr() => _,
                buf = inout(reg) buffer.as_mut_ptr() => _,
                n = inout(reg) groups.len() => _,
                off = in(reg) offsets,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                options(nostack),
            );
        }
        return;
    }
    #[cfg(ferrite_armv7m)]
    if !DSP {
        // SAFETY: reads the `groups.len()` words of `groups` (`LDR` may be unaligned, which
        // Armv7-M allows) and writes four times as many words of `buffer` (checked above);
        // nothing else.
        unsafe {
            core::arch::asm!(
                "1:",
                "ldr r4, [{x}], #4",
                "sxtb r0, r4",
                "sxtb r1, r4, ror #8",
                "sxtb r2, r4, ror #16",
                "asrs r3, r4, #24",
                "add r0, r0, {off}",
                "add r1, r1, {off}",
                "add r2, r2, {off}",
                "add r3, r3, {off}",
                "stm {buf}!, {{r0, r1, r2, r3}}",
                "subs {n}, {n}, #1",
                "bne 1b",
                x = inout(reg) groups.as_ptr() => _,
                buf = inout(reg) buffer.as_mut_ptr() => _,
                n = inout(reg) groups.len() => _,
                off = in(reg) input_offset,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                options(nostack),
            );
        }
        return;
    }
    #[allow(unreachable_code)]
    if DSP {
        let offsets = (input_offset as u16 as u32) * 0x0001_0001;
        let (pairs, _) = buffer.as_chunks_mut::<2>();
        for (p, g) in pairs.iter_mut().zip(groups) {
            let v = u32::from_le_bytes(g.map(|b| b as u8));
            p[0].write(sadd16(sxtb16(v), offsets));
            p[1].write(sadd16(sxtb16_ror8(v), offsets));
        }
    } else {
        let (quads, _) = buffer.as_chunks_mut::<4>();
        for (w, g) in quads.iter_mut().zip(groups) {
            for (w, &x) in w.iter_mut().zip(g) {
                w.write((x as i32).wrapping_add(input_offset) as u32);
            }
        }
    }
}

/// `s` as initialized values.
///
/// # Safety
///
/// Every element of `s` is initialized.
#[inline(always)]
unsafe fn assume_init<T>(s: &[MaybeUninit<T>]) -> &[T] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the caller vouches for the values.
    unsafe { &*(s as *const [MaybeUninit<T>] as *const [T]) }
}

/// [`assume_init`], mutable.
///
/// # Safety
///
/// Every element of `s` is initialized.
#[inline(always)]
unsafe fn assume_init_mut<T>(s: &mut [MaybeUninit<T>]) -> &mut [T] {
    // SAFETY: as in `assume_init`.
    unsafe { &mut *(s as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// `acc + sum (x + input_offset) * w` over the raw values `x`.
#[inline(always)]
fn dot_tail(x: &[i8], input_offset: i32, w: &[i8], acc: i32) -> i32 {
    x.iter().zip(w).fold(acc, |a, (&x, &w)| {
        a.wrapping_add((x as i32).wrapping_add(input_offset).wrapping_mul(w as i32))
    })
}

/// Writes to `accs[k]` the little-endian word `k` at `start` plus the dot product of the widened
/// groups `x` (see [`widen`]) with the first `4 * groups` weights of row `k` of `w` (rows
/// `stride` apart): with `DSP` four channels at a time, then two, then the last one alone.
///
/// # Safety
///
/// `start` points to `accs.len()` words (any alignment; it may be `accs` itself).
#[inline(never)]
unsafe fn dot_block<const DSP: bool>(
    x: &[u32],
    groups: usize,
    w: &[i8],
    stride: usize,
    start: *const u8,
    accs: &mut [MaybeUninit<i32>],
) {
    let n = accs.len();
    if n == 0 {
        return;
    }
    assert!(x.len() >= if DSP { 2 * groups } else { 4 * groups });
    assert!(w.len() >= (n - 1) * stride + 4 * groups);
    let dst = accs.as_mut_ptr().cast::<i32>();
    let w = w.as_ptr();
    // SAFETY: `x` holds the groups' words and `w` every row's `4 * groups` weights (checked
    // above); `start` and `accs` hold `n` words, `last` two.
    unsafe {
        let quads = if DSP { n / 4 } else { 0 };
        if quads > 0 {
            dot_quads(x, groups, w, stride, start, dst, quads);
        }
        let k = 4 * quads;
        let pairs = (n - k) / 2;
        if pairs > 0 {
            let (w, src) = (w.add(k * stride), start.add(4 * k));
            dot_pairs::<DSP>(x, groups, w, stride, src, dst.add(k), pairs);
        }
        if n % 2 == 1 {
            // The last channel paired with itself.
            let v = start.add(4 * (n - 1)).cast::<i32>().read_unaligned();
            let mut last = [v; 2];
            let w = w.add((n - 1) * stride);
            let p = last.as_mut_ptr();
            dot_pairs::<DSP>(x, groups, w, 0, p.cast::<u8>(), p, 1);
            dst.add(n - 1).write(last[0]);
        }
    }
}

/// For each of `passes` passes of four channels, writes to `dst[4p + j]` the little-endian word
/// `4p + j` at `src` plus the dot product of the groups `x` (16-bit pairs, see [`widen`]) with
/// row `4p + j` of `w` (rows `stride` apart, `4 * groups` weights each). On Armv7E-M a group is
/// 21 instructions for 16 multiply-accumulates (`LDRD`, four `LDR`, eight `SXTB16`, eight
/// `SMLAD`), a pass about 25 more.
///
/// # Safety
///
/// `passes > 0`; `x` holds `2 * groups` words; every row `k < 4 * passes` has `4 * groups`
/// weights at `w + k * stride`; `src` (any alignment) and `dst` hold `4 * passes` words (not
/// overlapping).
#[inline(always)]
unsafe fn dot_quads(
    x: &[u32],
    groups: usize,
    w: *const i8,
    stride: usize,
    src: *const u8,
    dst: *mut i32,
    passes: usize,
) {
    // From one pass's first row to the next pass's, past the `4 * groups` weights read.
    #[cfg(ferrite_dsp)]
    let skip = (4 * stride).wrapping_sub(4 * groups);
    #[cfg(ferrite_dsp)]
    {
        // The loop's state, kept on the stack.
        let params = [
            x.as_ptr() as usize,
            src as usize,
            dst as usize,
            groups,
            skip,
            passes,
            2 * stride,
            3 * stride,
        ];
        // One group of each channel: its weight word split into its even and odd bytes and
        // multiplied with the two input words.
        macro_rules! row {
            ($load:literal, $acc:literal) => {
                concat!(
                    $load,
                    "\n",
                    "sxtb16 r5, r4\n",
                    "sxtb16 r4, r4, ror #8\n",
                    "smlad ",
                    $acc,
                    ", r2, r5, ",
                    $acc,
                    "\n",
                    "smlad ",
                    $acc,
                    ", r3, r4, ",
                    $acc,
                    "\n",
                )
            };
        }
        macro_rules! group {
            () => {
                concat!(
                    "ldrd r2, r3, [r10], #8\n",
                    row!("ldr r4, [r11, r12]", "r1"),
                    row!("ldr r4, [r11, r6]", "r8"),
                    row!("ldr r4, [r11, r7]", "r9"),
                    row!("ldr r4, [r11], #4", "r0"),
                )
            };
        }
        // SAFETY: by the caller's contract, per pass reads four words at `src`, `2 * groups`
        // words of `x` (aligned: `LDRD` wants words) and `4 * groups` bytes of each row (`LDR`
        // of the weights and of `src` may be unaligned, which Armv7-M allows), and writes four
        // words of `dst`; it reads `params` and nothing else. r6 and r7 (which Rust reserves) are
        // saved on the stack and restored; they hold the third and fourth rows' offsets, the
        // stack holds a copy of the first six words of `params`, updated as the loop goes. SMLAD
        // may set the Q flag, which nothing reads.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                "ldrd r6, r7, [lr, #24]",
                "ldm lr, {{r0, r1, r2, r3, r4, r5}}",
                // [sp]: x, src, dst, groups, skip, passes.
                "push {{r0, r1, r2, r3, r4, r5}}",
                "5:",
                "ldr r4, [sp, #4]",
                "ldr r0, [r4], #4",
                "ldr r1, [r4], #4",
                "ldr r8, [r4], #4",
                "ldr r9, [r4], #4",
                "str r4, [sp, #4]",
                "ldr r10, [sp]",
                // groups % 4 first, then four at a time.
                "ldr lr, [sp, #12]",
                "lsrs lr, lr, #1",
                "bcc 1f",
                group!(),
                "1:",
                "lsrs lr, lr, #1",
                "bcc 2f",
                group!(),
                group!(),
                "2:",
                // The flags are still those of the last LSRS: SMLAD and the loads leave N and Z
                // alone.
                "beq 4f",
                "3:",
                group!(),
                group!(),
                group!(),
                group!(),
                "subs lr, lr, #1",
                "bne 3b",
                "4:",
                "ldr r4, [sp, #8]",
                "stm r4!, {{r0, r1, r8, r9}}",
                "str r4, [sp, #8]",
                "ldr r4, [sp, #16]",
                "add r11, r11, r4",
                "ldr r4, [sp, #20]",
                "subs r4, r4, #1",
                "str r4, [sp, #20]",
                "bne 5b",
                "add sp, sp, #24",
                "pop {{r6, r7}}",
                inout("lr") params.as_ptr() => _,
                inout("r11") w => _,
                in("r12") stride,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
            );
        }
    }
    #[cfg(not(ferrite_dsp))]
    // SAFETY: as for the assembly.
    unsafe {
        dot_rows::<true>(x, groups, w, stride, src, dst, 4 * passes)
    };
}

/// For each of `pairs` pairs of channels, writes to `dst[2p]`, `dst[2p + 1]` the little-endian
/// words `2p`, `2p + 1` at `src` plus the dot products of the widened groups `x` with rows `2p`
/// and `2p + 1` of `w` (rows `stride` apart; `4 * groups` weights each). On Armv7E-M a group is
/// 11 instructions for 8 multiply-accumulates (`LDRD`, two `LDR`, four `SXTB16`, four `SMLAD`), a
/// pair 15 more; on Armv7-M four values are 17 for 8 (`LDM`, four `LDRSB` and four `MLA` per
/// channel), a pair about 20 more. (With `stride` 0, both channels of a pair are one.)
///
/// # Safety
///
/// `pairs > 0`; `x` holds `2 * groups` words with `DSP` (else `4 * groups`); every row
/// `k < 2 * pairs` has `4 * groups` weights at `w + k * stride`; `src` (any alignment) and `dst`
/// hold `2 * pairs` words (the same words, or not overlapping).
#[inline(always)]
unsafe fn dot_pairs<const DSP: bool>(
    x: &[u32],
    groups: usize,
    w: *const i8,
    stride: usize,
    src: *const u8,
    dst: *mut i32,
    pairs: usize,
) {
    // From one pair's first row to the next pair's, past the `4 * groups` weights read.
    #[cfg(ferrite_armv7m)]
    let skip = (2 * stride).wrapping_sub(4 * groups);
    #[cfg(ferrite_dsp)]
    if DSP {
        // One group: the two input words, then each channel's weight word split into its even
        // and odd bytes and multiplied with them.
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
        // SAFETY: by the caller's contract, per pair reads two words at `src`, `2 * groups`
        // words of `x` (aligned: `LDRD` wants words) and `4 * groups` bytes of each row (`LDR`
        // of the weights and of `src` may be unaligned, which Armv7-M allows), and writes two
        // words of `dst`; nothing else. r6 and r7 (which Rust reserves) are saved on the stack
        // and restored; they hold the start of `x` and the pointer into `src`, the stack the
        // group count and the skip. SMLAD may set the Q flag, which nothing reads.
        unsafe {
            core::arch::asm!(
                "push {{r4, r5, r6, r7}}",
                "mov r6, r2",
                "mov r7, r3",
                "5:",
                "ldr r0, [r7], #4",
                "ldr r1, [r7], #4",
                "mov r10, r6",
                // groups % 4 first, then four at a time.
                "ldr lr, [sp]",
                "lsrs lr, lr, #1",
                "bcc 1f",
                group!(),
                "1:",
                "lsrs lr, lr, #1",
                "bcc 2f",
                group!(),
                group!(),
                "2:",
                // The flags are still those of the last LSRS: SMLAD and the loads leave N and Z
                // alone.
                "beq 4f",
                "3:",
                group!(),
                group!(),
                group!(),
                group!(),
                "subs lr, lr, #1",
                "bne 3b",
                "4:",
                "strd r0, r1, [r8], #8",
                "ldr r4, [sp, #4]",
                "add r11, r11, r4",
                "subs r9, r9, #1",
                "bne 5b",
                "add sp, sp, #8",
                "pop {{r6, r7}}",
                inout("r2") x.as_ptr() => _,
                inout("r3") src => _,
                inout("r4") groups => _,
                inout("r5") skip => _,
                inout("r8") dst => _,
                inout("r9") pairs => _,
                inout("r11") w => _,
                in("r12") stride,
                out("r0") _,
                out("r1") _,
                out("r10") _,
                out("lr") _,
            );
        }
        return;
    }
    #[cfg(ferrite_armv7m)]
    if !DSP {
        // Four values: their words with one LDM, each weight with one LDRSB per row, multiplied
        // into each channel.
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
        macro_rules! quad {
            () => {
                concat!(
                    "ldm r10!, {{r2, r3, r4, r5}}\n",
                    one!("r2"),
                    one!("r3"),
                    one!("r4"),
                    one!("r5"),
                )
            };
        }
        // SAFETY: by the caller's contract, per pair reads two words at `src` (`LDR` may be
        // unaligned, which Armv7-M allows), `4 * groups` words of `x` and `4 * groups` bytes of
        // each row, and writes two words of `dst`; nothing else. r6 and r7 (which Rust reserves)
        // are saved on the stack and restored; they hold the pointers into `dst` and `src`, the
        // stack the start of `x`, the pairs left, the group count and the skip.
        unsafe {
            core::arch::asm!(
                "push {{r2, r3, r4, r5, r6, r7}}",
                "mov r6, r1",
                "mov r7, r0",
                "5:",
                "ldr r0, [r7], #4",
                "ldr r1, [r7], #4",
                "ldr r10, [sp]",
                // An odd group first, then two at a time.
                "ldr lr, [sp, #8]",
                "lsrs lr, lr, #1",
                "bcc 2f",
                quad!(),
                "2:",
                // The flags are still those of LSRS: MLA and the loads leave them alone.
                "beq 4f",
                "3:",
                quad!(),
                quad!(),
                "subs lr, lr, #1",
                "bne 3b",
                "4:",
                "stm r6!, {{r0, r1}}",
                "ldr r2, [sp, #12]",
                "add r11, r11, r2",
                "ldr r2, [sp, #4]",
                "subs r2, r2, #1",
                "str r2, [sp, #4]",
                "bne 5b",
                "add sp, sp, #16",
                "pop {{r6, r7}}",
                inout("r0") src => _,
                inout("r1") dst => _,
                inout("r2") x.as_ptr() => _,
                inout("r3") pairs => _,
                inout("r4") groups => _,
                inout("r5") skip => _,
                inout("r11") w => _,
                in("r12") stride,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("lr") _,
            );
        }
        return;
    }
    #[allow(unreachable_code)]
    // SAFETY: as for the assembly.
    unsafe {
        dot_rows::<DSP>(x, groups, w, stride, src, dst, 2 * pairs)
    };
}

/// The Rust twin of the assembly of [`dot_quads`] and [`dot_pairs`]: for each of `count`
/// channels, `dst[k]` = word `k` at `src` plus the dot product of the widened groups `x` (16-bit
/// pairs with `DSP`, else 32-bit values) with the row at `w + k * stride`.
///
/// # Safety
///
/// As for [`dot_pairs`].
#[cfg_attr(ferrite_armv7m, allow(dead_code))]
unsafe fn dot_rows<const DSP: bool>(
    x: &[u32],
    groups: usize,
    w: *const i8,
    stride: usize,
    src: *const u8,
    dst: *mut i32,
    count: usize,
) {
    for k in 0..count {
        // SAFETY: by the caller's contract, the row holds `4 * groups` weights, `src` and `dst`
        // word `k`.
        unsafe {
            let row = core::slice::from_raw_parts(w.add(k * stride), 4 * groups);
            let acc = src.add(4 * k).cast::<i32>().read_unaligned();
            let acc = if DSP {
                dot_q15(&x[..2 * groups], row, acc)
            } else {
                dot_wide(&x[..4 * groups], row, acc)
            };
            dst.add(k).write(acc);
        }
    }
}

/// The Rust twin of the `DSP` loops for one channel: `acc + sum x * w` over
/// the groups' words `[(x0, x2), (x1, x3)]`.
#[inline(always)]
fn dot_q15(x: &[u32], w: &[i8], acc: i32) -> i32 {
    let (words, _) = w.as_chunks::<4>();
    x.as_chunks::<2>()
        .0
        .iter()
        .zip(words)
        .fold(acc, |a, (x, w)| {
            let w = u32::from_le_bytes(w.map(|b| b as u8));
            smlad(x[1], sxtb16_ror8(w), smlad(x[0], sxtb16(w), a))
        })
}

/// The Rust twin of the portable loop for one channel: `acc + sum x * w` over
/// values widened to 32 bits.
#[inline(always)]
fn dot_wide(x: &[u32], w: &[i8], acc: i32) -> i32 {
    x.iter().zip(w).fold(acc, |a, (&x, &w)| {
        a.wrapping_add((x as i32).wrapping_mul(w as i32))
    })
}

/// Requantizes the accumulators of output channels `first..` into `out`.
#[inline(never)]
fn requantize(q: &OutputQuant<'_>, first: usize, accs: &[i32], out: &mut [i8]) {
    let int8 = ChannelQuant::int8_clamp(q);
    for (k, (o, &a)) in out.iter_mut().zip(accs).enumerate() {
        let channel = ChannelQuant::new(q, first + k);
        *o = match channel.with_offset(q.output_offset) {
            // The offset folded into the rounding term: the scaled value is the output.
            Some(folded) if int8 => folded.scale(a).clamp(q.act_min, q.act_max) as i8,
            _ => channel.requantize(q, a),
        };
    }
}

/// A per-tensor quantization in the short form with the output offset folded in
/// ([`ChannelQuant::with_offset`]), for an activation range within int8; `None` otherwise.
#[inline(always)]
fn per_tensor_folded(q: &OutputQuant<'_>) -> Option<ChannelQuant> {
    let int8 = ChannelQuant::int8_clamp(q);
    if q.multiplier.len() != 1 || q.shift.len() != 1 || !int8 {
        return None;
    }
    ChannelQuant::new(q, 0).with_offset(q.output_offset)
}

/// The multiplier, right shift, rounding term and lower clamp of [`RightShiftQuant`] for a
/// per-tensor quantization of that form (the common one), computed directly from `q`.
#[inline(always)]
fn per_tensor_right_shift(q: &OutputQuant<'_>) -> Option<[i32; 4]> {
    if q.multiplier.len() != 1 || q.shift.len() != 1 {
        return None;
    }
    let shift = q.shift.get(0);
    // `RightShiftQuant::from_parts`'s conditions: no left shift, a right shift (taken modulo 32,
    // as `ChannelQuant` does) of 1 to 21 bits.
    let right = shift.wrapping_neg() & 31;
    let form = shift < 0
        && (1..=21).contains(&right)
        && q.act_max == 127
        && (-128..=127).contains(&q.act_min)
        && (-128..=127).contains(&q.output_offset);
    form.then(|| {
        let round = (1 << (right - 1)) + (q.output_offset << right);
        [q.multiplier.get(0), right, round, q.act_min]
    })
}

/// [`requantize`] for a per-tensor quantization of the [`RightShiftQuant`] form (its parts from
/// [`per_tensor_right_shift`]), in a function of its own: the compiler keeps its values in
/// registers.
#[inline(never)]
fn requantize_right_shift(q: &OutputQuant<'_>, fast: [i32; 4], accs: &[i32], out: &mut [i8]) {
    let [multiplier, right, round, act_min] = fast;
    for (o, &a) in out.iter_mut().zip(accs) {
        *o = match a.checked_add(a) {
            Some(a2) => RightShiftQuant::requantize_doubled_parts(
                multiplier,
                right as u32,
                round,
                act_min,
                a2,
            ),
            None => requantize_wide(q, a),
        };
    }
}

/// The requantization of a per-tensor layer's accumulator whose double overflows, out of line
/// (rare: without it, the per-tensor loop of [`requantize`] keeps its values in registers).
#[cold]
#[inline(never)]
fn requantize_wide(q: &OutputQuant<'_>, acc: i32) -> i8 {
    ChannelQuant::new(q, 0).requantize(q, acc)
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
            wide_bias: bool,
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
            // Wide biases make accumulators whose double overflows (the out-of-line case).
            let b = if wide_bias { i32::MAX } else { 100_000 };
            let bias: Vec<i32> = if has_bias {
                (0..outf).map(|_| rng.range(-b, b)).collect()
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
            fully_connected_s8_fast::<true, _>(batches, inf, outf, &q, &input, &filter, bias, &mut got);
            prop_assert_eq!(&got, &want);
            let mut got = vec![0i8; batches * outf];
            fully_connected_s8_fast::<false, _>(batches, inf, outf, &q, &input, &filter, bias, &mut got);
            prop_assert_eq!(&got, &want);
            // A wide (int16) output, clamped to int16's range or to the int8 clamp.
            let (lo, hi) = (q.act_min, q.act_max);
            for (act_min, act_max) in [(-32768, 32767), (lo * 200, hi * 200), (lo, hi)] {
                let q = OutputQuant { output_offset: 0, act_min, act_max, ..q };
                let mut want = vec![0i16; batches * outf];
                fully_connected_s8(batches, inf, outf, &q, &input, &filter, bias, &mut want);
                for dsp in [false, true] {
                    let mut got = want.iter().map(|v| !v).collect::<Vec<i16>>();
                    let fast = if dsp {
                        fully_connected_s8_fast::<true, i16>
                    } else {
                        fully_connected_s8_fast::<false, i16>
                    };
                    fast(batches, inf, outf, &q, &input, &filter, bias, &mut got);
                    prop_assert_eq!(&got, &want);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn per_tensor_right_shift_is_right_shift_quant(
            multiplier: i32, shift in prop_oneof![-40..40i32, any::<i32>()], output_offset in -300..300i32,
            act_min in -300..300i32, act_max in prop_oneof![Just(127), -300..300i32],
        ) {
            let (m, s) = (le(&[multiplier]), le(&[shift]));
            let q = OutputQuant {
                input_offset: 0,
                output_offset,
                act_min,
                act_max,
                multiplier: LeI32::new(&m).unwrap(),
                shift: LeI32::new(&s).unwrap(),
            };
            let want = RightShiftQuant::new(ChannelQuant::new(&q, 0), &q)
                .map(|f| [f.multiplier, f.right as i32, f.round, f.act_min]);
            prop_assert_eq!(per_tensor_right_shift(&q), want);
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
