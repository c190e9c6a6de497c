//! Int8 fully connected layer (TFLite `reference_integer_ops::FullyConnected`, per-tensor or
//! per-channel).

use super::conv2d::requantize_acc;
use super::{Int8Output, LeI32, OutputQuant};

/// Int8 fully connected layer: `output[b, o] = requant(sum_i filter[o, i] * (input[b, i] + input_offset) + bias[o])`.
///
/// * `input`: `[batches, in_features]`.
/// * `filter`: `[out_features, in_features]`, symmetric (zero point 0).
/// * `bias`: one `i32` per output feature, or empty.
/// * `q.multiplier`/`q.shift`: one value (per tensor) or one per output feature.
/// * `output`: `[batches, out_features]`, int8, or int16 for a wide output.
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
    for b in 0..batches {
        let row = &input[b * in_features..][..in_features];
        for o in 0..out_features {
            let weights = &filter[o * in_features..][..in_features];
            // TFLite: acc += filter * (input + input_offset), filter offset 0.
            let mut acc: i32 = 0;
            for (&x, &w) in row.iter().zip(weights) {
                acc = acc.wrapping_add(w as i32 * (x as i32 + q.input_offset));
            }
            if !bias.is_empty() {
                acc = acc.wrapping_add(bias.get(o));
            }
            output[b * out_features + o] = requantize_acc(q, acc, o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Activation;
    use crate::kernels::conv2d::tests::{
        act_range, le, multipliers, output_scale_for, quant_act, random_act, random_bias,
        weight_scales,
    };
    use crate::kernels::testutil::{assert_close, dequant, Rng};
    use std::vec;
    use std::vec::Vec;

    fn run_fc(
        batches: usize,
        inf: usize,
        outf: usize,
        per_channel: bool,
        has_bias: bool,
        act: Activation,
        seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let input = rng.i8_vec(batches * inf);
        let filter: Vec<i8> = (0..outf * inf)
            .map(|_| rng.range(-127, 127) as i8)
            .collect();
        let in_scale = rng.f32(0.01, 0.1);
        let in_zp = rng.range(-128, 127);
        let w_scales = weight_scales(&mut rng, outf, per_channel);
        let w_scale = |o: usize| w_scales[if per_channel { o } else { 0 }];
        let bias = random_bias(&mut rng, outf, has_bias);

        // Float reference: accumulate each input feature's contribution into every output
        // (outer loop over inputs rather than outputs).
        let mut reals = vec![0.0f64; batches * outf];
        for b in 0..batches {
            for (o, r) in reals[b * outf..][..outf].iter_mut().enumerate() {
                if let Some(&v) = bias.get(o) {
                    *r = v as f64 * in_scale as f64 * w_scale(o) as f64;
                }
            }
            for i in 0..inf {
                let x = dequant(input[b * inf + i], in_scale, in_zp);
                for o in 0..outf {
                    let w = dequant(filter[o * inf + i], w_scale(o), 0);
                    reals[b * outf + o] += x * w;
                }
            }
        }
        let (out_scale, out_zp) = output_scale_for(&reals, &mut rng);
        let want: Vec<i8> = reals
            .iter()
            .map(|&x| quant_act(x, act, out_scale, out_zp))
            .collect();

        let (m, s) = multipliers(in_scale, &w_scales, out_scale);
        let (act_min, act_max) = act_range(act, out_scale, out_zp);
        let q = OutputQuant {
            input_offset: -in_zp,
            output_offset: out_zp,
            act_min,
            act_max,
            multiplier: LeI32::new(&m).unwrap(),
            shift: LeI32::new(&s).unwrap(),
        };
        let bias_bytes = le(&bias);
        let mut got = vec![0i8; batches * outf];
        let bias = LeI32::new(&bias_bytes).unwrap();
        fully_connected_s8(batches, inf, outf, &q, &input, &filter, bias, &mut got);
        assert_close(&got, &want, 1);
    }

    #[test]
    fn hand_computed_per_channel() {
        // Input zero point -1 (offset +1): rows become [2, 3, 4] and [0, 1, 2].
        let input = [1i8, 2, 3, -1, 0, 1];
        let filter = [1i8, 0, -1, 2, 2, 2];
        let bias = le(&[5, -5]);
        // Channel 0 factor 1 (2^30, shift 1); channel 1 factor 0.5 (2^30, shift 0).
        let (m, s) = (le(&[1 << 30, 1 << 30]), le(&[1, 0]));
        let q = OutputQuant {
            input_offset: 1,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
            multiplier: LeI32::new(&m).unwrap(),
            shift: LeI32::new(&s).unwrap(),
        };
        let mut out = [0i8; 4];
        let bias = LeI32::new(&bias).unwrap();
        fully_connected_s8(2, 3, 2, &q, &input, &filter, bias, &mut out);
        // Batch 0: -2 + 5 = 3, (18 - 5) * 0.5 = 6.5 -> 7. Batch 1: -2 + 5 = 3, (6 - 5) * 0.5 -> 1.
        assert_eq!(out, [3, 7, 3, 1]);
    }

    #[test]
    fn per_tensor_batch_2_relu6() {
        run_fc(2, 17, 5, false, true, Activation::Relu6, 21);
    }

    #[test]
    fn per_channel_no_bias_relu() {
        run_fc(1, 64, 10, true, false, Activation::Relu, 22);
    }

    #[test]
    fn random_cases_match_float_reference() {
        let mut rng = Rng::new(0xFC);
        for i in (0..200).take(crate::MIRI_CASES) {
            let batches = rng.range(1, 3) as usize;
            let inf = rng.range(1, 40) as usize;
            let outf = rng.range(1, 12) as usize;
            let per_channel = rng.range(0, 1) == 1;
            let has_bias = rng.range(0, 3) != 0;
            let act = random_act(&mut rng);
            run_fc(batches, inf, outf, per_channel, has_bias, act, 3000 + i);
        }
    }
}
