//! MUL: element-wise product with broadcasting and a fused activation (TFLite Micro `mul.cc` arithmetic).

use serde::{Deserialize, Serialize};

use super::Binary;
use crate::kernels;
use crate::quant::Requant;
use crate::validate::{clamp_range_of, Check};
use crate::Error;

/// Precomputed quantization of an int8 Mul, as TFLite Micro's `CalculateOpDataMul` produces it;
/// an int16 Mul (int16x8) carries the same fields with zero offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MulParams {
    /// `-input1_zero_point`.
    pub input1_offset: i32,
    /// `-input2_zero_point`.
    pub input2_offset: i32,
    /// `output_zero_point`.
    pub output_offset: i32,
    /// `input1_scale * input2_scale / output_scale`.
    pub output: Requant,
    /// Fused activation clamp in the output's integer domain.
    pub act_min: i32,
    /// Upper end of that clamp (`act_min` is the lower).
    pub act_max: i32,
}

crate::format::decode_fields!(MulParams {
    input1_offset,
    input2_offset,
    output_offset,
    output,
    act_min,
    act_max
});

impl MulParams {
    /// Mirrors TFLite Micro `CalculateOpDataMul` for int8: one multiplier from
    /// `(double)input1_scale * (double)input2_scale / (double)output_scale`.
    /// `act_min..=act_max` is the fused activation range already quantized with the output scale.
    #[cfg(any(feature = "host", test))]
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        input1_scale: f32,
        input1_zero_point: i32,
        input2_scale: f32,
        input2_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
        act_min: i32,
        act_max: i32,
    ) -> Self {
        use crate::quant::prepare::quantize_multiplier;
        let real = input1_scale as f64 * input2_scale as f64 / output_scale as f64;
        Self {
            input1_offset: -input1_zero_point,
            input2_offset: -input2_zero_point,
            output_offset: output_zero_point,
            output: quantize_multiplier(real),
            act_min,
            act_max,
        }
    }
}

pub(crate) fn validate(b: &Binary<MulParams>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let kind = check.binary16(&b.a, &b.b, &b.output, b.quant.is_some())?;
    let Some(p) = &b.quant else { return Ok(()) };
    let ok = p.input1_offset == -b.a.zero_point
        && p.input2_offset == -b.b.zero_point
        && p.output_offset == b.output.zero_point
        && p.output.is_valid();
    if !ok {
        return check.bad("mul parameters inconsistent with its operands");
    }
    clamp_range_of(kind, p.act_min, p.act_max).map_err(|r| check.fail(r))
}

pub(crate) fn run(b: &Binary<MulParams>, arena: &mut [u8]) -> Result<(), Error> {
    super::run_binary(
        b,
        arena,
        kernels::elementwise::mul_s8,
        #[cfg(feature = "int16")]
        kernels::int16::elementwise::mul_s16,
        #[cfg(feature = "float")]
        kernels::float::mul_f32,
    )
}
