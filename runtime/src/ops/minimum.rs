//! MINIMUM: the smaller of two elements, with broadcasting; MAXIMUM's struct, checks and kernel
//! (`maximum.rs`).

use super::maximum::{run_extremum, validate_extremum, ExtremumParams};
use super::Binary;
use crate::validate::Check;
use crate::Error;

pub(crate) fn validate(b: &Binary<ExtremumParams>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    validate_extremum(b, check)
}

pub(crate) fn run(b: &Binary<ExtremumParams>, arena: &mut [u8]) -> Result<(), Error> {
    run_extremum(b, arena, false)
}
