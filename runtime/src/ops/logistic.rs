//! LOGISTIC (sigmoid) with TFLite Micro's integer arithmetic: int8 in gemmlowp fixed point (output
//! scale 1/256, zero point -128), int16 by an interpolated sigmoid table (output scale 1/32768).

use serde::{Deserialize, Serialize};

use super::Unary;
use crate::kernels;
#[cfg(any(feature = "host", test))]
use crate::kernels::activation::INPUT_INTEGER_BITS;
use crate::validate::Check;
use crate::Error;

/// Precomputed parameters of an integer Logistic (TFLite Micro `CalculateArithmeticOpDataLogistic`).
/// int8: output scale 1/256, zero point -128. int16: output scale 1/32768, `input_zero_point` and
/// `input_range_radius` 0, `input_multiplier` and `input_left_shift` as
/// `LogisticParams::prepare_int16` describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LogisticParams {
    /// Zero point of the input, as the kernel subtracts it.
    pub input_zero_point: i32,
    /// Inputs (minus zero point) at or beyond +-radius saturate the output.
    pub input_range_radius: i32,
    /// int8: Q0.31 mantissa of `input_scale * 2^27`, from `frexp`. int16: `input_scale * 3 * 2^12`
    /// times `2^input_left_shift`, in `16384..=32767`; 0 for a power-of-two input scale.
    pub input_multiplier: i32,
    /// int8: `frexp` exponent of that factor (a left shift when positive). int16: the right shift
    /// after the multiplication, `0..=31`.
    pub input_left_shift: i32,
}

crate::format::decode_fields!(LogisticParams {
    input_zero_point,
    input_range_radius,
    input_multiplier,
    input_left_shift
});

/// The int16 Logistic/Tanh preparation of TFLite Micro: the input rescaled to units of
/// `1 / (3 * 2^12)` by `(x * multiplier) >> shift`. An input scale that is a power of two (within
/// TFLite's `CheckedLog2` tolerance, in `f32`) whose shift `12 + log2(scale)` is one of
/// `pot_shifts` gets multiplier 0 and that shift (the kernel multiplies by `3 << shift`); any
/// other gets `scale * 3 * 2^12`, doubled until above 16383.5 (at most 31 times) and truncated.
#[cfg(any(feature = "host", test))]
pub(crate) fn prepare_int16_input(input_scale: f32, pot_shifts: &[i32]) -> (i32, i32) {
    const INPUT_INTEGER_BITS_16: i32 = 3;
    // CheckedLog2: log(x) / log(2) in f32, a power of two when within 1e-3 of an integer.
    let log2 = (input_scale as f64).ln() as f32 * (1.0f32 / (2.0f64.ln() as f32));
    let log2_rounded = log2.round();
    let pot_shift = (15 - INPUT_INTEGER_BITS_16) + log2_rounded as i32;
    if (log2 - log2_rounded).abs() < 1e-3 && pot_shifts.contains(&pot_shift) {
        return (0, pot_shift);
    }
    let mut multiplier = input_scale as f64 * 4096.0 * 3.0;
    let mut shift = 0;
    while multiplier <= 32767.0 / 2.0 && shift <= 30 {
        shift += 1;
        multiplier *= 2.0;
    }
    (multiplier as i32, shift)
}

/// The shared Logistic/Tanh preparation: `frexp(input_scale * 2^27)`, its mantissa rounded to Q0.31 without
/// renormalisation (as TFLite Micro does), and `CalculateInputRadius(4, shift, 31)`.
#[cfg(any(feature = "host", test))]
pub(crate) fn prepare_q4_input(input_scale: f32) -> (i32, i32, i32) {
    use crate::quant::prepare::frexp;
    let real = input_scale as f64 * (1i64 << (31 - INPUT_INTEGER_BITS)) as f64;
    let (q, shift) = frexp(real);
    // An f32 scale has a 24-bit mantissa, so q * 2^31 never rounds up to 2^31; saturate regardless.
    let multiplier = (q * (1i64 << 31) as f64).round().min(i32::MAX as f64) as i32;
    let radius = super::softmax::input_radius(INPUT_INTEGER_BITS as i32, shift);
    (multiplier, shift, radius)
}

impl LogisticParams {
    /// Mirrors TFLite Micro's int8 Logistic Prepare from the input scale and zero point.
    #[cfg(any(feature = "host", test))]
    pub fn prepare(input_scale: f32, input_zero_point: i32) -> Self {
        let (input_multiplier, input_left_shift, input_range_radius) =
            prepare_q4_input(input_scale);
        Self {
            input_zero_point,
            input_range_radius,
            input_multiplier,
            input_left_shift,
        }
    }

    /// Mirrors TFLite Micro's int16 Logistic Prepare from the input scale (zero point 0); a
    /// power-of-two scale counts only for the shift 0 (input scale `2^-12`).
    #[cfg(any(feature = "host", test))]
    pub fn prepare_int16(input_scale: f32) -> Self {
        let (input_multiplier, input_left_shift) = prepare_int16_input(input_scale, &[0]);
        Self {
            input_zero_point: 0,
            input_range_radius: 0,
            input_multiplier,
            input_left_shift,
        }
    }
}

