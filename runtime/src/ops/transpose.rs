//! TRANSPOSE: the input's axes in another order (int8, int16 or f32; the output keeps the input's
//! quantization). A channel shuffle is one: `[n, h * w, g, c / g]` to `[n, h * w, c / g, g]`.

use serde::{Deserialize, Serialize};

use crate::format::{DType, Operand, MAX_RANK};
use crate::interpreter::{Views, CORRUPT};
use crate::validate::Check;
use crate::Error;

/// Transpose over the shapes' four NHWC-aligned dimensions (as `Shape::nhwc` pads lower ranks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transpose {
    /// Input.
    pub input: Operand,
    /// Output, of the input's rank: dimension `i` is the input's `perm[i]`.
    pub output: Operand,
    /// Output axis `i` is input axis `perm[i]` (a permutation of 0..4).
    pub perm: [u8; MAX_RANK],
}

crate::format::decode_fields!(Transpose {
    input,
    output,
    perm
});

super::operand_fields!(Transpose: input => output);

/// The four NHWC-aligned dimensions of an operand.
fn dims(o: &Operand) -> [usize; 4] {
    let s = o.shape.nhwc();
    [s.n, s.h, s.w, s.c]
}

pub(crate) fn validate(t: &Transpose, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    check.kind16(&t.input, &t.output)?;
    let (i, o) = (dims(&t.input), dims(&t.output));
    let mut seen = [false; MAX_RANK];
    for &p in &t.perm {
        if let Some(s) = seen.get_mut(p as usize) {
            *s = true;
        }
    }
    let permutes = seen.iter().all(|&s| s)
        && t.input.shape.rank == t.output.shape.rank
        && (0..MAX_RANK).all(|a| o[a] == i[t.perm[a] as usize]);
    if !permutes {
        return check.bad("transpose output is not the input's axes reordered");
    }
    if t.input.zero_point != t.output.zero_point
        || check.tensor(&t.input)?.scale != check.tensor(&t.output)?.scale
    {
        return check.bad("transpose output quantized unlike its input");
    }
    Ok(())
}

pub(crate) fn run(t: &Transpose, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &t.output)?;
    let (shape, perm) = (dims(&t.input), t.perm.map(usize::from));
    match t.input.dtype {
        DType::I8 => transpose(shape, perm, v.i8(&t.input)?, v.out_i8()),
        #[cfg(feature = "int16")]
        DType::I16 => {
            let x = v.i16(&t.input)?;
            transpose(shape, perm, x, v.out_i16()?)
        }
        #[cfg(feature = "float")]
        DType::F32 => {
            let x = v.f32(&t.input)?;
            transpose(shape, perm, x, v.out_f32()?)
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}

/// Writes `input` (four dimensions `shape`, row-major) into `output` with output axis `i` being
/// input axis `perm[i]`. The caller guarantees `perm` is a permutation and the lengths match.
pub fn transpose<T: Copy>(shape: [usize; 4], perm: [usize; 4], input: &[T], output: &mut [T]) {
    let strides = [
        shape[1] * shape[2] * shape[3],
        shape[2] * shape[3],
        shape[3],
        1,
    ];
    let d = perm.map(|p| shape[p]);
    let s = perm.map(|p| strides[p]);
    let mut out = output.iter_mut();
    for a in 0..d[0] {
        for b in 0..d[1] {
            for c in 0..d[2] {
                let base = a * s[0] + b * s[1] + c * s[2];
                for (k, o) in (0..d[3]).zip(&mut out) {
                    *o = input[base + k * s[3]];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testutil::{int8_unary_model, refusal, run_int8};
    use crate::ops::Op;
    use std::vec::Vec;

    /// One Transpose of int8 `input` dims to `output` dims (input zero point 3, the output's `zp`).
    fn model(input: &[usize], output: &[usize], perm: [u8; 4], zp: i32) -> Vec<u8> {
        int8_unary_model(input, output, zp, |input, output| {
            Op::Transpose(Transpose {
                input,
                output,
                perm,
            })
        })
    }

    #[test]
    fn a_channel_shuffle_reorders_each_pixels_channels() {
        // Two pixels of six channels in two groups of three: channel j of the output is input
        // channel (j % 2) * 3 + j / 2.
        let x: Vec<i8> = (0..12).collect();
        let y = run_int8(&model(&[2, 2, 3], &[2, 3, 2], [0, 1, 3, 2], 3), &[&x]);
        assert_eq!(y, [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
        // Rows and columns of a [1, 2, 3, 1] image swapped.
        let x: Vec<i8> = (0..6).collect();
        let y = run_int8(&model(&[1, 2, 3, 1], &[1, 3, 2, 1], [0, 2, 1, 3], 3), &[&x]);
        assert_eq!(y, [0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn outputs_that_are_not_the_input_reordered_are_refused() {
        let reordered = "transpose output is not the input's axes reordered";
        assert_eq!(
            refusal(&model(&[2, 2, 3], &[2, 3, 2], [0, 1, 2, 3], 3)),
            reordered
        );
        assert_eq!(
            refusal(&model(&[2, 2, 3], &[2, 3, 2], [0, 1, 3, 3], 3)),
            reordered
        );
        assert_eq!(
            refusal(&model(&[2, 2, 3], &[2, 3, 2], [0, 1, 3, 9], 3)),
            reordered
        );
        assert_eq!(
            refusal(&model(&[2, 2, 3], &[2, 3, 2], [0, 1, 3, 2], 0)),
            "transpose output quantized unlike its input"
        );
    }
}
