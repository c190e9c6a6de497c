//! QUANTIZE: f32 -> int8 or int16, or requantization between int8 and int16 tensors (int8 -> int8,
//! int8 <-> int16, int16 -> int16) to another scale and zero point.

use serde::{Deserialize, Serialize};

use crate::format::{DType, Operand};
use crate::interpreter::{Views, CORRUPT};
use crate::kernels;
use crate::quant::Requant;
use crate::validate::Check;
use crate::Error;

/// Quantize: f32 -> int8/int16 with the output's `scale`, or an integer requantization (`requant`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quantize {
    /// Input: f32, or int8/int16 for a requantization.
    pub input: Operand,
    /// Output, int8 or int16, with the input's element count.
    pub output: Operand,
    /// f32 -> integer: the output's scale (checked at load); unused when `requant` is set.
    pub scale: f32,
    /// integer -> integer: the rescaling; `None` for f32 -> integer.
    pub requant: Option<RequantizeParams>,
}

crate::format::decode_fields!(Quantize {
    input,
    output,
    scale,
    requant
});

super::operand_fields!(Quantize: input => output);

/// Parameters of an int8 -> int8 rescale from `(input_scale, input_zero_point)` to
/// `(output_scale, output_zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RequantizeParams {
    /// Zero point of the input, as the kernel subtracts it.
    pub input_zero_point: i32,
    /// Zero point of the output, added after rescaling.
    pub output_zero_point: i32,
    /// `input_scale / output_scale` as a fixed-point multiplier.
    pub requant: Requant,
}

crate::format::decode_fields!(RequantizeParams {
    input_zero_point,
    output_zero_point,
    requant
});

impl RequantizeParams {
    /// Offline preparation: the factor `input_scale / output_scale` is computed in `f64` and split
    /// by `QuantizeMultiplier`, as TFLite Micro does.
    #[cfg(any(feature = "host", test))]
    pub fn prepare(
        input_scale: f32,
        input_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
    ) -> Self {
        let factor = input_scale as f64 / output_scale as f64;
        Self {
            input_zero_point,
            output_zero_point,
            requant: crate::quant::prepare::quantize_multiplier(factor),
        }
    }
}

pub(crate) fn validate(q: &Quantize, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let (tin, tout) = (check.tensor(&q.input)?, check.tensor(&q.output)?);
    let integer = |d| matches!(d, DType::I8 | DType::I16);
    if q.input.shape.elements() != q.output.shape.elements() || !integer(q.output.dtype) {
        return check.bad("quantize needs equal sizes and an int8 or int16 output");
    }
    match (q.input.dtype, &q.requant) {
        (DType::F32, None) if q.scale == tout.scale => Ok(()),
        (DType::I8 | DType::I16, Some(r))
            if r.requant.is_valid()
                && r.input_zero_point == tin.zero_point
                && r.output_zero_point == tout.zero_point =>
        {
            Ok(())
        }
        _ => check.bad("quantize parameters inconsistent with its operands"),
    }
}

pub(crate) fn run(q: &Quantize, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &q.output)?;
    match (&q.requant, q.input.dtype, q.output.dtype) {
        (Some(r), DType::I8, DType::I8) => {
            let x = v.i8(&q.input)?;
            kernels::requantize::requantize_s8(r, x, v.out_i8());
        }
        #[cfg(feature = "int16")]
        (Some(r), DType::I8, DType::I16) => {
            kernels::requantize::requantize(r, v.i8(&q.input)?, v.out_i16()?)
        }
        #[cfg(feature = "int16")]
        (Some(r), DType::I16, DType::I8) => {
            kernels::requantize::requantize(r, v.i16(&q.input)?, v.out_i8())
        }
        #[cfg(feature = "int16")]
        (Some(r), DType::I16, DType::I16) => {
            kernels::requantize::requantize(r, v.i16(&q.input)?, v.out_i16()?)
        }
        #[cfg(feature = "float")]
        (None, DType::F32, DType::I8) => {
            let x = v.f32(&q.input)?;
            kernels::float::quantize_f32_to_s8(q.scale, q.output.zero_point, x, v.out_i8());
        }
        #[cfg(all(feature = "float", feature = "int16"))]
        (None, DType::F32, DType::I16) => {
            let x = v.f32(&q.input)?;
            kernels::float::quantize_f32_to_s16(q.scale, x, v.out_i16()?);
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}
