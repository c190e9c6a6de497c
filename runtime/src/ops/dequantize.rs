//! DEQUANTIZE: int8 or int16 -> f32 with the input's scale (needs the `float` feature to run).

use serde::{Deserialize, Serialize};

use crate::format::{DType, Operand};
#[cfg(feature = "float")]
use crate::interpreter::Views;
#[cfg(feature = "float")]
use crate::kernels;
use crate::validate::Check;
use crate::Error;

/// Dequantize: int8 or int16 -> f32 with the input's `scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dequantize {
    /// Input, int8 or int16.
    pub input: Operand,
    /// Output, f32, with the input's element count.
    pub output: Operand,
    /// The input's scale (checked equal to its tensor's at load).
    pub scale: f32,
}

crate::format::decode_fields!(Dequantize {
    input,
    output,
    scale
});

super::operand_fields!(Dequantize: input => output);

pub(crate) fn validate(d: &Dequantize, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let tin = check.tensor(&d.input)?;
    let integer = matches!(d.input.dtype, DType::I8 | DType::I16);
    if !integer || d.output.dtype != DType::F32 || d.scale != tin.scale {
        return check.bad("dequantize needs int8 or int16 -> f32 with the input's scale");
    }
    if d.input.shape.elements() != d.output.shape.elements() {
        return check.bad("dequantize changes the element count");
    }
    Ok(())
}

#[cfg(feature = "float")]
pub(crate) fn run(d: &Dequantize, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &d.output)?;
    match d.input.dtype {
        #[cfg(feature = "int16")]
        DType::I16 => {
            let x = v.i16(&d.input)?;
            kernels::float::dequantize_s16_to_f32(d.scale, x, v.out_f32()?);
        }
        DType::I8 => {
            let x = v.i8(&d.input)?;
            kernels::float::dequantize_s8_to_f32(d.scale, d.input.zero_point, x, v.out_f32()?);
        }
        _ => return Err(crate::interpreter::CORRUPT),
    }
    Ok(())
}

/// Without `float` a model with f32 tensors does not load, so no Dequantize reaches `run`.
#[cfg(not(feature = "float"))]
pub(crate) fn run(_: &Dequantize, _: &mut [u8]) -> Result<(), Error> {
    Err(crate::interpreter::CORRUPT)
}
