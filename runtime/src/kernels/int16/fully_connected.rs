//! int16x8 fully connected (TFLite `reference_integer_ops::FullyConnected` and
//! `FullyConnectedPerChannel` with int16 input, int8 weights, int64 bias).

use super::requantize_acc64;
use crate::kernels::{LeI64, OutputQuant};

/// `output[b, o] = requantize(sum_i input[b, i] * filter[o, i] + bias[o])`, filter `[out, in]`.
#[allow(clippy::too_many_arguments)]
pub fn fully_connected_s16(
    batches: usize,
    in_features: usize,
    out_features: usize,
    q: &OutputQuant<'_>,
    input: &[i16],
    filter: &[i8],
    bias: LeI64<'_>,
    output: &mut [i16],
) {
    for b in 0..batches {
        let row = &input[b * in_features..][..in_features];
        for o in 0..out_features {
            let weights = &filter[o * in_features..][..in_features];
            let mut acc: i64 = 0;
            for (&x, &w) in row.iter().zip(weights) {
                acc += x as i64 * w as i64;
            }
            if !bias.is_empty() {
                acc += bias.get(o);
            }
            output[b * out_features + o] = requantize_acc64(q, acc, o);
        }
    }
}
