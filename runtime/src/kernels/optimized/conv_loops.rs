//! The inner loops of the patch convolution (`conv2d.rs`): dot products of two output positions
//! by two output channels, and the requantization of a pass, as hand-scheduled inline assembly on
//! the cores that run them and as exact pure-Rust twins elsewhere (the host tests run the twins;
//! `cargo xtask qemu-test` checks the assembly, bit-exact against TFLite Micro's outputs).
//!
//! - [`dot_2x2_q15`] (Armv7E-M, `cfg(ferrite_dsp)`): patch pre-expanded to 16-bit pairs, weights
//!   split by `SXTB16`, 16 multiply-accumulates in 15 instructions (one `LDM`, two `LDR`, four
//!   `SXTB16`, eight `SMLAD`).
//! - [`dot_2x2_wide`] (Armv7-M, `cfg(ferrite_armv7m)`): patch values widened to 32 bits, two
//!   positions' pairs per `LDM`, one `LDRSB` per weight, 16 `MLA` in 28 instructions.
//! - `requantize_lanes` (Armv7-M): a pass's accumulators to int8, about 15 instructions each.
//!
//! Each needs 14 registers: the asm also saves and uses r6 and r7, which Rust reserves (they
//! cannot be operands), and names the others explicitly (`LDM` wants ascending registers).
#![allow(unsafe_code)]

use super::conv2d::CHANNEL_BLOCK;
use super::ChannelQuant;

#[cfg(not(ferrite_dsp))]
use super::dsp::{smlad, sxtb16, sxtb16_ror8};

/// Two positions (A, B) by two output channels over a patch of quads (see `conv2d_s8_patches`):
/// `acc + sum x * w` for (A, w0), (A, w1), (B, w0), (B, w1), in that order. `w0` and `w1` hold at
/// least `4 * patch.len()` weights.
#[inline(always)]
pub fn dot_2x2_q15(patch: &[[u32; 4]], w0: &[i8], w1: &[i8], acc: [i32; 4]) -> [i32; 4] {
    let groups = patch.len();
    assert!(w0.len() >= 4 * groups && w1.len() >= 4 * groups);
    #[cfg(ferrite_dsp)]
    {
        if groups == 0 {
            return acc;
        }
        let [mut a0, mut a1, mut b0, mut b1] = acc;
        // One group: the four patch words, then each channel's weight word split into its even
        // and odd bytes and multiplied with both positions' pairs.
        macro_rules! group {
            () => {
                concat!(
                    "ldm r10!, {{r2, r3, r4, r5}}\n",
                    "ldr r6, [r11], #4\n",
                    "sxtb16 r7, r6\n",
                    "sxtb16 r6, r6, ror #8\n",
                    "smlad r0, r2, r7, r0\n",
                    "smlad r0, r3, r6, r0\n",
                    "smlad r8, r4, r7, r8\n",
                    "smlad r8, r5, r6, r8\n",
                    "ldr r6, [r12], #4\n",
                    "sxtb16 r7, r6\n",
                    "sxtb16 r6, r6, ror #8\n",
                    "smlad r1, r2, r7, r1\n",
                    "smlad r1, r3, r6, r1\n",
                    "smlad r9, r4, r7, r9\n",
                    "smlad r9, r5, r6, r9\n",
                )
            };
        }
        // SAFETY: reads `4 * groups` words from `patch` and `4 * groups` bytes from each of `w0`
        // and `w1` (checked above; LDR of the weights may be unaligned, which Armv7-M allows),
        // writes nothing to memory. r6 and r7 (which Rust reserves) are saved on the stack and
        // restored; the other registers are explicit operands. SMLAD may set the Q flag, which nothing reads.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                "lsrs lr, lr, #1",
                "bcc 2f",
                group!(),
                "2:",
                "cmp lr, #0",
                "beq 4f",
                "3:",
                group!(),
                group!(),
                "subs lr, lr, #1",
                "bne 3b",
                "4:",
                "pop {{r6, r7}}",
                inout("r10") patch.as_ptr() => _,
                inout("r11") w0.as_ptr() => _,
                inout("r12") w1.as_ptr() => _,
                inout("lr") groups => _,
                inout("r0") a0,
                inout("r1") a1,
                inout("r8") b0,
                inout("r9") b1,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                options(readonly),
            );
        }
        [a0, a1, b0, b1]
    }
    #[cfg(not(ferrite_dsp))]
    {
        let [mut a0, mut a1, mut b0, mut b1] = acc;
        let (c0, _) = w0.as_chunks::<4>();
        let (c1, _) = w1.as_chunks::<4>();
        for ((x, p), r) in patch.iter().zip(c0).zip(c1) {
            let wp = u32::from_le_bytes(p.map(|b| b as u8));
            let (pe, po) = (sxtb16(wp), sxtb16_ror8(wp));
            a0 = smlad(x[1], po, smlad(x[0], pe, a0));
            b0 = smlad(x[3], po, smlad(x[2], pe, b0));
            let wr = u32::from_le_bytes(r.map(|b| b as u8));
            let (re, ro) = (sxtb16(wr), sxtb16_ror8(wr));
            a1 = smlad(x[1], ro, smlad(x[0], re, a1));
            b1 = smlad(x[3], ro, smlad(x[2], re, b1));
        }
        [a0, a1, b0, b1]
    }
}

