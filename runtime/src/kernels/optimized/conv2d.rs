//! Int8 2-D convolution, optimized.
//!
//! Pointwise layers of up to 192 input and 64 output channels (`pointwise`, which also runs over
//! its input) and the main path (`conv2d_s8_fast`, patches up to [`PATCH_MAX`] values): output
//! positions go two at a time. The receptive field of each (the input itself for pointwise layers, else gathered into a
//! stack buffer with padding as the input zero point) is multiplied as raw values: the input
//! offset is folded into each channel's bias (`sum w * (x + off) = sum w * x + off * sum w`, and
//! padding adds nothing either way). Every output channel, two at a time, is then one dot product
//! of the two patches with the channel's contiguous filter row, and the pass's accumulators are
//! requantized together (`conv_loops`, hand-scheduled on Armv7-M); the pointwise path prepares
//! every output channel once, the main path blocks of 32:
//! - with `DSP` (Armv7E-M): patches as 16-bit pairs in the order `SXTB16` gives the weights,
//!   `SMLAD`;
//! - without: patches widened to 32 bits and interleaved, in chunks of at most `WIDE_MAX`,
//!   `LDM`/`LDRSB`/`MLA`.
//!
//! Larger patches take `conv2d_s8_segments`: blocks of four output channels, input offset folded
//! into the accumulator's start, taps walked as contiguous row segments.

use super::conv_loops::{
    dot_2x2_q15, dot_2x2_q15_pairs, dot_2x2_wide, offset_clamp, requantize_lanes,
    requantize_lanes_folded, Lane, WindowOffsets, SMALL_MAX, SPLIT_WORDS,
};
use super::dsp::{smlad, sxtb16, sxtb16_ror8};
use super::{tap_range, Apart, ChannelQuant, Io, Shared};
use crate::kernels::{ConvGeometry, Int8Output, LeI32, OutputQuant};

/// Largest receptive field (`kernel_h * kernel_w * in_c`) gathered into a patch: 3x3x64.
/// With `DSP` the patch buffers take five bytes of stack per value of the smallest of
/// `PATCH_MAX / 4`, `PATCH_MAX / 2` and `PATCH_MAX` that holds the layer's field (two positions
/// as 16-bit pairs and one gather buffer); `PATCH_MAX * 2 + WIDE_MAX * 8` bytes without.
pub const PATCH_MAX: usize = 576;

/// Largest chunk of a patch the portable path widens to 32 bits (`WIDE_MAX * 8` bytes of stack).
const WIDE_MAX: usize = 192;

/// Output channels whose bias and quantization are prepared together (on the stack) by the
/// fully-connected and sparse kernels.
pub(super) const CHANNEL_BLOCK: usize = 32;

/// Output channels whose bias and quantization the convolution paths prepare together (on the
/// stack), and for which each pass gathers its patches once.
const CONV_BLOCK: usize = 2 * CHANNEL_BLOCK;

/// Prepares output channels `first..first + lanes.len()` (filter rows `filter`): their
/// quantization, and their bias with the input offset folded in: `sum w * (x + off) =
/// sum w * x + off * sum w`, so the kernels multiply raw input values, and padding taps holding the
/// zero point `-off` add nothing either way. Returns how the lanes requantize ([`lanes_form`]).
#[inline(always)]
fn prepare(
    q: &OutputQuant<'_>,
    bias: LeI32<'_>,
    first: usize,
    filter: &[i8],
    lanes: &mut [Lane],
    biases: &mut [i32],
) -> Form {
    let len = filter.len() / lanes.len();
    for (k, ((l, b), w)) in lanes
        .iter_mut()
        .zip(biases.iter_mut())
        .zip(filter.chunks_exact(len))
        .enumerate()
    {
        l.quant = ChannelQuant::new(q, first + k);
        let b0 = if bias.is_empty() {
            0
        } else {
            bias.get(first + k)
        };
        *b = b0.wrapping_add(q.input_offset.wrapping_mul(weight_sum(w)));
    }
    lanes_form(q, lanes)
}

/// How a block's lanes requantize.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// [`ChannelQuant::requantize`], a lane at a time.
    Long,
    /// Every lane in the short form ([`requantize_lanes`]).
    Short,
    /// Every lane in the short form with the output offset folded in
    /// ([`requantize_lanes_folded`]).
    Folded,
}

/// The form of `lanes` for `q`, folding the output offset into every lane's quantization
/// ([`ChannelQuant::with_offset`]) when all of them can take it and the activation's range lies
/// in int8 (as it does for every int8 output the loader accepts).
pub(super) fn lanes_form(q: &OutputQuant<'_>, lanes: &mut [Lane]) -> Form {
    let zp = q.output_offset;
    if ChannelQuant::int8_clamp(q) && lanes.iter().all(|l| l.quant.with_offset(zp).is_some()) {
        for l in lanes.iter_mut() {
            l.quant = l.quant.with_offset(zp).unwrap_or(l.quant);
        }
        Form::Folded
    } else if lanes.iter().all(|l| l.quant.is_short()) {
        Form::Short
    } else {
        Form::Long
    }
}

/// Requantizes a pass's lanes: A to `out[k]`, B to `out[k + stride]` (`stride` 0: A alone).
#[inline(always)]
pub(super) fn requantize_pass<T: Int8Output>(
    q: &OutputQuant<'_>,
    lanes: &[Lane],
    form: Form,
    out: &mut [T],
    stride: usize,
) {
    // `out` as int8, or (in the `else`, still the caller's slice) a wide output.
    let Some(out) = T::narrow(out) else {
        // A wide output: the channel's own requantization, into int16. Its zero point is 0 (the
        // loader's rule for int16 tensors), so a lane whose offset was folded holds the same.
        debug_assert_eq!(q.output_offset, 0);
        for (k, l) in lanes.iter().enumerate() {
            out[k + stride] = l.quant.requantize_to(q, l.acc_b);
            out[k] = l.quant.requantize_to(q, l.acc_a);
        }
        return;
    };
    let act = (q.act_min, q.act_max);
    let clamp = offset_clamp(q.output_offset, q.act_min, q.act_max);
    match (form, act, clamp) {
        (Form::Folded, (-128, 127), _) => requantize_lanes_folded::<0>(lanes, out, stride, act),
        (Form::Folded, (_, 127), _) => requantize_lanes_folded::<1>(lanes, out, stride, act),
        (Form::Folded, _, _) => requantize_lanes_folded::<2>(lanes, out, stride, act),
        (Form::Short, _, Some(clamp)) => {
            requantize_lanes(lanes, out, stride, clamp, q.output_offset)
        }
        _ => {
            for (k, l) in lanes.iter().enumerate() {
                out[k + stride] = l.quant.requantize(q, l.acc_b);
                out[k] = l.quant.requantize(q, l.acc_a);
            }
        }
    }
}

/// Same contract and bit-exact result as [`crate::kernels::conv2d::conv2d_s8`], any geometry.
/// `DSP` selects the `SXTB16`/`SMLAD` dot products (exact pure-Rust equivalents off Armv7E-M).
pub fn conv2d_s8_fast<const DSP: bool, T: Int8Output>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [T],
) {
    if g.kernel_h * g.kernel_w * g.input.c > PATCH_MAX {
        conv2d_s8_segments::<DSP, _>(g, q, input, filter, bias, output);
    } else {
        passes::<DSP>(g, q, &mut Apart { input, output }, filter, bias);
    }
}

/// The paths of [`conv2d_s8_fast`] that go two positions a pass (every geometry but patches of
/// more than [`PATCH_MAX`] values): pointwise, small-patch with `DSP`, or patches.
#[inline(always)]
fn passes<const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    io: &mut impl Io,
    filter: &[i8],
    bias: LeI32<'_>,
) {
    let patch_len = g.kernel_h * g.kernel_w * g.input.c;
    if takes_pointwise(g) {
        pointwise::<DSP>(g, q, io, filter, bias);
    } else if DSP && patch_len <= SMALL_MAX && !is_direct(g) {
        conv2d_s8_small(g, q, io, filter, bias);
    } else if !DSP {
        portable_patches(g, q, io, filter, bias);
    } else if patch_len <= PATCH_MAX / 4 {
        // Frames sized for the patch: a quarter or half the buffers' stack.
        conv2d_s8_patches::<{ PATCH_MAX / 16 }>(g, q, io, filter, bias);
    } else if patch_len <= PATCH_MAX / 2 {
        conv2d_s8_patches::<{ PATCH_MAX / 8 }>(g, q, io, filter, bias);
    } else {
        conv2d_s8_patches::<{ PATCH_MAX / 4 }>(g, q, io, filter, bias);
    }
}

