//! SLICE: the box of the input that starts at `begin` and has the output's shape (int8, int16 or
//! f32; the output keeps the input's quantization).

use serde::{Deserialize, Serialize};

use crate::format::{DType, Operand, MAX_RANK};
use crate::interpreter::{Views, CORRUPT};
use crate::kernels::Nhwc;
use crate::validate::Check;
use crate::Error;

/// Slice; `begin` is the box's first element per NHWC dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    /// Input.
    pub input: Operand,
    /// Output, of the input's rank: the box's shape.
    pub output: Operand,
    /// The box's start per NHWC dimension (as `Shape::nhwc` aligns lower ranks).
    pub begin: [u16; MAX_RANK],
}

crate::format::decode_fields!(Slice {
    input,
    output,
    begin
});

super::operand_fields!(Slice: input => output);

pub(crate) fn validate(s: &Slice, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    check.kind16(&s.input, &s.output)?;
    let same_scale = check.tensor(&s.input)?.scale == check.tensor(&s.output)?.scale;
    let (i, o) = (s.input.shape.nhwc(), s.output.shape.nhwc());
    let dims = [(i.n, o.n), (i.h, o.h), (i.w, o.w), (i.c, o.c)];
    if s.input.shape.rank != s.output.shape.rank
        || dims
            .iter()
            .zip(s.begin)
            .any(|(&(a, b), start)| start as usize + b > a)
        || s.input.zero_point != s.output.zero_point
        || !same_scale
    {
        return check.bad("slice box outside the input, or quantization changed");
    }
    Ok(())
}

pub(crate) fn run(s: &Slice, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &s.output)?;
    let (si, so) = (s.input.shape.nhwc(), s.output.shape.nhwc());
    let begin = s.begin.map(|b| b as usize);
    match s.input.dtype {
        DType::I8 => slice(si, so, begin, v.i8(&s.input)?, v.out_i8()),
        #[cfg(feature = "int16")]
        DType::I16 => {
            let x = v.i16(&s.input)?;
            slice(si, so, begin, x, v.out_i16()?)
        }
        #[cfg(feature = "float")]
        DType::F32 => {
            let x = v.f32(&s.input)?;
            slice(si, so, begin, x, v.out_f32()?)
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}

/// Copies the box of `input` (shape `input_shape`) that starts at `begin` (N, H, W, C) and has
/// `output_shape` into `output`. The caller guarantees the box lies inside the input.
pub fn slice<T: Copy>(
    input_shape: Nhwc,
    output_shape: Nhwc,
    begin: [usize; 4],
    input: &[T],
    output: &mut [T],
) {
    let c = output_shape.c;
    for n in 0..output_shape.n {
        for y in 0..output_shape.h {
            for x in 0..output_shape.w {
                let src = input_shape.index(n + begin[0], y + begin[1], x + begin[2], begin[3]);
                let dst = output_shape.index(n, y, x, 0);
                output[dst..dst + c].copy_from_slice(&input[src..src + c]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::{int8_unary_model, refusal, run_int8};
    use crate::ops::Op;
    use crate::Model;
    use std::vec::Vec;

    /// One Slice from `[1, 3, 4, 5]` int8 (zero point 3) to `out` at `begin`, with the output's
    /// zero point `zero_point`.
    fn model(out: &[usize], begin: [u16; 4], zero_point: i32) -> Vec<u8> {
        int8_unary_model(&[1, 3, 4, 5], out, zero_point, |input, output| {
            Op::Slice(Slice {
                input,
                output,
                begin,
            })
        })
    }

    #[test]
    fn the_box_is_copied() {
        let bytes = model(&[1, 2, 2, 3], [0, 1, 2, 1], 3);
        let x: Vec<i8> = (0..60).map(|v| v as i8).collect();
        let y = run_int8(&bytes, &[&x]);
        // Element (y, x, c) of the input is 20 y + 5 x + c.
        let want: Vec<i8> = [(1, 2), (1, 3), (2, 2), (2, 3)]
            .iter()
            .flat_map(|&(y, xx)| (1..4).map(move |c| (20 * y + 5 * xx + c) as i8))
            .collect();
        assert_eq!(y, want);
    }

    #[test]
    fn boxes_outside_the_input_are_refused() {
        let outside = "slice box outside the input, or quantization changed";
        assert_eq!(refusal(&model(&[1, 2, 2, 3], [0, 2, 2, 1], 3)), outside);
        assert_eq!(refusal(&model(&[1, 2, 2, 3], [0, 1, 2, 3], 3)), outside);
        assert_eq!(refusal(&model(&[1, 2, 2, 3], [0, 0, 0, 0], 0)), outside);
        assert!(Model::from_bytes(&model(&[2, 6, 3], [0, 0, 0, 0], 3)).is_err());
    }
}
