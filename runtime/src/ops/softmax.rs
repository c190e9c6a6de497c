//! SOFTMAX over the last axis (TFLite Micro int8 arithmetic: output scale 1/256, zero point -128).

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
    /// Output, of the input's shape (int8: scale 1/256, zero point -128).
    pub output: Operand,
    /// Exponent scale: `exp(beta * x)`; the f32 kernel uses it, int8 has it folded into `quant`.
    pub beta: f32,
    /// Precomputed int8 parameters; `None` for f32.
    pub quant: Option<SoftmaxParams>,
}

super::operand_fields!(Softmax: input => output);

/// Precomputed parameters of an int8 softmax, as TFLite Micro's `CalculateSoftmaxParams` produces them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SoftmaxParams {
    /// Q0.31 mantissa of `beta * input_scale * 2^26`.
    pub input_multiplier: i32,
    /// Power of two of that factor (non-negative for any usable beta and scale).
    pub input_left_shift: i32,
    /// Input differences from the row maximum below this are treated as `exp = 0`.
    pub diff_min: i32,
}

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
}

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
    let k = check.kind(&s.input, &s.output)?;
    if s.input.shape != s.output.shape {
        return check.bad("softmax input and output shapes differ");
    }
    if k == Kind::Int8 && (tout.zero_point != -128 || tout.scale != 1.0 / 256.0) {
        return check.bad("int8 softmax output must have scale 1/256 and zero point -128");
    }
    quant_presence(k, s.quant.is_some()).map_err(|r| check.fail(r))?;
    match &s.quant {
        Some(p)
            if p.input_multiplier < 0
                || !(0..=31).contains(&p.input_left_shift)
                || p.diff_min > 0 =>
        {
            check.bad("softmax parameters out of range")
        }
        _ => Ok(()),
    }
}

pub(crate) fn run(s: &Softmax, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &s.output)?;
    let depth = s.input.shape.last();
    let outer = s.input.shape.elements().ok_or(CORRUPT)? / depth;
    match &s.quant {
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