/// [`dot_2x2_q15`] with both channels' weights already split into 16-bit pairs: group `i` of
/// `w0` (and of `w1`) is the words `[(w0, w2), (w1, w3)]` that `SXTB16` makes of four weights.
/// On Armv7E-M a group is 11 instructions for 16 multiply-accumulates (three `LDM`, eight
/// `SMLAD`). `w0` and `w1` hold at least `2 * patch.len()` words.
#[inline(always)]
pub fn dot_2x2_q15_pairs(patch: &[[u32; 4]], w0: &[u32], w1: &[u32], acc: [i32; 4]) -> [i32; 4] {
    let groups = patch.len();
    assert!(w0.len() >= 2 * groups && w1.len() >= 2 * groups);
    #[cfg(ferrite_dsp)]
    {
        if groups == 0 {
            return acc;
        }
        let [mut a0, mut a1, mut b0, mut b1] = acc;
        // SAFETY: reads `4 * groups` words from `patch` and `2 * groups` words from each of `w0`
        // and `w1` (checked above), writes nothing to memory. r6 and r7 (which Rust reserves)
        // are saved on the stack and restored; the other registers are explicit operands. SMLAD
        // may set the Q flag, which nothing reads.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                "2:",
                "ldm r10!, {{r2, r3, r4, r5}}",
                "ldm r11!, {{r6, r7}}",
                "smlad r0, r2, r6, r0",
                "smlad r0, r3, r7, r0",
                "smlad r8, r4, r6, r8",
                "smlad r8, r5, r7, r8",
                "ldm r12!, {{r6, r7}}",
                "smlad r1, r2, r6, r1",
                "smlad r1, r3, r7, r1",
                "smlad r9, r4, r6, r9",
                "smlad r9, r5, r7, r9",
                "subs lr, lr, #1",
                "bne 2b",
                "pop {{r6, r7}}",
                inout("r10") patch.as_ptr() => _,
                inout("r11") w0.as_ptr() => _,
                inout("r12") w1.as_ptr() => _,
                inout("lr") groups => _,
                inout("r0") a0,
                inout("r1") a1,
                inout("r8") b0,
                inout("r9") b1,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                options(readonly),
            );
        }
        [a0, a1, b0, b1]
    }
    #[cfg(not(ferrite_dsp))]
    {
        let [mut a0, mut a1, mut b0, mut b1] = acc;
        let (c0, _) = w0.as_chunks::<2>();
        let (c1, _) = w1.as_chunks::<2>();
        for ((x, p), r) in patch.iter().zip(c0).zip(c1) {
            a0 = smlad(x[1], p[1], smlad(x[0], p[0], a0));
            b0 = smlad(x[3], p[1], smlad(x[2], p[0], b0));
            a1 = smlad(x[1], r[1], smlad(x[0], r[0], a1));
            b1 = smlad(x[3], r[1], smlad(x[2], r[0], b1));
        }
        [a0, a1, b0, b1]
    }
}

/// Words of split weights (see [`dot_2x2_q15_pairs`]) the small-patch path keeps when every output
/// channel's fit: 1,024 bytes of stack.
pub const SPLIT_WORDS: usize = 256;

/// Largest receptive field (`kernel_h * kernel_w * in_c`) of the small-patch convolution path
/// (`conv2d_s8_small`): the stems of the MLPerf Tiny models (3x3x3, 10x4x1) and the like.
pub const SMALL_MAX: usize = 48;

/// Where each value of a receptive field lies relative to its first tap's first input value,
/// in filter order (ky, kx, ic), for windows whose taps are all inside the input; the values past
/// the field's length, up to a multiple of four, read offset 0 (the weights they meet are zero).
/// Every offset is below `span`, the number of input values the window covers.
pub(crate) struct WindowOffsets {
    offsets: [u32; SMALL_MAX],
    groups: usize,
    span: usize,
}

impl WindowOffsets {
    /// The offsets of a `kernel_h` x `kernel_w` x `in_c` window, taps `dilation_h` rows and
    /// `dilation_w` columns apart, in an input `width` values wide. Needs `kernel_h * kernel_w *
    /// in_c` in `1..=SMALL_MAX`.
    pub fn new(
        kernel_h: usize,
        kernel_w: usize,
        in_c: usize,
        dilation_h: usize,
        dilation_w: usize,
        width: usize,
    ) -> Self {
        let len = kernel_h * kernel_w * in_c;
        assert!((1..=SMALL_MAX).contains(&len));
        let (row, col) = (dilation_h * width * in_c, dilation_w * in_c);
        let mut offsets = [0u32; SMALL_MAX];
        for (j, o) in offsets[..len].iter_mut().enumerate() {
            let (ky, kx, c) = (j / (kernel_w * in_c), j / in_c % kernel_w, j % in_c);
            *o = (ky * row + kx * col + c) as u32;
        }
        let span = (kernel_h - 1) * row + (kernel_w - 1) * col + in_c;
        Self {
            offsets,
            groups: len.div_ceil(4),
            span,
        }
    }

    /// Groups of four values of the field (the last one padded as above).
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Writes the field whose window starts at `src[0]` into words `2K` and `2K + 1` of the
    /// patch's quads: group `i` of values x0..x3 as `(x0, x2)` and `(x1, x3)`, 16-bit pairs as
    /// `SXTB16` makes them of a word.
    #[inline(always)]
    pub fn expand<const K: usize>(&self, src: &[i8], quads: &mut [[u32; 4]]) {
        assert!(src.len() >= self.span && quads.len() >= self.groups && K < 2);
        // SAFETY: every offset is below `span` (`new`), and `span <= src.len()` (checked above).
        let at = |o: u32| unsafe { *src.get_unchecked(o as usize) } as i32;
        // Two sign-extended values as a 16-bit pair (`PKHBT`).
        let pair = |lo: i32, hi: i32| (lo as u32 & 0xffff) | ((hi as u32) << 16);
        let (chunks, _) = self.offsets.as_chunks::<4>();
        for (quad, o) in quads[..self.groups].iter_mut().zip(chunks) {
            let (x0, x1, x2, x3) = (at(o[0]), at(o[1]), at(o[2]), at(o[3]));
            quad[2 * K] = pair(x0, x2);
            quad[2 * K + 1] = pair(x1, x3);
        }
    }
}

/// Marks the end of a channel's offsets for [`dot_sparse_4xn`] (above any offset).
pub(crate) const SPARSE_END: u16 = 0x8000;

/// The output channels of a block at four positions: for channel `k`, the accumulators of positions
/// A and B in `lanes[0][k]` and of C and D in `lanes[1][k]`.
pub(crate) type FourLanes = [[Lane; CHANNEL_BLOCK]; 2];

