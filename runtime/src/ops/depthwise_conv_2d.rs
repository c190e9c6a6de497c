//! DEPTHWISE_CONV_2D: each input channel convolved with its own `depth_multiplier` filters (wire
//! struct [`Conv`], shared with CONV_2D).

use super::conv_2d::{run_conv, validate_conv, Conv};
use crate::format::DType;
use crate::interpreter::{le_i32, CORRUPT};
use crate::kernels;
use crate::validate::Check;
use crate::Error;

pub(crate) fn validate(c: &Conv<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    validate_conv(c, check, true)
}

impl Conv<'_> {
    /// As a DEPTHWISE_CONV_2D: whether its output may take exactly its input's bytes (int8, batch
    /// 1, depth multiplier 1, stride 1, the input's shape, rows the ring kernel holds whole; see
    /// [`kernels::optimized::depthwise_conv2d::runs_over_input`]).
    pub fn runs_over_input(&self) -> bool {
        cfg!(feature = "in-place")
            && self.input.dtype == DType::I8
            && self.output.dtype == DType::I8
            && self.depth_multiplier == 1
            && self.input.shape.rank == 4
            && self.input.shape.nhwc().n == 1
            && kernels::optimized::depthwise_conv2d::runs_over_input(&self.geometry())
    }
}

pub(crate) fn run(c: &Conv<'_>, arena: &mut [u8]) -> Result<(), Error> {
    if c.input.offset == c.output.offset && c.runs_over_input() {
        return run_over_input(c, arena);
    }
    let dm = c.depth_multiplier as usize;
    run_conv(
        c,
        arena,
        |g, q, x, filter, bias, out| {
            kernels::optimized::depthwise_conv2d_s8(g, dm, q, x, filter, bias, out)
        },
        #[cfg(feature = "int16")]
        |g, q, x, filter, bias, out| {
            kernels::int16::conv::depthwise_conv2d_s16(g, dm, q, x, filter, bias, out)
        },
        #[cfg(feature = "float")]
        |g, act, x, filter, bias, out| {
            kernels::float::depthwise_conv2d_f32(g, dm, act, x, filter, bias, out)
        },
    )
}

/// Runs the convolution with its output over its input ([`Conv::runs_over_input`]).
#[inline(never)]
fn run_over_input(c: &Conv<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let (g, q) = (c.geometry(), c.quant()?);
    let at = c.input.offset as usize;
    let data = arena.get_mut(at..at + g.input.len()).ok_or(CORRUPT)?;
    kernels::optimized::depthwise_conv2d_s8_over_input(
        &g,
        &q,
        bytemuck::cast_slice_mut(data),
        bytemuck::cast_slice(c.filter),
        le_i32(c.bias)?,
    );
    Ok(())
}
