//! The host's f32 kernels for the weighted operators, with the batch split over rayon's threads:
//! Conv2d as im2col (none for a plain 1x1 convolution) plus a packed GEMM (the `gemm` crate),
//! FullyConnected as GEMMs, DepthwiseConv2d and the poolings as direct loops with the channels
//! innermost, and element-wise Add/Mul of operands of one shape.
//!
//! They compute what the runtime's scalar kernels (`ferrite_runtime::kernels::float`) compute; the
//! GEMM sums in another order (and may fuse multiply-adds), so results differ by rounding only. The
//! depthwise loop keeps the reference's order (bias, then the taps row by row), the poolings and
//! element-wise operators compute exactly what the reference does: they are bit-identical.
//!
//! A GEMM's rounding depends on its shape (how many rows it is given), so every GEMM has a shape that
//! does not depend on the thread count: a convolution multiplies one image (or fixed tiles of one
//! image) at a time, a fully connected layer fixed blocks of `FC_ROWS` rows. Results are the same
//! whatever the number of threads (they may differ in the last bits between CPUs: the GEMM picks its
//! kernel by the CPU's features).

use ferrite_runtime::format::Activation;
use ferrite_runtime::kernels::ConvGeometry;
use rayon::prelude::*;

/// Output rows of one im2col tile: a tile of `TILE_VALUES / k` rows (at least `MIN_TILE_ROWS`) stays
/// in the L2 cache while the GEMM reads it.
const TILE_VALUES: usize = 1 << 15;
const MIN_TILE_ROWS: usize = 16;

/// Rows of one fully connected GEMM.
const FC_ROWS: usize = 16;

/// Splits `out` (`items` items of `item_len` values each) into chunks of whole items and calls
/// `f(first_item, chunk)` on each, in parallel on the current rayon pool (a few chunks per thread).
pub(crate) fn par_items(
    out: &mut [f32],
    item_len: usize,
    items: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let threads = rayon::current_num_threads();
    if threads <= 1 || items < 2 || item_len == 0 {
        f(0, out);
        return;
    }
    let per_chunk = items.div_ceil(4 * threads).max(1);
    out.par_chunks_mut(per_chunk * item_len)
        .enumerate()
        .for_each(|(i, chunk)| f(i * per_chunk, chunk));
}

