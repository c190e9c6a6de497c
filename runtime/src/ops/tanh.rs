//! TANH with TFLite Micro's integer arithmetic: int8 in gemmlowp fixed point (output scale 1/128,
//! zero point 0), int16 by an interpolated sigmoid table (output scale 1/32768).

use serde::{Deserialize, Serialize};

use super::Unary;
use crate::kernels;
use crate::validate::Check;
use crate::Error;

/// Precomputed parameters of an integer Tanh (TFLite Micro `tanh.cc` `CalculateArithmeticOpData`).
/// int8: output scale 1/128, zero point 0. int16: output scale 1/32768, the fields as in
/// [`super::LogisticParams`] (see `TanhParams::prepare_int16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TanhParams {
    /// Zero point of the input, as the kernel subtracts it.
    pub input_zero_point: i32,
    /// Inputs (minus zero point) at or beyond +-radius saturate the output.
    pub input_range_radius: i32,
    /// int8: Q0.31 mantissa of `input_scale * 2^27`, from `frexp`. int16: as in Logistic.
    pub input_multiplier: i32,
    /// int8: `frexp` exponent of that factor (a left shift when positive). int16: as in Logistic.
    pub input_left_shift: i32,
}

crate::format::decode_fields!(TanhParams {
    input_zero_point,
    input_range_radius,
    input_multiplier,
    input_left_shift
});

impl TanhParams {
    /// Mirrors TFLite Micro's int8 Tanh Prepare from the input scale and zero point.
    #[cfg(any(feature = "host", test))]
    pub fn prepare(input_scale: f32, input_zero_point: i32) -> Self {
        let (input_multiplier, input_left_shift, input_range_radius) =
            super::logistic::prepare_q4_input(input_scale);
        Self {
            input_zero_point,
            input_range_radius,
            input_multiplier,
            input_left_shift,
        }
    }

    /// Mirrors TFLite Micro's int16 Tanh Prepare from the input scale (zero point 0); a
    /// power-of-two scale counts for the shifts 0 and 1 (input scales `2^-12` and `2^-11`).
    #[cfg(any(feature = "host", test))]
    pub fn prepare_int16(input_scale: f32) -> Self {
        let (input_multiplier, input_left_shift) =
            super::logistic::prepare_int16_input(input_scale, &[0, 1]);
        Self {
            input_zero_point: 0,
            input_range_radius: 0,
            input_multiplier,
            input_left_shift,
        }
    }
}

pub(crate) fn validate(u: &Unary<TanhParams>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let p = u.quant.map(|p| {
        [
            p.input_zero_point,
            p.input_range_radius,
            p.input_multiplier,
            p.input_left_shift,
        ]
    });
    check.sigmoid(&u.input, &u.output, p, (0, 1.0 / 128.0))
}

pub(crate) fn run(u: &Unary<TanhParams>, arena: &mut [u8]) -> Result<(), Error> {
    super::run_unary(
        &u.input,
        &u.output,
        u.quant.as_ref(),
        arena,
        kernels::activation::tanh_s8,
        #[cfg(feature = "int16")]
        kernels::int16::sigmoid::tanh_s16,
        #[cfg(feature = "float")]
        kernels::float::tanh_f32,
    )
}