/// The patch path of [`conv2d_s8_fast`] with `DSP`, for receptive fields
/// (`kernel_h * kernel_w * in_c`) of at most `4 * GROUPS` values: its patch buffers, in a frame
/// sized for them, for [`dsp_patches`].
#[inline(never)]
fn conv2d_s8_patches<const GROUPS: usize>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    io: &mut impl Io,
    filter: &[i8],
    bias: LeI32<'_>,
) {
    let mut raw = [[0i8; 4]; GROUPS];
    let mut quads = [[0u32; 4]; GROUPS];
    dsp_patches(g, q, io, filter, bias, raw.as_flattened_mut(), &mut quads);
}

/// The patch path with `DSP`: `raw` gathers a receptive field, `quads` holds a pass's two patches
/// (both at least the field long). Within a block of output channels, the positions go in order,
/// and a pass writes its outputs after it has read its patches.
#[inline(never)]
fn dsp_patches(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    io: &mut impl Io,
    filter: &[i8],
    bias: LeI32<'_>,
    raw: &mut [i8],
    quads: &mut [[u32; 4]],
) {
    let out_c = g.output.c;
    let len = g.kernel_h * g.kernel_w * g.input.c;
    let positions = g.output.n * g.output.h * g.output.w;
    let zero_point = (-q.input_offset) as i8;
    let mut lanes = [Lane::default(); CONV_BLOCK];
    let mut biases = [0i32; CONV_BLOCK];
    // Two positions at a time. Group k of four values x0..x3 of positions A and B is the words
    // [(A.x0, A.x2), (A.x1, A.x3), (B.x0, B.x2), (B.x1, B.x3)]: the pairs `SXTB16` makes of the
    // weights, loaded with one `LDM`. The input offset is folded into the bias, as below.
    let groups = len / 4;
    let direct = is_direct(g);
    // Receptive fields are expanded kernel row by kernel row, rows inside the input straight from
    // it, without gathering: each row into its own groups when its length is a multiple of four,
    // else with groups that straddle two rows ([`RowExpansion`]).
    let row_len = g.kernel_w * g.input.c;
    let by_rows = !direct && g.dilation_w == 1 && row_len.is_multiple_of(4);
    let straddling = !direct && g.dilation_w == 1 && !by_rows;
    for first in (0..out_c).step_by(CONV_BLOCK) {
        let n = (out_c - first).min(CONV_BLOCK);
        let (lanes, biases) = (&mut lanes[..n], &mut biases[..n]);
        let filter = &filter[first * len..][..n * len];
        let form = prepare(q, bias, first, filter, lanes, biases);
        let mut p = 0;
        while p < positions {
            let count = (positions - p).min(2);
            let mut tails = [[0i32; 3]; 2];
            for (k, tail) in tails.iter_mut().enumerate().take(count) {
                let input = io.input(0);
                if by_rows {
                    // Kernel row by kernel row, straight from the input where it lies inside.
                    let at = position(g, p + k);
                    let rows = quads.chunks_exact_mut(row_len / 4).take(g.kernel_h);
                    if let Some((start, step)) = window_inside(g, at) {
                        for (ky, quads) in rows.enumerate() {
                            expand_position(&input[start + ky * step..][..row_len], k, quads, tail);
                        }
                    } else {
                        for (ky, quads) in rows.enumerate() {
                            let x = window_row(g, input, at, ky, zero_point, raw);
                            expand_position(x, k, quads, tail);
                        }
                    }
                    continue;
                }
                if straddling {
                    // Groups of four straddle two kernel rows.
                    let at = position(g, p + k);
                    let mut rows = RowExpansion::new(k, quads);
                    if let Some((start, step)) = window_inside(g, at) {
                        for ky in 0..g.kernel_h {
                            rows.push(&input[start + ky * step..][..row_len]);
                        }
                    } else {
                        for ky in 0..g.kernel_h {
                            rows.push(window_row(g, input, at, ky, zero_point, raw));
                        }
                    }
                    rows.finish(tail);
                } else {
                    let x = patch_at(g, input, p + k, zero_point, direct, &mut raw[..len]);
                    expand_position(x, k, quads, tail);
                }
            }
            let patch = &quads[..groups];
            let (tail_a, tail_b) = (&tails[0][..len % 4], &tails[1][..len % 4]);
            dsp_channels(patch, tail_a, tail_b, count == 2, filter, biases, lanes);
            let stride = if count == 2 { out_c } else { 0 };
            requantize_pass(q, lanes, form, io.output(p * out_c + first), stride);
            p += count;
        }
    }
}

/// Expands position `k` (0 for A, 1 for B) of a pass, `x`, into its words of `quads` (the `SXTB16`
/// pairs of each group of four values) and the values past the last group into `tail`.
#[inline(always)]
fn expand_position(x: &[i8], k: usize, quads: &mut [[u32; 4]], tail: &mut [i32; 3]) {
    let (groups, rest) = x.split_at(x.len() / 4 * 4);
    expand_groups(groups, k, quads);
    for (t, &r) in tail.iter_mut().zip(rest) {
        *t = r as i32;
    }
}

/// Expands the whole groups of four values of `x` into position `k`'s words of `quads`.
#[inline(always)]
fn expand_groups(x: &[i8], k: usize, quads: &mut [[u32; 4]]) {
    // Two groups a step (one `LDRD`), then the last odd group.
    let (x_pairs, x_rest) = x.as_chunks::<8>();
    let (paired, quads) = quads.split_at_mut((2 * x_pairs.len()).min(quads.len()));
    for (quad, r) in paired.as_chunks_mut::<2>().0.iter_mut().zip(x_pairs) {
        let v0 = u32::from_le_bytes([r[0], r[1], r[2], r[3]].map(|b| b as u8));
        let v1 = u32::from_le_bytes([r[4], r[5], r[6], r[7]].map(|b| b as u8));
        quad[0][2 * k] = sxtb16(v0);
        quad[0][2 * k + 1] = sxtb16_ror8(v0);
        quad[1][2 * k] = sxtb16(v1);
        quad[1][2 * k + 1] = sxtb16_ror8(v1);
    }
    for (quad, r) in quads.iter_mut().zip(x_rest.as_chunks::<4>().0) {
        expand_group(quad, k, *r);
    }
}

/// Writes position `k`'s words of one group of four values.
#[inline(always)]
fn expand_group(quad: &mut [u32; 4], k: usize, r: [i8; 4]) {
    let v = u32::from_le_bytes(r.map(|b| b as u8));
    quad[2 * k] = sxtb16(v);
    quad[2 * k + 1] = sxtb16_ror8(v);
}

/// [`expand_position`] of a receptive field given kernel row by kernel row: a group of four
/// values may start in one row and end in the next (rows of a length not a multiple of four).
struct RowExpansion<'q> {
    quads: &'q mut [[u32; 4]],
    k: usize,
    /// Groups written.
    next: usize,
    /// The values of the group not yet complete.
    held: [i8; 4],
    held_len: usize,
}

impl<'q> RowExpansion<'q> {
    #[inline(always)]
    fn new(k: usize, quads: &'q mut [[u32; 4]]) -> Self {
        RowExpansion {
            quads,
            k,
            next: 0,
            held: [0; 4],
            held_len: 0,
        }
    }

