//! SOFTMAX over the last axis (TFLite Micro arithmetic: int8 output scale 1/256, zero point -128;
//! int16 output scale 1/32768, zero point 0).

use serde::{Deserialize, Serialize};

use crate::format::Operand;
use crate::interpreter::{Views, CORRUPT};
use crate::kernels;
#[cfg(any(feature = "host", test))]
use crate::kernels::softmax::SCALED_DIFF_INTEGER_BITS;
use crate::validate::{quant_presence, Check, Kind};
use crate::Error;

/// Softmax over the last axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Softmax {
    /// Input; softmax runs over its last dimension.
    pub input: Operand,
    /// Output, of the input's shape (int8: scale 1/256, zero point -128; int16: scale 1/32768).
    pub output: Operand,
    /// Exponent scale: `exp(beta * x)`; the f32 kernel uses it, int8 has it folded into `quant`.
    pub beta: f32,
    /// Precomputed int8 or int16 parameters; `None` for f32.
    pub quant: Option<SoftmaxParams>,
}

crate::format::decode_fields!(Softmax {
    input,
    output,
    beta,
    quant
});

super::operand_fields!(Softmax: input => output);

/// Precomputed parameters of an integer softmax, as TFLite Micro's `CalculateSoftmaxParams` produces
/// them. The int16 kernel reads `input_multiplier` and `input_left_shift` with another meaning (see
/// `SoftmaxParams::prepare_int16`) and no `diff_min` (0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SoftmaxParams {
    /// Q0.31 mantissa of `beta * input_scale * 2^26` (int16: of `beta * input_scale * 65535 / 10`).
    pub input_multiplier: i32,
    /// Power of two of that factor (int8: non-negative for any usable beta and scale; int16: in
    /// `-31..=15`, so that no input difference overflows when shifted).
    pub input_left_shift: i32,
    /// int8: input differences from the row maximum below this are treated as `exp = 0`; int16: 0.
    pub diff_min: i32,
}

crate::format::decode_fields!(SoftmaxParams {
    input_multiplier,
    input_left_shift,
    diff_min
});

impl SoftmaxParams {
    /// Mirrors TFLite's `PreprocessSoftmaxScaling(beta, input_scale, 5)` (factor capped at `2^31 - 1`) and
    /// `diff_min = -CalculateInputRadius(5, input_left_shift)`, all in double.
    #[cfg(any(feature = "host", test))]
    pub fn prepare(beta: f32, input_scale: f32) -> Self {
        use crate::quant::prepare::quantize_multiplier;
        let bits = SCALED_DIFF_INTEGER_BITS as i32;
        let max_real_multiplier = ((1i64 << 31) - 1) as f64;
        let real = (beta as f64 * input_scale as f64 * (1i64 << (31 - bits)) as f64)
            .min(max_real_multiplier);
        let q = quantize_multiplier(real);
        Self {
            input_multiplier: q.multiplier,
            input_left_shift: q.shift,
            diff_min: -input_radius(bits, q.shift),
        }
    }

    /// Mirrors TFLite Micro's int16 softmax Prepare: `QuantizeMultiplier(input_scale * beta /
    /// (10 / 65535))` in double, which maps input differences to the exp table's `[-65535, 0]` for
    /// `[-10, 0]`.
    #[cfg(any(feature = "host", test))]
    pub fn prepare_int16(beta: f32, input_scale: f32) -> Self {
        use crate::quant::prepare::quantize_multiplier;
        let q = quantize_multiplier(input_scale as f64 * beta as f64 / (10.0 / 65535.0));
        Self {
            input_multiplier: q.multiplier,
            input_left_shift: q.shift,
            diff_min: 0,
        }
    }
}

/// Largest left shift of an int16 softmax: input differences down to `-65535` stay inside `i32`.
pub const MAX_INT16_INPUT_SHIFT: i32 = 15;

/// TFLite `CalculateInputRadius(integer_bits, left_shift, 31)`: the largest input magnitude whose rescaled
/// value still fits Q`integer_bits`, `floor((2^integer_bits - 1) * 2^(31 - integer_bits) / 2^left_shift)`.
#[cfg(any(feature = "host", test))]
pub(crate) fn input_radius(integer_bits: i32, left_shift: i32) -> i32 {
    let max_input_rescaled = ((1i64 << integer_bits) - 1) as f64
        * (1i64 << (31 - integer_bits)) as f64
        / 2f64.powi(left_shift);
    max_input_rescaled.floor() as i32
}

