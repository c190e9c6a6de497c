//! MAX_POOL_2D: the maximum of each window (wire struct [`Pool`], shared with AVERAGE_POOL_2D).

use super::average_pool_2d::{run_pool, validate_pool, Pool};
use crate::kernels;
use crate::validate::Check;
use crate::Error;

pub(crate) fn validate(p: &Pool, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    validate_pool(p, check)
}

pub(crate) fn run(p: &Pool, arena: &mut [u8]) -> Result<(), Error> {
    run_pool(
        p,
        arena,
        kernels::optimized::max_pool2d_s8,
        #[cfg(feature = "int16")]
        kernels::int16::pooling::max_pool2d_s16,
        #[cfg(feature = "float")]
        kernels::float::max_pool2d_f32,
    )
}