    /// Appends the next row.
    #[inline(always)]
    fn push(&mut self, mut x: &[i8]) {
        if self.held_len > 0 {
            let take = (4 - self.held_len).min(x.len());
            for (h, &v) in self.held[self.held_len..].iter_mut().zip(&x[..take]) {
                *h = v;
            }
            self.held_len += take;
            x = &x[take..];
            if self.held_len == 4 {
                if let Some(quad) = self.quads.get_mut(self.next) {
                    expand_group(quad, self.k, self.held);
                }
                self.next += 1;
                self.held_len = 0;
            }
        }
        let whole = x.len() / 4 * 4;
        let quads = self.quads.get_mut(self.next..).unwrap_or_default();
        expand_groups(&x[..whole], self.k, quads);
        self.next += whole / 4;
        for &v in &x[whole..] {
            if let Some(h) = self.held.get_mut(self.held_len) {
                *h = v;
                self.held_len += 1;
            }
        }
    }

    /// The values past the last group, into `tail`.
    #[inline(always)]
    fn finish(self, tail: &mut [i32; 3]) {
        for (t, &v) in tail.iter_mut().zip(&self.held[..self.held_len]) {
            *t = v as i32;
        }
    }
}

/// The output position `(n, oy, ox)` of flat position `p`.
#[inline(always)]
pub(super) fn position(g: &ConvGeometry, p: usize) -> (usize, usize, usize) {
    let (ow, oh) = (g.output.w, g.output.h);
    (p / (ow * oh), (p / ow) % oh, p % ow)
}

/// Where the window of output position `(n, oy, ox)` starts in the input and how far apart its
/// kernel rows are, when every tap lies inside the input: kernel row `ky` is then the contiguous
/// run of `kernel_w * in_c` values at `start + ky * step` (for a geometry without horizontal
/// dilation). `None` for a border window.
#[inline(always)]
pub(super) fn window_inside(
    g: &ConvGeometry,
    (n, oy, ox): (usize, usize, usize),
) -> Option<(usize, usize)> {
    let iy = (oy * g.stride_h).checked_sub(g.pad_top)?;
    let ix = (ox * g.stride_w).checked_sub(g.pad_left)?;
    if iy + (g.kernel_h - 1) * g.dilation_h >= g.input.h || ix + g.kernel_w > g.input.w {
        return None;
    }
    Some((
        g.input.index(n, iy, ix, 0),
        g.dilation_h * g.input.w * g.input.c,
    ))
}

/// Kernel row `ky` of the receptive field of output position `(n, oy, ox)` in filter order
/// (`kernel_w * in_c` values, for a geometry without horizontal dilation): the input's own run
/// where the row lies inside the input, else gathered into `row` (padding as `zero_point`).
#[inline(always)]
pub(super) fn window_row<'a>(
    g: &ConvGeometry,
    input: &'a [i8],
    (n, oy, ox): (usize, usize, usize),
    ky: usize,
    zero_point: i8,
    row: &'a mut [i8],
) -> &'a [i8] {
    let in_c = g.input.c;
    let row = &mut row[..g.kernel_w * in_c];
    // Above the input, the subtraction wraps past its height.
    let iy = (oy * g.stride_h + ky * g.dilation_h).wrapping_sub(g.pad_top);
    if iy >= g.input.h {
        row.fill(zero_point);
        return row;
    }
    let x = ox * g.stride_w;
    if x >= g.pad_left && x - g.pad_left + g.kernel_w <= g.input.w {
        return &input[g.input.index(n, iy, x - g.pad_left, 0)..][..row.len()];
    }
    let kxs = tap_range(ox, g.stride_w, g.pad_left, 1, g.kernel_w, g.input.w);
    let (before, rest) = row.split_at_mut(kxs.start * in_c);
    let (inside, after) = rest.split_at_mut(kxs.len() * in_c);
    before.fill(zero_point);
    after.fill(zero_point);
    if !inside.is_empty() {
        let ix = x + kxs.start - g.pad_left;
        inside.copy_from_slice(&input[g.input.index(n, iy, ix, 0)..][..inside.len()]);
    }
    row
}

/// Most input channels of the pointwise path (a pass's two positions are copied to the stack).
const POINTWISE_IN: usize = WIDE_MAX;

/// Whether [`conv2d_s8_shifted`] takes this geometry: batch 1, patches of at most [`PATCH_MAX`]
/// values (the paths that go two positions a pass) and one block of output channels (at most
/// 64), so that the positions go in order. A layer that reads ahead of what it writes (a
/// pointwise one of no wider output, an unpadded or strided one) has no room to keep
/// ([`shifted_room`] 0): it runs exactly over its input.
pub fn runs_shifted(g: &ConvGeometry) -> bool {
    g.input.n == 1
        && g.output.n == 1
        && g.output.c <= CONV_BLOCK
        && g.kernel_h * g.kernel_w * g.input.c <= PATCH_MAX
}

/// The least room, in elements, between the start of the output and the start of its input (the
/// output before it) at which [`conv2d_s8_shifted`] may run: for every output position `e`, the
/// outputs before it, already written, end at or before the first input value that position `e`
/// or a later one reads. A position reads input rows from `oy * stride_h - pad_top` and columns
/// from `ox * stride_w - pad_left` on (clamped to the input), so its first value in the input's
/// order is at least that row's start plus that column; a later row's positions read from their
/// own first row on.
pub fn shifted_room(g: &ConvGeometry) -> usize {
    let (ci, co) = (g.input.c, g.output.c);
    let first_row = |oy: usize| (oy * g.stride_h).saturating_sub(g.pad_top).min(g.input.h);
    let first_col = |ox: usize| (ox * g.stride_w).saturating_sub(g.pad_left).min(g.input.w);
    let mut room = 0;
    for oy in 0..g.output.h {
        let next_row = first_row(oy + 1) * g.input.w;
        for ox in 0..g.output.w {
            let e = oy * g.output.w + ox;
            let first = (first_row(oy) * g.input.w + first_col(ox)).min(next_row);
            room = room.max((e * co).saturating_sub(first * ci));
        }
    }
    room
}

/// [`conv2d_s8_fast`] with its output `shift` elements before its input in one buffer (`data`:
/// the output from its start, the input from `shift` on), for a geometry that [`runs_shifted`]
/// and a `shift` of at least [`shifted_room`] (the loader's check; a smaller one gives wrong
/// outputs, never an access outside `data`): the positions go in order and each pass reads its
/// patches before it writes its outputs, which land only on input values no later pass reads.
pub fn conv2d_s8_shifted<const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    data: &mut [i8],
    shift: usize,
    filter: &[i8],
    bias: LeI32<'_>,
) {
    let fits = data.len() >= (shift + g.input.len()).max(g.output.len());
    if !runs_shifted(g) || !fits {
        return;
    }
    passes::<DSP>(g, q, &mut Shared { data, shift }, filter, bias);
}

/// Whether [`pointwise`] takes this geometry: 1x1, stride 1, no padding, at most
/// [`POINTWISE_IN`] input and [`CONV_BLOCK`] output channels.
fn takes_pointwise(g: &ConvGeometry) -> bool {
    is_direct(g) && g.input.c <= POINTWISE_IN && g.output.c <= CONV_BLOCK
}

