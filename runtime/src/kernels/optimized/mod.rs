//! Optimized int8 kernels, bit-exact with the reference kernels of `kernels/`, and the functions
//! that choose, by shape and target, which variant runs an operator.
//!
//! The reference kernels stay the truth: every kernel here has a property test against its
//! reference twin, and the runtime's `reference-kernels` feature makes the selection functions
//! always pick the reference (for comparisons on the boards).
//!
//! What makes them faster, with the same integer result:
//! - the input offset is folded into the accumulator's start: `sum w * (x + off) = sum w * x +
//!   off * sum w`, with the weight sums computed once per block of output channels;
//! - output channels are computed in blocks of four, with their bias, multiplier and shift read once
//!   per block rather than once per output value;
//! - taps are walked as contiguous row segments (the padded border only shortens the segments), so
//!   the inner loops have no per-tap checks;
//! - on Armv7E-M (`cfg(ferrite_dsp)`), `SXTB16` + `SMLAD` do two multiply-accumulates per instruction.
//!
//! Accumulation is done in wrapping `i32` arithmetic as in the reference kernels, so any order of
//! the same terms gives the same bits.

pub mod conv2d;
pub mod conv_loops;
pub mod depthwise_conv2d;
pub mod dsp;
pub mod elementwise;
pub mod fully_connected;
#[cfg(feature = "int16")]
pub mod int16;
pub mod pooling;
pub mod sparse;

use super::elementwise as reference_elementwise;
use super::{conv2d as reference_conv, depthwise_conv2d as reference_dw};
use super::{ConvGeometry, Int8Output, LeI32, Nhwc, OutputQuant};
use crate::ops::AddParams;
use core::ops::Range;

/// Which kernel runs a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvVariant {
    /// `kernels::conv2d::conv2d_s8` / `kernels::depthwise_conv2d::depthwise_conv2d_s8`.
    Reference,
    /// `optimized::conv2d::conv2d_s8_fast` (portable inner loop).
    Fast,
    /// `optimized::conv2d::conv2d_s8_fast` with the `SMLAD` inner loop.
    FastDsp,
    /// `optimized::depthwise_conv2d::depthwise_conv2d_s8_fast`, one channel at a time.
    DepthwiseFast,
    /// `optimized::depthwise_conv2d::depthwise_conv2d_s8_fast`, four channels with `SMLABB`/`SMLATT`.
    DepthwiseFastDsp,
}

/// Whether the convolutions take their `SMLAD` loops: on Armv7E-M, and on 64-bit hosts, where the
/// loops' Rust twins run faster than the Armv7-M loops' twins (`ferrite eval` on the ResNet
/// fixture: 1.5x the samples per second on x86-64).
const CONV_DSP: bool = cfg!(any(
    ferrite_dsp,
    target_arch = "x86_64",
    target_arch = "aarch64"
));

/// The variant [`conv2d_s8`] runs for this geometry on this target.
pub fn conv2d_variant(_g: &ConvGeometry) -> ConvVariant {
    if cfg!(feature = "reference-kernels") {
        ConvVariant::Reference
    } else if CONV_DSP {
        ConvVariant::FastDsp
    } else {
        ConvVariant::Fast
    }
}

/// The variant [`depthwise_conv2d_s8`] runs for this geometry and depth multiplier on this target.
pub fn depthwise_conv2d_variant(g: &ConvGeometry, depth_multiplier: usize) -> ConvVariant {
    const DSP: bool = cfg!(ferrite_dsp);
    if cfg!(feature = "reference-kernels")
        || depth_multiplier != 1
        || !depthwise_conv2d::fits::<DSP>(g)
    {
        ConvVariant::Reference
    } else if DSP {
        ConvVariant::DepthwiseFastDsp
    } else {
        ConvVariant::DepthwiseFast
    }
}

/// Int8 2-D convolution through the variant [`conv2d_variant`] picks (same contract and result as
/// [`reference_conv::conv2d_s8`]).
pub fn conv2d_s8<T: Int8Output>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [T],
) {
    #[cfg(target_arch = "x86_64")]
    if !cfg!(feature = "reference-kernels")
        && T::narrow(output)
            .is_some_and(|output| super::x86::conv2d_s8(g, q, input, filter, bias, output))
    {
        return;
    }
    match conv2d_variant(g) {
        ConvVariant::Fast => conv2d::conv2d_s8_fast::<false, _>(g, q, input, filter, bias, output),
        ConvVariant::FastDsp => {
            conv2d::conv2d_s8_fast::<true, _>(g, q, input, filter, bias, output)
        }
        _ => reference_conv::conv2d_s8(g, q, input, filter, bias, output),
    }
}