pub(crate) fn validate(s: &Softmax, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let tout = check.tensor(&s.output)?;
    let k = check.kind16(&s.input, &s.output)?;
    if s.input.shape != s.output.shape {
        return check.bad("softmax input and output shapes differ");
    }
    if k == Kind::Int8 && (tout.zero_point != -128 || tout.scale != 1.0 / 256.0) {
        return check.bad("int8 softmax output must have scale 1/256 and zero point -128");
    }
    if k == Kind::Int16 && tout.scale != 1.0 / 32768.0 {
        return check.bad("int16 softmax output must have scale 1/32768");
    }
    quant_presence(k, s.quant.is_some()).map_err(|r| check.fail(r))?;
    match (&s.quant, k) {
        (Some(p), Kind::Int8)
            if p.input_multiplier < 0
                || !(0..=31).contains(&p.input_left_shift)
                || p.diff_min > 0 =>
        {
            check.bad("softmax parameters out of range")
        }
        (Some(p), Kind::Int16)
            if p.input_multiplier < 0
                || !(-31..=MAX_INT16_INPUT_SHIFT).contains(&p.input_left_shift)
                || p.diff_min != 0 =>
        {
            check.bad("int16 softmax parameters out of range")
        }
        _ => Ok(()),
    }
}

pub(crate) fn run(s: &Softmax, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &s.output)?;
    let depth = s.input.shape.last();
    let outer = s.input.shape.elements().ok_or(CORRUPT)? / depth;
    match &s.quant {
        #[cfg(feature = "int16")]
        Some(p) if s.input.dtype == crate::format::DType::I16 => {
            let x = v.i16(&s.input)?;
            kernels::int16::softmax::softmax_s16(p, outer, depth, x, v.out_i16()?);
        }
        Some(p) => {
            let x = v.i8(&s.input)?;
            kernels::softmax::softmax_s8(p, outer, depth, x, v.out_i8());
        }
        #[cfg(feature = "float")]
        None => {
            let x = v.f32(&s.input)?;
            kernels::float::softmax_f32(s.beta, outer, depth, x, v.out_f32()?);
        }
        #[cfg(not(feature = "float"))]
        None => return Err(CORRUPT),
    }
    Ok(())
}

#[cfg(all(test, feature = "int16", feature = "softmax"))]
mod tests {
    use super::*;
    use crate::format::{DType, Shape, Tensor};
    use crate::ops::testutil::{one_op_model, refusal};
    use crate::ops::Op;
    use crate::{Interpreter, Model};
    use std::vec::Vec;

    const INPUT_SCALE: f32 = 2.5e-4;

    /// A model of one int16 softmax over `[2, 4]`, the parameters edited by `edit`, the output
    /// scale `output_scale`.
    fn model(output_scale: f32, edit: impl FnOnce(&mut SoftmaxParams)) -> Vec<u8> {
        let shape = Shape::new(&[2, 4]).unwrap();
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
        let mut p = SoftmaxParams::prepare_int16(1.0, INPUT_SCALE);
        edit(&mut p);
        let op = Op::Softmax(Softmax {
            input: tensors[0].operand(0),
            output: tensors[1].operand(1),
            beta: 1.0,
            quant: Some(p),
        });
        one_op_model(&tensors, 32, false, op)
    }

    #[test]
    fn an_int16_softmax_runs_its_kernel() {
        let p = SoftmaxParams::prepare_int16(1.0, INPUT_SCALE);
        // 2.5e-4 * 65535 / 10 = 1.638: multiplier 0.819 * 2^31, shift 1.
        assert_eq!((p.input_left_shift, p.diff_min), (1, 0));
        let bytes = model(1.0 / 32768.0, |_| {});
        let m = Model::from_bytes(&bytes).unwrap();
        let mut arena = std::vec![0u8; m.arena_size() + 16];
        let mut it = Interpreter::new(&m, &mut arena).unwrap();
        let input: [i16; 8] = [0, 4000, -4000, 100, i16::MIN, i16::MAX, 0, 0];
        it.input_i16_mut(0).unwrap().copy_from_slice(&input);
        it.invoke().unwrap();
        let mut want = [0i16; 8];
        kernels::int16::softmax::softmax_s16(&p, 2, 4, &input, &mut want);
        assert_eq!(it.output_i16(0).unwrap(), want);
        // Each row sums to about one (32768).
        for row in want.chunks(4) {
            let sum: i32 = row.iter().map(|&v| v as i32).sum();
            assert!((32760..=32772).contains(&sum), "{want:?}");
        }
    }

    #[test]
    fn bad_int16_parameters_are_refused() {
        let params = "int16 softmax parameters out of range";
        type Edit = fn(&mut SoftmaxParams);
        let edits: [Edit; 4] = [
            |p| p.input_multiplier = -1,
            |p| p.input_left_shift = MAX_INT16_INPUT_SHIFT + 1,
            |p| p.input_left_shift = -32,
            |p| p.diff_min = -1,
        ];
        for edit in edits {
            assert_eq!(refusal(&model(1.0 / 32768.0, edit)), params);
        }
        assert_eq!(
            refusal(&model(1.0 / 65536.0, |_| {})),
            "int16 softmax output must have scale 1/32768"
        );
        // The extreme accepted shifts load.
        for shift in [-31, MAX_INT16_INPUT_SHIFT] {
            let bytes = model(1.0 / 32768.0, |p| p.input_left_shift = shift);
            Model::from_bytes(&bytes).unwrap();
        }
    }
}
