//! Int8 convolution over a pruned filter ([`crate::kernels::sparse`]), skipping the blocks it does
//! not store.
//!
//! As the dense patch path (`conv2d.rs`): each output position's receptive field is gathered once
//! per block of channels (or read in place for pointwise layers), the input offset folded into each
//! channel's bias. A block of channels is as many as have at most `OFFSETS_MAX` stored blocks
//! together: their masks are decoded once into a list of offsets (stack), which every pass over the
//! positions then walks with the values.
//! - rows of at most [`FOUR_MAX`] values: four positions a pass. With `DSP`, blocks a multiple of
//!   four weights and rows a multiple of four, the patches are expanded to 16-bit pairs in the
//!   order `SXTB16` splits a weight word, and four stored weights are one word, two `SXTB16` and
//!   eight `SMLAD` (`conv_loops::dot_sparse_4xn`); otherwise the four positions' values are
//!   interleaved as 16-bit halves and each stored weight is read once for all four
//!   (`conv_loops::dot_sparse_wide_4xn`);
//! - longer rows: two positions a pass, a weight at a time (`conv_loops::dot_sparse_pairs`).
//!
//! A single output position read in place (a fully connected layer's batch of one) walks each
//! row's mask once instead, without the passes' buffers on the stack. Rows of at most
//! `FOUR_MAX / 2` values take a frame with half the patch buffers.

use super::conv2d::{
    is_direct, lanes_form, patch_at, position, requantize_pass, weight_sum, window_row, word_sum,
    CHANNEL_BLOCK, PATCH_MAX,
};
use super::conv_loops::{
    dot_sparse_1xn, dot_sparse_4xn, dot_sparse_pairs, dot_sparse_wide_4xn, expand_4, interleave_4,
    Lane, SPARSE_END,
};
use super::ChannelQuant;
use crate::kernels::sparse::{conv2d_sparse_s8, SparseFilter};
use crate::kernels::{ConvGeometry, LeI32, OutputQuant};

/// Offsets a block of channels decodes at once: one per stored weight or group of four, and (four
/// positions a pass) an end marker per channel (2.4 KB of stack); one channel always fits.
const OFFSETS_MAX: usize = 2 * PATCH_MAX + CHANNEL_BLOCK;

/// Largest row of the four-position passes: their expanded patches fill the same buffer as two
/// positions' of [`PATCH_MAX`].
pub const FOUR_MAX: usize = PATCH_MAX / 2;

/// How a kernel call walks its rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Four positions a pass, a group of four weights at a time (`SMLAD`).
    Groups,
    /// Four positions a pass, a weight at a time.
    Wide,
    /// Two positions a pass, a weight at a time (rows above [`FOUR_MAX`]).
    Pairs,
}

/// Same contract and bit-exact result as [`conv2d_sparse_s8`]; receptive fields above
/// [`PATCH_MAX`] values take that reference.
pub fn conv2d_sparse_s8_fast<const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &SparseFilter<'_>,
    bias: LeI32<'_>,
    output: &mut [i8],
) {
    let len = filter.row_len;
    if len > PATCH_MAX || filter.block == 0 {
        conv2d_sparse_s8(g, q, input, filter, bias, output);
        return;
    }
    let positions = g.output.n * g.output.h * g.output.w;
    if positions == 1 && is_direct(g) {
        vector(q, &input[..len], filter, bias, &mut output[..g.output.c]);
    } else if len <= FOUR_MAX / 2 {
        // A frame sized for the rows: half the patch buffers' stack.
        passes::<DSP, FOUR_MAX, FOUR_MAX>(g, q, input, filter, bias, output);
    } else {
        passes::<DSP, PATCH_MAX, PATCH_MAX>(g, q, input, filter, bias, output);
    }
}

/// The patch buffers of [`passes_in`] for rows of at most `RAW / 2` values four positions a pass,
/// or `RAW` two a pass, with `WORDS` words for their expanded patches (twice the four-position row,
/// once the two-position one): a frame sized for the layer.
#[inline(never)]
fn passes<const DSP: bool, const RAW: usize, const WORDS: usize>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &SparseFilter<'_>,
    bias: LeI32<'_>,
    output: &mut [i8],
) {
    let [mut raw_a, mut raw_b] = [[0i8; RAW]; 2];
    let mut expanded = [0u32; WORDS];
    let raw = [&mut raw_a[..], &mut raw_b[..]];
    passes_in::<DSP>(g, q, input, filter, bias, output, raw, &mut expanded);
}