/// Int8 convolution over a pruned filter: the fast kernel with the `SMLAD` inner loop where
/// [`conv2d_variant`] picks it, the portable one otherwise (same contract and result as
/// [`super::sparse::conv2d_sparse_s8`]).
pub fn conv2d_sparse_s8(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &super::sparse::SparseFilter<'_>,
    bias: LeI32<'_>,
    output: &mut [i8],
) {
    match conv2d_variant(g) {
        ConvVariant::Fast => {
            sparse::conv2d_sparse_s8_fast::<false>(g, q, input, filter, bias, output)
        }
        ConvVariant::FastDsp => {
            sparse::conv2d_sparse_s8_fast::<true>(g, q, input, filter, bias, output)
        }
        _ => super::sparse::conv2d_sparse_s8(g, q, input, filter, bias, output),
    }
}

/// Where a kernel reads its input and writes its output, from element index `at` on: the
/// separate buffers of an ordinary call ([`Apart`]) or one buffer for a kernel that runs over its
/// input ([`Shared`]).
pub(super) trait Io {
    /// int8, or int16 for a wide output.
    type Out: Int8Output;
    fn input(&self, at: usize) -> &[i8];
    fn output(&mut self, at: usize) -> &mut [Self::Out];
}

/// Input and output in separate buffers.
pub(super) struct Apart<'a, 'b, T = i8> {
    pub input: &'a [i8],
    pub output: &'b mut [T],
}

impl<T: Int8Output> Io for Apart<'_, '_, T> {
    type Out = T;
    #[inline(always)]
    fn input(&self, at: usize) -> &[i8] {
        &self.input[at..]
    }
    #[inline(always)]
    fn output(&mut self, at: usize) -> &mut [T] {
        &mut self.output[at..]
    }
}

/// Input and output in one buffer, `data`: the output from its start, the input `shift` elements
/// on (0: element `i` of each at the same place).
pub(super) struct Shared<'a> {
    pub data: &'a mut [i8],
    pub shift: usize,
}

impl Io for Shared<'_> {
    type Out = i8;
    #[inline(always)]
    fn input(&self, at: usize) -> &[i8] {
        &self.data[self.shift + at..]
    }
    #[inline(always)]
    fn output(&mut self, at: usize) -> &mut [i8] {
        &mut self.data[at..]
    }
}

/// Int8 depthwise convolution through the variant [`depthwise_conv2d_variant`] picks (same contract
/// and result as [`reference_dw::depthwise_conv2d_s8`]).
pub fn depthwise_conv2d_s8<T: Int8Output>(
    g: &ConvGeometry,
    depth_multiplier: usize,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [T],
) {
    match depthwise_conv2d_variant(g, depth_multiplier) {
        ConvVariant::DepthwiseFast => depthwise_conv2d::depthwise_conv2d_s8_fast::<false, _>(
            g, q, input, filter, bias, output,
        ),
        ConvVariant::DepthwiseFastDsp => {
            depthwise_conv2d::depthwise_conv2d_s8_fast::<true, _>(g, q, input, filter, bias, output)
        }
        _ => reference_dw::depthwise_conv2d_s8(g, depth_multiplier, q, input, filter, bias, output),
    }
}

/// Int8 convolution with its output `shift` elements before its input in one buffer (`data`), for
/// a geometry that [`conv2d::runs_shifted`] and a shift of at least [`conv2d::shifted_room`], on
/// every target: the patch or pointwise kernel's passes, positions in order; the `SMLAD` loops
/// where [`conv2d_variant`] picks them.
pub fn conv2d_s8_shifted(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    data: &mut [i8],
    shift: usize,
    filter: &[i8],
    bias: LeI32<'_>,
) {
    conv2d::conv2d_s8_shifted::<CONV_DSP>(g, q, data, shift, filter, bias)
}