/// Byte offsets the four-position loops store through: a lane's accumulators, the same lane of the
/// second pass, and the next lane (`STRD` reaches 1,020 bytes).
#[cfg(ferrite_armv7m)]
mod four_lanes {
    use super::{FourLanes, Lane, CHANNEL_BLOCK};
    pub const ACC_AB: usize = core::mem::offset_of!(Lane, acc_a);
    pub const ACC_CD: usize = ACC_AB + CHANNEL_BLOCK * core::mem::size_of::<Lane>();
    pub const STEP: usize = core::mem::size_of::<Lane>();
    const _: () = assert!(
        core::mem::offset_of!(Lane, acc_b) == ACC_AB + 4
            && ACC_CD + 8 <= 1020
            && ACC_AB.is_multiple_of(4)
            && STEP.is_multiple_of(4)
            && core::mem::size_of::<FourLanes>() == 2 * CHANNEL_BLOCK * STEP
    );
}

/// The asm of a four-position loop: the channel loop around the inner loop `$body` (one stored
/// group or weight at the offset in r6: the next of `$values` from r5, the positions' values from
/// `$x` in r12, added to r0-r3; `$clobbers` are the other registers it uses). Each channel starts
/// from its bias (from `$biases`, kept at `[sp, #16]`), walks its offsets (from `$offsets`, r4) to a
/// [`SPARSE_END`], and stores its four accumulators into its lanes (from `$lanes`, kept at
/// `[sp, #8]`) until the lane pointer reaches the block's end (`[sp, #12]`). 17 instructions a
/// channel.
#[cfg(ferrite_armv7m)]
macro_rules! four_lanes_asm {
    ($body:expr, $x:expr, $offsets:expr, $values:expr, $biases:expr, $lanes:expr, $($clobbers:tt)*) => {
        core::arch::asm!(concat!(
            "push {{r6, r7, r8, r9, r10}}\n",
            "3:\n",
            "ldr r6, [sp, #16]\n",
            "ldr r0, [r6], #4\n",
            "str r6, [sp, #16]\n",
            "mov r1, r0\n",
            "mov r2, r0\n",
            "mov r3, r0\n",
            "ldrh r6, [r4], #2\n",
            "cmp r6, #0x8000\n",
            "beq 4f\n",
            "2:\n",
            $body,
            "ldrh r6, [r4], #2\n",
            "cmp r6, #0x8000\n",
            "bne 2b\n",
            "4:\n",
            "ldr r6, [sp, #8]\n",
            "strd r0, r1, [r6, #{ab}]\n",
            "strd r2, r3, [r6, #{cd}]\n",
            "add r6, r6, #{step}\n",
            "str r6, [sp, #8]\n",
            "ldr r7, [sp, #12]\n",
            "cmp r6, r7\n",
            "bne 3b\n",
            "pop {{r6, r7, r8, r9, r10}}\n",
            ),
            ab = const four_lanes::ACC_AB,
            cd = const four_lanes::ACC_CD,
            step = const four_lanes::STEP,
            inout("r4") $offsets.as_ptr() => _,
            inout("r5") $values.as_ptr() => _,
            in("r12") $x.as_ptr(),
            inout("r8") $lanes.as_mut_ptr() => _,
            inout("r9") $lanes[0].as_mut_ptr().add($biases.len()) => _,
            inout("r10") $biases.as_ptr() => _,
            out("r0") _,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            out("r11") _,
            $($clobbers)*
        )
    };
}

/// The portable twin of the four-position loops: for each channel `k` of `biases`, its
/// accumulators from `biases[k]` plus `add(offset, acc)` over its offsets up to a [`SPARSE_END`],
/// into `lanes`.
#[cfg(any(not(ferrite_armv7m), not(ferrite_dsp)))]
#[inline(always)]
fn four_lanes_twin(
    offsets: &[u16],
    biases: &[i32],
    lanes: &mut FourLanes,
    mut add: impl FnMut(u16, &mut [i32; 4]) -> bool,
) {
    let mut offsets = offsets.iter();
    let [ab, cd] = lanes;
    for ((&b, l0), l1) in biases.iter().zip(ab.iter_mut()).zip(cd.iter_mut()) {
        let mut acc = [b; 4];
        for &at in offsets.by_ref().take_while(|&&o| o != SPARSE_END) {
            if !add(at, &mut acc) {
                return;
            }
        }
        (l0.acc_a, l0.acc_b, l1.acc_a, l1.acc_b) = (acc[0], acc[1], acc[2], acc[3]);
    }
}

/// Four positions (A, B, C, D) by the output channels of a block over the stored groups of four
/// weights of their pruned rows (`kernels::sparse`): channel `k` gets `biases[k] + sum x * w` for
/// each position in its [`FourLanes`], over the groups whose eight words
/// `[(A.x0, A.x2), (A.x1, A.x3), (B..), (B..), (C..), (C..), (D..), (D..)]` start at the next
/// offsets (bytes into `x`) up to a [`SPARSE_END`], with the next weight words of `words`. On
/// Armv7E-M a group is 16 instructions for 16 multiply-accumulates (`ADD`, two `LDM`, `LDR`, two
/// `SXTB16`, eight `SMLAD`, `LDRH`, `CMP`, `BNE`), a channel 17 more.
///
/// # Safety
///
/// `biases.len() <= CHANNEL_BLOCK`; `offsets` holds `biases.len()` end markers, at most
/// `words.len()` offsets in all, each a multiple of 32 with `offset + 32 <= 4 * x.len()`.
#[inline(always)]
pub(crate) unsafe fn dot_sparse_4xn(
    x: &[u32],
    offsets: &[u16],
    words: &[[i8; 4]],
    biases: &[i32],
    lanes: &mut FourLanes,
) {
    #[cfg(ferrite_dsp)]
    {
        if biases.is_empty() {
            return;
        }
        // SAFETY: by the caller's contract, reads the offsets up to the `biases.len()`-th end
        // marker, as many weight words as offsets, 32 bytes of `x` at each offset and the biases,
        // and writes the accumulators of the first `biases.len()` lanes of each pass; nothing
        // else. r6 and r7 (which Rust reserves) are saved on the stack and restored, with the lane
        // pointer, its end and the bias pointer, which the loop keeps there. SMLAD may set the Q
        // flag, which nothing reads.
        unsafe {
            four_lanes_asm!(
                concat!(
                    "add r6, r12, r6\n",
                    "ldm r6!, {{r8, r9, r10, r11}}\n",
                    "ldr r7, [r5], #4\n",
                    "sxtb16 lr, r7\n",
                    "sxtb16 r7, r7, ror #8\n",
                    "smlad r0, r8, lr, r0\n",
                    "smlad r0, r9, r7, r0\n",
                    "smlad r1, r10, lr, r1\n",
                    "smlad r1, r11, r7, r1\n",
                    "ldm r6, {{r8, r9, r10, r11}}\n",
                    "smlad r2, r8, lr, r2\n",
                    "smlad r2, r9, r7, r2\n",
                    "smlad r3, r10, lr, r3\n",
                    "smlad r3, r11, r7, r3\n",
                ),
                x,
                offsets,
                words,
                biases,
                lanes,
                out("lr") _,
            );
        }
    }
    #[cfg(not(ferrite_dsp))]
    {
        let mut words = words.iter();
        four_lanes_twin(offsets, biases, lanes, |at, acc| {
            let (Some(w), Some(group)) = (words.next(), x.get(at as usize / 4..)) else {
                return false;
            };
            let w = u32::from_le_bytes(w.map(|v| v as u8));
            let (even, odd) = (sxtb16(w), sxtb16_ror8(w));
            for (acc, pair) in acc.iter_mut().zip(group.chunks_exact(2)) {
                *acc = smlad(pair[1], odd, smlad(pair[0], even, *acc));
            }
            true
        });
    }
}

