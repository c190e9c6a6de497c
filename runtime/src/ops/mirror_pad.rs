//! MIRROR_PAD: padding whose values are the input's own, mirrored (TFLite's MIRROR_PAD, REFLECT and
//! SYMMETRIC), repeated from the border (ONNX `edge`) or taken from the other end (ONNX `wrap`);
//! int8, int16 or f32, the output keeping the input's quantization.

use serde::{Deserialize, Serialize};

use crate::format::{DType, Decode, Operand, Reader};
use crate::interpreter::{Views, CORRUPT};
use crate::kernels::Nhwc;
use crate::validate::Check;
use crate::Error;

/// Where padding reads from; each example pads `[a b c]` by two either side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PadMode {
    /// Mirrored about the border element: `c b | a b c | b a` (at most `len - 1` a side).
    Reflect,
    /// Mirrored with the border element repeated: `b a | a b c | c b` (at most `len` a side).
    Symmetric,
    /// The border element repeated: `a a | a b c | c c` (any amount).
    Edge,
    /// The other end's elements, as if the dimension were a ring: `b c | a b c | a b` (at most
    /// `len` a side).
    Wrap,
}

impl Decode<'_> for PadMode {
    fn decode(r: &mut Reader<'_>) -> Option<Self> {
        const MODES: [PadMode; 4] = [
            PadMode::Reflect,
            PadMode::Symmetric,
            PadMode::Edge,
            PadMode::Wrap,
        ];
        MODES.get(r.read::<u32>()? as usize).copied()
    }
}

impl PadMode {
    /// The most padding this mode allows on either side of a dimension of `len >= 1` elements.
    pub const fn max_pad(self, len: usize) -> usize {
        match self {
            PadMode::Reflect => len - 1,
            PadMode::Symmetric | PadMode::Wrap => len,
            PadMode::Edge => usize::MAX,
        }
    }

    /// The input index that output index `o` of a dimension of `len` input elements with `before`
    /// leading padding reads. The caller guarantees the padding within [`PadMode::max_pad`].
    #[inline]
    pub const fn source(self, o: usize, before: usize, len: usize) -> usize {
        if o < before {
            let back = before - o; // 1 for the element just before the input.
            match self {
                PadMode::Reflect => back,
                PadMode::Symmetric => back - 1,
                PadMode::Edge => 0,
                PadMode::Wrap => len - back,
            }
        } else if o - before < len {
            o - before
        } else {
            let past = o - before - len; // 0 for the element just after the input.
            match self {
                PadMode::Reflect => len - 2 - past,
                PadMode::Symmetric => len - 1 - past,
                PadMode::Edge => len - 1,
                PadMode::Wrap => past,
            }
        }
    }
}

/// Padding of an NHWC tensor by its own elements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MirrorPad {
    /// Input, placed at offset `before` in the output.
    pub input: Operand,
    /// Output, of the input's rank and quantization: each dimension the input's plus the padding.
    pub output: Operand,
    /// Leading padding per NHWC dimension (the rest of each output dimension pads after).
    pub before: [u16; 4],
    /// Where the padding reads from.
    pub mode: PadMode,
}

crate::format::decode_fields!(MirrorPad {
    input,
    output,
    before,
    mode
});

super::operand_fields!(MirrorPad: input => output);

pub(crate) fn validate(p: &MirrorPad, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    check.kind16(&p.input, &p.output)?;
    let (i, o) = (p.input.shape.nhwc(), p.output.shape.nhwc());
    let dims = [(i.n, o.n), (i.h, o.h), (i.w, o.w), (i.c, o.c)];
    let fits = |(&(len, out), &before): (&(usize, usize), &u16)| {
        let before = before as usize;
        let max = p.mode.max_pad(len.max(1));
        len >= 1
            && before <= max
            && out
                .checked_sub(len + before)
                .is_some_and(|after| after <= max)
    };
    if p.input.shape.rank != p.output.shape.rank || !dims.iter().zip(&p.before).all(fits) {
        return check.bad("mirror pad sizes inconsistent with the shapes or the mode");
    }
    if p.input.zero_point != p.output.zero_point
        || check.tensor(&p.input)?.scale != check.tensor(&p.output)?.scale
    {
        return check.bad("mirror pad output quantized unlike its input");
    }
    Ok(())
}

