//! LOG_SOFTMAX over the last axis, int8, in integers: `y = x - max - ln(sum(exp(x - max)))`.
//!
//! Per row, each input's distance below the row's maximum, `k = max - x` (0 to 255), reads
//! `exp(-input_scale * k)` in Q20 from a table of 256 entries the quantizer fills; the row's sum of
//! them is at least 2^20 (the maximum's own entry). `ln(sum / 2^20)` is taken in Q16 from the sum's
//! leading bit and a 128-interval table of `ln(1 + i / 128)`, linearly interpolated (within 2^-15
//! of the true value). Each output is then `zero_point - round((k * input_scale + ln) / output_scale)`,
//! summed in Q32 from both factors' Q31 mantissas and shifts: the same bytes on every target.

use serde::{Deserialize, Serialize};

use crate::format::Operand;
use crate::interpreter::{Views, CORRUPT};
use crate::quant::Requant;
use crate::validate::Check;
use crate::Error;

/// Bytes of the exponential table: 256 little-endian `u32` in Q20.
pub const EXP_TABLE_BYTES: usize = 256 * 4;
/// `exp(0)` in the table's Q20.
pub const EXP_ONE: u32 = 1 << 20;
/// The largest shift of either factor (both below `2^15`): the Q32 terms stay below `2^62`.
pub const MAX_SHIFT: i32 = 15;

/// Log-softmax over the last axis, int8 only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogSoftmax<'a> {
    /// Input, int8; the function runs over its last dimension.
    pub input: Operand,
    /// Output, int8, of the input's shape.
    pub output: Operand,
    /// `round(2^20 * exp(-input_scale * k))` for `k` in `0..256`, little-endian `u32`: `2^20`
    /// first, never increasing.
    pub exp_table: &'a [u8],
    /// The output's zero point and the factors.
    pub quant: LogSoftmaxParams,
}

crate::format::decode_fields!(LogSoftmax<'a> {
    input,
    output,
    exp_table,
    quant
});

super::operand_fields!(LogSoftmax<'_>: input => output);

/// The output's zero point and the two factors, precomputed (shifts at most [`MAX_SHIFT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LogSoftmaxParams {
    /// Zero point of the output.
    pub output_zero_point: i32,
    /// `input_scale / output_scale`.
    pub diff: Requant,
    /// `1 / output_scale`.
    pub log: Requant,
}

crate::format::decode_fields!(LogSoftmaxParams {
    output_zero_point,
    diff,
    log
});

/// `x * factor` in Q32, for `x` in Q`frac_bits` below `2^23` (the factor's shift at most
/// [`MAX_SHIFT`], `frac_bits` at least `MAX_SHIFT + 1` when `x` is that large).
#[inline(always)]
fn q32(x: i64, factor: Requant, frac_bits: i32) -> i64 {
    let product = x * factor.multiplier as i64; // Q(31 + frac_bits)
    let shift = factor.shift + 1 - frac_bits;
    if shift >= 0 {
        product << shift
    } else {
        product >> -shift
    }
}

impl LogSoftmaxParams {
    /// The parameters for an input and output quantized with these scales.
    #[cfg(any(feature = "host", test))]
    pub fn prepare(input_scale: f32, output_scale: f32, output_zero_point: i32) -> Self {
        use crate::quant::prepare::quantize_multiplier;
        let (s_in, s_out) = (input_scale as f64, output_scale as f64);
        LogSoftmaxParams {
            output_zero_point,
            diff: quantize_multiplier(s_in / s_out),
            log: quantize_multiplier(1.0 / s_out),
        }
    }

    /// The exponential table ([`LogSoftmax::exp_table`]) for an input quantized with `input_scale`.
    #[cfg(any(feature = "host", test))]
    pub fn exp_table(input_scale: f32) -> std::vec::Vec<u8> {
        (0..256)
            .flat_map(|k| {
                let e = ((-(input_scale as f64) * k as f64).exp() * EXP_ONE as f64).round() as u32;
                e.to_le_bytes()
            })
            .collect()
    }
}

pub(crate) fn validate(u: &LogSoftmax<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    check.unary(&u.input, &u.output, true)?;
    let out = check.tensor(&u.output)?;
    if u.input.shape != u.output.shape || u.input.shape.last() == 0 {
        return check.bad("log softmax input and output shapes differ or are empty");
    }
    let p = &u.quant;
    let factor = |r: &Requant| r.is_valid() && r.multiplier > 0 && r.shift <= MAX_SHIFT;
    if p.output_zero_point != out.zero_point || !factor(&p.diff) || !factor(&p.log) {
        return check.bad("log softmax parameters out of range");
    }
    if u.exp_table.len() != EXP_TABLE_BYTES {
        return check.bad("log softmax table is not 256 entries");
    }
    let mut previous = EXP_ONE;
    for (k, e) in u.exp_table.chunks_exact(4).map(le_u32).enumerate() {
        if (k == 0 && e != EXP_ONE) || e > previous {
            return check.bad("log softmax table does not fall from 2^20");
        }
        previous = e;
    }
    Ok(())
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

pub(crate) fn run(u: &LogSoftmax<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &u.output)?;
    let depth = u.input.shape.last();
    let table: &[u8; EXP_TABLE_BYTES] = u.exp_table.try_into().map_err(|_| CORRUPT)?;
    log_softmax_s8(&u.quant, table, depth, v.i8(&u.input)?, v.out_i8());
    Ok(())
}