pub(crate) fn validate(u: &Unary<LogisticParams>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let p = u.quant.map(|p| {
        [
            p.input_zero_point,
            p.input_range_radius,
            p.input_multiplier,
            p.input_left_shift,
        ]
    });
    check.sigmoid(&u.input, &u.output, p, (-128, 1.0 / 256.0))
}

pub(crate) fn run(u: &Unary<LogisticParams>, arena: &mut [u8]) -> Result<(), Error> {
    super::run_unary(
        &u.input,
        &u.output,
        u.quant.as_ref(),
        arena,
        kernels::activation::logistic_s8,
        #[cfg(feature = "int16")]
        kernels::int16::sigmoid::logistic_s16,
        #[cfg(feature = "float")]
        kernels::float::logistic_f32,
    )
}

#[cfg(all(test, feature = "int16", feature = "logistic", feature = "tanh"))]
mod tests {
    use super::*;
    use crate::format::{DType, Shape, Tensor};
    use crate::ops::testutil::{one_op_model, refusal};
    use crate::ops::{Op, TanhParams};
    use crate::{Interpreter, Model};
    use std::vec::Vec;

    const INPUT_SCALE: f32 = 3.0e-4;

    /// A model of one int16 Logistic (or Tanh) over 8 values, the parameters edited by `edit`, the
    /// output scale `output_scale`.
    fn model(tanh: bool, output_scale: f32, edit: impl FnOnce(&mut LogisticParams)) -> Vec<u8> {
        let shape = Shape::new(&[1, 8]).unwrap();
        let tensor = |name, offset, scale| Tensor {
            name,
            dtype: DType::I16,
            shape,
            scale,
            zero_point: 0,
            offset,
            first: 0,
            last: 0,
            in_place: false,
        };
        let tensors = [tensor("x", 0, INPUT_SCALE), tensor("y", 16, output_scale)];
        let mut p = LogisticParams::prepare_int16(INPUT_SCALE);
        if tanh {
            let t = TanhParams::prepare_int16(INPUT_SCALE);
            (p.input_multiplier, p.input_left_shift) = (t.input_multiplier, t.input_left_shift);
        }
        edit(&mut p);
        let (input, output) = (tensors[0].operand(0), tensors[1].operand(1));
        let op = if tanh {
            Op::Tanh(Unary {
                input,
                output,
                quant: Some(TanhParams {
                    input_zero_point: p.input_zero_point,
                    input_range_radius: p.input_range_radius,
                    input_multiplier: p.input_multiplier,
                    input_left_shift: p.input_left_shift,
                }),
            })
        } else {
            Op::Logistic(Unary {
                input,
                output,
                quant: Some(p),
            })
        };
        one_op_model(&tensors, 32, false, op)
    }

    #[test]
    fn int16_logistic_and_tanh_run_their_kernels() {
        let input: [i16; 8] = [i16::MIN, -10000, -3000, -1, 0, 1, 3000, i16::MAX];
        for tanh in [false, true] {
            let bytes = model(tanh, 1.0 / 32768.0, |_| {});
            let m = Model::from_bytes(&bytes).unwrap();
            let mut arena = std::vec![0u8; m.arena_size() + 16];
            let mut it = Interpreter::new(&m, &mut arena).unwrap();
            it.input_i16_mut(0).unwrap().copy_from_slice(&input);
            it.invoke().unwrap();
            let mut want = [0i16; 8];
            if tanh {
                let p = TanhParams::prepare_int16(INPUT_SCALE);
                kernels::int16::sigmoid::tanh_s16(&p, &input, &mut want);
            } else {
                let p = LogisticParams::prepare_int16(INPUT_SCALE);
                kernels::int16::sigmoid::logistic_s16(&p, &input, &mut want);
            }
            assert_eq!(it.output_i16(0).unwrap(), want);
            assert_eq!(want[4], if tanh { 0 } else { 16384 });
        }
    }

    #[test]
    fn bad_int16_parameters_are_refused() {
        let params = "int16 logistic/tanh parameters out of range";
        type Edit = fn(&mut LogisticParams);
        let edits: [Edit; 7] = [
            |p| p.input_zero_point = 1,
            |p| p.input_range_radius = 5,
            |p| p.input_multiplier = 32768,
            |p| p.input_multiplier = -1,
            |p| p.input_left_shift = 32,
            |p| p.input_left_shift = -1,
            // Multiplier 0 stands for 3 << shift, which must stay within 32767.
            |p| (p.input_multiplier, p.input_left_shift) = (0, 14),
        ];
        for tanh in [false, true] {
            for edit in edits {
                assert_eq!(refusal(&model(tanh, 1.0 / 32768.0, edit)), params);
            }
            assert_eq!(
                refusal(&model(tanh, 1.0 / 16384.0, |_| {})),
                "int16 logistic/tanh output must have scale 1/32768"
            );
            // The largest accepted values load.
            for (m, s) in [(32767, 31), (0, 13), (1, 0)] {
                let bytes = model(tanh, 1.0 / 32768.0, |p| {
                    (p.input_multiplier, p.input_left_shift) = (m, s)
                });
                Model::from_bytes(&bytes).unwrap();
            }
        }
    }
}
