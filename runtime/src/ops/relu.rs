//! RELU, RELU6 and RELU_N1_TO_1 as standalone operators (TFLite Micro int8 arithmetic).

use serde::{Deserialize, Serialize};

use crate::format::{Activation, Operand};
use crate::kernels;
use crate::quant::Requant;
use crate::validate::{clamp_range_of, Check};
use crate::Error;

/// A standalone ReLU-family activation; `quant` is present for int8 and int16, absent for f32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Relu {
    /// Input, int8, int16 or f32.
    pub input: Operand,
    /// Output, with the input's element count.
    pub output: Operand,
    /// Precomputed integer parameters; `None` for f32.
    pub quant: Option<ReluParams>,
    /// Which clamp: `Relu`, `Relu6` or `ReluN1To1` (the int8 form is in `quant`).
    pub activation: Activation,
}

crate::format::decode_fields!(Relu {
    input,
    output,
    quant,
    activation
});

super::operand_fields!(Relu: input => output);

/// Precomputed parameters of a standalone int8 or int16 ReLU-family activation (int16: zero points
/// 0, the clamp in int16's range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReluParams {
    /// Zero point of the input, as the kernel subtracts it.
    pub input_zero_point: i32,
    /// Zero point of the output, added after rescaling (the input's for ReLU6).
    pub output_zero_point: i32,
    /// `input_scale / output_scale`.
    pub requant: Requant,
    /// Clamp in the output's integer domain.
    pub act_min: i32,
    /// Upper end of that clamp (`act_min` is the lower).
    pub act_max: i32,
}

crate::format::decode_fields!(ReluParams {
    input_zero_point,
    output_zero_point,
    requant,
    act_min,
    act_max
});

impl ReluParams {
    /// Mirrors TFLite Micro's int8 preparation for the activation:
    ///
    /// - `Relu`: `CalculateReluOpData` — `input_scale / output_scale` in double, clamp
    ///   `[max(-128, zp_out + roundf(0 / s_out)), 127]`.
    /// - `Relu6`: `Relu6Prepare` — no requantization at all (TFLite Micro assumes equal input and output
    ///   quantization and ignores the output's): an exact identity factor, `output_zero_point` set to the
    ///   input zero point, and the clamp `[zp_in, clamp(round(6 / s_in) + zp_in)]` in the input domain.
    /// - `ReluN1To1` (no TFLite Micro kernel): the `Relu` form with bounds `-1` and `1`.
    /// - `None`: the `Relu` form without a clamp (a plain requantization).
    #[cfg(any(feature = "host", test))]
    pub fn prepare(
        input_scale: f32,
        input_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
        activation: Activation,
    ) -> Self {
        Self::prepare_in(
            (input_scale, input_zero_point),
            (output_scale, output_zero_point),
            activation,
            (-128, 127),
        )
    }

    /// Mirrors TFLite Micro's int16 preparation (`CalculateReluOpData<int16_t>`, `Relu6Prepare`):
    /// [`Self::prepare`]'s forms with zero points 0 and bounds saturated to int16.
    #[cfg(any(feature = "host", test))]
    pub fn prepare_int16(input_scale: f32, output_scale: f32, activation: Activation) -> Self {
        Self::prepare_in(
            (input_scale, 0),
            (output_scale, 0),
            activation,
            (i16::MIN as i32, i16::MAX as i32),
        )
    }

    #[cfg(any(feature = "host", test))]
    fn prepare_in(
        (input_scale, input_zero_point): (f32, i32),
        (output_scale, output_zero_point): (f32, i32),
        activation: Activation,
        (qmin, qmax): (i32, i32),
    ) -> Self {
        use crate::quant::prepare::quantize_multiplier;
        // roundf(value / scale) + zero_point in float, as TFLite's bounds are computed; saturating, as a
        // tiny scale puts the bound far outside int8 (clamped below).
        let quantize = |value: f32, scale: f32, zero_point: i32| {
            zero_point.saturating_add((value / scale).round() as i32)
        };
        if activation == Activation::Relu6 {
            return Self {
                input_zero_point,
                output_zero_point: input_zero_point,
                // 2^30 * 2^(1 - 31) = 1: multiply_by_quantized_multiplier returns x exactly.
                requant: Requant {
                    multiplier: 1 << 30,
                    shift: 1,
                },
                act_min: input_zero_point,
                act_max: quantize(6.0, input_scale, input_zero_point).clamp(qmin, qmax),
            };
        }
        let (act_min, act_max) = match activation {
            Activation::Relu => (
                quantize(0.0, output_scale, output_zero_point).max(qmin),
                qmax,
            ),
            Activation::ReluN1To1 => (
                quantize(-1.0, output_scale, output_zero_point).max(qmin),
                quantize(1.0, output_scale, output_zero_point).min(qmax),
            ),
            _ => (qmin, qmax),
        };
        Self {
            input_zero_point,
            output_zero_point,
            requant: quantize_multiplier(input_scale as f64 / output_scale as f64),
            act_min,
            act_max,
        }
    }
}

pub(crate) fn validate(u: &Relu, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let kind = check.unary16(&u.input, &u.output, u.quant.is_some())?;
    let Some(p) = &u.quant else { return Ok(()) };
    // TFLite Micro's int8 ReLU6 clamps in the input's domain and ignores the output's
    // quantization; `ReluParams::prepare` expresses that as an exact identity carrying the
    // input zero point, which is valid whatever the output's zero point.
    let relu6_identity = u.activation == Activation::Relu6
        && p.output_zero_point == p.input_zero_point
        && p.requant
            == (Requant {
                multiplier: 1 << 30,
                shift: 1,
            });
    if p.input_zero_point != u.input.zero_point
        || (p.output_zero_point != u.output.zero_point && !relu6_identity)
        || !p.requant.is_valid()
    {
        return check.bad("relu parameters inconsistent with its operands");
    }
    clamp_range_of(kind, p.act_min, p.act_max).map_err(|r| check.fail(r))
}

pub(crate) fn run(u: &Relu, arena: &mut [u8]) -> Result<(), Error> {
    super::run_unary(
        &u.input,
        &u.output,
        u.quant.as_ref(),
        arena,
        kernels::activation::relu_s8,
        #[cfg(feature = "int16")]
        kernels::int16::activation::relu_s16,
        #[cfg(feature = "float")]
        |x, out| kernels::float::relu_f32(u.activation, x, out),
    )
}
