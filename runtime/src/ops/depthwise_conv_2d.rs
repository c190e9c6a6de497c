//! DEPTHWISE_CONV_2D: each input channel convolved with its own `depth_multiplier` filters (wire
//! struct [`Conv`], shared with CONV_2D).

use super::conv_2d::{over_input, run_conv, run_over_input, validate_conv, Conv};
use crate::kernels;
use crate::validate::Check;
use crate::Error;

pub(crate) fn validate(c: &Conv<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    validate_conv(c, check, true)
}

pub(crate) fn run(c: &Conv<'_>, arena: &mut [u8]) -> Result<(), Error> {
    if over_input(c) {
        return run_over_input(c, arena, kernels::optimized::depthwise_conv2d_s8_over_input);
    }
    let dm = c.depth_multiplier as usize;
    #[cfg(feature = "int16")]
    if c.is_wide() {
        return super::conv_2d::run_wide(c, arena, |g, q, x, filter, bias, out| {
            kernels::optimized::depthwise_conv2d_s8(g, dm, q, x, filter, bias, out)
        });
    }
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
