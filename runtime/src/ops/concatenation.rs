//! CONCATENATION along one axis, each int8 input requantized to the output's scale where it
//! differs; int16 inputs are copied as they are (TFLite Micro's int16 concatenation, zero points 0).

use serde::{Deserialize, Serialize};

use super::RequantizeParams;
use crate::format::{DType, Operand, Seq};
use crate::interpreter::{split_at_axis, Views, CORRUPT};
use crate::kernels;
use crate::validate::{Check, Kind};
use crate::Error;

/// One input of a Concatenation, with its requantization when its scale differs from the output's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConcatInput {
    /// The input tensor.
    pub input: Operand,
    /// Rescaling to the output's scale and zero point; `None` when they are the input's.
    pub requant: Option<RequantizeParams>,
}

crate::format::decode_fields!(ConcatInput { input, requant });

/// Concatenation along `axis` (an index into the output's dimensions).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Concatenation<'a> {
    /// The inputs, in the order their parts appear along `axis`.
    #[serde(borrow)]
    pub inputs: Seq<'a, ConcatInput>,
    /// Output: the inputs' sizes along `axis` add up to its own.
    pub output: Operand,
    /// Dimension concatenated along, less than the output's rank.
    pub axis: u8,
}

crate::format::decode_fields!(Concatenation<'a> { inputs, output, axis });

const UNDECODABLE: Error = Error::Malformed {
    reason: "concatenation inputs do not decode",
};

impl super::Operands for Concatenation<'_> {
    fn inputs(&self, f: &mut dyn FnMut(&Operand) -> Result<(), Error>) -> Result<(), Error> {
        for part in self.inputs.iter() {
            f(&part.map_err(|_| UNDECODABLE)?.input)?;
        }
        Ok(())
    }

    fn output(&self) -> &Operand {
        &self.output
    }

    /// The output only: the inputs are encoded bytes, which a builder fills in after placing them
    /// (the quantizer's `ModelBuilder::concatenation`).
    #[cfg(any(feature = "host", test))]
    fn operands_mut(&mut self, f: &mut dyn FnMut(&mut Operand, bool)) {
        f(&mut self.output, true);
    }
}

pub(crate) fn validate(c: &Concatenation<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let rank = c.output.shape.rank as usize;
    let axis = c.axis as usize;
    if axis >= rank || c.inputs.is_empty() {
        return check.bad("concatenation axis outside the output's rank, or no inputs");
    }
    let mut total = 0usize;
    for part in c.inputs.iter() {
        let part = part.map_err(|_| UNDECODABLE)?;
        let k = check.kind16(&part.input, &c.output)?;
        let (i, o) = (part.input.shape, c.output.shape);
        if i.rank != o.rank || (0..rank).any(|d| d != axis && i.dims[d] != o.dims[d]) {
            return check.bad("concatenation input differs from the output off the axis");
        }
        if let Some(r) = &part.requant {
            if k != Kind::Int8 || !r.requant.is_valid() {
                return check.bad("invalid concatenation requantization");
            }
            if r.input_zero_point != part.input.zero_point
                || r.output_zero_point != c.output.zero_point
            {
                return check
                    .bad("concatenation requantization zero points differ from the operands'");
            }
        } else if k == Kind::Int8 && part.input.zero_point != c.output.zero_point {
            return check.bad("int8 concatenation input needs requantization");
        }
        total += i.dims[axis] as usize;
    }
    if total != c.output.shape.dims[axis] as usize {
        return check.bad("concatenated sizes do not add up to the output's");
    }
    Ok(())
}

pub(crate) fn run(c: &Concatenation<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let axis = c.axis as usize;
    let (outer, out_inner) = split_at_axis(&c.output, axis);
    let elem = c.output.dtype.size();
    let mut offset = 0usize;
    for part in c.inputs.iter() {
        let part = part.map_err(|_| CORRUPT)?;
        let mut v = Views::new(arena, &c.output)?;
        let (_, in_inner) = split_at_axis(&part.input, axis);
        match c.output.dtype {
            DType::I8 => {
                let x = v.i8(&part.input)?;
                let requant = part.requant.as_ref();
                kernels::concatenation::concatenation_part_s8(
                    outer,
                    in_inner,
                    out_inner,
                    offset,
                    requant,
                    x,
                    v.out_i8(),
                );
            }
            _ => {
                // Other element types (int16, f32) are copied byte-wise.
                let x = v.bytes(&part.input)?;
                kernels::concatenation::concatenation_part(
                    outer,
                    in_inner * elem,
                    out_inner * elem,
                    offset * elem,
                    x,
                    v.out,
                );
            }
        }
        offset += in_inner;
    }
    Ok(())
}
