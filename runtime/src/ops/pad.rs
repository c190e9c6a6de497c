//! PAD with the output's zero point (int8), 0 (int16, as TFLite Micro pads int16) or 0.0 (f32).

use serde::{Deserialize, Serialize};

use crate::format::{DType, Operand, MAX_RANK};
use crate::interpreter::{Views, CORRUPT};
use crate::kernels;
use crate::validate::Check;
use crate::Error;

/// Pad; `before` is the leading padding per NHWC dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pad {
    /// Input, placed at offset `before` in the output.
    pub input: Operand,
    /// Output, of the input's rank: each dimension at least the input's plus `before`.
    pub output: Operand,
    /// Leading padding per NHWC dimension (the rest of each output dimension pads after).
    pub before: [u16; MAX_RANK],
}

crate::format::decode_fields!(Pad {
    input,
    output,
    before
});

super::operand_fields!(Pad: input => output);

pub(crate) fn validate(p: &Pad, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    check.kind16(&p.input, &p.output)?;
    let (i, o) = (p.input.shape.nhwc(), p.output.shape.nhwc());
    let dims = [(i.n, o.n), (i.h, o.h), (i.w, o.w), (i.c, o.c)];
    if p.input.shape.rank != p.output.shape.rank
        || dims
            .iter()
            .zip(p.before)
            .any(|(&(a, b), pre)| a + pre as usize > b)
        || p.input.zero_point != p.output.zero_point
    {
        return check.bad("pad sizes inconsistent with the shapes");
    }
    Ok(())
}

pub(crate) fn run(p: &Pad, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &p.output)?;
    let (si, so) = (p.input.shape.nhwc(), p.output.shape.nhwc());
    let before = p.before.map(|b| b as usize);
    match p.input.dtype {
        DType::I8 => {
            let x = v.i8(&p.input)?;
            kernels::pad::pad_s8(si, so, before, p.output.zero_point as i8, x, v.out_i8());
        }
        #[cfg(feature = "int16")]
        DType::I16 => {
            let x = v.i16(&p.input)?;
            kernels::pad::pad(si, so, before, 0i16, x, v.out_i16()?);
        }
        #[cfg(feature = "float")]
        DType::F32 => {
            let x = v.f32(&p.input)?;
            kernels::pad::pad(si, so, before, 0.0f32, x, v.out_f32()?);
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}