/// [`dot_sparse_4xn`] for position A alone (the last pass of a layer whose positions are not a
/// multiple of four): channel `k` gets `biases[k] + sum x * w` in both accumulators of
/// `lanes[0][k]`, reading the first two of each group's eight words. On Armv7E-M a group is 10
/// instructions (`ADD`, `LDRD`, `LDR`, two `SXTB16`, two `SMLAD`, `LDRH`, `CMP`, `BNE`), a channel
/// 9 more.
///
/// # Safety
///
/// As [`dot_sparse_4xn`].
#[inline(always)]
pub(crate) unsafe fn dot_sparse_1xn(
    x: &[u32],
    offsets: &[u16],
    words: &[[i8; 4]],
    biases: &[i32],
    lanes: &mut FourLanes,
) {
    #[cfg(ferrite_dsp)]
    {
        if biases.is_empty() {
            return;
        }
        // SAFETY: by the caller's contract, reads the offsets up to the `biases.len()`-th end
        // marker, as many weight words as offsets, 8 bytes of `x` at each offset and the biases,
        // and writes the accumulators of the first `biases.len()` lanes of the first pass; nothing
        // else. r6 and r7 (which Rust reserves) are saved on the stack and restored. SMLAD may set
        // the Q flag, which nothing reads.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                "3:",
                "ldr r0, [r1], #4",
                "ldrh r6, [r4], #2",
                "cmp r6, #0x8000",
                "beq 4f",
                "2:",
                "add r6, r12, r6",
                "ldrd r8, r9, [r6]",
                "ldr r7, [r5], #4",
                "sxtb16 lr, r7",
                "sxtb16 r7, r7, ror #8",
                "smlad r0, r8, lr, r0",
                "smlad r0, r9, r7, r0",
                "ldrh r6, [r4], #2",
                "cmp r6, #0x8000",
                "bne 2b",
                "4:",
                "str r0, [r2, #{ab}]",
                "str r0, [r2, #{ab} + 4]",
                "add r2, r2, #{step}",
                "cmp r2, r3",
                "bne 3b",
                "pop {{r6, r7}}",
                ab = const four_lanes::ACC_AB,
                step = const four_lanes::STEP,
                inout("r4") offsets.as_ptr() => _,
                inout("r5") words.as_ptr() => _,
                in("r12") x.as_ptr(),
                inout("r1") biases.as_ptr() => _,
                inout("r2") lanes.as_mut_ptr() => _,
                in("r3") lanes[0].as_mut_ptr().add(biases.len()),
                out("r0") _,
                out("r8") _,
                out("r9") _,
                out("lr") _,
            );
        }
    }
    #[cfg(not(ferrite_dsp))]
    {
        let mut words = words.iter();
        four_lanes_twin(offsets, biases, lanes, |at, acc| {
            let (Some(w), Some(pair)) = (words.next(), x.get(at as usize / 4..at as usize / 4 + 2))
            else {
                return false;
            };
            let w = u32::from_le_bytes(w.map(|v| v as u8));
            let a = smlad(pair[1], sxtb16_ror8(w), smlad(pair[0], sxtb16(w), acc[0]));
            *acc = [a; 4];
            true
        });
    }
}

/// Four positions' patches `xs` expanded for [`dot_sparse_4xn`]: group `i` of four values becomes
/// the eight words `[(A.x0, A.x2), (A.x1, A.x3), (B..), (B..), (C..), (C..), (D..), (D..)]` of
/// `out[i]`, for `out.len()` groups. On Armv7E-M a group is 16 instructions (four `LDR`, eight
/// `SXTB16`, two `STM`, `SUBS`, `BNE`).
#[inline(always)]
pub(crate) fn expand_4(xs: [&[i8]; 4], out: &mut [[u32; 8]]) {
    let groups = out.len();
    assert!(xs.iter().all(|x| x.len() >= 4 * groups));
    #[cfg(ferrite_dsp)]
    {
        if groups == 0 {
            return;
        }
        // SAFETY: reads `4 * groups` bytes of each patch (checked above; LDR may be unaligned,
        // which Armv7-M allows) and writes the `8 * groups` words of `out`. r6 and r7 (which Rust
        // reserves) are saved on the stack and restored.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                "2:",
                "ldr r6, [r0], #4",
                "ldr r7, [r1], #4",
                "sxtb16 r8, r6",
                "sxtb16 r9, r6, ror #8",
                "sxtb16 r10, r7",
                "sxtb16 r11, r7, ror #8",
                "stm r4!, {{r8, r9, r10, r11}}",
                "ldr r6, [r2], #4",
                "ldr r7, [r3], #4",
                "sxtb16 r8, r6",
                "sxtb16 r9, r6, ror #8",
                "sxtb16 r10, r7",
                "sxtb16 r11, r7, ror #8",
                "stm r4!, {{r8, r9, r10, r11}}",
                "subs r5, r5, #1",
                "bne 2b",
                "pop {{r6, r7}}",
                inout("r0") xs[0].as_ptr() => _,
                inout("r1") xs[1].as_ptr() => _,
                inout("r2") xs[2].as_ptr() => _,
                inout("r3") xs[3].as_ptr() => _,
                inout("r4") out.as_mut_ptr() => _,
                inout("r5") groups => _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
            );
        }
    }
    #[cfg(not(ferrite_dsp))]
    for (i, group) in out.iter_mut().enumerate() {
        for (k, x) in xs.iter().enumerate() {
            let v = u32::from_le_bytes(
                [x[4 * i], x[4 * i + 1], x[4 * i + 2], x[4 * i + 3]].map(|b| b as u8),
            );
            (group[2 * k], group[2 * k + 1]) = (sxtb16(v), sxtb16_ror8(v));
        }
    }
}

