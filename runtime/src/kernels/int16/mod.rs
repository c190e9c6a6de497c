//! int16x8 reference kernels: int16 activations (zero point 0), int8 weights, int64 biases, with
//! TFLite Micro's 16x8 arithmetic (64-bit accumulators, the 64-bit `MultiplyByQuantizedMultiplier`).
//!
//! One file per kernel family, as the int8 kernels beside this module; the same geometry and
//! requantization structs ([`super::ConvGeometry`], [`super::OutputQuant`]), zero points 0.

pub mod activation;
pub mod conv;
pub mod elementwise;
pub mod fully_connected;
pub mod mean;
pub mod pooling;
pub mod sigmoid;
pub mod softmax;
mod softmax_tables;
#[cfg(test)]
mod softmax_tables_gen;

use super::OutputQuant;
use crate::quant::multiply_by_quantized_multiplier_64;

/// Turns a 64-bit accumulator of output channel `channel` into an int16 output value: TFLite's
/// `MultiplyByQuantizedMultiplier(int64 acc, multiplier[c], shift[c])`, then the clamp (the output
/// zero point is 0). A single multiplier/shift value applies to every channel.
#[inline(always)]
pub(crate) fn requantize_acc64(q: &OutputQuant<'_>, acc: i64, channel: usize) -> i16 {
    let scaled = multiply_by_quantized_multiplier_64(
        acc,
        q.multiplier.get_or_first(channel),
        q.shift.get_or_first(channel),
    );
    scaled.max(q.act_min).min(q.act_max) as i16
}