/// A pointwise convolution ([`takes_pointwise`]) two positions at a time, every output channel
/// prepared once: both positions' inputs are copied (expanded) before their outputs are written,
/// so the kernel also runs over its input when the output is no wider.
#[inline(never)]
fn pointwise<const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    io: &mut impl Io,
    filter: &[i8],
    bias: LeI32<'_>,
) {
    let (in_c, out_c) = (g.input.c, g.output.c);
    if !takes_pointwise(g) || filter.len() < out_c * in_c {
        return;
    }
    let mut lanes = [Lane::default(); CONV_BLOCK];
    let mut biases = [0i32; CONV_BLOCK];
    let (lanes, biases) = (&mut lanes[..out_c], &mut biases[..out_c]);
    let filter = &filter[..out_c * in_c];
    let form = prepare(q, bias, 0, filter, lanes, biases);
    let positions = g.output.n * g.output.h * g.output.w;
    if DSP {
        let mut quads = [[0u32; 4]; POINTWISE_IN / 4];
        let quads = &mut quads[..in_c / 4];
        let mut p = 0;
        while p < positions {
            let count = (positions - p).min(2);
            let mut tails = [[0i32; 3]; 2];
            for (k, tail) in tails.iter_mut().enumerate().take(count) {
                expand_position(&io.input((p + k) * in_c)[..in_c], k, quads, tail);
            }
            let (tail_a, tail_b) = (&tails[0][..in_c % 4], &tails[1][..in_c % 4]);
            dsp_channels(quads, tail_a, tail_b, count == 2, filter, biases, lanes);
            let stride = if count == 2 { out_c } else { 0 };
            requantize_pass(q, lanes, form, io.output(p * out_c), stride);
            p += count;
        }
    } else {
        let mut wide = [[0i32; 2]; POINTWISE_IN];
        let wide = &mut wide[..in_c];
        let mut p = 0;
        while p < positions {
            // A lone last position is computed twice.
            let count = (positions - p).min(2);
            let xa = &io.input(p * in_c)[..in_c];
            let xb = &io.input((p + count - 1) * in_c)[..in_c];
            for ((x, &a), &b) in wide.iter_mut().zip(xa).zip(xb) {
                *x = [a as i32, b as i32];
            }
            channel_pairs(filter, biases, false, lanes, |w0, w1, acc| {
                dot_2x2_wide(wide, w0, w1, acc)
            });
            let stride = if count == 2 { out_c } else { 0 };
            requantize_pass(q, lanes, form, io.output(p * out_c), stride);
            p += count;
        }
    }
}

/// The small-patch path of [`conv2d_s8_fast`] with `DSP` (`kernel_h * kernel_w * in_c <=
/// SMALL_MAX`, not direct): the stems, whose few input channels make gathering the patch as
/// costly as the dot products. As in [`conv2d_s8_patches`], two positions a pass, the input
/// offset folded into the bias, but the patch length is rounded up to a multiple of four (values
/// past the field zero), so that every value goes through `SMLAD`; each pass's patch is gathered
/// once for up to [`CONV_BLOCK`] output channels; and a window inside the input is read straight
/// into the 16-bit pairs through a table of offsets ([`WindowOffsets`]), with one bounds check a
/// position. Border windows are gathered with the zero point as padding, then split by `SXTB16`.
/// When every channel's weights, split into 16-bit pairs, fit [`SPLIT_WORDS`], they are split
/// once ([`dot_2x2_q15_pairs`]: no `SXTB16` in the inner loop); otherwise `SXTB16` splits them in
/// the inner loop ([`dot_2x2_q15`]), which needs no buffer.
#[inline(never)]
fn conv2d_s8_small(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    io: &mut impl Io,
    filter: &[i8],
    bias: LeI32<'_>,
) {
    let window = WindowOffsets::new(
        g.kernel_h,
        g.kernel_w,
        g.input.c,
        g.dilation_h,
        g.dilation_w,
        g.input.w,
    );
    let out_c = g.output.c;
    if out_c <= CONV_BLOCK && 2 * window.groups() * out_c <= SPLIT_WORDS {
        small_split(g, q, &window, io, filter, bias);
    } else {
        small_raw(g, q, &window, io, filter, bias);
    }
}

/// [`conv2d_s8_small`] with every channel's weights split once.
#[inline(never)]
fn small_split(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    window: &WindowOffsets,
    io: &mut impl Io,
    filter: &[i8],
    bias: LeI32<'_>,
) {
    let (out_c, groups) = (g.output.c, window.groups());
    let len = g.kernel_h * g.kernel_w * g.input.c;
    let mut split = [0u32; SPLIT_WORDS];
    let split = &mut split[..out_c * 2 * groups];
    let rows = filter[..out_c * len].chunks_exact(len);
    for (pairs, w) in split.chunks_exact_mut(2 * groups).zip(rows) {
        let mut padded = [0i8; SMALL_MAX];
        padded[..len].copy_from_slice(w);
        let (words, _) = padded.as_chunks::<4>();
        for (pair, v) in pairs.chunks_exact_mut(2).zip(words) {
            let v = u32::from_le_bytes(v.map(|b| b as u8));
            (pair[0], pair[1]) = (sxtb16(v), sxtb16_ror8(v));
        }
    }
    let split = &*split;
    small_passes(g, q, window, io, filter, bias, |_, patch, biases, lanes| {
        channel_pairs(split, biases, false, lanes, |w0, w1, acc| {
            dot_2x2_q15_pairs(patch, w0, w1, acc)
        });
    });
}

/// [`conv2d_s8_small`] with the weights split in the inner loop, [`CONV_BLOCK`] channels a block.
#[inline(never)]
fn small_raw(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    window: &WindowOffsets,
    io: &mut impl Io,
    filter: &[i8],
    bias: LeI32<'_>,
) {
    let len = g.kernel_h * g.kernel_w * g.input.c;
    let whole = 4 * window.groups();
    // Filter rows too close to the end to run on into the next row, zero-padded.
    let mut pads = [[0i8; SMALL_MAX]; 2];
    small_passes(
        g,
        q,
        window,
        io,
        filter,
        bias,
        |first, patch, biases, lanes| {
            let n = lanes.len();
            for k in (0..n).step_by(2) {
                let k1 = (k + 1).min(n - 1);
                let [p0, p1] = &mut pads;
                let w0 = padded_row(filter, first + k, len, whole, p0);
                let w1 = padded_row(filter, first + k1, len, whole, p1);
                let acc = [biases[k], biases[k1], biases[k], biases[k1]];
                let [a0, a1, b0, b1] = dot_2x2_q15(patch, w0, w1, acc);
                (lanes[k1].acc_a, lanes[k1].acc_b) = (a1, b1);
                (lanes[k].acc_a, lanes[k].acc_b) = (a0, b0);
            }
        },
    );
}

/// The passes of [`conv2d_s8_small`]: for each block of up to [`CONV_BLOCK`] output channels
/// (from `first`), two positions at a time, their patches gathered into quads (the values past the
/// field zero), then `channels(first, patch, biases, lanes)` sets the block's accumulators and the
/// pass is requantized.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn small_passes(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    window: &WindowOffsets,
    io: &mut impl Io,
    filter: &[i8],
    bias: LeI32<'_>,
    mut channels: impl FnMut(usize, &[[u32; 4]], &[i32], &mut [Lane]),
) {
    let out_c = g.output.c;
    let len = g.kernel_h * g.kernel_w * g.input.c;
    let positions = g.output.n * g.output.h * g.output.w;
    let zero_point = (-q.input_offset) as i8;
    let groups = window.groups();
    // The last group's values past the field, zeroed in both positions' words.
    let (keep_even, keep_odd) = match len % 4 {
        1 => (0xffff, 0),
        2 => (0xffff, 0xffff),
        3 => (u32::MAX, 0xffff),
        _ => (u32::MAX, u32::MAX),
    };
    let mut lanes = [Lane::default(); CONV_BLOCK];
    let mut biases = [0i32; CONV_BLOCK];
    let mut quads = [[0u32; 4]; SMALL_MAX / 4];
    // A border window, gathered; the values past `len` stay 0.
    let mut raw = [0i8; SMALL_MAX];
    for first in (0..out_c).step_by(CONV_BLOCK) {
        let n = (out_c - first).min(CONV_BLOCK);
        let (lanes, biases) = (&mut lanes[..n], &mut biases[..n]);
        let form = prepare(
            q,
            bias,
            first,
            &filter[first * len..][..n * len],
            lanes,
            biases,
        );
        let mut p = 0;
        while p < positions {
            // A lone last position is computed twice.
            let count = (positions - p).min(2);
            let pos = [p, p + count - 1];
            let input = io.input(0);
            small_column::<0>(g, input, pos[0], zero_point, window, &mut raw, &mut quads);
            small_column::<1>(g, input, pos[1], zero_point, window, &mut raw, &mut quads);
            let last = &mut quads[groups - 1];
            (last[0], last[1]) = (last[0] & keep_even, last[1] & keep_odd);
            (last[2], last[3]) = (last[2] & keep_even, last[3] & keep_odd);
            channels(first, &quads[..groups], biases, lanes);
            let stride = if count == 2 { out_c } else { 0 };
            requantize_pass(q, lanes, form, io.output(p * out_c + first), stride);
            p += count;
        }
    }
}