/// Int8 depthwise convolution with its output written over its input (`data`), for a geometry that
/// [`depthwise_conv2d::runs_over_input`] on every target: the ring kernel, with `SXTB16` pairs on
/// Armv7E-M (the reference kernel, which reads inputs after it writes outputs, cannot run so).
pub fn depthwise_conv2d_s8_over_input(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    data: &mut [i8],
    filter: &[i8],
    bias: LeI32<'_>,
) {
    depthwise_conv2d::depthwise_conv2d_s8_over_input::<{ cfg!(ferrite_dsp) }>(
        g, q, data, filter, bias,
    )
}

/// Int8 FullyConnected: the x86-64 SIMD path where it applies, the `SMLAD` kernel on Armv7E-M,
/// the portable fast kernel on Armv7-M, else the reference (same contract and result as
/// [`super::fully_connected::fully_connected_s8`]).
#[allow(clippy::too_many_arguments)]
pub fn fully_connected_s8<T: Int8Output>(
    batches: usize,
    in_features: usize,
    out_features: usize,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [T],
) {
    #[cfg(target_arch = "x86_64")]
    if !cfg!(feature = "reference-kernels")
        && T::narrow(output).is_some_and(|output| {
            super::x86::fully_connected_s8(
                batches,
                in_features,
                out_features,
                q,
                input,
                filter,
                bias,
                output,
            )
        })
    {
        return;
    }
    // A wide output on a 64-bit host: the portable fast kernel (the SIMD path is int8's).
    let host_wide =
        T::narrow(output).is_none() && cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));
    if !cfg!(feature = "reference-kernels") && (cfg!(ferrite_armv7m) || host_wide) {
        let fast = if cfg!(ferrite_dsp) && fully_connected::fits_dsp(q) {
            fully_connected::fully_connected_s8_fast::<true, T>
        } else if !cfg!(ferrite_dsp) {
            fully_connected::fully_connected_s8_fast::<false, T>
        } else {
            super::fully_connected::fully_connected_s8
        };
        fast(
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
    super::fully_connected::fully_connected_s8(
        batches,
        in_features,
        out_features,
        q,
        input,
        filter,
        bias,
        output,
    );
}

/// int16x8 2-D convolution: the `SMLAD` kernel on Armv7E-M, the reference elsewhere (same contract
/// and result as [`crate::kernels::int16::conv::conv2d_s16`]).
#[cfg(feature = "int16")]
pub fn conv2d_s16(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i16],
    filter: &[i8],
    bias: super::LeI64<'_>,
    output: &mut [i16],
) {
    if cfg!(all(ferrite_dsp, not(feature = "reference-kernels"))) {
        int16::conv2d_s16_dsp(g, q, input, filter, bias, output);
    } else {
        super::int16::conv::conv2d_s16(g, q, input, filter, bias, output);
    }
}

/// int16x8 FullyConnected: the `SMLAD` kernel on Armv7E-M for rows of at least
/// [`int16::FC_MIN_FEATURES`] features, the reference otherwise (same contract and result as
/// [`crate::kernels::int16::fully_connected::fully_connected_s16`]).
#[cfg(feature = "int16")]
#[allow(clippy::too_many_arguments)]
pub fn fully_connected_s16(
    batches: usize,
    in_features: usize,
    out_features: usize,
    q: &OutputQuant<'_>,
    input: &[i16],
    filter: &[i8],
    bias: super::LeI64<'_>,
    output: &mut [i16],
) {
    let dsp = cfg!(all(ferrite_dsp, not(feature = "reference-kernels")));
    let kernel = if dsp && in_features >= int16::FC_MIN_FEATURES {
        int16::fully_connected_s16_dsp
    } else {
        super::int16::fully_connected::fully_connected_s16
    };
    kernel(
        batches,
        in_features,
        out_features,
        q,
        input,
        filter,
        bias,
        output,
    );
}

/// Int8 Add: the table kernel when both inputs have the output's shape, with the tables kept in
/// `tables` (made at the first call, reused by the calls of the same Add's later bands), else the
/// reference (same contract and result as [`reference_elementwise::add_s8`]).
#[allow(clippy::too_many_arguments)]
pub fn add_s8(
    p: &AddParams,
    tables: &mut Option<elementwise::AddTables>,
    a_shape: Nhwc,
    a: &[i8],
    b_shape: Nhwc,
    b: &[i8],
    out_shape: Nhwc,
    out: &mut [i8],
) {
    if !cfg!(feature = "reference-kernels") && a_shape == out_shape && b_shape == out_shape {
        let tables = tables.get_or_insert_with(|| elementwise::AddTables::new(p));
        elementwise::add_s8_same_shape(p, tables, a, b, out);
    } else {
        reference_elementwise::add_s8(p, a_shape, a, b_shape, b, out_shape, out);
    }
}