/// The passes of [`conv2d_sparse_s8_fast`], gathering patches into `raw` (four positions a pass:
/// a quarter of it each; two: a half) and expanding them into `expanded`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn passes_in<const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &SparseFilter<'_>,
    bias: LeI32<'_>,
    output: &mut [i8],
    mut raw: [&mut [i8]; 2],
    expanded: &mut [u32],
) {
    let len = filter.row_len;
    let positions = g.output.n * g.output.h * g.output.w;
    let block = filter.block;
    let mode = if len > FOUR_MAX {
        Mode::Pairs
    } else if DSP && block.is_multiple_of(4) && len.is_multiple_of(4) {
        Mode::Groups
    } else {
        Mode::Wide
    };
    let out_c = g.output.c;
    let zero_point = (-q.input_offset) as i8;
    let direct = is_direct(g);
    let per_row = filter.mask_per_row();
    // Receptive fields expanded kernel row by kernel row (see below).
    let row_len = g.kernel_w * g.input.c;
    let by_rows = !direct && g.dilation_w == 1 && row_len.is_multiple_of(4);
    // `expanded`: the patches as the inner loops read them: per group of four values eight words
    // (groups), per value two words (wide) or one (pairs).
    let mut offsets = [0u16; OFFSETS_MAX];
    let mut lanes = [[Lane::default(); CHANNEL_BLOCK]; 2];
    let mut biases = [0i32; CHANNEL_BLOCK];
    // Per channel of the block: the end of its offsets and of its values.
    let mut ends = [(0usize, 0usize); CHANNEL_BLOCK];
    let mut first = 0;
    let mut value_start = 0;
    while first < out_c {
        // Decode the masks of as many channels as fit, with their quantization and biases.
        let (mut n, mut count, mut value_end) = (0, 0, value_start);
        while first + n < out_c && n < CHANNEL_BLOCK {
            let mask = &filter.mask[(first + n) * per_row..][..per_row];
            let stored: usize = mask.iter().map(|m| m.count_ones() as usize).sum();
            // An offset per group of four or per weight, and (four positions) an end marker.
            let entries = match mode {
                Mode::Groups => stored * block / 4 + 1,
                Mode::Wide => stored * block + 1,
                Mode::Pairs => stored * block,
            };
            if n > 0 && count + entries > OFFSETS_MAX {
                break;
            }
            // Byte offsets into `expanded`: each group's eight words, each weight's two words;
            // or (pairs) each weight's index.
            let (slots, values) = (
                &mut offsets[count..][..entries],
                &filter.values[value_end..],
            );
            let (written, used, sum) = match mode {
                Mode::Groups => decode_groups(filter, mask, values, slots),
                Mode::Wide => decode_row::<1, 8>(filter, mask, values, slots),
                Mode::Pairs => decode_row::<1, 1>(filter, mask, values, slots),
            };
            count += written;
            if mode != Mode::Pairs {
                offsets[count] = SPARSE_END;
                count += 1;
            }
            value_end += used;
            ends[n] = (count, value_end);
            let quant = ChannelQuant::new(q, first + n);
            (lanes[0][n].quant, lanes[1][n].quant) = (quant, quant);
            let b0 = if bias.is_empty() {
                0
            } else {
                bias.get(first + n)
            };
            biases[n] = b0.wrapping_add(q.input_offset.wrapping_mul(sum));
            n += 1;
        }
        let form = lanes_form(q, &mut lanes[0][..n]);
        let [first_lanes, second_lanes] = &mut lanes;
        for (b, a) in second_lanes[..n].iter_mut().zip(&first_lanes[..n]) {
            b.quant = a.quant;
        }
        let per_pass = if mode == Mode::Pairs { 2 } else { 4 };
        let mut p = 0;
        while p < positions {
            // Positions past the last repeat it; only real ones are written.
            let real = (positions - p).min(per_pass);
            let at = |k: usize| p + k.min(real - 1);
            if mode != Mode::Pairs {
                let values = &filter.values[value_start..value_end];
                let (x, offsets) = (&mut expanded[..2 * len], &offsets[..count]);
                if mode == Mode::Groups && by_rows {
                    // Kernel row by kernel row, straight from the input where a row lies inside
                    // it (groups of four never straddle two kernel rows).
                    let [r01, r23] = &mut raw;
                    let (r0, r1) = r01.split_at_mut(r01.len() / 2);
                    let (r2, r3) = r23.split_at_mut(r23.len() / 2);
                    let at = [at(0), at(1), at(2), at(3)].map(|p| position(g, p));
                    let rows = x.as_chunks_mut::<8>().0.chunks_exact_mut(row_len / 4);
                    for (ky, rows) in rows.enumerate() {
                        let xs = [
                            window_row(g, input, at[0], ky, zero_point, r0),
                            window_row(g, input, at[1], ky, zero_point, r1),
                            window_row(g, input, at[2], ky, zero_point, r2),
                            window_row(g, input, at[3], ky, zero_point, r3),
                        ];
                        expand_4(xs, rows);
                    }
                } else {
                    let [r01, r23] = &mut raw;
                    let (r0, r1) = r01.split_at_mut(r01.len() / 2);
                    let (r2, r3) = r23.split_at_mut(r23.len() / 2);
                    let xs = [
                        patch_at(g, input, at(0), zero_point, direct, &mut r0[..len]),
                        patch_at(g, input, at(1), zero_point, direct, &mut r1[..len]),
                        patch_at(g, input, at(2), zero_point, direct, &mut r2[..len]),
                        patch_at(g, input, at(3), zero_point, direct, &mut r3[..len]),
                    ];
                    if mode == Mode::Groups {
                        expand_4(xs, x.as_chunks_mut::<8>().0);
                    } else {
                        interleave_4(xs, x);
                    }
                }
                if mode == Mode::Groups {
                    // SAFETY: the offsets are those of the groups inside each row
                    // (`for_each_block` over a mask checked at load), times 32, each channel's
                    // ending with the marker, one group per weight word: each group's eight
                    // words lie in `x`; the block has `n <= CHANNEL_BLOCK` channels.
                    #[allow(unsafe_code)]
                    unsafe {
                        let words = values.as_chunks::<4>().0;
                        if real == 1 {
                            dot_sparse_1xn(x, offsets, words, &biases[..n], &mut lanes);
                        } else {
                            dot_sparse_4xn(x, offsets, words, &biases[..n], &mut lanes);
                        }
                    }
                } else {
                    // SAFETY: the offsets are those of the weights inside each row, times 8, each
                    // channel's ending with the marker, one per weight: each weight's two words
                    // lie in `x`; the block has `n <= CHANNEL_BLOCK` channels.
                    #[allow(unsafe_code)]
                    unsafe {
                        dot_sparse_wide_4xn(x, offsets, values, &biases[..n], &mut lanes);
                    }
                }
            } else {
                let [ra, rb] = &mut raw;
                let xa = patch_at(g, input, at(0), zero_point, direct, &mut ra[..len]);
                let xb = patch_at(g, input, at(1), zero_point, direct, &mut rb[..len]);
                for ((pair, &a), &b) in expanded.iter_mut().zip(xa).zip(xb) {
                    *pair = (a as i16 as u16 as u32) | ((b as i32 as u32) << 16);
                }
                let (mut o_from, mut v_from) = (0, value_start);
                let lanes = lanes[0].iter_mut().zip(&biases[..n]).zip(&ends[..n]);
                for ((l, &b), &(o_to, v_to)) in lanes {
                    let offs = &offsets[o_from..o_to];
                    let values = &filter.values[v_from..v_to];
                    // SAFETY: one offset per stored weight, each inside the row (`for_each_block`
                    // over a mask checked at load), below `len`.
                    #[allow(unsafe_code)]
                    let acc = unsafe { dot_sparse_pairs(&expanded[..len], offs, values, (b, b)) };
                    (l.acc_a, l.acc_b) = acc;
                    (o_from, v_from) = (o_to, v_to);
                }
            }
            // Passes of two positions: A at `out[k]`, B `out_c` further (stride 0: A alone).
            for (pass, lanes) in lanes.iter().enumerate().take(real.div_ceil(2)) {
                let stride = if real - 2 * pass >= 2 { out_c } else { 0 };
                let out = &mut output[(p + 2 * pass) * out_c + first..];
                requantize_pass(q, &lanes[..n], form, out, stride);
            }
            p += real;
        }
        first += n;
        value_start = value_end;
    }
}

