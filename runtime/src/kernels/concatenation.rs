//! Concatenation, executed one input at a time: each call copies (or requantizes) one input's
//! slabs into their place in the output.

use crate::ops::RequantizeParams;

/// Copies one concatenation input into the output.
///
/// The tensors are viewed as `[outer, inner]` around the concatenation axis: for each
/// `o in 0..outer`, `input[o * input_inner..][..input_inner]` goes to
/// `output[o * output_inner + offset..][..input_inner]`, where `offset` is the sum of the
/// preceding inputs' `inner` sizes.
pub fn concatenation_part<T: Copy>(
    outer: usize,
    input_inner: usize,
    output_inner: usize,
    offset: usize,
    input: &[T],
    output: &mut [T],
) {
    for o in 0..outer {
        let src = &input[o * input_inner..][..input_inner];
        let dst = &mut output[o * output_inner + offset..][..input_inner];
        dst.copy_from_slice(src);
    }
}

/// Int8 [`concatenation_part`]: a plain copy when `requant` is `None` (TFLite Micro's int8
/// concatenation, which requires equal scales and zero points), otherwise each element is
/// requantized to the output's scale and zero point as [`super::requantize::requantize_s8`] does.
pub fn concatenation_part_s8(
    outer: usize,
    input_inner: usize,
    output_inner: usize,
    offset: usize,
    requant: Option<&RequantizeParams>,
    input: &[i8],
    output: &mut [i8],
) {
    let Some(p) = requant else {
        concatenation_part(outer, input_inner, output_inner, offset, input, output);
        return;
    };
    for o in 0..outer {
        let src = &input[o * input_inner..][..input_inner];
        let dst = &mut output[o * output_inner + offset..][..input_inner];
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = p.apply(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, dequant, quant, Rng};
    use crate::kernels::Nhwc;
    use std::vec;
    use std::vec::Vec;

    /// Reference: walks the output in NHWC order along `axis` and picks the element from the
    /// input whose range along `axis` contains the output coordinate.
    fn reference(
        shapes: &[Nhwc],
        axis: usize,
        inputs: &[Vec<f64>],
        out_scale: f32,
        out_zp: i32,
    ) -> Vec<i8> {
        let dims = |s: &Nhwc| [s.n, s.h, s.w, s.c];
        let mut out_dims = dims(&shapes[0]);
        out_dims[axis] = shapes.iter().map(|s| dims(s)[axis]).sum();
        let total: usize = out_dims.iter().product();
        (0..total)
            .map(|flat| {
                let mut rest = flat;
                let mut coord = [0usize; 4];
                for d in (0..4).rev() {
                    coord[d] = rest % out_dims[d];
                    rest /= out_dims[d];
                }
                let mut along = coord[axis];
                for (s, data) in shapes.iter().zip(inputs) {
                    let sd = dims(s);
                    if along < sd[axis] {
                        coord[axis] = along;
                        let i =
                            ((coord[0] * sd[1] + coord[1]) * sd[2] + coord[2]) * sd[3] + coord[3];
                        return quant(data[i], out_scale, out_zp);
                    }
                    along -= sd[axis];
                }
                unreachable!()
            })
            .collect()
    }

    /// Concatenates random int8 inputs along `axis`, each with its own scale unless `same_scale`.
    fn run(shapes: &[Nhwc], axis: usize, same_scale: bool, seed: u64) {
        let mut rng = Rng::new(seed);
        let (out_scale, out_zp) = (rng.f32(0.01, 0.1), rng.range(-50, 50));
        let dims = |s: &Nhwc| [s.n, s.h, s.w, s.c];
        let outer: usize = dims(&shapes[0])[..axis].iter().product();
        let inner = |s: &Nhwc| -> usize { dims(s)[axis..].iter().product() };
        let output_inner: usize = shapes.iter().map(inner).sum();

        let mut got = vec![0i8; outer * output_inner];
        let mut reals = Vec::new();
        let mut offset = 0;
        for s in shapes {
            let input = rng.i8_vec(s.len());
            let (scale, zp) = if same_scale {
                (out_scale, out_zp)
            } else {
                (rng.f32(0.01, 0.1), rng.range(-50, 50))
            };
            reals.push(
                input
                    .iter()
                    .map(|&q| dequant(q, scale, zp))
                    .collect::<Vec<_>>(),
            );
            let p = RequantizeParams::prepare(scale, zp, out_scale, out_zp);
            let requant = if same_scale { None } else { Some(&p) };
            concatenation_part_s8(
                outer,
                inner(s),
                output_inner,
                offset,
                requant,
                &input,
                &mut got,
            );
            offset += inner(s);
        }
        let want = reference(shapes, axis, &reals, out_scale, out_zp);
        assert_close(&got, &want, if same_scale { 0 } else { 1 });
    }

    #[test]
    fn hand_computed_inner_axis() {
        // Two [2, 2] and [2, 1] inputs along the last axis -> [2, 3].
        let mut out = [0i8; 6];
        concatenation_part_s8(2, 2, 3, 0, None, &[1, 2, 3, 4], &mut out);
        concatenation_part_s8(2, 1, 3, 2, None, &[9, 8], &mut out);
        assert_eq!(out, [1, 2, 9, 3, 4, 8]);
        // Requantized second input: factor 0.5, zero points 0 -> 2.
        let p = RequantizeParams::prepare(0.5, 0, 1.0, 2);
        concatenation_part_s8(2, 1, 3, 2, Some(&p), &[9, -8], &mut out);
        assert_eq!(out, [1, 2, 7, 3, 4, -2]);
    }

    #[test]
    fn generic_f32_outer_axis() {
        let mut out = [0.0f32; 5];
        concatenation_part(1, 2, 5, 0, &[1.0, 2.0], &mut out);
        concatenation_part(1, 3, 5, 2, &[3.0, 4.0, 5.0], &mut out);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn channel_axis_plain_and_requantized() {
        let shapes = [
            Nhwc::new(2, 3, 2, 3),
            Nhwc::new(2, 3, 2, 1),
            Nhwc::new(2, 3, 2, 4),
        ];
        run(&shapes, 3, true, 51);
        run(&shapes, 3, false, 52);
    }

    #[test]
    fn batch_axis_plain_and_requantized() {
        let shapes = [Nhwc::new(1, 2, 3, 2), Nhwc::new(3, 2, 3, 2)];
        run(&shapes, 0, true, 53);
        run(&shapes, 0, false, 54);
    }

    #[test]
    fn random_axes() {
        let mut rng = Rng::new(0xCA7);
        for i in (0..100).take(crate::MIRI_CASES) {
            let base = [
                rng.range(1, 3) as usize,
                rng.range(1, 3) as usize,
                rng.range(1, 3) as usize,
                rng.range(1, 3) as usize,
            ];
            let axis = rng.range(0, 3) as usize;
            let count = rng.range(1, 4) as usize;
            let shapes: Vec<Nhwc> = (0..count)
                .map(|_| {
                    let mut d = base;
                    d[axis] = rng.range(1, 3) as usize;
                    Nhwc::new(d[0], d[1], d[2], d[3])
                })
                .collect();
            let same_scale = rng.range(0, 1) == 1;
            run(&shapes, axis, same_scale, 5000 + i);
        }
    }
}