/// `whole` weights from filter row `j` (rows `len` long) on: the row running on into the next, or,
/// near the filter's end, the row zero-padded in `pad`. Values past the field are zero in the
/// patch, so whatever weights meet them add nothing.
#[inline(always)]
fn padded_row<'a>(
    filter: &'a [i8],
    j: usize,
    len: usize,
    whole: usize,
    pad: &'a mut [i8; SMALL_MAX],
) -> &'a [i8] {
    match filter.get(j * len..j * len + whole) {
        Some(w) => w,
        None => {
            pad[..len].copy_from_slice(&filter[j * len..][..len]);
            pad[len..whole].fill(0);
            &pad[..whole]
        }
    }
}

/// Writes the receptive field of flat output position `p` into words `2K` and `2K + 1` of the
/// quads (see [`conv2d_s8_small`]): through `window` if inside the input, else gathered into
/// `raw` (padding as the zero point) and split by `SXTB16`.
#[inline(always)]
fn small_column<const K: usize>(
    g: &ConvGeometry,
    input: &[i8],
    p: usize,
    zero_point: i8,
    window: &WindowOffsets,
    raw: &mut [i8; SMALL_MAX],
    quads: &mut [[u32; 4]; SMALL_MAX / 4],
) {
    let (ow, oh) = (g.output.w, g.output.h);
    let (n, oy, ox) = (p / (ow * oh), (p / ow) % oh, p % ow);
    let (y, x) = (oy * g.stride_h, ox * g.stride_w);
    let span_h = (g.kernel_h - 1) * g.dilation_h + 1;
    let span_w = (g.kernel_w - 1) * g.dilation_w + 1;
    if y >= g.pad_top
        && x >= g.pad_left
        && y - g.pad_top + span_h <= g.input.h
        && x - g.pad_left + span_w <= g.input.w
    {
        let at = g.input.index(n, y - g.pad_top, x - g.pad_left, 0);
        window.expand::<K>(&input[at..], quads);
    } else {
        let len = g.kernel_h * g.kernel_w * g.input.c;
        gather_at(g, input, p, zero_point, &mut raw[..len]);
        let (words, _) = raw.as_chunks::<4>();
        for (quad, r) in quads[..window.groups()].iter_mut().zip(words) {
            let v = u32::from_le_bytes(r.map(|b| b as u8));
            quad[2 * K] = sxtb16(v);
            quad[2 * K + 1] = sxtb16_ror8(v);
        }
    }
}

/// Whether every output position's receptive field is one contiguous run of the input, in filter
/// order (1x1 kernel, stride 1, no padding): no gathering needed.
#[inline(always)]
pub(super) fn is_direct(g: &ConvGeometry) -> bool {
    g.kernel_h == 1
        && g.kernel_w == 1
        && g.stride_h == 1
        && g.stride_w == 1
        && g.pad_top == 0
        && g.pad_left == 0
        && g.output.h == g.input.h
        && g.output.w == g.input.w
}

/// The receptive field of flat output position `p` in filter order: the input itself if
/// `direct` (see [`is_direct`]), else gathered into `raw` (padding as the zero point).
#[inline(always)]
pub(super) fn patch_at<'a>(
    g: &ConvGeometry,
    input: &'a [i8],
    p: usize,
    zero_point: i8,
    direct: bool,
    raw: &'a mut [i8],
) -> &'a [i8] {
    if direct {
        &input[p * g.input.c..][..raw.len()]
    } else {
        gather_at(g, input, p, zero_point, raw);
        raw
    }
}

/// The portable patch path: raw int8 patches (padding as the zero point) and the input offset
/// folded into the bias, `sum w * (x + off) = sum w * x + off * sum w` (padding adds nothing
/// either way). The two positions' values are widened to 32 bits and interleaved, so that one
/// `LDM` loads two of each, in chunks of at most [`WIDE_MAX`] (stack).
#[inline(never)]
fn portable_patches(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    io: &mut impl Io,
    filter: &[i8],
    bias: LeI32<'_>,
) {
    let out_c = g.output.c;
    let len = g.kernel_h * g.kernel_w * g.input.c;
    let positions = g.output.n * g.output.h * g.output.w;
    let zero_point = (-q.input_offset) as i8;
    let mut lanes = [Lane::default(); CONV_BLOCK];
    let mut biases = [0i32; CONV_BLOCK];
    let mut raw = [0i8; PATCH_MAX];
    let mut raw_b = [0i8; PATCH_MAX];
    let mut wide = [[0i32; 2]; WIDE_MAX];
    let direct = is_direct(g);
    // Equal chunks, multiples of four values.
    let chunks = len.div_ceil(WIDE_MAX);
    let chunk = len.div_ceil(chunks).next_multiple_of(4).min(WIDE_MAX);
    for first in (0..out_c).step_by(CONV_BLOCK) {
        let n = (out_c - first).min(CONV_BLOCK);
        let (lanes, biases) = (&mut lanes[..n], &mut biases[..n]);
        let filter = &filter[first * len..][..n * len];
        let form = prepare(q, bias, first, filter, lanes, biases);
        let mut p = 0;
        while p < positions {
            // A lone last position is computed twice.
            let count = (positions - p).min(2);
            let input = io.input(0);
            let xa = patch_at(g, input, p, zero_point, direct, &mut raw[..len]);
            let xb = patch_at(
                g,
                input,
                p + count - 1,
                zero_point,
                direct,
                &mut raw_b[..len],
            );
            for (c, (xa, xb)) in xa.chunks(chunk).zip(xb.chunks(chunk)).enumerate() {
                let wide = &mut wide[..xa.len()];
                for ((x, &a), &b) in wide.iter_mut().zip(xa).zip(xb) {
                    *x = [a as i32, b as i32];
                }
                if chunks == 1 {
                    channel_pairs(filter, biases, false, lanes, |w0, w1, acc| {
                        dot_2x2_wide(wide, w0, w1, acc)
                    });
                } else {
                    let from = c * chunk;
                    channel_pairs(filter, biases, c > 0, lanes, |w0, w1, acc| {
                        dot_2x2_wide(wide, &w0[from..], &w1[from..], acc)
                    });
                }
            }
            let stride = if count == 2 { out_c } else { 0 };
            requantize_pass(q, lanes, form, io.output(p * out_c + first), stride);
            p += count;
        }
    }
}

/// The accumulators of the lanes' channels at positions A and B (B = A unless `two`).
#[inline(always)]
fn dsp_channels(
    patch: &[[u32; 4]],
    tail_a: &[i32],
    tail_b: &[i32],
    two: bool,
    filter: &[i8],
    biases: &[i32],
    lanes: &mut [Lane],
) {
    if two {
        channel_pairs(filter, biases, false, lanes, |w0, w1, acc| {
            dot_2x2_dsp(patch, tail_a, tail_b, w0, w1, acc)
        });
    } else {
        channel_pairs(filter, biases, false, lanes, |w0, w1, acc| {
            let (a0, a1) = dot_1x2_dsp(patch, tail_a, w0, w1, acc[0], acc[1]);
            [a0, a1, a0, a1]
        });
    }
}

/// Runs `dot(w0, w1, acc)` (accumulators of channels 0 and 1 at positions A and B, in the order
/// (A, 0), (A, 1), (B, 0), (B, 1), starting from the biases or, `from_lanes`, from the lanes'
/// accumulators) for each pair of the lanes' channels, and the last one paired with itself, into
/// the lanes' accumulators.
#[inline(always)]
fn channel_pairs<W>(
    filter: &[W],
    biases: &[i32],
    from_lanes: bool,
    lanes: &mut [Lane],
    mut dot: impl FnMut(&[W], &[W], [i32; 4]) -> [i32; 4],
) {
    let len = filter.len() / lanes.len();
    let mut pairs = lanes.chunks_exact_mut(2);
    for ((l, w), b) in (&mut pairs)
        .zip(filter.chunks_exact(2 * len))
        .zip(biases.chunks_exact(2))
    {
        let (w0, w1) = w.split_at(len);
        let acc = if from_lanes {
            [l[0].acc_a, l[1].acc_a, l[0].acc_b, l[1].acc_b]
        } else {
            [b[0], b[1], b[0], b[1]]
        };
        let [a0, a1, b0, b1] = dot(w0, w1, acc);
        (l[0].acc_a, l[0].acc_b, l[1].acc_a, l[1].acc_b) = (a0, b0, a1, b1);
    }
    if let ([l], [.., b]) = (pairs.into_remainder(), biases) {
        let w = &filter[filter.len() - len..];
        let acc = if from_lanes {
            [l.acc_a, l.acc_a, l.acc_b, l.acc_b]
        } else {
            [*b; 4]
        };
        let [a0, _, b0, _] = dot(w, w, acc);
        (l.acc_a, l.acc_b) = (a0, b0);
    }
}