/// Four positions' patches `xs` interleaved for [`dot_sparse_wide_4xn`]: value `k` of each becomes
/// the 16-bit halves of `out[2k]` (A low, B high) and `out[2k + 1]` (C low, D high), for `out.len() /
/// 2` values.
#[inline(always)]
pub(crate) fn interleave_4(xs: [&[i8]; 4], out: &mut [u32]) {
    let [a, b, c, d] = xs;
    let pair = |lo: i8, hi: i8| (lo as i16 as u16 as u32) | ((hi as i32 as u32) << 16);
    for ((((o, &a), &b), &c), &d) in out.chunks_exact_mut(2).zip(a).zip(b).zip(c).zip(d) {
        o[0] = pair(a, b);
        o[1] = pair(c, d);
    }
}

/// Four positions (A, B, C, D) by the output channels of a block over the stored weights of their
/// pruned rows (`kernels::sparse`), one weight at a time: channel `k` gets `biases[k] + sum x * w`
/// for each position in its [`FourLanes`], over the weights whose two words of [`interleave_4`]
/// start at the next offsets (bytes into `x`) up to a [`SPARSE_END`], with the next weights of
/// `values`. A weight is 10 instructions for 4 multiply-accumulates on Armv7E-M
/// (`SMLABB`/`SMLATB`), 13 on Armv7-M (`LDRSH`, `MLA`); a channel 17 more.
///
/// # Safety
///
/// `biases.len() <= CHANNEL_BLOCK`; `offsets` holds `biases.len()` end markers, at most
/// `values.len()` offsets in all, each a multiple of 8 with `offset + 8 <= 4 * x.len()`.
#[inline(always)]
pub(crate) unsafe fn dot_sparse_wide_4xn(
    x: &[u32],
    offsets: &[u16],
    values: &[i8],
    biases: &[i32],
    lanes: &mut FourLanes,
) {
    #[cfg(ferrite_armv7m)]
    {
        if biases.is_empty() {
            return;
        }
        // One weight: its offset, the two words (DSP) or four halfwords of the positions' values,
        // the weight, four multiply-accumulates.
        #[cfg(ferrite_dsp)]
        macro_rules! weight {
            () => {
                concat!(
                    "add r6, r12, r6\n",
                    "ldrd r8, r9, [r6]\n",
                    "ldrsb r7, [r5], #1\n",
                    "smlabb r0, r8, r7, r0\n",
                    "smlatb r1, r8, r7, r1\n",
                    "smlabb r2, r9, r7, r2\n",
                    "smlatb r3, r9, r7, r3\n",
                )
            };
        }
        #[cfg(not(ferrite_dsp))]
        macro_rules! weight {
            () => {
                concat!(
                    "add r6, r12, r6\n",
                    "ldrsh r8, [r6]\n",
                    "ldrsh r9, [r6, #2]\n",
                    "ldrsh r10, [r6, #4]\n",
                    "ldrsh r11, [r6, #6]\n",
                    "ldrsb r7, [r5], #1\n",
                    "mla r0, r8, r7, r0\n",
                    "mla r1, r9, r7, r1\n",
                    "mla r2, r10, r7, r2\n",
                    "mla r3, r11, r7, r3\n",
                )
            };
        }
        // SAFETY: by the caller's contract, reads the offsets up to the `biases.len()`-th end
        // marker, as many weights as offsets, 8 bytes of `x` at each offset and the biases, and
        // writes the accumulators of the first `biases.len()` lanes of each pass; nothing else. r6
        // and r7 (which Rust reserves) are saved on the stack and restored, with the lane pointer,
        // its end and the bias pointer, which the loop keeps there. SMLABB/SMLATB may set the Q
        // flag, which nothing reads.
        unsafe {
            four_lanes_asm!(weight!(), x, offsets, values, biases, lanes,);
        }
    }
    #[cfg(not(ferrite_armv7m))]
    {
        let mut values = values.iter();
        four_lanes_twin(offsets, biases, lanes, |at, acc| {
            let at = at as usize / 4;
            let (Some(&w), Some(pair)) = (values.next(), x.get(at..at + 2)) else {
                return false;
            };
            let w = w as i32;
            let xs = [pair[0], pair[0] >> 16, pair[1], pair[1] >> 16].map(|h| h as i16);
            for (acc, &x) in acc.iter_mut().zip(&xs) {
                *acc = acc.wrapping_add(x as i32 * w);
            }
            true
        });
    }
}

