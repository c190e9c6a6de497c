//! LEAKY_RELU: `x` for `x >= 0`, `alpha * x` below (TFLite Micro int8 arithmetic).

use serde::{Deserialize, Serialize};

use crate::format::Operand;
use crate::kernels;
use crate::quant::Requant;
use crate::validate::Check;
use crate::Error;

/// A leaky ReLU; `quant` is present for int8 and int16, absent for f32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeakyRelu {
    /// Input, int8, int16 or f32.
    pub input: Operand,
    /// Output, with the input's element count.
    pub output: Operand,
    /// Slope below zero, as the f32 kernel applies it (the integer form is in `quant`).
    pub alpha: f32,
    /// Precomputed integer parameters; `None` for f32.
    pub quant: Option<LeakyReluParams>,
}

crate::format::decode_fields!(LeakyRelu {
    input,
    output,
    alpha,
    quant
});

super::operand_fields!(LeakyRelu: input => output);

/// Precomputed parameters of an int8 or int16 leaky ReLU (TFLite Micro `CalculateOpDataLeakyRelu`;
/// int16: the same preparation with zero points 0, outputs saturated to int16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LeakyReluParams {
    /// Zero point of the input, as the kernel subtracts it.
    pub input_zero_point: i32,
    /// Zero point of the output, added after rescaling.
    pub output_zero_point: i32,
    /// `input_scale / output_scale`, for inputs at or above the zero point.
    pub identity: Requant,
    /// `input_scale * alpha / output_scale`, for inputs below it.
    pub alpha: Requant,
}

crate::format::decode_fields!(LeakyReluParams {
    input_zero_point,
    output_zero_point,
    identity,
    alpha
});

impl LeakyReluParams {
    /// Mirrors TFLite Micro's int8 preparation: both factors formed in double from the f32 scales
    /// and `alpha`, then `QuantizeMultiplier`. `alpha` must be at least 0.
    #[cfg(any(feature = "host", test))]
    pub fn prepare(
        input_scale: f32,
        input_zero_point: i32,
        alpha: f32,
        output_scale: f32,
        output_zero_point: i32,
    ) -> Self {
        use crate::quant::prepare::quantize_multiplier;
        let (s_in, s_out) = (input_scale as f64, output_scale as f64);
        Self {
            input_zero_point,
            output_zero_point,
            identity: quantize_multiplier(s_in / s_out),
            alpha: quantize_multiplier(s_in * alpha as f64 / s_out),
        }
    }
}

pub(crate) fn validate(u: &LeakyRelu, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    check.unary16(&u.input, &u.output, u.quant.is_some())?;
    if !(u.alpha.is_finite() && u.alpha >= 0.0) {
        return check.bad("leaky relu slope is negative or not finite");
    }
    let Some(p) = &u.quant else { return Ok(()) };
    if p.input_zero_point != u.input.zero_point
        || p.output_zero_point != u.output.zero_point
        || !p.identity.is_valid()
        || !p.alpha.is_valid()
    {
        return check.bad("leaky relu parameters inconsistent with its operands");
    }
    Ok(())
}

pub(crate) fn run(u: &LeakyRelu, arena: &mut [u8]) -> Result<(), Error> {
    super::run_unary(
        &u.input,
        &u.output,
        u.quant.as_ref(),
        arena,
        kernels::activation::leaky_relu_s8,
        #[cfg(feature = "int16")]
        kernels::int16::activation::leaky_relu_s16,
        #[cfg(feature = "float")]
        |x, out| kernels::float::activation::leaky_relu_f32(u.alpha, x, out),
    )
}
