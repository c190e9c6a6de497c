//! AVERAGE_POOL_2D: the mean of each window; [`Pool`] is also MAX_POOL_2D's wire struct.

use serde::{Deserialize, Serialize};

use crate::format::{Activation, DType, Operand, Window};
use crate::interpreter::{geometry, Views, CORRUPT};
use crate::kernels::{self, ConvGeometry};
use crate::validate::{clamp_range, window, Check, Kind, MAX_REDUCTION};
use crate::Error;

/// AveragePool2D and MaxPool2D (input and output share quantization).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Input, rank-4 NHWC.
    pub input: Operand,
    /// Output, rank-4 NHWC: same batch and channels as the input.
    pub output: Operand,
    /// Window height, at least 1.
    pub filter_h: u16,
    /// Window width, at least 1.
    pub filter_w: u16,
    /// Strides and padding (dilation is ignored).
    pub window: Window,
    /// Fused activation, applied by the f32 kernel.
    pub activation: Activation,
    /// Lower end of the fused activation clamp in the output's integer domain (int8).
    pub act_min: i32,
    /// Upper end of that clamp.
    pub act_max: i32,
}

super::operand_fields!(Pool: input => output);

pub(crate) fn validate(p: &Pool, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    validate_pool(p, check)
}

pub(crate) fn run(p: &Pool, arena: &mut [u8]) -> Result<(), Error> {
    run_pool(
        p,
        arena,
        kernels::optimized::average_pool2d_s8,
        #[cfg(feature = "float")]
        kernels::float::average_pool2d_f32,
    )
}

/// The checks of both pooling operators.
pub(crate) fn validate_pool(p: &Pool, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let (tin, tout) = (check.tensor(&p.input)?, check.tensor(&p.output)?);
    let k = check.kind(&p.input, &p.output)?;
    let (i, o) = (p.input.shape.nhwc(), p.output.shape.nhwc());
    if p.input.shape.rank != 4 || p.output.shape.rank != 4 {
        return check.bad("pooling needs rank-4 NHWC tensors");
    }
    if i.n != o.n || i.c != o.c || p.filter_h == 0 || p.filter_w == 0 {
        return check.bad("pooling shapes or filter size inconsistent");
    }
    window(&p.window).map_err(|r| check.fail(r))?;
    if k == Kind::Int8 {
        if tin.scale != tout.scale || tin.zero_point != tout.zero_point {
            return check.bad("int8 pooling needs equal input and output quantization");
        }
        clamp_range(p.act_min, p.act_max).map_err(|r| check.fail(r))?;
        if (p.filter_h as usize) * (p.filter_w as usize) > MAX_REDUCTION {
            return check.bad("pooling window too large");
        }
    }
    Ok(())
}

/// Runs a pooling operator with the int8 or the f32 kernel its operands' type selects.
pub(crate) fn run_pool(
    p: &Pool,
    arena: &mut [u8],
    int8: impl FnOnce(&ConvGeometry, i32, i32, &[i8], &mut [i8]),
    #[cfg(feature = "float")] float: impl FnOnce(&ConvGeometry, Activation, &[f32], &mut [f32]),
) -> Result<(), Error> {
    let mut v = Views::new(arena, &p.output)?;
    let g = geometry(&p.input, &p.output, p.filter_h, p.filter_w, &p.window);
    match p.input.dtype {
        DType::I8 => int8(&g, p.act_min, p.act_max, v.i8(&p.input)?, v.out_i8()),
        #[cfg(feature = "float")]
        DType::F32 => float(&g, p.activation, v.f32(&p.input)?, v.out_f32()?),
        _ => return Err(CORRUPT),
    }
    Ok(())
}