/// Copies the receptive field of flat output position `p` (over n, oy, ox) in filter order.
#[inline(always)]
pub(crate) fn gather_at(g: &ConvGeometry, input: &[i8], p: usize, zero_point: i8, raw: &mut [i8]) {
    let (ow, oh) = (g.output.w, g.output.h);
    let (n, oy, ox) = (p / (ow * oh), (p / ow) % oh, p % ow);
    let kys = tap_range(
        oy,
        g.stride_h,
        g.pad_top,
        g.dilation_h,
        g.kernel_h,
        g.input.h,
    );
    let kxs = tap_range(
        ox,
        g.stride_w,
        g.pad_left,
        g.dilation_w,
        g.kernel_w,
        g.input.w,
    );
    gather(g, input, n, oy, ox, &kys, &kxs, zero_point, raw);
}

/// Copies the receptive field of output `(n, oy, ox)` in filter order, padding with `zero_point`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gather(
    g: &ConvGeometry,
    input: &[i8],
    n: usize,
    oy: usize,
    ox: usize,
    kys: &core::ops::Range<usize>,
    kxs: &core::ops::Range<usize>,
    zero_point: i8,
    raw: &mut [i8],
) {
    let in_c = g.input.c;
    let row_len = g.kernel_w * in_c;
    for (ky, row) in raw.chunks_exact_mut(row_len).enumerate() {
        if !kys.contains(&ky) || kxs.is_empty() {
            row.fill(zero_point);
            continue;
        }
        let iy = oy * g.stride_h + ky * g.dilation_h - g.pad_top;
        let (before, rest) = row.split_at_mut(kxs.start * in_c);
        let (inside, after) = rest.split_at_mut(kxs.len() * in_c);
        before.fill(zero_point);
        after.fill(zero_point);
        if g.dilation_w == 1 {
            let ix = ox * g.stride_w + kxs.start - g.pad_left;
            inside.copy_from_slice(&input[g.input.index(n, iy, ix, 0)..][..inside.len()]);
        } else {
            for (kx, tap) in kxs.clone().zip(inside.chunks_exact_mut(in_c)) {
                let ix = ox * g.stride_w + kx * g.dilation_w - g.pad_left;
                tap.copy_from_slice(&input[g.input.index(n, iy, ix, 0)..][..in_c]);
            }
        }
    }
}

/// Two positions (A, B) by two output channels: `acc + sum x * w` for (A, w0), (A, w1), (B, w0),
/// (B, w1), in that order, over a patch of quads (see `conv2d_s8_patches`).
#[inline(always)]
fn dot_2x2_dsp(
    patch: &[[u32; 4]],
    tail_a: &[i32],
    tail_b: &[i32],
    w0: &[i8],
    w1: &[i8],
    acc: [i32; 4],
) -> [i32; 4] {
    let [mut a0, mut a1, mut b0, mut b1] = dot_2x2_q15(patch, w0, w1, acc);
    let (_, t0) = w0.as_chunks::<4>();
    let (_, t1) = w1.as_chunks::<4>();
    for (((&xa, &xb), &p), &r) in tail_a.iter().zip(tail_b).zip(t0).zip(t1) {
        a0 = a0.wrapping_add(xa * p as i32);
        a1 = a1.wrapping_add(xa * r as i32);
        b0 = b0.wrapping_add(xb * p as i32);
        b1 = b1.wrapping_add(xb * r as i32);
    }
    [a0, a1, b0, b1]
}

/// [`dot_2x2_dsp`] for position A alone.
#[inline(always)]
fn dot_1x2_dsp(
    patch: &[[u32; 4]],
    tail: &[i32],
    w0: &[i8],
    w1: &[i8],
    mut a0: i32,
    mut a1: i32,
) -> (i32, i32) {
    let (c0, t0) = w0.as_chunks::<4>();
    let (c1, t1) = w1.as_chunks::<4>();
    for ((x, p), r) in patch.iter().zip(c0).zip(c1) {
        let wp = u32::from_le_bytes(p.map(|b| b as u8));
        let wr = u32::from_le_bytes(r.map(|b| b as u8));
        a0 = smlad(x[1], sxtb16_ror8(wp), smlad(x[0], sxtb16(wp), a0));
        a1 = smlad(x[1], sxtb16_ror8(wr), smlad(x[0], sxtb16(wr), a1));
    }
    for ((&x, &p), &r) in tail.iter().zip(t0).zip(t1) {
        a0 = a0.wrapping_add(x * p as i32);
        a1 = a1.wrapping_add(x * r as i32);
    }
    (a0, a1)
}

/// The segment path of [`conv2d_s8_fast`] (any patch size).
pub fn conv2d_s8_segments<const DSP: bool, T: Int8Output>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [T],
) {
    let out_c = g.output.c;
    let mut oc = 0;
    while oc + 4 <= out_c {
        channel_block::<4, DSP, _>(g, q, input, filter, bias, output, oc);
        oc += 4;
    }
    while oc < out_c {
        channel_block::<1, DSP, _>(g, q, input, filter, bias, output, oc);
        oc += 1;
    }
}

/// Output channels `oc0..oc0 + NB` at every output position.
#[inline(never)]
fn channel_block<const NB: usize, const DSP: bool, T: Int8Output>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [T],
    oc0: usize,
) {
    let in_c = g.input.c;
    let filter_len = g.kernel_h * g.kernel_w * in_c;
    let row_len = g.kernel_w * in_c;
    let w: [&[i8]; NB] = core::array::from_fn(|j| &filter[(oc0 + j) * filter_len..][..filter_len]);
    let cq: [ChannelQuant; NB] = core::array::from_fn(|j| ChannelQuant::new(q, oc0 + j));
    let b: [i32; NB] = core::array::from_fn(|j| {
        if bias.is_empty() {
            0
        } else {
            bias.get(oc0 + j)
        }
    });
    // sum w * (x + off) = sum w * x + off * sum w: with every tap inside the input, the second
    // term is the same at every position.
    let full: [i32; NB] =
        core::array::from_fn(|j| b[j].wrapping_add(q.input_offset.wrapping_mul(weight_sum(w[j]))));
    let contiguous = g.dilation_w == 1;
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
            for ox in 0..g.output.w {
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
                if !kxs.is_empty() {
                    for ky in kys.clone() {
                        let iy = oy * g.stride_h + ky * g.dilation_h - g.pad_top;
                        if contiguous {
                            // Taps kxs of row ky: one segment of the input row and of the filter.
                            let ix = ox * g.stride_w + kxs.start - g.pad_left;
                            let len = kxs.len() * in_c;
                            let x = &input[g.input.index(n, iy, ix, 0)..][..len];
                            let wo = ky * row_len + kxs.start * in_c;
                            let ws: [&[i8]; NB] = core::array::from_fn(|j| &w[j][wo..][..len]);
                            segment::<NB, DSP>(x, ws, q.input_offset, interior, &mut acc);
                        } else {
                            for kx in kxs.clone() {
                                let ix = ox * g.stride_w + kx * g.dilation_w - g.pad_left;
                                let x = &input[g.input.index(n, iy, ix, 0)..][..in_c];
                                let wo = ky * row_len + kx * in_c;
                                let ws: [&[i8]; NB] = core::array::from_fn(|j| &w[j][wo..][..in_c]);
                                segment::<NB, DSP>(x, ws, q.input_offset, interior, &mut acc);
                            }
                        }
                    }
                }
                let o = g.output.index(n, oy, ox, oc0);
                for ((out, &a), c) in output[o..][..NB].iter_mut().zip(&acc).zip(cq) {
                    *out = c.requantize_to(q, a);
                }
            }
        }
    }
}

