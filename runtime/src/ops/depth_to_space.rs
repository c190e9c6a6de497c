//! DEPTH_TO_SPACE: each input pixel's channels become a `bh x bw` block of output pixels (int8,
//! int16 or f32; the output keeps the input's quantization). A transposed convolution runs as a
//! convolution whose output channels are the block's phases, then this operator.

use serde::{Deserialize, Serialize};

use crate::format::{DType, Operand};
use crate::interpreter::{Views, CORRUPT};
use crate::kernels::Nhwc;
use crate::validate::Check;
use crate::Error;

/// DepthToSpace of an NHWC tensor by blocks of `block[0] x block[1]` pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthToSpace {
    /// Input `[n, h, w, bh * bw * c]`.
    pub input: Operand,
    /// Output `[n, h * bh, w * bw, c]`.
    pub output: Operand,
    /// Block height and width.
    pub block: [u8; 2],
    /// Where output pixel `(dy, dx)` of a block finds channel `k`: `false`, input channel
    /// `(dy * bw + dx) * c + k` (TFLite's order, ONNX's DCR); `true`, `k * bh * bw + dy * bw + dx`
    /// (ONNX's CRD, PyTorch's PixelShuffle).
    pub crd: bool,
}

crate::format::decode_fields!(DepthToSpace {
    input,
    output,
    block,
    crd
});

super::operand_fields!(DepthToSpace: input => output);

pub(crate) fn validate(d: &DepthToSpace, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    check.kind16(&d.input, &d.output)?;
    let (i, o) = (d.input.shape.nhwc(), d.output.shape.nhwc());
    let [bh, bw] = d.block.map(usize::from);
    let fits = d.input.shape.rank == 4
        && d.output.shape.rank == 4
        && bh >= 1
        && bw >= 1
        && o.n == i.n
        && Some(o.h) == i.h.checked_mul(bh)
        && Some(o.w) == i.w.checked_mul(bw)
        && Some(i.c) == o.c.checked_mul(bh * bw);
    if !fits {
        return check.bad("depth-to-space output is not the input's channels as blocks of pixels");
    }
    if d.input.zero_point != d.output.zero_point
        || check.tensor(&d.input)?.scale != check.tensor(&d.output)?.scale
    {
        return check.bad("depth-to-space output quantized unlike its input");
    }
    Ok(())
}

pub(crate) fn run(d: &DepthToSpace, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &d.output)?;
    let si = d.input.shape.nhwc();
    let block = d.block.map(usize::from);
    match d.input.dtype {
        DType::I8 => depth_to_space(si, block, d.crd, v.i8(&d.input)?, v.out_i8()),
        #[cfg(feature = "int16")]
        DType::I16 => {
            let x = v.i16(&d.input)?;
            depth_to_space(si, block, d.crd, x, v.out_i16()?)
        }
        #[cfg(feature = "float")]
        DType::F32 => {
            let x = v.f32(&d.input)?;
            depth_to_space(si, block, d.crd, x, v.out_f32()?)
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}

/// Writes `input` (shape `input_shape`, channels `bh * bw * c`) as blocks of `block` pixels of `c`
/// channels into `output` (`[n, h * bh, w * bw, c]`), in TFLite's channel order or, with `crd`,
/// ONNX's CRD order (see [`DepthToSpace::crd`]). The caller guarantees the shapes.
pub fn depth_to_space<T: Copy>(
    input_shape: Nhwc,
    block: [usize; 2],
    crd: bool,
    input: &[T],
    output: &mut [T],
) {
    let [bh, bw] = block;
    let phases = bh * bw;
    let c = input_shape.c / phases;
    let o = Nhwc::new(input_shape.n, input_shape.h * bh, input_shape.w * bw, c);
    for n in 0..input_shape.n {
        for y in 0..input_shape.h {
            for x in 0..input_shape.w {
                let src = &input[input_shape.index(n, y, x, 0)..][..input_shape.c];
                for dy in 0..bh {
                    for dx in 0..bw {
                        let phase = dy * bw + dx;
                        let dst = &mut output[o.index(n, y * bh + dy, x * bw + dx, 0)..][..c];
                        if crd {
                            for (k, out) in dst.iter_mut().enumerate() {
                                *out = src[k * phases + phase];
                            }
                        } else {
                            dst.copy_from_slice(&src[phase * c..][..c]);
                        }
                    }
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

    /// One DepthToSpace from int8 `input` dims to `output` dims (zero point 3, the output's
    /// `zp`).
    fn model(input: &[usize], output: &[usize], block: [u8; 2], crd: bool, zp: i32) -> Vec<u8> {
        int8_unary_model(input, output, zp, |input, output| {
            Op::DepthToSpace(DepthToSpace {
                input,
                output,
                block,
                crd,
            })
        })
    }

    #[test]
    fn channels_become_blocks_in_both_orders() {
        // Input [1, 2, 1, 12]: pixel y holds 100 y + channel. Blocks of 2 x 3 pixels, 2 channels.
        let x: Vec<i8> = (0..2)
            .flat_map(|y| (0..12).map(move |ch| (50 * y + ch) as i8))
            .collect();
        let dcr = run_int8(
            &model(&[1, 2, 1, 12], &[1, 4, 3, 2], [2, 3], false, 3),
            &[&x],
        );
        let crd = run_int8(
            &model(&[1, 2, 1, 12], &[1, 4, 3, 2], [2, 3], true, 3),
            &[&x],
        );
        for oy in 0..4 {
            for ox in 0..3 {
                for k in 0..2 {
                    let (y, dy, dx) = (oy / 2, oy % 2, ox);
                    let at = (oy * 3 + ox) * 2 + k;
                    assert_eq!(dcr[at] as usize, 50 * y + (dy * 3 + dx) * 2 + k);
                    assert_eq!(crd[at] as usize, 50 * y + k * 6 + dy * 3 + dx);
                }
            }
        }
    }

    #[test]
    fn shapes_that_are_not_blocks_are_refused() {
        let blocks = "depth-to-space output is not the input's channels as blocks of pixels";
        assert_eq!(
            refusal(&model(&[1, 2, 1, 12], &[1, 4, 2, 3], [2, 3], false, 3)),
            blocks
        );
        assert_eq!(
            refusal(&model(&[1, 2, 1, 12], &[1, 2, 1, 12], [0, 1], false, 3)),
            blocks
        );
        assert_eq!(
            refusal(&model(&[1, 2, 1, 12], &[1, 4, 3, 2], [2, 3], false, 0)),
            "depth-to-space output quantized unlike its input"
        );
    }
}