/// `ln(1 + i / 128)` in Q24, `i` in `0..=128`.
const LN_Q24: [i32; 129] = [
    0, 130563, 260117, 388679, 516263, 642884, 768556, 893295, 1017112, 1140023, 1262040, 1383175,
    1503443, 1622854, 1741421, 1859157, 1976071, 2092177, 2207485, 2322006, 2435750, 2548728,
    2660951, 2772428, 2883169, 2993184, 3102482, 3211073, 3318965, 3426168, 3532691, 3638541,
    3743728, 3848259, 3952143, 4055388, 4158001, 4259990, 4361364, 4462128, 4562291, 4661859,
    4760840, 4859240, 4957067, 5054326, 5151025, 5247170, 5342767, 5437822, 5532342, 5626332,
    5719799, 5812748, 5905184, 5997115, 6088544, 6179477, 6269921, 6359879, 6449358, 6538362,
    6626896, 6714966, 6802576, 6889730, 6976434, 7062693, 7148510, 7233890, 7318838, 7403359,
    7487455, 7571132, 7654394, 7737245, 7819688, 7901728, 7983370, 8064615, 8145469, 8225936,
    8306018, 8385720, 8465045, 8543997, 8622579, 8700794, 8778647, 8856140, 8933277, 9010061,
    9086495, 9162582, 9238326, 9313729, 9388795, 9463527, 9537927, 9611998, 9685745, 9759168,
    9832271, 9905058, 9977530, 10049690, 10121541, 10193086, 10264327, 10335266, 10405907,
    10476252, 10546303, 10616063, 10685534, 10754719, 10823619, 10892237, 10960577, 11028638,
    11096425, 11163939, 11231183, 11298158, 11364866, 11431311, 11497493, 11563416, 11629080,
];
/// `ln 2` in Q24.
const LN2_Q24: i64 = 11629080;

/// `ln(sum / 2^20)` in Q16 (within 2^-15), for `sum >= 2^20`.
fn ln_q16(sum: u64) -> i64 {
    let bit = 63 - sum.leading_zeros() as i64;
    // The bits below the leading one, as a Q64 fraction of [0, 1).
    let frac = (sum << (63 - bit)) << 1;
    let i = (frac >> 57) as usize;
    let rest = ((frac << 7) >> 40) as i64; // the next 24 bits
    let (a, b) = (LN_Q24[i] as i64, LN_Q24[i + 1] as i64);
    let q24 = (bit - 20) * LN2_Q24 + a + (((b - a) * rest) >> 24);
    (q24 + (1 << 7)) >> 8
}