/// Adds one segment's products to the accumulators, and its offset terms unless they were folded.
#[inline(always)]
fn segment<const NB: usize, const DSP: bool>(
    x: &[i8],
    w: [&[i8]; NB],
    input_offset: i32,
    folded: bool,
    acc: &mut [i32; NB],
) {
    // Four channels (the hot case) go through the unrolled dot products.
    if let (Ok(w4), Ok(acc4)) = (
        <&[&[i8]; 4]>::try_from(w.as_slice()),
        <&mut [i32; 4]>::try_from(acc.as_mut_slice()),
    ) {
        if DSP {
            dot4_dsp(x, w4, acc4);
        } else {
            dot4(x, w4, acc4);
        }
    } else {
        for (a, w) in acc.iter_mut().zip(w) {
            *a = dot1(x, w, *a);
        }
    }
    if !folded {
        for (a, w) in acc.iter_mut().zip(w) {
            *a = a.wrapping_add(input_offset.wrapping_mul(weight_sum(w)));
        }
    }
}

/// `sum w`, wrapping: on Armv7E-M four weights a word, as two `SXTB16` pairs each multiplied
/// by ones with `SMLAD` (the sums the input offset is folded with, redone for every band of an
/// in-place convolution).
#[inline(always)]
pub(crate) fn weight_sum(w: &[i8]) -> i32 {
    if cfg!(ferrite_dsp) {
        weight_sum_words(w)
    } else {
        w.iter().fold(0, |s, &v| s.wrapping_add(v as i32))
    }
}

/// [`weight_sum`] four weights a word (`SXTB16`, `SMLAD`; their pure-Rust twins off Armv7E-M).
#[inline(always)]
fn weight_sum_words(w: &[i8]) -> i32 {
    let (words, tail) = w.as_chunks::<4>();
    let s = tail.iter().fold(0i32, |s, &v| s.wrapping_add(v as i32));
    words.iter().fold(s, |s, word| word_sum(word, s))
}

/// `sum` plus the four weights of `word` (two `SXTB16`, two `SMLAD`).
#[inline(always)]
pub(crate) fn word_sum(word: &[i8; 4], sum: i32) -> i32 {
    let ones = 0x0001_0001;
    let v = u32::from_le_bytes(word.map(|b| b as u8));
    smlad(sxtb16_ror8(v), ones, smlad(sxtb16(v), ones, sum))
}

/// `acc + sum_i x[i] * w[i]`.
#[inline(always)]
fn dot1(x: &[i8], w: &[i8], acc: i32) -> i32 {
    x.iter()
        .zip(w)
        .fold(acc, |a, (&x, &w)| a.wrapping_add(x as i32 * w as i32))
}

/// `acc[j] += sum_i x[i] * w[j][i]` for four weight rows, one byte at a time (each input byte is
/// loaded once for four multiply-accumulates).
#[inline(always)]
fn dot4(x: &[i8], w: &[&[i8]; 4], acc: &mut [i32; 4]) {
    let n = x.len();
    let (w0, w1, w2, w3) = (&w[0][..n], &w[1][..n], &w[2][..n], &w[3][..n]);
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    for ((((&x, &w0), &w1), &w2), &w3) in x.iter().zip(w0).zip(w1).zip(w2).zip(w3) {
        let x = x as i32;
        a0 = a0.wrapping_add(x * w0 as i32);
        a1 = a1.wrapping_add(x * w1 as i32);
        a2 = a2.wrapping_add(x * w2 as i32);
        a3 = a3.wrapping_add(x * w3 as i32);
    }
    *acc = [a0, a1, a2, a3];
}

#[inline(always)]
fn word(s: &[i8]) -> u32 {
    u32::from_le_bytes([s[0] as u8, s[1] as u8, s[2] as u8, s[3] as u8])
}

/// Two `SMLAD`s: `acc + sum of the four byte products of the words x (split as xe, xo) and w`.
#[inline(always)]
fn mac4(xe: u32, xo: u32, w: &[i8], acc: i32) -> i32 {
    let w = word(w);
    smlad(xo, sxtb16_ror8(w), smlad(xe, sxtb16(w), acc))
}

