//! Nearest-neighbour resizing of 4-D NHWC tensors (TFLite `ResizeNearestNeighbor` without corner
//! alignment or half-pixel centres), generic over the element type.

use super::Nhwc;

/// The input row (or column) read by output row `o` of `out_size` from `in_size`:
/// `floor(o * in_size / out_size)`, exact in integers.
#[inline]
pub fn source_index(o: usize, in_size: usize, out_size: usize) -> usize {
    o * in_size / out_size
}

/// Fills `output` (shape `output_shape`) with the nearest pixel of `input` (shape `input_shape`,
/// same batch and channels): output pixel `(y, x)` copies input pixel
/// `(source_index(y, in_h, out_h), source_index(x, in_w, out_w))`.
///
/// The caller guarantees equal batch and channel counts, positive sizes, and slices holding their
/// shapes' element counts.
pub fn resize_nearest<T: Copy>(
    input_shape: Nhwc,
    output_shape: Nhwc,
    input: &[T],
    output: &mut [T],
) {
    let c = input_shape.c;
    for n in 0..output_shape.n {
        for y in 0..output_shape.h {
            let sy = source_index(y, input_shape.h, output_shape.h);
            for x in 0..output_shape.w {
                let sx = source_index(x, input_shape.w, output_shape.w);
                let src = input_shape.index(n, sy, sx, 0);
                let dst = output_shape.index(n, y, x, 0);
                output[dst..dst + c].copy_from_slice(&input[src..src + c]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_shrinks_by_the_nearest_pixel() {
        let s = |h, w, c| Nhwc { n: 1, h, w, c };
        // 2x2, one channel: each pixel becomes a 2x2 block.
        let mut out = [0i8; 16];
        resize_nearest(s(2, 2, 1), s(4, 4, 1), &[1, 2, 3, 4], &mut out);
        assert_eq!(out, [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
        // 1x3 to 1x2, two channels: columns 0 and floor(1 * 3 / 2) = 1.
        let mut out = [0.0f32; 4];
        let x = [1.0, -1.0, 2.0, -2.0, 3.0, -3.0];
        resize_nearest(s(1, 3, 2), s(1, 2, 2), &x, &mut out);
        assert_eq!(out, [1.0, -1.0, 2.0, -2.0]);
        assert_eq!(source_index(5, 3, 9), 1);
    }
}