/// Int8 Sub (same contract and result as [`crate::kernels::elementwise::sub_s8`]): without
/// broadcasting, Add's kernels on tables whose second input is negated, made once into `tables`.
#[allow(clippy::too_many_arguments)]
pub fn sub_s8(
    p: &AddParams,
    tables: &mut Option<elementwise::AddTables>,
    a_shape: Nhwc,
    a: &[i8],
    b_shape: Nhwc,
    b: &[i8],
    out_shape: Nhwc,
    out: &mut [i8],
) {
    if !cfg!(feature = "reference-kernels") && a_shape == out_shape && b_shape == out_shape {
        let tables = tables.get_or_insert_with(|| elementwise::AddTables::subtracting(p));
        elementwise::add_s8_same_shape(p, tables, a, b, out);
    } else {
        reference_elementwise::sub_s8(p, a_shape, a, b_shape, b, out_shape, out);
    }
}

/// Int8 average pooling (same contract and result as
/// [`crate::kernels::pooling::average_pool2d_s8`]).
pub fn average_pool2d_s8(
    g: &ConvGeometry,
    act_min: i32,
    act_max: i32,
    input: &[i8],
    output: &mut [i8],
) {
    if cfg!(feature = "reference-kernels") {
        super::pooling::average_pool2d_s8(g, act_min, act_max, input, output);
    } else {
        pooling::average_pool2d_s8_fast::<{ cfg!(ferrite_dsp) }>(
            g, act_min, act_max, input, output,
        );
    }
}

/// Int8 max pooling (same contract and result as [`crate::kernels::pooling::max_pool2d_s8`]).
pub fn max_pool2d_s8(
    g: &ConvGeometry,
    act_min: i32,
    act_max: i32,
    input: &[i8],
    output: &mut [i8],
) {
    if cfg!(feature = "reference-kernels") {
        super::pooling::max_pool2d_s8(g, act_min, act_max, input, output);
    } else {
        pooling::max_pool2d_s8_fast::<{ cfg!(ferrite_dsp) }>(g, act_min, act_max, input, output);
    }
}

/// Kernel taps `t` of one spatial dimension whose input coordinate
/// `out * stride + t * dilation - pad` lies in `0..len`: a contiguous range, empty when none does.
#[inline(always)]
pub(crate) fn tap_range(
    out: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    k: usize,
    len: usize,
) -> Range<usize> {
    let base = out * stride;
    // First tap with base + t * d >= pad; first tap with base + t * d >= len + pad (excluded).
    let (lo, hi) = if dilation == 1 {
        (pad.saturating_sub(base), (len + pad).saturating_sub(base))
    } else {
        (
            pad.saturating_sub(base).div_ceil(dilation),
            (len + pad).saturating_sub(base).div_ceil(dilation),
        )
    };
    let hi = hi.min(k);
    lo.min(hi)..hi
}

/// Output quantization of one output channel, read and prepared once per block of channels.
/// `repr(C)`: the assembly of `conv_loops::requantize_lanes` reads the first three words.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct ChannelQuant {
    multiplier: i32,
    /// `2^(right - 2)` with the short form.
    high_round: i32,
    /// `right - 1`, the final shift of the short form (see [`Self::scale`]); the low byte of the
    /// third word, which is all that `ASR` by register reads.
    high_shift: u8,
    /// `max(shift, 0) & 31`.
    left: u8,
    /// `max(-shift, 0) & 31`.
    right: u8,
    /// `left == 0 && right >= 2 && multiplier > 0`: the short form applies (every real layer:
    /// factors below 1/4).
    short: bool,
}

impl ChannelQuant {
    #[inline(always)]
    pub(crate) fn new(q: &OutputQuant<'_>, channel: usize) -> Self {
        Self::from_parts(
            q.multiplier.get_or_first(channel),
            q.shift.get_or_first(channel),
        )
    }