/// `acc[j] += sum_i x[i] * w[j][i]` for four weight rows, four bytes per step: `SXTB16` splits a
/// word into its even and odd bytes as halfwords, `SMLAD` multiplies and adds both halfword pairs.
#[inline(always)]
fn dot4_dsp(x: &[i8], w: &[&[i8]; 4], acc: &mut [i32; 4]) {
    let n = x.len();
    let (w0, w1, w2, w3) = (&w[0][..n], &w[1][..n], &w[2][..n], &w[3][..n]);
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    let (xc, c0, c1, c2, c3) = (
        x.chunks_exact(4),
        w0.chunks_exact(4),
        w1.chunks_exact(4),
        w2.chunks_exact(4),
        w3.chunks_exact(4),
    );
    let tail = (
        xc.remainder(),
        [
            c0.remainder(),
            c1.remainder(),
            c2.remainder(),
            c3.remainder(),
        ],
    );
    for ((((xq, q0), q1), q2), q3) in xc.zip(c0).zip(c1).zip(c2).zip(c3) {
        let xv = word(xq);
        let (xe, xo) = (sxtb16(xv), sxtb16_ror8(xv));
        a0 = mac4(xe, xo, q0, a0);
        a1 = mac4(xe, xo, q1, a1);
        a2 = mac4(xe, xo, q2, a2);
        a3 = mac4(xe, xo, q3, a3);
    }
    let mut a = [a0, a1, a2, a3];
    dot4(tail.0, &tail.1, &mut a);
    *acc = a;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::testgen::{problems, problems_sized, Problem};
    use super::*;
    use crate::kernels::conv2d::conv2d_s8;
    use proptest::prelude::*;
    use std::vec;

    fn check<const DSP: bool>(p: &Problem) -> Result<(), TestCaseError> {
        let q = p.quant();
        let bias = LeI32::new(&p.bias).unwrap();
        let mut want = vec![0i8; p.g.output.len()];
        conv2d_s8(&p.g, &q, &p.input, &p.filter, bias, &mut want);
        // Each run starts from outputs unlike the expected ones, so that none can be left unwritten.
        let unlike = || want.iter().map(|v| !v).collect::<std::vec::Vec<i8>>();
        let mut got = unlike();
        conv2d_s8_fast::<DSP, _>(&p.g, &q, &p.input, &p.filter, bias, &mut got);
        prop_assert_eq!(&got, &want);
        let mut got = unlike();
        conv2d_s8_segments::<DSP, _>(&p.g, &q, &p.input, &p.filter, bias, &mut got);
        prop_assert_eq!(&got, &want);
        // A wide (int16) output.
        for q in p.wide_quants() {
            let mut want = vec![0i16; p.g.output.len()];
            conv2d_s8(&p.g, &q, &p.input, &p.filter, bias, &mut want);
            let mut got = want.iter().map(|v| !v).collect::<std::vec::Vec<i16>>();
            conv2d_s8_fast::<DSP, _>(&p.g, &q, &p.input, &p.filter, bias, &mut got);
            prop_assert_eq!(&got, &want);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_config(400))]

        #[test]
        fn portable_matches_reference(p in problems(11, false)) {
            check::<false>(&p)?;
        }

        #[test]
        fn dsp_matches_reference(p in problems(11, false)) {
            check::<true>(&p)?;
        }
    }

    proptest! {
        #![proptest_config(crate::proptest_config(300))]

        /// Written exactly over its input, a pointwise kernel whose output is no wider computes
        /// what the reference computes out of place, with and without `DSP`.
        #[test]
        fn over_input_matches_reference(
            (h, w) in (1usize..7, 1usize..7),
            (in_c, out_c) in (1usize..=POINTWISE_IN, 1usize..=CONV_BLOCK),
            (per_channel, has_bias, seed) in (any::<bool>(), any::<bool>(), any::<u64>()),
        ) {
            let g = ConvGeometry {
                input: crate::kernels::Nhwc::new(1, h, w, in_c),
                output: crate::kernels::Nhwc::new(1, h, w, out_c.min(in_c)),
                kernel_h: 1,
                kernel_w: 1,
                stride_h: 1,
                stride_w: 1,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: 0,
                pad_left: 0,
            };
            prop_assert!(runs_shifted(&g));
            prop_assert_eq!(shifted_room(&g), 0);
            let p = Problem::random(g, false, per_channel, has_bias, seed);
            let (q, bias) = (p.quant(), LeI32::new(&p.bias).unwrap());
            let mut want = vec![0i8; g.output.len()];
            conv2d_s8(&g, &q, &p.input, &p.filter, bias, &mut want);
            for dsp in [false, true] {
                let mut data = p.input.clone();
                if dsp {
                    conv2d_s8_shifted::<true>(&g, &q, &mut data, 0, &p.filter, bias);
                } else {
                    conv2d_s8_shifted::<false>(&g, &q, &mut data, 0, &p.filter, bias);
                }
                prop_assert_eq!(&data[..want.len()], &want[..], "dsp {}", dsp);
            }
        }
    }

    proptest! {
        #![proptest_config(crate::proptest_config(300))]

        /// With its output before its input by the least room (and by more), the shifted kernel
        /// computes what the reference computes out of place, with and without `DSP`.
        #[test]
        fn shifted_matches_reference(
            p in problems_sized(20, CONV_BLOCK + 4, false, 9, 4),
            (extra, pointwise_layer) in (0usize..3, any::<bool>()),
        ) {
            let mut p = if pointwise_layer { pointwise(p) } else { p };
            (p.g.input.n, p.g.output.n) = (1, 1);
            p.input.truncate(p.g.input.len());
            prop_assume!(runs_shifted(&p.g));
            let g = p.g;
            let (q, bias) = (p.quant(), LeI32::new(&p.bias).unwrap());
            let mut want = vec![0i8; g.output.len()];
            conv2d_s8(&g, &q, &p.input, &p.filter, bias, &mut want);
            let shift = shifted_room(&g) + extra * 5;
            for dsp in [false, true] {
                let mut data = vec![0i8; (shift + g.input.len()).max(g.output.len())];
                data[shift..][..g.input.len()].copy_from_slice(&p.input);
                if dsp {
                    conv2d_s8_shifted::<true>(&g, &q, &mut data, shift, &p.filter, bias);
                } else {
                    conv2d_s8_shifted::<false>(&g, &q, &mut data, shift, &p.filter, bias);
                }
                prop_assert_eq!(&data[..want.len()], &want[..], "dsp {} shift {}", dsp, shift);
            }
        }
    }

    /// The room of a 3x3 same convolution is one row and one position of its input; one value
    /// less and the outputs overwrite an input value a later pass reads.
    #[test]
    fn shifted_room_is_the_least_that_works() {
        let g = |h: usize, k: usize, s: usize, pad: usize, in_c: usize, out_c: usize| {
            let out = (h + 2 * pad - k) / s + 1;
            ConvGeometry {
                input: crate::kernels::Nhwc::new(1, h, h, in_c),
                output: crate::kernels::Nhwc::new(1, out, out, out_c),
                kernel_h: k,
                kernel_w: k,
                stride_h: s,
                stride_w: s,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: pad,
                pad_left: pad,
            }
        };
        assert_eq!(shifted_room(&g(32, 3, 1, 1, 16, 16)), 33 * 16);
        // ResNet-8's strided shortcut reads ahead of what it writes; an expanding pointwise
        // layer's output ends where its input ends.
        assert_eq!(shifted_room(&g(32, 1, 2, 0, 16, 32)), 0);
        assert_eq!(shifted_room(&g(4, 1, 1, 0, 16, 32)), 15 * 16);
        assert!(!runs_shifted(&g(8, 3, 1, 1, 16, 65)));
        assert!(!runs_shifted(&g(8, 3, 1, 1, 65, 16)));

        let g = g(6, 3, 1, 1, 4, 4);
        let p = Problem::random(g, false, true, true, 5);
        let (q, bias) = (p.quant(), LeI32::new(&p.bias).unwrap());
        let mut want = vec![0i8; g.output.len()];
        conv2d_s8(&g, &q, &p.input, &p.filter, bias, &mut want);
        let room = shifted_room(&g);
        assert_eq!(room, 7 * 4);
        for (shift, right) in [(room, true), (room - 1, false)] {
            let mut data = vec![0i8; shift + g.input.len()];
            data[shift..].copy_from_slice(&p.input);
            conv2d_s8_shifted::<true>(&g, &q, &mut data, shift, &p.filter, bias);
            assert_eq!(data[..want.len()] == want[..], right, "shift {shift}");
        }
    }

    #[test]
    fn weight_sums_match_a_plain_sum() {
        let mut rng = crate::kernels::testutil::Rng::new(3);
        for len in 0..40 {
            let w = rng.i8_vec(len);
            let plain: i32 = w.iter().map(|&v| v as i32).sum();
            assert_eq!(weight_sum(&w), plain, "{w:?}");
            assert_eq!(weight_sum_words(&w), plain, "{w:?}");
        }
        assert_eq!(weight_sum_words(&[-128; 576]), -128 * 576);
        assert_eq!(weight_sum_words(&[127; 575]), 127 * 575);
    }

    #[test]
    fn over_input_needs_pointwise_and_no_wider_output() {
        let g = |k: usize, in_c, out_c| ConvGeometry {
            input: crate::kernels::Nhwc::new(1, 4, 4, in_c),
            output: crate::kernels::Nhwc::new(1, 5 - k, 5 - k, out_c),
            kernel_h: k,
            kernel_w: k,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
        };
        let over_input = |g: &ConvGeometry| runs_shifted(g) && shifted_room(g) == 0;
        assert!(over_input(&g(1, 64, 64)));
        assert!(over_input(&g(1, 64, 16)));
        assert!(!over_input(&g(1, 16, 64)));
        assert!(!over_input(&g(1, 192, 129)));
        // Unpadded, a 3x3 layer reads ahead of what it writes.
        assert!(over_input(&g(3, 32, 32)));
    }

    proptest! {
        // Stems: one to three input channels, up to 70 output channels (blocks of
        // CHANNEL_BLOCK, an odd last one), kernels up to 11 (KWS's 10x4 among them), strides,
        // dilations and padding: the small-patch path, its border and interior windows.
        #![proptest_config(crate::proptest_config(300))]

        #[test]
        fn stem_layers_match_reference(p in problems_sized(3, 70, false, 14, 11)) {
            check::<false>(&p)?;
            check::<true>(&p)?;
        }
    }

    /// `p` made pointwise (1x1 kernel, stride 1, no padding): the direct path.
    pub(crate) fn pointwise(mut p: Problem) -> Problem {
        let g = &mut p.g;
        (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) = (1, 1, 1, 1);
        (g.pad_top, g.pad_left) = (0, 0);
        (g.output.h, g.output.w) = (g.input.h, g.input.w);
        let len = g.output.c * g.input.c;
        p.filter = (0..len).map(|i| (i * 37 % 255) as i8).collect();
        p
    }

    proptest! {
        #![proptest_config(crate::proptest_config(100))]

        #[test]
        fn pointwise_matches_reference(p in problems(40, false)) {
            let p = pointwise(p);
            check::<false>(&p)?;
            check::<true>(&p)?;
        }
    }

    proptest! {
        // Channel counts past CHANNEL_BLOCK, patches on both sides of PATCH_MAX.
        #![proptest_config(crate::proptest_config(48))]

        #[test]
        #[cfg_attr(miri, ignore = "too slow under Miri: minutes per case; the other cases cover the same paths")]
        fn wide_layers_match_reference(p in problems(80, false)) {
            check::<false>(&p)?;
            check::<true>(&p)?;
        }
    }
}
