//! Constant padding of 4-D NHWC tensors (TFLite `Pad`/`PadV2`), generic over the element type.

use super::Nhwc;

/// Places `input` (shape `input_shape`) inside `output` (shape `output_shape`) with `before[d]`
/// leading elements of padding in each dimension `d` (N, H, W, C), and fills every other element
/// with `pad_value`.
///
/// The caller guarantees `before[d] + input_shape[d] <= output_shape[d]` and that `output` holds
/// `output_shape.len()` elements.
pub fn pad<T: Copy>(
    input_shape: Nhwc,
    output_shape: Nhwc,
    before: [usize; 4],
    pad_value: T,
    input: &[T],
    output: &mut [T],
) {
    output.fill(pad_value);
    let c = input_shape.c;
    // Each input row along C is contiguous in both tensors: copy it whole.
    for n in 0..input_shape.n {
        for y in 0..input_shape.h {
            for x in 0..input_shape.w {
                let src = input_shape.index(n, y, x, 0);
                let dst =
                    output_shape.index(n + before[0], y + before[1], x + before[2], before[3]);
                output[dst..dst + c].copy_from_slice(&input[src..src + c]);
            }
        }
    }
}

/// Int8 padding: [`pad`] with an `i8` pad value (TFLite uses the output zero point unless the
/// model gives a constant value).
pub fn pad_s8(
    input_shape: Nhwc,
    output_shape: Nhwc,
    before: [usize; 4],
    pad_value: i8,
    input: &[i8],
    output: &mut [i8],
) {
    pad(input_shape, output_shape, before, pad_value, input, output);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::Rng;
    use std::vec;
    use std::vec::Vec;

    /// Reference: for every output element, decide from its coordinates whether it is padding.
    fn reference<T: Copy>(
        input_shape: Nhwc,
        output_shape: Nhwc,
        before: [usize; 4],
        pad_value: T,
        input: &[T],
    ) -> Vec<T> {
        let in_dims = [input_shape.n, input_shape.h, input_shape.w, input_shape.c];
        let out_dims = [
            output_shape.n,
            output_shape.h,
            output_shape.w,
            output_shape.c,
        ];
        (0..output_shape.len())
            .map(|flat| {
                // Unravel the flat output index, last dimension fastest.
                let mut rest = flat;
                let mut coord = [0usize; 4];
                for d in (0..4).rev() {
                    coord[d] = rest % out_dims[d];
                    rest /= out_dims[d];
                }
                let mut src = 0;
                for d in 0..4 {
                    let Some(i) = coord[d].checked_sub(before[d]).filter(|&i| i < in_dims[d])
                    else {
                        return pad_value;
                    };
                    src = src * in_dims[d] + i;
                }
                input[src]
            })
            .collect()
    }

    #[test]
    fn hand_computed() {
        // 1x1x2x1 [1, 2] padded by one column each side and one channel before: 1x1x4x2.
        let input = [1i8, 2];
        let mut out = [0i8; 8];
        pad_s8(
            Nhwc::new(1, 1, 2, 1),
            Nhwc::new(1, 1, 4, 2),
            [0, 0, 1, 1],
            -7,
            &input,
            &mut out,
        );
        assert_eq!(out, [-7, -7, -7, 1, -7, 2, -7, -7]);
    }

    #[test]
    fn random_shapes_nonzero_pad_value() {
        let mut rng = Rng::new(0x9AD);
        for _ in (0..200).take(crate::MIRI_CASES) {
            let in_shape = Nhwc::new(
                rng.range(1, 2) as usize,
                rng.range(1, 5) as usize,
                rng.range(1, 5) as usize,
                rng.range(1, 4) as usize,
            );
            let dims = [in_shape.n, in_shape.h, in_shape.w, in_shape.c];
            let mut before = [0usize; 4];
            let mut out_dims = [0usize; 4];
            for d in 0..4 {
                before[d] = rng.range(0, 2) as usize;
                out_dims[d] = before[d] + dims[d] + rng.range(0, 2) as usize;
            }
            let out_shape = Nhwc::new(out_dims[0], out_dims[1], out_dims[2], out_dims[3]);
            let input = rng.i8_vec(in_shape.len());
            let pad_value = rng.i8();
            let mut got = vec![0i8; out_shape.len()];
            pad_s8(in_shape, out_shape, before, pad_value, &input, &mut got);
            assert_eq!(
                got,
                reference(in_shape, out_shape, before, pad_value, &input)
            );
        }
    }

    #[test]
    fn generic_f32() {
        let in_shape = Nhwc::new(1, 2, 2, 1);
        let out_shape = Nhwc::new(1, 3, 4, 1);
        let input = [1.0f32, 2.0, 3.0, 4.0];
        let mut got = [0.0f32; 12];
        pad(in_shape, out_shape, [0, 1, 1, 0], 0.5, &input, &mut got);
        assert_eq!(
            got,
            [0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 2.0, 0.5, 0.5, 3.0, 4.0, 0.5]
        );
        assert_eq!(
            got.to_vec(),
            reference(in_shape, out_shape, [0, 1, 1, 0], 0.5, &input)
        );
    }
}