pub(crate) fn run(p: &MirrorPad, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &p.output)?;
    let (si, so) = (p.input.shape.nhwc(), p.output.shape.nhwc());
    let before = p.before.map(usize::from);
    match p.input.dtype {
        DType::I8 => mirror_pad(si, so, before, p.mode, v.i8(&p.input)?, v.out_i8()),
        #[cfg(feature = "int16")]
        DType::I16 => {
            let x = v.i16(&p.input)?;
            mirror_pad(si, so, before, p.mode, x, v.out_i16()?)
        }
        #[cfg(feature = "float")]
        DType::F32 => {
            let x = v.f32(&p.input)?;
            mirror_pad(si, so, before, p.mode, x, v.out_f32()?)
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}

/// Writes `input` (shape `input_shape`) into `output` (shape `output_shape`) at offset `before`
/// and fills the padding from the input as `mode` says. The caller guarantees the shapes and
/// padding amounts (see [`PadMode::max_pad`]).
pub fn mirror_pad<T: Copy>(
    input_shape: Nhwc,
    output_shape: Nhwc,
    before: [usize; 4],
    mode: PadMode,
    input: &[T],
    output: &mut [T],
) {
    let (i, o) = (input_shape, output_shape);
    let mut rows = output.chunks_exact_mut(o.c);
    for n in 0..o.n {
        let sn = mode.source(n, before[0], i.n);
        for y in 0..o.h {
            let sy = mode.source(y, before[1], i.h);
            for x in 0..o.w {
                let sx = mode.source(x, before[2], i.w);
                let src = &input[i.index(sn, sy, sx, 0)..][..i.c];
                let Some(dst) = rows.next() else { return };
                if o.c == i.c {
                    dst.copy_from_slice(src);
                } else {
                    for (k, d) in dst.iter_mut().enumerate() {
                        *d = src[mode.source(k, before[3], i.c)];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::Rng;
    use crate::ops::testutil::{int8_unary_model, refusal, run_int8};
    use crate::ops::Op;
    use std::vec;
    use std::vec::Vec;

    const MODES: [PadMode; 4] = [
        PadMode::Reflect,
        PadMode::Symmetric,
        PadMode::Edge,
        PadMode::Wrap,
    ];

    /// One dimension padded by index arithmetic on a signed position, as the modes define it.
    fn reference_1d(x: &[i32], before: usize, after: usize, mode: PadMode) -> Vec<i32> {
        let len = x.len() as i64;
        (-(before as i64)..len + after as i64)
            .map(|p| {
                let i = match mode {
                    _ if (0..len).contains(&p) => p,
                    PadMode::Reflect if p < 0 => -p,
                    PadMode::Reflect => 2 * (len - 1) - p,
                    PadMode::Symmetric if p < 0 => -p - 1,
                    PadMode::Symmetric => 2 * len - 1 - p,
                    PadMode::Edge => p.clamp(0, len - 1),
                    PadMode::Wrap => p.rem_euclid(len),
                };
                x[i as usize]
            })
            .collect()
    }

    #[test]
    fn each_mode_pads_a_row_as_documented() {
        let abc = [1, 2, 3];
        let want = [
            [3, 2, 1, 2, 3, 2, 1],
            [2, 1, 1, 2, 3, 3, 2],
            [1, 1, 1, 2, 3, 3, 3],
            [2, 3, 1, 2, 3, 1, 2],
        ];
        for (mode, want) in MODES.into_iter().zip(want) {
            let mut got = [0; 7];
            mirror_pad(
                Nhwc::new(1, 1, 3, 1),
                Nhwc::new(1, 1, 7, 1),
                [0, 0, 2, 0],
                mode,
                &abc,
                &mut got,
            );
            assert_eq!(got, want, "{mode:?}");
            assert_eq!(reference_1d(&abc, 2, 2, mode), want, "{mode:?}");
        }
    }

    /// Every dimension padded at once equals padding one dimension after another by the reference.
    #[test]
    fn random_shapes_equal_padding_one_dimension_at_a_time() {
        let mut rng = Rng::new(0x3177);
        for case in (0..400).take(crate::MIRI_CASES) {
            let mode = MODES[case % 4];
            let dims = [0; 4].map(|_| rng.range(1, 4) as usize);
            let mut before = [0usize; 4];
            let mut after = [0usize; 4];
            for d in 0..4 {
                let max = mode.max_pad(dims[d]).min(3) as i32;
                before[d] = rng.range(0, max) as usize;
                after[d] = rng.range(0, max) as usize;
            }
            let i = Nhwc::new(dims[0], dims[1], dims[2], dims[3]);
            let od = [0, 1, 2, 3].map(|d| dims[d] + before[d] + after[d]);
            let o = Nhwc::new(od[0], od[1], od[2], od[3]);
            let x: Vec<i32> = (0..i.len() as i32).collect();
            let mut got = vec![0; o.len()];
            mirror_pad(i, o, before, mode, &x, &mut got);
            // Pad the last dimension first, then each earlier one over the growing tensor.
            let mut want = x;
            let mut shape = dims;
            for d in (0..4).rev() {
                let inner: usize = shape[d + 1..].iter().product();
                let outer: usize = shape[..d].iter().product();
                let mut next = Vec::new();
                for b in 0..outer {
                    for line in 0..inner {
                        let along: Vec<i32> = (0..shape[d])
                            .map(|k| want[(b * shape[d] + k) * inner + line])
                            .collect();
                        let padded = reference_1d(&along, before[d], after[d], mode);
                        next.push(padded);
                    }
                }
                let long = od[d];
                let mut out = vec![0; outer * long * inner];
                for b in 0..outer {
                    for line in 0..inner {
                        for (k, v) in next[b * inner + line].iter().enumerate() {
                            out[(b * long + k) * inner + line] = *v;
                        }
                    }
                }
                want = out;
                shape[d] = long;
            }
            assert_eq!(got, want, "{mode:?} {dims:?} {before:?} {after:?}");
        }
    }

    fn model(
        input: &[usize],
        output: &[usize],
        before: [u16; 4],
        mode: PadMode,
        zp: i32,
    ) -> Vec<u8> {
        int8_unary_model(input, output, zp, |input, output| {
            Op::MirrorPad(MirrorPad {
                input,
                output,
                before,
                mode,
            })
        })
    }

    #[test]
    fn runs_in_a_model() {
        let x: Vec<i8> = (1..=6).collect(); // [1, 2, 3, 1] holding 1..6 as [h, w, c] = [2, 3, 1].
        let y = run_int8(
            &model(
                &[1, 2, 3, 1],
                &[1, 2, 6, 1],
                [0, 0, 2, 0],
                PadMode::Reflect,
                3,
            ),
            &[&x],
        );
        assert_eq!(y, [3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5]);
    }

    #[test]
    fn padding_beyond_the_mode_or_requantizing_is_refused() {
        let sizes = "mirror pad sizes inconsistent with the shapes or the mode";
        // Reflect: at most 2 a side of 3 columns; symmetric 3.
        assert_eq!(
            refusal(&model(
                &[1, 2, 3, 1],
                &[1, 2, 6, 1],
                [0, 0, 3, 0],
                PadMode::Reflect,
                3
            )),
            sizes
        );
        assert_eq!(
            refusal(&model(
                &[1, 2, 3, 1],
                &[1, 2, 7, 1],
                [0, 0, 1, 0],
                PadMode::Reflect,
                3
            )),
            sizes
        );
        let symmetric = model(
            &[1, 2, 3, 1],
            &[1, 2, 9, 1],
            [0, 0, 3, 0],
            PadMode::Symmetric,
            3,
        );
        assert!(Model::from_bytes(&symmetric).is_ok());
        // Output smaller than the input.
        assert_eq!(
            refusal(&model(
                &[1, 2, 3, 1],
                &[1, 2, 2, 1],
                [0, 0, 0, 0],
                PadMode::Edge,
                3
            )),
            sizes
        );
        assert_eq!(
            refusal(&model(
                &[1, 2, 3, 1],
                &[1, 2, 5, 1],
                [0, 0, 1, 0],
                PadMode::Edge,
                0
            )),
            "mirror pad output quantized unlike its input"
        );
    }

    use crate::Model;
}
