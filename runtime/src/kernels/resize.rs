//! Resizing of 4-D NHWC tensors: nearest-neighbour (TFLite `ResizeNearestNeighbor` without corner
//! alignment or half-pixel centres), generic over the element type, and bilinear (TFLite
//! `ResizeBilinear`: f32, and int8/int16 in TFLite's fixed point with 10 fractional bits).

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

/// How bilinear resizing maps an output row or column to the input (TFLite's two flags; neither is
/// ONNX's `asymmetric`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BilinearMode {
    /// The corner pixels of input and output coincide: scale `(in - 1) / (out - 1)`.
    pub align_corners: bool,
    /// Pixel centres: output `o` reads input `(o + 0.5) * in / out - 0.5` (ONNX `half_pixel`).
    pub half_pixel_centers: bool,
}

/// The source of output row `o` of `out_size` in f32: the two input rows it blends and the weight
/// of the second (TFLite's float reference: the rows are clamped to the input, and a coordinate
/// before the first row blends the first row with itself).
pub fn bilinear_taps(
    o: usize,
    in_size: usize,
    out_size: usize,
    mode: BilinearMode,
) -> (usize, usize, f32) {
    let scale = if mode.align_corners && out_size > 1 {
        (in_size - 1) as f32 / (out_size - 1) as f32
    } else {
        in_size as f32 / out_size as f32
    };
    let at = if mode.half_pixel_centers {
        (o as f32 + 0.5) * scale - 0.5
    } else {
        o as f32 * scale
    };
    let last = in_size - 1;
    // Floor and ceiling of a non-negative coordinate (a negative one reads row 0).
    let floor = if at > 0.0 { at as usize } else { 0 };
    let ceil = if (floor as f32) < at {
        floor + 1
    } else {
        floor
    };
    let (lo, hi) = (floor.min(last), ceil.min(last));
    (lo, hi, at - lo as f32)
}

/// TFLite's fixed-point scale of bilinear resizing, `in / out` (or `(in - 1) / (out - 1)` when the
/// corners align) times 1024, rounded.
fn scale_10(in_size: usize, out_size: usize, align_corners: bool) -> i64 {
    let (i, o) = if align_corners && out_size > 1 {
        (in_size as i64 - 1, out_size as i64 - 1)
    } else {
        (in_size as i64, out_size as i64)
    };
    ((1 << 10) * i + o / 2) / o
}

/// The source of output row `o` in TFLite's fixed point: the coordinate times 1024 and the two
/// rows it blends (clamped to the input; TFLite leaves the first unclamped above, which only a
/// scale rounded past the input's end could reach).
fn taps_10(o: usize, scale: i64, half_pixel: bool, in_size: usize) -> (i64, usize, usize) {
    let at = if half_pixel {
        o as i64 * scale + scale / 2 - (1 << 9)
    } else {
        o as i64 * scale
    };
    let last = in_size as i64 - 1;
    let lo = (at / (1 << 10)).clamp(0, last);
    let hi = ((at + (1 << 10) - 1) / (1 << 10)).min(last);
    (at, lo as usize, hi.max(0) as usize)
}

/// Bilinear resize of integer values in TFLite's fixed point (`ResizeBilinearInteger`): the four
/// pixels weighted in units of 2^-20, rounded half away from zero. Input and output share their
/// quantization. The caller guarantees equal batch and channel counts, positive sizes, and slices
/// holding their shapes' element counts.
pub fn resize_bilinear_int<T: Copy + Into<i32>>(
    input_shape: Nhwc,
    output_shape: Nhwc,
    mode: BilinearMode,
    input: &[T],
    output: &mut [T],
    narrow: impl Fn(i64) -> T,
) {
    let (ih, iw, c) = (input_shape.h, input_shape.w, input_shape.c);
    let sy = scale_10(ih, output_shape.h, mode.align_corners);
    let sx = scale_10(iw, output_shape.w, mode.align_corners);
    let one = 1i64 << 10;
    for n in 0..output_shape.n {
        for y in 0..output_shape.h {
            let (at_y, y0, y1) = taps_10(y, sy, mode.half_pixel_centers, ih);
            let dy = at_y - one * y0 as i64;
            for x in 0..output_shape.w {
                let (at_x, x0, x1) = taps_10(x, sx, mode.half_pixel_centers, iw);
                let dx = at_x - one * x0 as i64;
                let weights = [
                    (y0, x0, (one - dy) * (one - dx)),
                    (y1, x0, dy * (one - dx)),
                    (y0, x1, (one - dy) * dx),
                    (y1, x1, dy * dx),
                ];
                let dst = output_shape.index(n, y, x, 0);
                for (k, out) in output[dst..dst + c].iter_mut().enumerate() {
                    let sum: i64 = weights
                        .iter()
                        .map(|&(py, px, w)| {
                            let v: i32 = input[input_shape.index(n, py, px, k)].into();
                            v as i64 * w
                        })
                        .sum();
                    let round = if sum > 0 { 1 << 19 } else { -(1 << 19) };
                    *out = narrow((sum + round) / (1 << 20));
                }
            }
        }
    }
}

/// Bilinear resize in f32 (TFLite's float reference, [`bilinear_taps`] along each axis). The
/// caller guarantees what [`resize_bilinear_int`] requires.
pub fn resize_bilinear_f32(
    input_shape: Nhwc,
    output_shape: Nhwc,
    mode: BilinearMode,
    input: &[f32],
    output: &mut [f32],
) {
    let c = input_shape.c;
    for n in 0..output_shape.n {
        for y in 0..output_shape.h {
            let (y0, y1, fy) = bilinear_taps(y, input_shape.h, output_shape.h, mode);
            for x in 0..output_shape.w {
                let (x0, x1, fx) = bilinear_taps(x, input_shape.w, output_shape.w, mode);
                let dst = output_shape.index(n, y, x, 0);
                for (k, out) in output[dst..dst + c].iter_mut().enumerate() {
                    let at = |py, px| input[input_shape.index(n, py, px, k)];
                    *out = at(y0, x0) * (1.0 - fy) * (1.0 - fx)
                        + at(y1, x0) * fy * (1.0 - fx)
                        + at(y0, x1) * (1.0 - fy) * fx
                        + at(y1, x1) * fy * fx;
                }
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