/// Two positions (A, B) by one output channel over the stored weights of a pruned row
/// (`kernels::sparse`): `(a + sum x_A * w, b + sum x_B * w)` over the weights `values[i]` at
/// `offsets[i]`, where `pairs[k]` holds `x_A[k]` in its low and `x_B[k]` in its high 16 bits. A weight
/// is 7 instructions on Armv7E-M (`LDRH`, `LDR`, `LDRSB`, `SMLABB`, `SMLATB`, `SUBS`, `BNE`), 9 on
/// Armv7-M (two `LDRSH` and two `MLA`).
///
/// # Safety
///
/// `offsets.len() <= values.len()` and every offset is below `pairs.len()`.
#[inline(always)]
pub unsafe fn dot_sparse_pairs(
    pairs: &[u32],
    offsets: &[u16],
    values: &[i8],
    acc: (i32, i32),
) -> (i32, i32) {
    #[cfg(ferrite_armv7m)]
    {
        if offsets.is_empty() {
            return acc;
        }
        let (mut a, mut b) = acc;
        // SAFETY: by the caller's contract, reads `offsets.len()` halfwords of `offsets` and bytes
        // of `values`, and the word of `pairs` at each offset; writes nothing to memory. SMLABB
        // and SMLATB may set the Q flag, which nothing reads.
        unsafe {
            #[cfg(ferrite_dsp)]
            core::arch::asm!(
                "2:",
                "ldrh {t}, [{o}], #2",
                "ldr {x}, [{p}, {t}, lsl #2]",
                "ldrsb {w}, [{v}], #1",
                "smlabb {a}, {x}, {w}, {a}",
                "smlatb {b}, {x}, {w}, {b}",
                "subs {n}, {n}, #1",
                "bne 2b",
                a = inout(reg) a,
                b = inout(reg) b,
                o = inout(reg) offsets.as_ptr() => _,
                v = inout(reg) values.as_ptr() => _,
                n = inout(reg) offsets.len() => _,
                p = in(reg) pairs.as_ptr(),
                t = out(reg) _,
                x = out(reg) _,
                w = out(reg) _,
                options(readonly, nostack),
            );
            #[cfg(not(ferrite_dsp))]
            core::arch::asm!(
                "2:",
                "ldrh {t}, [{o}], #2",
                "add {t}, {p}, {t}, lsl #2",
                "ldrsh {x}, [{t}]",
                "ldrsh {t}, [{t}, #2]",
                "ldrsb {w}, [{v}], #1",
                "mla {a}, {x}, {w}, {a}",
                "mla {b}, {t}, {w}, {b}",
                "subs {n}, {n}, #1",
                "bne 2b",
                a = inout(reg) a,
                b = inout(reg) b,
                o = inout(reg) offsets.as_ptr() => _,
                v = inout(reg) values.as_ptr() => _,
                n = inout(reg) offsets.len() => _,
                p = in(reg) pairs.as_ptr(),
                t = out(reg) _,
                x = out(reg) _,
                w = out(reg) _,
                options(readonly, nostack),
            );
        }
        (a, b)
    }
    #[cfg(not(ferrite_armv7m))]
    {
        let (mut a, mut b) = acc;
        for (&at, &w) in offsets.iter().zip(values) {
            let x = pairs[at as usize];
            let w = w as i32;
            a = a.wrapping_add((x as i16 as i32) * w);
            b = b.wrapping_add((x as i32 >> 16) * w);
        }
        (a, b)
    }
}

/// Two positions (A, B) by two output channels over values widened to 32 bits and interleaved,
/// `x[i] = [xa[i], xb[i]]`: `acc + sum x * w` for (xa, w0), (xa, w1), (xb, w0), (xb, w1), in that
/// order. `w0` and `w1` hold at least `x.len()` weights.
#[inline(always)]
pub fn dot_2x2_wide(x: &[[i32; 2]], w0: &[i8], w1: &[i8], acc: [i32; 4]) -> [i32; 4] {
    let n = x.len();
    assert!(w0.len() >= n && w1.len() >= n);
    let [mut a0, mut a1, mut b0, mut b1] = acc;
    #[cfg(not(ferrite_armv7m))]
    let done = 0;
    #[cfg(ferrite_armv7m)]
    let done = {
        // Two patch values: both positions' pairs with one LDM, each weight with one LDRSB and
        // multiplied into both positions.
        macro_rules! two {
            () => {
                concat!(
                    "ldm r10!, {{r2, r3, r4, r5}}\n",
                    "ldrsb r7, [r11, r12]\n",
                    "ldrsb r6, [r11], #1\n",
                    "mla r0, r2, r6, r0\n",
                    "mla r8, r3, r6, r8\n",
                    "mla r1, r2, r7, r1\n",
                    "mla r9, r3, r7, r9\n",
                    "ldrsb r7, [r11, r12]\n",
                    "ldrsb r6, [r11], #1\n",
                    "mla r0, r4, r6, r0\n",
                    "mla r8, r5, r6, r8\n",
                    "mla r1, r4, r7, r1\n",
                    "mla r9, r5, r7, r9\n",
                )
            };
        }
        let passes = n / 4;
        if passes > 0 {
            let dw = w1.as_ptr() as isize - w0.as_ptr() as isize;
            // SAFETY: reads `4 * passes <= n` pairs from `x` and as many bytes from `w0` and `w1`
            // (= w0 + dw), lengths checked above; writes nothing to memory. r6 and r7 (which Rust
            // reserves) are saved on the stack and restored; the other registers are explicit
            // operands.
            unsafe {
                core::arch::asm!(
                    "push {{r6, r7}}",
                    "1:",
                    two!(),
                    two!(),
                    "subs lr, lr, #1",
                    "bne 1b",
                    "pop {{r6, r7}}",
                    inout("r10") x.as_ptr() => _,
                    inout("r11") w0.as_ptr() => _,
                    in("r12") dw,
                    inout("lr") passes => _,
                    inout("r0") a0,
                    inout("r1") a1,
                    inout("r8") b0,
                    inout("r9") b1,
                    out("r2") _,
                    out("r3") _,
                    out("r4") _,
                    out("r5") _,
                    options(readonly),
                );
            }
        }
        4 * passes
    };
    for ((&[xa, xb], &p), &r) in x[done..].iter().zip(&w0[done..]).zip(&w1[done..]) {
        let (p, r) = (p as i32, r as i32);
        a0 = a0.wrapping_add(xa.wrapping_mul(p));
        a1 = a1.wrapping_add(xa.wrapping_mul(r));
        b0 = b0.wrapping_add(xb.wrapping_mul(p));
        b1 = b1.wrapping_add(xb.wrapping_mul(r));
    }
    [a0, a1, b0, b1]
}

/// One output channel of a block of a patch convolution: its quantization and its accumulators at
/// the two positions A and B of a pass. `repr(C)`: [`requantize_lanes`] loads one lane with `LDM`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Lane {
    pub quant: ChannelQuant,
    pub acc_a: i32,
    pub acc_b: i32,
}