    /// The factor `multiplier * 2^(shift - 31)`.
    #[inline(always)]
    pub(crate) fn from_parts(multiplier: i32, shift: i32) -> Self {
        let left = (shift.max(0) & 31) as u8;
        let right = (shift.min(0).wrapping_neg() & 31) as u8;
        let short = left == 0 && right >= 2 && multiplier > 0;
        Self {
            multiplier,
            left,
            right,
            high_shift: right.saturating_sub(1),
            short,
            high_round: if short { 1 << (right - 2) } else { 0 },
        }
    }

    /// Whether the short form of [`Self::scale`] applies.
    #[inline(always)]
    pub(crate) fn is_short(self) -> bool {
        self.short
    }

    /// The short form with an int8 output offset `zp` folded into its rounding term:
    /// `floor((hi + 2^(r-2) + zp * 2^(r-1)) / 2^(r-1))` is the scaled value plus `zp`, and for
    /// `r <= 22` that sum stays below `2^30 + 2^29` in magnitude (`|hi| <= 2^30`). Only for
    /// [`conv_loops::requantize_lanes_folded`]: [`Self::scale`] of the result adds `zp`. `None` for
    /// other channels.
    #[inline(always)]
    pub(crate) fn with_offset(self, zp: i32) -> Option<Self> {
        (self.short && self.right <= 22 && (-128..=127).contains(&zp)).then(|| Self {
            high_round: self.high_round + (zp << (self.right - 1)),
            ..self
        })
    }

    /// Whether `q`'s activation clamp lies within int8, as it does for every int8 output the loader
    /// accepts: the outputs of [`Self::with_offset`]'s folded form are clamped to it alone.
    #[inline(always)]
    pub(crate) fn int8_clamp(q: &OutputQuant<'_>) -> bool {
        -128 <= q.act_min && q.act_min <= q.act_max && q.act_max <= 127
    }

    /// The short form's `(multiplier, 2^(right - 2), right - 1)` (the assembly reads them itself).
    #[cfg_attr(ferrite_armv7m, allow(dead_code))]
    #[inline(always)]
    pub(crate) fn short_parts(self) -> (i32, i32, u32) {
        (self.multiplier, self.high_round, self.high_shift as u32)
    }

    /// `MultiplyByQuantizedMultiplier(acc, multiplier, shift)`, bit-exact with
    /// [`crate::quant::multiply_by_quantized_multiplier`] for every input, in fewer instructions.
    ///
    /// With `p = (acc << left) * multiplier` (64-bit), the doubling high multiply is
    /// `h = floor((p + 2^30) / 2^31)` (its "nudge, then truncate" rounds the same way), saturated
    /// in the one case `p = 2^62`. Dividing `h` by `2^r` to nearest, ties away from zero, is
    /// `floor((h + 2^(r-1) - [h < 0]) / 2^r)`; as `h < 0` only differs from `p < 0` where
    /// `h = 0` (which gives 0 either way) and a floor of a floor is one floor, the two roundings
    /// are one: `floor((q + 2^(30+r)) / 2^(31+r))` with `q = p + 2^30` for `p >= 0`, `p - 2^30`
    /// below (no overflow: `|p| <= 2^62`, and `p = 2^62` gives the saturated result).
    ///
    /// Short form (`left = 0`, `r >= 2`): that is `floor((hi + 2^(r-2)) / 2^(r-1))` with `hi` the
    /// high word of `q` (the low word cannot carry into a quotient by a power of two of at least
    /// 2). Otherwise the same sum is shifted in 64 bits.
    #[inline(always)]
    pub(crate) fn scale(self, acc: i32) -> i32 {
        if self.short {
            let p = acc as i64 * self.multiplier as i64;
            let q = p + ((1i64 << 30) ^ ((p >> 63) << 31));
            (((q >> 32) as i32) + self.high_round) >> self.high_shift
        } else {
            self.scale_long(acc)
        }
    }

    /// [`Self::scale`] for any shift.
    #[inline(always)]
    fn scale_long(self, acc: i32) -> i32 {
        let p = acc.wrapping_shl(self.left as u32) as i64 * self.multiplier as i64;
        let q = p + ((1i64 << 30) ^ ((p >> 63) << 31));
        if self.right == 0 {
            // floor((p + 2^30) / 2^31), saturated.
            ((p + (1 << 30)) >> 31).min(i32::MAX as i64) as i32
        } else {
            ((q + (1i64 << (30 + self.right))) >> (31 + self.right)) as i32
        }
    }