/// A read-only matrix in a slice: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> Strided<'a> {
    /// A row-major matrix with `ld` values between rows.
    pub(crate) fn row_major(data: &'a [f32], ld: usize) -> Strided<'a> {
        Strided {
            data,
            row_stride: ld,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix with `ld` values between rows.
    pub(crate) fn transposed(data: &'a [f32], ld: usize) -> Strided<'a> {
        Strided {
            data,
            row_stride: 1,
            col_stride: ld,
        }
    }

    /// Whether an `rows x cols` matrix (both nonzero) lies inside `data`.
    fn fits(&self, rows: usize, cols: usize) -> bool {
        (rows - 1)
            .checked_mul(self.row_stride)
            .zip((cols - 1).checked_mul(self.col_stride))
            .and_then(|(r, c)| r.checked_add(c))
            .is_some_and(|last| last < self.data.len())
    }
}

/// `c = a x b` (`accumulate`: `c += a x b`): `a` is `m x k`, `b` is `k x n`, `c` is `[m, n]` row-major.
pub(crate) fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    a: Strided<'_>,
    b: Strided<'_>,
    c: &mut [f32],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= m * n);
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    assert!(a.fits(m, k) && b.fits(k, n));
    // SAFETY: `fits` and the assert above keep every element read or written in bounds: `a`'s
    // `(i, j)` for i < m, j < k, `b`'s `(j, jj)` for jj < n, `c[i * n + jj]`; `c` is a unique borrow, so
    // it does not alias `a` or `b`. Strides fit in `isize` because the offsets they reach fit in a slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `c[m, n] += sum_k a[m, k] * w[n, k]`: `a` is `[m, k]` row-major with row stride `lda`, `w` is
/// `[n, k]` row-major and `c` is `[m, n]` row-major.
pub(crate) fn gemm_abt(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    w: &[f32],
    c: &mut [f32],
) {
    let (a, w) = (Strided::row_major(a, lda), Strided::transposed(w, k));
    gemm_strided(m, n, k, a, w, c, true);
}

/// Fills each row of `out` (`out.len() / bias.len()` rows) with `bias`, or zeros when it is empty.
fn fill_bias(out: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        out.fill(0.0);
    } else {
        for row in out.chunks_exact_mut(bias.len()) {
            row.copy_from_slice(bias);
        }
    }
}

fn activate(act: Activation, out: &mut [f32]) {
    if act != Activation::None {
        for v in out {
            *v = act.apply_f32(*v);
        }
    }
}

/// `output[r, o] = act(bias[o] + sum_i input[r, i] * filter[o, i])` for every row `r` of `input`
/// (`[rows, in_f]`); `filter` is `[out_f, in_f]`, `bias` `out_f` values or empty.
pub fn fully_connected(
    in_f: usize,
    act: Activation,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    output: &mut [f32],
) {
    if output.is_empty() {
        return;
    }
    let out_f = filter.len() / in_f.max(1);
    let rows = output.len() / out_f.max(1);
    // Chunks of whole blocks: block boundaries fall every `FC_ROWS` rows from row 0.
    par_items(
        output,
        FC_ROWS * out_f,
        rows.div_ceil(FC_ROWS),
        |first, out| {
            fill_bias(out, bias);
            for (b, block) in out.chunks_mut(FC_ROWS * out_f).enumerate() {
                let row = (first + b) * FC_ROWS;
                let m = block.len() / out_f;
                gemm_abt(m, out_f, in_f, &input[row * in_f..], in_f, filter, block);
            }
            activate(act, out);
        },
    );
}

/// Whether the convolution reads its input as a plain `[n * h * w, in_c]` matrix: a 1x1 kernel with
/// stride 1 and no padding.
pub(crate) fn is_pointwise(g: &ConvGeometry) -> bool {
    g.kernel_h == 1
        && g.kernel_w == 1
        && g.stride_h == 1
        && g.stride_w == 1
        && g.pad_top == 0
        && g.pad_left == 0
        && g.input.h == g.output.h
        && g.input.w == g.output.w
}

/// Writes the im2col rows `rows` (output pixels numbered over `n, oy, ox`) of the NHWC `input` into
/// `cols` (`[rows.len(), kh * kw * in_c]`, the filter's `[kh, kw, in_c]` order); taps in the padding
/// are zero.
pub(crate) fn im2col(
    g: &ConvGeometry,
    input: &[f32],
    rows: std::ops::Range<usize>,
    cols: &mut [f32],
) {
    let in_c = g.input.c;
    let k = g.kernel_h * g.kernel_w * in_c;
    let per_image = g.output.h * g.output.w;
    for (row, dst) in rows.zip(cols.chunks_exact_mut(k)) {
        let (n, pixel) = (row / per_image, row % per_image);
        let (oy, ox) = (pixel / g.output.w, pixel % g.output.w);
        for ky in 0..g.kernel_h {
            let dst = &mut dst[ky * g.kernel_w * in_c..(ky + 1) * g.kernel_w * in_c];
            let py = oy * g.stride_h + ky * g.dilation_h;
            if py < g.pad_top || py - g.pad_top >= g.input.h {
                dst.fill(0.0);
                continue;
            }
            let iy = py - g.pad_top;
            // Columns of the window's first and last taps, in padded coordinates.
            let (px0, px1) = (
                ox * g.stride_w,
                ox * g.stride_w + (g.kernel_w - 1) * g.dilation_w,
            );
            if g.dilation_w == 1 && px0 >= g.pad_left && px1 - g.pad_left < g.input.w {
                // The whole kernel row is inside the input and contiguous.
                let at = g.input.index(n, iy, px0 - g.pad_left, 0);
                dst.copy_from_slice(&input[at..at + dst.len()]);
                continue;
            }
            for (kx, tap) in dst.chunks_exact_mut(in_c).enumerate() {
                let px = px0 + kx * g.dilation_w;
                if px < g.pad_left || px - g.pad_left >= g.input.w {
                    tap.fill(0.0);
                } else {
                    let at = g.input.index(n, iy, px - g.pad_left, 0);
                    tap.copy_from_slice(&input[at..at + in_c]);
                }
            }
        }
    }
}

/// 2-D convolution of an NHWC `input` with an `[out_c, kh, kw, in_c]` filter, as
/// `ferrite_runtime::kernels::float::conv2d_f32` defines it.
pub fn conv2d(
    g: &ConvGeometry,
    act: Activation,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    output: &mut [f32],
) {
    if output.is_empty() {
        return;
    }
    let out_c = g.output.c;
    let k = g.kernel_h * g.kernel_w * g.input.c;
    let per_image = g.output.h * g.output.w;
    let pointwise = is_pointwise(g);
    // One image at a time, in tiles of fixed rows from the image's first output pixel.
    let tile = (TILE_VALUES / k.max(1))
        .max(MIN_TILE_ROWS)
        .min(per_image.max(1));
    par_items(output, per_image * out_c, g.output.n, |first, out| {
        fill_bias(out, bias);
        let mut cols = vec![0f32; if pointwise { 0 } else { tile * k }];
        for (i, image) in out.chunks_exact_mut(per_image * out_c).enumerate() {
            let image_row = (first + i) * per_image;
            for start in (0..per_image).step_by(tile) {
                let end = (start + tile).min(per_image);
                let c = &mut image[start * out_c..end * out_c];
                let rows = image_row + start..image_row + end;
                if pointwise {
                    gemm_abt(rows.len(), out_c, k, &input[rows.start * k..], k, filter, c);
                } else {
                    let cols = &mut cols[..rows.len() * k];
                    im2col(g, input, rows.clone(), cols);
                    gemm_abt(rows.len(), out_c, k, cols, k, filter, c);
                }
            }
        }
        activate(act, out);
    });
}

/// Depthwise 2-D convolution (`filter` `[1, kh, kw, out_c]`, output channel `ic * depth_multiplier +
/// m` reads input channel `ic`), as `ferrite_runtime::kernels::float::depthwise_conv2d_f32` defines
/// it and in its summation order. The channels are the inner loop.
pub fn depthwise_conv2d(
    g: &ConvGeometry,
    depth_multiplier: usize,
    act: Activation,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    output: &mut [f32],
) {
    let (in_c, out_c, dm) = (g.input.c, g.output.c, depth_multiplier);
    let take = |acc: &mut [f32], tap: usize, at: usize| {
        let x = &input[at..at + in_c];
        let f = &filter[tap * out_c..(tap + 1) * out_c];
        if dm == 1 {
            for ((a, &x), &f) in acc.iter_mut().zip(x).zip(f) {
                *a += x * f;
            }
        } else {
            for ((a, f), &x) in acc.chunks_exact_mut(dm).zip(f.chunks_exact(dm)).zip(x) {
                for (a, &f) in a.iter_mut().zip(f) {
                    *a += x * f;
                }
            }
        }
    };
    windowed(g, true, output, bias, take, |acc, _| activate(act, acc));
}

/// Calls, for every output pixel (in parallel over the images), `take(acc, tap, at)` for each tap of
/// its window inside the input (padding taps skipped; rows, then columns), then `done(acc, taps)`:
/// `acc` is the pixel's channels, starting at `start` (zeros when empty), `tap` is `ky * kernel_w +
/// kx`, `at` the input offset of the tap's channel 0. Without `dilated`, windows are dense.
fn windowed(
    g: &ConvGeometry,
    dilated: bool,
    output: &mut [f32],
    start: &[f32],
    take: impl Fn(&mut [f32], usize, usize) + Sync,
    done: impl Fn(&mut [f32], u32) + Sync,
) {
    if output.is_empty() {
        return;
    }
    let (dh, dw) = if dilated {
        (g.dilation_h, g.dilation_w)
    } else {
        (1, 1)
    };
    let per_image = g.output.h * g.output.w * g.output.c;
    par_items(output, per_image, g.output.n, |first, out| {
        fill_bias(out, start);
        for (i, image) in out.chunks_exact_mut(per_image).enumerate() {
            for (pixel, acc) in image.chunks_exact_mut(g.output.c).enumerate() {
                let (oy, ox) = (pixel / g.output.w, pixel % g.output.w);
                let mut taps = 0u32;
                for ky in 0..g.kernel_h {
                    let py = oy * g.stride_h + ky * dh;
                    if py < g.pad_top || py - g.pad_top >= g.input.h {
                        continue;
                    }
                    for kx in 0..g.kernel_w {
                        let px = ox * g.stride_w + kx * dw;
                        if px < g.pad_left || px - g.pad_left >= g.input.w {
                            continue;
                        }
                        let at = g.input.index(first + i, py - g.pad_top, px - g.pad_left, 0);
                        take(acc, ky * g.kernel_w + kx, at);
                        taps += 1;
                    }
                }
                done(acc, taps);
            }
        }
    });
}

/// Max pooling, as `ferrite_runtime::kernels::float::max_pool2d_f32` (NaN taps skipped, `f32::MIN`
/// for a window without taps), then `act`.
pub fn max_pool2d(g: &ConvGeometry, act: Activation, input: &[f32], output: &mut [f32]) {
    let c = g.output.c;
    let take = |acc: &mut [f32], _, at: usize| {
        for (a, &x) in acc.iter_mut().zip(&input[at..at + c]) {
            *a = a.max(x);
        }
    };
    let start = vec![f32::MIN; c];
    windowed(g, false, output, &start, take, |acc, _| activate(act, acc));
}

/// Average pooling, as `ferrite_runtime::kernels::float::average_pool2d_f32` (the mean of the taps
/// inside the input, summed in its order; 0 without taps), then `act`.
pub fn average_pool2d(g: &ConvGeometry, act: Activation, input: &[f32], output: &mut [f32]) {
    let c = g.output.c;
    let take = |acc: &mut [f32], _, at: usize| {
        for (a, &x) in acc.iter_mut().zip(&input[at..at + c]) {
            *a += x;
        }
    };
    let done = |acc: &mut [f32], taps: u32| {
        if taps > 0 {
            for a in acc.iter_mut() {
                *a /= taps as f32;
            }
        }
        activate(act, acc);
    };
    windowed(g, false, output, &[], take, done);
}

/// `out = act(op(a, b))` element by element, for operands of the output's shape.
pub fn binary_same_shape(
    op: impl Fn(f32, f32) -> f32 + Sync,
    act: Activation,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
) {
    const PIECE: usize = 1 << 14;
    par_items(out, PIECE, a.len().div_ceil(PIECE), |first, out| {
        let at = first * PIECE;
        for ((o, &x), &y) in out.iter_mut().zip(&a[at..]).zip(&b[at..]) {
            *o = act.apply_f32(op(x, y));
        }
    });
}