/// One channel's `mask` decoded into `slots`: an offset per `STEP` stored weights, `SCALE` bytes a
/// weight, in order. Returns the offsets written, the values used (from `values`) and their sum.
#[inline(always)]
fn decode_row<const STEP: usize, const SCALE: usize>(
    filter: &SparseFilter<'_>,
    mask: &[u8],
    values: &[i8],
    slots: &mut [u16],
) -> (usize, usize, i32) {
    let mut slots = slots.iter_mut();
    let (mut written, mut sum) = (0, 0i32);
    let used = filter.for_each_block(mask, values, |at, w| {
        for (k, slot) in (0..w.len()).step_by(STEP).zip(slots.by_ref()) {
            *slot = ((at + k) * SCALE) as u16;
            written += 1;
        }
        sum = sum.wrapping_add(weight_sum(w));
    });
    (written, used, sum)
}

/// [`decode_row`] for [`Mode::Groups`] (blocks and rows a multiple of four weights), a group of
/// four weights at a time: 32 bytes a group.
#[inline(always)]
fn decode_groups(
    filter: &SparseFilter<'_>,
    mask: &[u8],
    values: &[i8],
    slots: &mut [u16],
) -> (usize, usize, i32) {
    let (per_block, row_groups) = (filter.block / 4, filter.row_len / 4);
    let mut pairs = slots.iter_mut().zip(values.as_chunks::<4>().0);
    let (mut used, mut sum) = (0, 0i32);
    for (byte, &m) in mask.iter().enumerate() {
        let mut m = m;
        while m != 0 {
            let first = (byte * 8 + m.trailing_zeros() as usize) * per_block;
            m &= m - 1;
            for group in first..(first + per_block).min(row_groups) {
                let Some((slot, word)) = pairs.next() else {
                    return (used / 4, used, sum);
                };
                *slot = (group * 32) as u16;
                sum = word_sum(word, sum);
                used += 4;
            }
        }
    }
    (used / 4, used, sum)
}