    /// Same arithmetic as `kernels::conv2d::requantize_acc`.
    #[inline(always)]
    pub(crate) fn requantize(self, q: &OutputQuant<'_>, acc: i32) -> i8 {
        self.requantize_to(q, acc)
    }

    /// [`Self::requantize`] into an int8 or wide (int16) output.
    #[inline(always)]
    pub(crate) fn requantize_to<T: Int8Output>(self, q: &OutputQuant<'_>, acc: i32) -> T {
        T::from_clamped(
            self.scale(acc)
                .saturating_add(q.output_offset)
                .max(q.act_min)
                .min(q.act_max),
        )
    }
}

/// [`ChannelQuant::requantize`] for the common case of a channel whose shift is a right shift of 1
/// to 21 bits and whose clamp tops out at 127: three fewer operations per value, with the
/// rounding term and the output offset folded into one constant.
#[derive(Clone, Copy)]
pub(crate) struct RightShiftQuant {
    pub(crate) multiplier: i32,
    pub(crate) right: u32,
    /// `2^(right-1) + output_offset * 2^right`.
    pub(crate) round: i32,
    pub(crate) act_min: i32,
    channel: ChannelQuant,
}

impl RightShiftQuant {
    /// `None` when the channel is not of this form.
    #[inline(always)]
    pub(crate) fn new(cq: ChannelQuant, q: &OutputQuant<'_>) -> Option<Self> {
        Self::from_parts(cq, q.output_offset, q.act_min, q.act_max)
    }

    /// [`Self::new`] from the output offset and clamp.
    #[inline(always)]
    pub(crate) fn from_parts(
        cq: ChannelQuant,
        output_offset: i32,
        act_min: i32,
        act_max: i32,
    ) -> Option<Self> {
        let right = cq.right as u32;
        let form = cq.left == 0
            && (1..=21).contains(&right)
            && act_max == 127
            && (-128..=127).contains(&act_min)
            && (-128..=127).contains(&output_offset);
        form.then(|| Self {
            multiplier: cq.multiplier,
            right,
            round: (1 << (right - 1)) + (output_offset << right),
            act_min,
            channel: cq,
        })
    }

    /// [`Self::requantize`] of `acc` given `acc2 = 2 acc` (which fits in 32 bits).
    #[inline(always)]
    pub(crate) fn requantize_doubled(self, acc2: i32) -> i8 {
        Self::requantize_doubled_parts(self.multiplier, self.right, self.round, self.act_min, acc2)
    }

    /// [`Self::requantize_doubled`] from the fields it reads.
    #[inline(always)]
    pub(crate) fn requantize_doubled_parts(
        multiplier: i32,
        right: u32,
        round: i32,
        act_min: i32,
        acc2: i32,
    ) -> i8 {
        let high = dsp::smmulr(acc2, multiplier);
        let v = (high + round + (high >> 31)) >> right;
        v.max(act_min).min(127) as i8
    }

    /// Same result as `channel.requantize(q, acc)`. With `2 acc` in 32 bits, `high` is the
    /// doubling high multiply (|high| <= 2^30); adding `round` and `high >> 31` (-1 for a negative
    /// value) then shifting is the rounding divide plus the output offset, without overflow.
    #[inline(always)]
    pub(crate) fn requantize(self, q: &OutputQuant<'_>, acc: i32) -> i8 {
        match acc.checked_add(acc) {
            Some(acc2) => self.requantize_doubled(acc2),
            None => self.channel.requantize(q, acc),
        }
    }
}

#[cfg(test)]
pub(crate) mod testgen {
    //! Random convolution problems for the property tests of the optimized kernels.
    use super::super::{ConvGeometry, Nhwc};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// A random convolution problem: geometry, quantization and tensors.
    #[derive(Clone, Debug)]
    pub struct Problem {
        pub g: ConvGeometry,
        pub input_offset: i32,
        pub output_offset: i32,
        pub act_min: i32,
        pub act_max: i32,
        pub multiplier: Vec<u8>,
        pub shift: Vec<u8>,
        pub bias: Vec<u8>,
        pub input: Vec<i8>,
        pub filter: Vec<i8>,
    }

