//! LOGISTIC (sigmoid) with gemmlowp fixed point (TFLite Micro int8 arithmetic: output scale 1/256,
//! zero point -128).

use serde::{Deserialize, Serialize};

use super::Unary;
use crate::kernels;
#[cfg(any(feature = "host", test))]
use crate::kernels::activation::INPUT_INTEGER_BITS;
use crate::validate::Check;
use crate::Error;

/// Precomputed parameters of an int8 Logistic (TFLite Micro `CalculateArithmeticOpDataLogistic`).
/// Output scale 1/256, zero point -128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LogisticParams {
    /// Zero point of the input, as the kernel subtracts it.
    pub input_zero_point: i32,
    /// Inputs (minus zero point) at or beyond +-radius saturate the output.
    pub input_range_radius: i32,
    /// Q0.31 mantissa of `input_scale * 2^27`, from `frexp`.
    pub input_multiplier: i32,
    /// `frexp` exponent of that factor (a left shift when positive).
    pub input_left_shift: i32,
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
        #[cfg(feature = "float")]
        kernels::float::logistic_f32,
    )
}
