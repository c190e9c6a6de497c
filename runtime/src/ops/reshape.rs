//! RESHAPE: the same bytes under a new shape; no copy when the output is planned in place.

use serde::{Deserialize, Serialize};

use crate::format::Operand;
use crate::interpreter::Views;
use crate::validate::Check;
use crate::Error;

/// Reshape: same bytes, new shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reshape {
    /// Input, whose bytes the output takes (copied unless planned in place).
    pub input: Operand,
    /// Output: same element count and zero point; at the input's offset when planned in place.
    pub output: Operand,
}

crate::format::decode_fields!(Reshape { input, output });

super::operand_fields!(Reshape: input => output);

pub(crate) fn validate(r: &Reshape, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let tout = check.tensor(&r.output)?;
    check.kind16(&r.input, &r.output)?;
    if r.input.shape.elements() != r.output.shape.elements()
        || r.input.zero_point != r.output.zero_point
    {
        return check.bad("reshape changes the element count or quantization");
    }
    if tout.in_place && r.input.offset != r.output.offset {
        return check.bad("in-place reshape must share its input's offset");
    }
    Ok(())
}

pub(crate) fn run(r: &Reshape, arena: &mut [u8]) -> Result<(), Error> {
    if r.input.offset != r.output.offset {
        let v = Views::new(arena, &r.output)?;
        let x = v.bytes(&r.input)?;
        v.out.copy_from_slice(x);
    }
    Ok(())
}
