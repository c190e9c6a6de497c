//! RESIZE_NEAREST_NEIGHBOR: each output pixel copies the nearest input pixel (TFLite without corner
//! alignment or half-pixel centres); the output keeps the input's quantization.

use serde::{Deserialize, Serialize};

use crate::format::{DType, Operand};
use crate::interpreter::{Views, CORRUPT};
use crate::kernels;
use crate::validate::Check;
use crate::Error;

/// Nearest-neighbour resize of an NHWC tensor to the output's height and width.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResizeNearestNeighbor {
    /// Input, rank 4 (NHWC).
    pub input: Operand,
    /// Output: the input's batch, channels and quantization, any height and width.
    pub output: Operand,
}

crate::format::decode_fields!(ResizeNearestNeighbor { input, output });

super::operand_fields!(ResizeNearestNeighbor: input => output);

pub(crate) fn validate(r: &ResizeNearestNeighbor, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    check.kind(&r.input, &r.output)?;
    validate_resize(&r.input, &r.output, check)
}

/// The checks every resize shares: NHWC tensors of the same batch, channels and quantization.
pub(crate) fn validate_resize(
    input: &Operand,
    output: &Operand,
    check: &Check<'_, '_, '_>,
) -> Result<(), Error> {
    let (i, o) = (input.shape.nhwc(), output.shape.nhwc());
    if input.shape.rank != 4 || output.shape.rank != 4 || i.n != o.n || i.c != o.c {
        return check.bad("resize takes and gives NHWC tensors of the same batch and channels");
    }
    if input.zero_point != output.zero_point
        || check.tensor(input)?.scale != check.tensor(output)?.scale
    {
        return check.bad("resize output quantized unlike its input");
    }
    Ok(())
}

pub(crate) fn run(r: &ResizeNearestNeighbor, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &r.output)?;
    let (si, so) = (r.input.shape.nhwc(), r.output.shape.nhwc());
    match r.input.dtype {
        DType::I8 => {
            let x = v.i8(&r.input)?;
            kernels::resize::resize_nearest(si, so, x, v.out_i8());
        }
        #[cfg(feature = "float")]
        DType::F32 => {
            let x = v.f32(&r.input)?;
            kernels::resize::resize_nearest(si, so, x, v.out_f32()?);
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}