/// The loop of [`requantize_lanes`] and [`requantize_lanes_folded`] on Armv7-M: per lane and
/// accumulator (B, then A), the high word of `acc * multiplier` + (2^30 or -2^30 by the sign of
/// `acc`, which is that of the product) + the lane's rounding term * 2^32, shifted right by
/// `right - 1` into r7, then `$finish` (which leaves the output in r7), then the store.
#[cfg(ferrite_armv7m)]
macro_rules! lanes_loop {
    ($lanes:expr, $out:expr, $stride:expr, $n:expr, $finish:expr, $($operands:tt)*) => {
        // SAFETY (the callers'): reads `n` lanes of 20 bytes from `lanes`, writes `out[k]` and
        // `out[k + stride]` for `k < n` (in bounds: checked by the callers). r6 and r7 (which
        // Rust reserves) are saved on the stack and restored; the other registers are explicit
        // operands.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                "1:",
                // r2 multiplier, r3 rounding term, r4 right-1 (low byte), r5 A, r6 B.
                "ldm r0!, {{r2, r3, r4, r5, r6}}",
                "and lr, r6, #0x80000000",
                "orr lr, lr, #0x40000000",
                "add r7, r3, r6, asr #31",
                "smlal lr, r7, r6, r2",
                "asr r7, r7, r4",
                $finish,
                "strb r7, [r1, r8]",
                "and lr, r5, #0x80000000",
                "orr lr, lr, #0x40000000",
                "add r7, r3, r5, asr #31",
                "smlal lr, r7, r5, r2",
                "asr r7, r7, r4",
                $finish,
                "strb r7, [r1], #1",
                "subs r9, r9, #1",
                "bne 1b",
                "pop {{r6, r7}}",
                inout("r0") $lanes.as_ptr() => _,
                inout("r1") $out.as_mut_ptr() => _,
                in("r8") $stride,
                inout("r9") $n => _,
                $($operands)*
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                out("lr") _,
            )
        }
    };
}

/// The shifted high word of [`lanes_loop`] in Rust: `(multiplier, rounding term, right - 1)`.
#[cfg(not(ferrite_armv7m))]
#[inline(always)]
fn shifted_high(acc: i32, (m, round, shift): (i32, i32, u32)) -> i32 {
    // The multiplier is positive: the product has the sign of `acc`.
    let nudge = (1i64 << 30) ^ ((acc as i64 >> 63) << 31);
    let q = acc as i64 * m as i64 + nudge + ((round as i64) << 32);
    ((q >> 32) as i32) >> shift
}

/// Requantizes every lane of `lanes` (all with the short form of [`ChannelQuant::scale`], whose
/// multiplier is positive, so that the product has the sign of the accumulator): lane
/// `k` writes A to `out[k]`, then B to `out[k + stride]` (with `stride` 0, B must equal A). The
/// clamp comes before the output offset: `clamp(x, lo - zp, hi - zp) + zp` equals
/// `clamp(x +sat zp, lo, hi)` when both differences fit in `i32` ([`offset_clamp`]).
#[inline(always)]
pub(crate) fn requantize_lanes(
    lanes: &[Lane],
    out: &mut [i8],
    stride: usize,
    clamp: (i32, i32),
    zp: i32,
) {
    let n = lanes.len();
    assert!(out.len() >= n + stride);
    debug_assert!(lanes.iter().all(|l| l.quant.is_short()));
    #[cfg(ferrite_armv7m)]
    if n > 0 {
        lanes_loop!(
            lanes,
            out,
            stride,
            n,
            "cmp r7, r10\nit lt\nmovlt r7, r10\ncmp r7, r11\nit gt\nmovgt r7, r11\nadd r7, r7, r12",
            in("r10") clamp.0,
            in("r11") clamp.1,
            in("r12") zp,
        );
    }
    #[cfg(not(ferrite_armv7m))]
    for (k, l) in lanes.iter().enumerate() {
        let finish = |acc| {
            shifted_high(acc, l.quant.short_parts())
                .max(clamp.0)
                .min(clamp.1)
        };
        out[k + stride] = finish(l.acc_b).wrapping_add(zp) as i8;
        out[k] = finish(l.acc_a).wrapping_add(zp) as i8;
    }
}

/// [`requantize_lanes`] for lanes whose quantization has the output offset folded in
/// ([`ChannelQuant::with_offset`]): the shifted value is the output before the clamp, which
/// `SSAT` brings to int8, then the activation's bounds when they are narrower: `CLAMP` 0 for none
/// (`act` the whole int8 range), 1 for the lower bound only (`act.1` 127), 2 for both.
#[inline(always)]
pub(crate) fn requantize_lanes_folded<const CLAMP: u8>(
    lanes: &[Lane],
    out: &mut [i8],
    stride: usize,
    act: (i32, i32),
) {
    let n = lanes.len();
    assert!(out.len() >= n + stride);
    // `SSAT` may set the sticky Q flag, which nothing here reads.
    #[cfg(ferrite_armv7m)]
    if n > 0 {
        match CLAMP {
            0 => lanes_loop!(lanes, out, stride, n, "ssat r7, #8, r7",),
            1 => lanes_loop!(
                lanes,
                out,
                stride,
                n,
                "ssat r7, #8, r7\ncmp r7, r10\nit lt\nmovlt r7, r10",
                in("r10") act.0,
            ),
            _ => lanes_loop!(
                lanes,
                out,
                stride,
                n,
                "cmp r7, r10\nit lt\nmovlt r7, r10\ncmp r7, r11\nit gt\nmovgt r7, r11",
                in("r10") act.0,
                in("r11") act.1,
            ),
        }
    }
    #[cfg(not(ferrite_armv7m))]
    for (k, l) in lanes.iter().enumerate() {
        let finish = |acc| shifted_high(acc, l.quant.short_parts()).clamp(act.0, act.1) as i8;
        out[k + stride] = finish(l.acc_b);
        out[k] = finish(l.acc_a);
    }
}