    fn le(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// One dimension: (input length, kernel, stride, dilation, pad before); the output length is
    /// what any padding after (0..=kernel span) gives.
    fn dim(
        max_len: usize,
        max_k: usize,
    ) -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize)> {
        (1..=max_len, 1..=max_k, 1..=3usize, 1..=2usize).prop_flat_map(|(len, k, s, d)| {
            let span = (k - 1) * d + 1;
            (0..span, 0..span).prop_filter_map("empty output", move |(before, after)| {
                let padded = len + before + after;
                (padded >= span).then(|| (len, k, s, d, before, (padded - span) / s + 1))
            })
        })
    }

    /// Problems with `in_c` input channels and `out_c_of(in_c)` output channels; `filter_len`
    /// gives the filter's length from (kh, kw, in_c, out_c).
    pub fn problems(max_c: usize, depthwise: bool) -> impl Strategy<Value = Problem> {
        problems_sized(max_c, max_c, depthwise, 9, 4)
    }

    /// [`problems`] with up to `max_out_c` output channels (not depthwise), inputs up to `max_len`
    /// and kernels up to `max_k` along each dimension.
    pub fn problems_sized(
        max_c: usize,
        max_out_c: usize,
        depthwise: bool,
        max_len: usize,
        max_k: usize,
    ) -> impl Strategy<Value = Problem> {
        (
            dim(max_len, max_k),
            dim(max_len, max_k),
            1..=2usize,
            1..=max_c,
            1..=max_out_c,
            any::<bool>(),
            any::<bool>(),
            any::<u64>(),
        )
            .prop_map(move |(h, w, n, in_c, out_c, per_channel, has_bias, seed)| {
                let out_c = if depthwise { in_c } else { out_c };
                let g = ConvGeometry {
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
                };
                Problem::random(g, depthwise, per_channel, has_bias, seed)
            })
    }

    impl Problem {
        /// Random quantization (per channel or per tensor), bias (or none), clamp, input and
        /// filter for `g`, drawn from `seed`.
        pub fn random(
            g: ConvGeometry,
            depthwise: bool,
            per_channel: bool,
            has_bias: bool,
            seed: u64,
        ) -> Problem {
            let (in_c, out_c) = (g.input.c, g.output.c);
            let mut rng = super::super::testutil::Rng::new(seed);
            let filter_len = if depthwise {
                g.kernel_h * g.kernel_w * out_c
            } else {
                out_c * g.kernel_h * g.kernel_w * in_c
            };
            let channels = if per_channel { out_c } else { 1 };
            let multiplier: Vec<i32> = (0..channels)
                .map(|_| rng.range(1 << 30, i32::MAX))
                .collect();
            let shift: Vec<i32> = (0..channels).map(|_| rng.range(-12, 2)).collect();
            let bias: Vec<i32> = if has_bias {
                (0..out_c).map(|_| rng.range(-100_000, 100_000)).collect()
            } else {
                Vec::new()
            };
            let a = rng.range(-128, 127);
            let b = rng.range(-128, 127);
            Problem {
                g,
                input_offset: -rng.range(-128, 127),
                output_offset: rng.range(-128, 127),
                act_min: a.min(b),
                act_max: a.max(b),
                multiplier: le(&multiplier),
                shift: le(&shift),
                bias: le(&bias),
                input: rng.i8_vec(g.input.len()),
                // The format's weights are symmetric int8 (-127..=127), but any byte must work.
                filter: rng.i8_vec(filter_len),
            }
        }

        pub fn quant(&self) -> super::OutputQuant<'_> {
            super::OutputQuant {
                input_offset: self.input_offset,
                output_offset: self.output_offset,
                act_min: self.act_min,
                act_max: self.act_max,
                multiplier: super::LeI32::new(&self.multiplier).unwrap(),
                shift: super::LeI32::new(&self.shift).unwrap(),
            }
        }