/// One output position read in place (a fully connected layer's single batch): each row's mask
/// walked once, without decoding offsets that only one position would use.
fn vector(
    q: &OutputQuant<'_>,
    x: &[i8],
    filter: &SparseFilter<'_>,
    bias: LeI32<'_>,
    output: &mut [i8],
) {
    let per_row = filter.mask_per_row();
    let mut values = filter.values.iter();
    for (c, (mask, out)) in filter.mask.chunks_exact(per_row).zip(output).enumerate() {
        let (mut acc, mut sum) = (if bias.is_empty() { 0 } else { bias.get(c) }, 0i32);
        for (byte, &m) in mask.iter().enumerate() {
            let mut m = m;
            while m != 0 {
                let first = (byte * 8 + m.trailing_zeros() as usize) * filter.block;
                m &= m - 1;
                if filter.block == 1 {
                    let (Some(&xv), Some(&w)) = (x.get(first), values.next()) else {
                        break;
                    };
                    acc = acc.wrapping_add(w as i32 * xv as i32);
                    sum = sum.wrapping_add(w as i32);
                    continue;
                }
                let xs = x.get(first..).unwrap_or_default();
                for (&xv, &w) in xs.iter().zip(values.by_ref()).take(filter.block) {
                    acc = acc.wrapping_add(w as i32 * xv as i32);
                    sum = sum.wrapping_add(w as i32);
                }
            }
        }
        acc = acc.wrapping_add(q.input_offset.wrapping_mul(sum));
        *out = ChannelQuant::new(q, c).requantize(q, acc);
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv2d::tests::pointwise;
    use super::super::testgen::{problems, Problem};
    use super::*;
    use crate::kernels::conv2d::conv2d_s8;
    use crate::kernels::sparse::encode_blocks;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    /// `p`'s filter with blocks of `block` weights along each row zeroed where `keep` says no (a
    /// pattern from `seed`), so that its sparse encoding skips them.
    fn pruned(p: &Problem, block: usize, keep_of_8: u64, seed: u64) -> Vec<i8> {
        let row_len = p.g.kernel_h * p.g.kernel_w * p.g.input.c;
        let mut filter = p.filter.clone();
        let mut state = seed | 1;
        for row in filter.chunks_mut(row_len) {
            for b in row.chunks_mut(block) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if state % 8 >= keep_of_8 {
                    b.fill(0);
                }
            }
        }
        filter
    }

    /// The sparse kernels (reference, portable, `SMLAD`) give the dense reference's output, for
    /// every block size the encoder may pick.
    fn check(p: &Problem, block: usize, keep_of_8: u64, seed: u64) -> Result<(), TestCaseError> {
        let dense = pruned(p, block, keep_of_8, seed);
        let row_len = p.g.kernel_h * p.g.kernel_w * p.g.input.c;
        let q = p.quant();
        let bias = LeI32::new(&p.bias).unwrap();
        let mut want = vec![0i8; p.g.output.len()];
        conv2d_s8(&p.g, &q, &p.input, &dense, bias, &mut want);
        let e = encode_blocks(&dense, row_len, block);
        let filter = SparseFilter {
            block,
            row_len,
            mask: &e.mask,
            values: &e.values,
        };
        prop_assert_eq!(filter.densify(), dense.clone());
        // Each run starts from outputs unlike the expected ones, so that none can be left unwritten.
        let unlike = || want.iter().map(|v| !v).collect::<std::vec::Vec<i8>>();
        let mut got = unlike();
        conv2d_sparse_s8(&p.g, &q, &p.input, &filter, bias, &mut got);
        prop_assert_eq!(&got, &want, "reference");
        let mut got = unlike();
        conv2d_sparse_s8_fast::<false>(&p.g, &q, &p.input, &filter, bias, &mut got);
        prop_assert_eq!(&got, &want, "portable");
        let mut got = unlike();
        conv2d_sparse_s8_fast::<true>(&p.g, &q, &p.input, &filter, bias, &mut got);
        prop_assert_eq!(&got, &want, "dsp");
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_config(300))]

        #[test]
        fn sparse_matches_dense(
            p in problems(11, false),
            block in prop::sample::select(vec![1usize, 2, 4, 8]),
            keep in 0..8u64,
            seed in any::<u64>(),
        ) {
            check(&p, block, keep, seed)?;
        }

        #[test]
        fn sparse_single_position_matches_dense(
            p in problems(40, false),
            block in prop::sample::select(vec![1usize, 3, 4]),
            keep in 0..8u64,
            seed in any::<u64>(),
        ) {
            // A fully connected layer's shape: one position read in place.
            let mut p = pointwise(p);
            (p.g.input.n, p.g.input.h, p.g.input.w) = (1, 1, 1);
            (p.g.output.n, p.g.output.h, p.g.output.w) = (1, 1, 1);
            p.input.truncate(p.g.input.c);
            check(&p, block, keep, seed)?;
        }

        #[test]
        fn sparse_long_rows_match_dense(
            p in problems(3, false),
            in_c in FOUR_MAX + 1..=PATCH_MAX,
            block in prop::sample::select(vec![1usize, 4]),
            keep in 0..8u64,
            seed in any::<u64>(),
        ) {
            // Pointwise rows longer than four positions' buffers take two positions a pass.
            let mut p = pointwise(p);
            p.g.input.c = in_c;
            let mut rng = crate::kernels::testutil::Rng::new(seed);
            p.input = rng.i8_vec(p.g.input.len());
            p.filter = rng.i8_vec(p.g.output.c * in_c);
            check(&p, block, keep, seed)?;
        }

        #[test]
        fn sparse_pointwise_matches_dense(
            p in problems(40, false),
            block in prop::sample::select(vec![1usize, 4]),
            keep in 0..8u64,
            seed in any::<u64>(),
        ) {
            check(&pointwise(p), block, keep, seed)?;
        }
    }

    #[test]
    fn stored_weights_counts_the_short_last_block_and_refuses_stray_bits() {
        use crate::kernels::sparse::stored_weights;
        // Rows of 10 in blocks of 4: blocks of 4, 4 and 2; the mask byte keeps bits 0-2.
        assert_eq!(
            stored_weights(&[0b101, 0b110], 2, 10, 4),
            Some(4 + 2 + 4 + 2)
        );
        assert_eq!(stored_weights(&[0b1000], 1, 10, 4), None);
        assert_eq!(stored_weights(&[0b1], 2, 10, 4), None);
        assert_eq!(stored_weights(&[0b1], 1, 10, 0), None);
        // Sixteen blocks of 1 take two mask bytes per row.
        assert_eq!(stored_weights(&[0xff, 0x01], 1, 9, 1), Some(9));
        assert_eq!(stored_weights(&[0xff, 0x03], 1, 9, 1), None);
    }
}