/// Log-softmax of each row of `depth` values (see the module docs).
pub fn log_softmax_s8(
    p: &LogSoftmaxParams,
    table: &[u8; EXP_TABLE_BYTES],
    depth: usize,
    input: &[i8],
    output: &mut [i8],
) {
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let max = x.iter().copied().max().unwrap_or(0) as i32;
        let sum: u64 = x
            .iter()
            .map(|&v| {
                let k = (max - v as i32) as usize * 4;
                le_u32(&table[k..k + 4]) as u64
            })
            .sum();
        let log_term = q32(ln_q16(sum.max(EXP_ONE as u64)), p.log, 16);
        for (o, &v) in y.iter_mut().zip(x) {
            let k = (max - v as i32) as i64;
            let t = q32(k, p.diff, 0) + log_term;
            let r = (t + (1 << 31)) >> 32;
            *o = (p.output_zero_point as i64 - r).clamp(-128, 127) as i8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{DType, Shape, Tensor};
    use crate::ops::testutil::{one_op_model, refusal};
    use crate::ops::Op;
    use crate::{Interpreter, Model};
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn the_logarithm_table_is_ln_1_plus_i_over_128() {
        for (i, &v) in LN_Q24.iter().enumerate() {
            let want = (1.0 + i as f64 / 128.0).ln() * (1u64 << 24) as f64;
            assert!((v as f64 - want).abs() <= 0.5, "entry {i}: {v} vs {want}");
        }
        assert_eq!(LN2_Q24, (2f64.ln() * (1u64 << 24) as f64).round() as i64);
    }

    proptest! {
        /// Within 2^-15 of the natural logarithm over sums from 2^20 to 2^40.
        #[test]
        fn ln_is_within_two_q16_units(sum in (1u64 << 20)..(1u64 << 40)) {
            let want = (sum as f64 / EXP_ONE as f64).ln() * 65536.0;
            let got = ln_q16(sum) as f64;
            prop_assert!((got - want).abs() <= 2.0, "{sum}: {got} vs {want}");
        }

        /// Every output within one step of the rounded exact log-softmax of the dequantized row.
        #[test]
        fn outputs_are_the_rounded_log_softmax(
            row in proptest::collection::vec(any::<i8>(), 1..40),
            s_in in 0.005f32..0.5,
            s_out in 0.01f32..0.5,
            zp in 0i32..128,
        ) {
            let (p, table) = (
                LogSoftmaxParams::prepare(s_in, s_out, zp),
                LogSoftmaxParams::exp_table(s_in),
            );
            let table: &[u8; EXP_TABLE_BYTES] = table.as_slice().try_into().unwrap();
            let mut out = std::vec![0i8; row.len()];
            log_softmax_s8(&p, table, row.len(), &row, &mut out);
            let x: Vec<f64> = row.iter().map(|&q| q as f64 * s_in as f64).collect();
            let max = x.iter().cloned().fold(f64::MIN, f64::max);
            let lse = x.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            for (&o, &v) in out.iter().zip(&x) {
                let want = ((v - max - lse) / s_out as f64).round() + zp as f64;
                let want = want.clamp(-128.0, 127.0);
                prop_assert!((o as f64 - want).abs() <= 1.0, "{o} vs {want}");
            }
        }
    }

    /// A model of one LogSoftmax over `[1, 2, 5]` int8, the operator edited by `edit`.
    fn model(edit: impl FnOnce(&mut LogSoftmax<'_>)) -> Vec<u8> {
        let shape = Shape::new(&[1, 2, 5]).unwrap();
        let tensor = |name, offset, scale, zero_point| Tensor {
            name,
            dtype: DType::I8,
            shape,
            scale,
            zero_point,
            offset,
            first: 0,
            last: 0,
            in_place: false,
        };
        let tensors = [tensor("x", 0, 0.1, 0), tensor("y", 16, 0.05, 127)];
        let (quant, table) = (
            LogSoftmaxParams::prepare(0.1, 0.05, 127),
            LogSoftmaxParams::exp_table(0.1),
        );
        let table = std::boxed::Box::leak(table.into_boxed_slice());
        let mut op = LogSoftmax {
            input: tensors[0].operand(0),
            output: tensors[1].operand(1),
            exp_table: table,
            quant,
        };
        edit(&mut op);
        one_op_model(&tensors, 32, false, Op::LogSoftmax(op))
    }

    #[test]
    fn a_row_of_equal_inputs_gives_minus_ln_depth() {
        let bytes = model(|_| {});
        let m = Model::from_bytes(&bytes).unwrap();
        let mut arena = std::vec![0u8; m.arena_size() + 16];
        let mut it = Interpreter::new(&m, &mut arena).unwrap();
        it.input_i8_mut(0)
            .unwrap()
            .copy_from_slice(&[7, 7, 7, 7, 7, 0, 0, 0, 0, 50]);
        it.invoke().unwrap();
        // Row 1: -ln 5 = -1.609, 32 steps of 0.05 below the zero point 127.
        // Row 2: the maximum 5.0 gives -ln(1 + 4 e^-5) = -0.0266 (-1 step); the others 5 below that.
        assert_eq!(
            it.output_i8(0).unwrap(),
            [95, 95, 95, 95, 95, 26, 26, 26, 26, 126]
        );
    }

    #[test]
    fn bad_tables_and_parameters_are_refused() {
        let range = "log softmax parameters out of range";
        assert_eq!(refusal(&model(|u| u.quant.diff.multiplier = 0)), range);
        assert_eq!(
            refusal(&model(|u| u.quant.log.shift = MAX_SHIFT + 1)),
            range
        );
        assert_eq!(refusal(&model(|u| u.quant.output_zero_point = 0)), range);
        assert_eq!(
            refusal(&model(|u| u.exp_table = &[0; 1020])),
            "log softmax table is not 256 entries"
        );
        let rising: &'static [u8] = std::boxed::Box::leak(
            (0..256u32)
                .flat_map(|k| (EXP_ONE + k).to_le_bytes())
                .collect::<Vec<u8>>()
                .into_boxed_slice(),
        );
        assert_eq!(
            refusal(&model(|u| u.exp_table = rising)),
            "log softmax table does not fall from 2^20"
        );
    }
}