        /// The quantizations of a wide (int16) output of the same layer: zero point 0, the
        /// problem's clamp scaled into int16's range, and its int8 clamp as it is.
        pub fn wide_quants(&self) -> [super::OutputQuant<'_>; 2] {
            let q = self.quant();
            let scaled = |v: i32| (v * 200).clamp(-32768, 32767);
            [
                super::OutputQuant {
                    output_offset: 0,
                    act_min: scaled(self.act_min),
                    act_max: if self.act_max == 127 {
                        32767
                    } else {
                        scaled(self.act_max)
                    },
                    ..q
                },
                super::OutputQuant {
                    output_offset: 0,
                    ..q
                },
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `ChannelQuant::scale` of a one-channel quantization.
    fn scale_of(acc: i32, multiplier: i32, shift: i32) -> i32 {
        let (m, s) = (multiplier.to_le_bytes(), shift.to_le_bytes());
        let q = OutputQuant {
            input_offset: 0,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
            multiplier: LeI32::new(&m).unwrap(),
            shift: LeI32::new(&s).unwrap(),
        };
        ChannelQuant::new(&q, 0).scale(acc)
    }

    /// TFLite's `MultiplyByQuantizedMultiplier`.
    fn want_of(acc: i32, multiplier: i32, shift: i32) -> i32 {
        crate::quant::multiply_by_quantized_multiplier(acc, multiplier, shift)
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn tap_range_is_the_set_of_taps_inside_the_input(
            out in 0..12usize, stride in 1..4usize, pad in 0..6usize, dilation in 1..4usize,
            k in 1..6usize, len in 1..10usize,
        ) {
            let want: std::vec::Vec<usize> = (0..k)
                .filter(|&t| reference_conv::input_coord(out, stride, t, dilation, pad, len).is_some())
                .collect();
            let got: std::vec::Vec<usize> = tap_range(out, stride, pad, dilation, k, len).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn channel_scale_is_multiply_by_quantized_multiplier(
            acc: i32, multiplier: i32, shift in -40..40i32,
        ) {
            prop_assert_eq!(scale_of(acc, multiplier, shift), want_of(acc, multiplier, shift));
        }

        #[test]
        fn channel_scale_of_accumulator_sized_values(
            acc in -(1i32 << 30)..(1i32 << 30), multiplier: i32, shift in -33..33i32,
            small in any::<bool>(),
        ) {
            let acc = if small { acc >> 10 } else { acc };
            prop_assert_eq!(scale_of(acc, multiplier, shift), want_of(acc, multiplier, shift));
        }

        #[test]
        fn channel_scale_rounds_ties_like_the_reference(
            acc in -70_000..70_000i32,
            multiplier in prop::sample::select(std::vec![1 << 30, 3 << 29, -(1 << 30), i32::MIN]),
            shift in -20..3i32,
        ) {
            // Power-of-two factors make exact ties at every rounding step.
            prop_assert_eq!(scale_of(acc, multiplier, shift), want_of(acc, multiplier, shift));
        }

        #[test]
        fn right_shift_quant_is_channel_requantize(
            acc in -(1i32 << 30)..(1i32 << 30), wide in any::<bool>(), multiplier: i32,
            shift in -23..2i32, output_offset in -128..128i32, act_min in -128..128i32,
        ) {
            let acc = if wide { acc.wrapping_mul(4) } else { acc >> 8 };
            let (m, s) = (multiplier.to_le_bytes(), shift.to_le_bytes());
            let q = OutputQuant {
                input_offset: 0,
                output_offset,
                act_min,
                act_max: 127,
                multiplier: LeI32::new(&m).unwrap(),
                shift: LeI32::new(&s).unwrap(),
            };
            let cq = ChannelQuant::new(&q, 0);
            let fast = RightShiftQuant::new(cq, &q);
            prop_assert_eq!(fast.is_some(), (-21..=-1).contains(&shift));
            if let Some(fast) = fast {
                prop_assert_eq!(fast.requantize(&q, acc), cq.requantize(&q, acc));
            }
        }

        #[test]
        fn channel_scale_edge_values(
            acc in prop::sample::select(std::vec![i32::MIN, i32::MIN + 1, -(1 << 30) - 1, -(1 << 30), -1, 0, 1, (1 << 30) - 1, 1 << 30, i32::MAX]),
            multiplier in prop::sample::select(std::vec![i32::MIN, -1, 0, 1, 1 << 30, i32::MAX]),
            shift in -33..33i32,
        ) {
            prop_assert_eq!(scale_of(acc, multiplier, shift), want_of(acc, multiplier, shift));
        }
    }
}