/// `out[k] = ` the requantized `accs[k]` for one channel's quantization with the output offset
/// folded in ([`ChannelQuant::with_offset`]), clamped as [`requantize_lanes_folded`] does (`CLAMP`
/// the same): a per-tensor layer's outputs in a row.
#[inline(always)]
pub(crate) fn requantize_row_folded<const CLAMP: u8>(
    quant: ChannelQuant,
    accs: &[i32],
    out: &mut [i8],
    act: (i32, i32),
) {
    let n = accs.len().min(out.len());
    #[cfg(ferrite_armv7m)]
    if n > 0 {
        let (m, round, shift) = quant.short_parts();
        macro_rules! row_loop {
            ($finish:literal, $($operands:tt)*) => {
                // SAFETY: reads `accs[k]` and writes `out[k]` for `k < n`, both in bounds; no
                // stack use. `SSAT` may set the sticky Q flag, which nothing here reads.
                unsafe {
                    core::arch::asm!(
                        "1:",
                        "ldr {v}, [{acc}], #4",
                        "and {lo}, {v}, #0x80000000",
                        "orr {lo}, {lo}, #0x40000000",
                        "add {hi}, {round}, {v}, asr #31",
                        "smlal {lo}, {hi}, {v}, {m}",
                        "asr {hi}, {hi}, {shift}",
                        $finish,
                        "strb {hi}, [{out}], #1",
                        "subs {n}, {n}, #1",
                        "bne 1b",
                        acc = inout(reg) accs.as_ptr() => _,
                        out = inout(reg) out.as_mut_ptr() => _,
                        n = inout(reg) n => _,
                        m = in(reg) m,
                        round = in(reg) round,
                        shift = in(reg) shift,
                        $($operands)*
                        v = out(reg) _,
                        lo = out(reg) _,
                        hi = out(reg) _,
                        options(nostack),
                    )
                }
            };
        }
        match CLAMP {
            0 => row_loop!("ssat {hi}, #8, {hi}",),
            1 => row_loop!(
                "ssat {hi}, #8, {hi}\ncmp {hi}, {min}\nit lt\nmovlt {hi}, {min}",
                min = in(reg) act.0,
            ),
            _ => row_loop!(
                "cmp {hi}, {min}\nit lt\nmovlt {hi}, {min}\ncmp {hi}, {max}\nit gt\nmovgt {hi}, {max}",
                min = in(reg) act.0,
                max = in(reg) act.1,
            ),
        }
    }
    #[cfg(not(ferrite_armv7m))]
    for (o, &a) in out[..n].iter_mut().zip(accs) {
        *o = shifted_high(a, quant.short_parts()).clamp(act.0, act.1) as i8;
    }
}

/// The `clamp` argument of [`requantize_lanes`] for an output zero point and activation range,
/// `None` when a bound minus the zero point overflows.
#[inline(always)]
pub(crate) fn offset_clamp(zp: i32, act_min: i32, act_max: i32) -> Option<(i32, i32)> {
    Some((act_min.checked_sub(zp)?, act_max.checked_sub(zp)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        /// Both ways of requantizing lanes (the offset added after the clamp, or folded into the
        /// rounding term for shifts of 2 to 22 bits and int8 offsets) give the channel's result.
        #[test]
        fn requantize_lanes_is_channel_requantize(
            v in prop::collection::vec(
                (prop_oneof![Just(1 << 30), 1..=i32::MAX], -31..-1i32, any::<i32>(), any::<i32>()),
                1..6,
            ),
            zp in prop::sample::select(std::vec![i32::MIN, -300, -128, 0, 5, 127, i32::MAX]),
            a in -128..=127i32, b in -128..=127i32, small: bool, full: bool,
        ) {
            let (act_min, act_max) = if full { (-128, 127) } else { (a.min(b), a.max(b)) };
            let q = crate::kernels::OutputQuant {
                input_offset: 0,
                output_offset: zp,
                act_min,
                act_max,
                multiplier: crate::kernels::LeI32::new(&[]).unwrap(),
                shift: crate::kernels::LeI32::new(&[]).unwrap(),
            };
            let lanes: Vec<Lane> = v
                .iter()
                .map(|&(m, shift, x, y)| {
                    let (x, y) = if small { (x >> 12, y >> 12) } else { (x, y) };
                    Lane { quant: ChannelQuant::from_parts(m, shift), acc_a: x, acc_b: y }
                })
                .collect();
            let n = lanes.len();
            let check = |got: &[i8]| -> Result<(), TestCaseError> {
                for (k, l) in lanes.iter().enumerate() {
                    prop_assert_eq!(got[k], l.quant.requantize(&q, l.acc_a));
                    prop_assert_eq!(got[k + n + 1], l.quant.requantize(&q, l.acc_b));
                }
                Ok(())
            };
            let mut got = std::vec![0i8; 2 * n + 1];
            if let Some(clamp) = offset_clamp(zp, act_min, act_max) {
                requantize_lanes(&lanes, &mut got, n + 1, clamp, zp);
                check(&got)?;
            }
            let folded: Option<Vec<Lane>> = lanes
                .iter()
                .map(|l| Some(Lane { quant: l.quant.with_offset(zp)?, ..*l }))
                .collect();
            if let Some(folded) = folded {
                requantize_lanes_folded::<2>(&folded, &mut got, n + 1, (act_min, act_max));
                check(&got)?;
            }
        }

        #[test]
        fn dot_2x2_wide_is_four_dot_products(
            v in prop::collection::vec(any::<(i8, i8, i8, i8)>(), 0..40), acc: [i32; 4],
        ) {
            let x: Vec<[i32; 2]> = v.iter().map(|t| [t.0 as i32, t.1 as i32]).collect();
            let (w0, w1): (Vec<i8>, Vec<i8>) =
                (v.iter().map(|t| t.2).collect(), v.iter().map(|t| t.3).collect());
            let dot = |j: usize, w: &[i8], a: i32| {
                x.iter().zip(w).fold(a, |a, (x, &w)| a.wrapping_add(x[j] * w as i32))
            };
            let want = [
                dot(0, &w0, acc[0]),
                dot(0, &w1, acc[1]),
                dot(1, &w0, acc[2]),
                dot(1, &w1, acc[3]),
            ];
            prop_assert_eq!(dot_2x2_wide(&x, &w0, &w1, acc), want);
        }
    }
}
