//! RESIZE_BILINEAR: each output pixel blends the four nearest input pixels (TFLite's kernel, with
//! its corner-alignment and half-pixel-centre flags; int8 and int16 in its fixed point, f32); the
//! output keeps the input's quantization.

use serde::{Deserialize, Serialize};

use crate::format::{DType, Operand};
use crate::interpreter::{Views, CORRUPT};
#[cfg(feature = "float")]
use crate::kernels::resize::resize_bilinear_f32;
use crate::kernels::resize::{resize_bilinear_int, BilinearMode};
use crate::validate::Check;
use crate::Error;

/// Bilinear resize of an NHWC tensor to the output's height and width.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResizeBilinear {
    /// Input, rank 4 (NHWC).
    pub input: Operand,
    /// Output: the input's batch, channels and quantization, any height and width.
    pub output: Operand,
    /// The corner pixels of input and output coincide.
    pub align_corners: bool,
    /// Output pixel `o` reads input coordinate `(o + 0.5) * in / out - 0.5`.
    pub half_pixel_centers: bool,
}

crate::format::decode_fields!(ResizeBilinear {
    input,
    output,
    align_corners,
    half_pixel_centers
});

super::operand_fields!(ResizeBilinear: input => output);

pub(crate) fn validate(r: &ResizeBilinear, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    check.kind16(&r.input, &r.output)?;
    super::resize_nearest_neighbor::validate_resize(&r.input, &r.output, check)?;
    if r.align_corners && r.half_pixel_centers {
        return check.bad("bilinear resize with both aligned corners and half-pixel centres");
    }
    Ok(())
}

pub(crate) fn run(r: &ResizeBilinear, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &r.output)?;
    let (si, so) = (r.input.shape.nhwc(), r.output.shape.nhwc());
    let mode = BilinearMode {
        align_corners: r.align_corners,
        half_pixel_centers: r.half_pixel_centers,
    };
    match r.input.dtype {
        DType::I8 => {
            let x = v.i8(&r.input)?;
            resize_bilinear_int(si, so, mode, x, v.out_i8(), |y| y as i8);
        }
        #[cfg(feature = "int16")]
        DType::I16 => {
            let x = v.i16(&r.input)?;
            resize_bilinear_int(si, so, mode, x, v.out_i16()?, |y| y as i16);
        }
        #[cfg(feature = "float")]
        DType::F32 => {
            let x = v.f32(&r.input)?;
            resize_bilinear_f32(si, so, mode, x, v.out_f32()?);
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::resize::resize_bilinear_f32;
    use crate::kernels::Nhwc;
    use crate::ops::testutil::{int8_unary_model, refusal, run_int8};
    use crate::ops::Op;
    use std::vec::Vec;

    fn model(input: &[usize], output: &[usize], align: bool, half: bool, zp: i32) -> Vec<u8> {
        int8_unary_model(input, output, zp, |input, output| {
            Op::ResizeBilinear(ResizeBilinear {
                input,
                output,
                align_corners: align,
                half_pixel_centers: half,
            })
        })
    }

    #[test]
    fn a_row_is_blended_as_tflite_does() {
        let run = |align, half| {
            let m = model(&[1, 1, 2, 1], &[1, 1, 4, 1], align, half, 3);
            run_int8(&m, &[&[0, 100]])
        };
        // Half-pixel centres: coordinates -0.25, 0.25, 0.75, 1.25, clamped to the row.
        assert_eq!(run(false, true), [0, 25, 75, 100]);
        // Asymmetric: 0, 0.5, 1, 1.5.
        assert_eq!(run(false, false), [0, 50, 100, 100]);
        // Aligned corners: 0, 1/3, 2/3, 1 (one third is 341/1024: 33.30 rounds to 33).
        assert_eq!(run(true, false), [0, 33, 67, 100]);
    }

    /// The fixed-point kernel stays within one step of the f32 one on random images and sizes, plus
    /// what its coordinates lose: the scale is rounded to 1/1024, so output `o` reads up to
    /// `(o + 1) / 2048` of a pixel away along each axis (each a change of at most 255 steps a
    /// pixel; nothing when the scale is a multiple of 1/1024).
    #[test]
    fn fixed_point_follows_float_within_one_step() {
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            seed >> 8
        };
        for case in 0..60 {
            let (ih, iw, c) = (1 + next() as usize % 5, 1 + next() as usize % 6, 2);
            let (oh, ow) = (1 + next() as usize % 11, 1 + next() as usize % 11);
            let align = case % 3 == 1;
            let mode = BilinearMode {
                align_corners: align,
                half_pixel_centers: case % 3 == 2,
            };
            let (si, so) = (Nhwc::new(1, ih, iw, c), Nhwc::new(1, oh, ow, c));
            let x: Vec<i8> = (0..si.len()).map(|_| next() as i8).collect();
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let (mut y, mut yf) = (std::vec![0i8; so.len()], std::vec![0f32; so.len()]);
            resize_bilinear_int(si, so, mode, &x, &mut y, |v| v as i8);
            resize_bilinear_f32(si, so, mode, &xf, &mut yf);
            let drift = |i: usize, o: usize| {
                let (i, o) = if align && o > 1 {
                    (i - 1, o - 1)
                } else {
                    (i, o)
                };
                if (1024 * i) % o == 0 {
                    0.0
                } else {
                    255.0 * (o + 1) as f32 / 2048.0
                }
            };
            let bound = 1.0 + drift(ih, oh) + drift(iw, ow);
            for (a, b) in y.iter().zip(&yf) {
                assert!((*a as f32 - b).abs() <= bound, "case {case}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn shapes_and_flags_are_checked() {
        let same = "resize takes and gives NHWC tensors of the same batch and channels";
        assert_eq!(
            refusal(&model(&[1, 2, 2, 1], &[1, 4, 4, 2], false, true, 3)),
            same
        );
        assert_eq!(
            refusal(&model(&[1, 2, 2, 1], &[1, 4, 4, 1], true, true, 3)),
            "bilinear resize with both aligned corners and half-pixel centres"
        );
        assert_eq!(
            refusal(&model(&[1, 2, 2, 1], &[1, 4, 4, 1], false, true, 0)),
            "resize output quantized unlike its input"
        );
    }
}
