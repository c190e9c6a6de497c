//! Backward kernels of the weighted and windowed operators: Conv2d as im2col plus GEMMs (`dW = dY^T x
//! cols`, `dCols = dY x W` accumulated back into `dX` by col2im; a plain 1x1 convolution reads its
//! input directly), FullyConnected as GEMMs, DepthwiseConv2d and the poolings as direct loops with the
//! channels innermost.
//!
//! The batch (the rows of a fully connected layer) is split over rayon's threads in at most
//! `PIECES` pieces whose size depends on the batch only; each piece sums its own parameter gradients,
//! and the pieces' sums are added in order. Every GEMM's shape is fixed by the piece and the image,
//! so results do not depend on the number of threads.

use std::ops::Range;

use ferrite_runtime::kernels::ConvGeometry;
use rayon::prelude::*;

use crate::ir::float_exec::kernels::{gemm_strided, im2col, is_pointwise, Strided};

/// The most pieces a batch is split into (each holds its own copy of the parameter gradients).
const PIECES: usize = 8;

/// Fewest rows of a fully connected layer per piece.
const FC_MIN_ROWS: usize = 32;

/// Output pixels of one im2col tile: `TILE_VALUES / k` rows (at least `MIN_TILE_ROWS`) stay in the
/// L2 cache while the GEMMs read them.
const TILE_VALUES: usize = 1 << 15;
const MIN_TILE_ROWS: usize = 16;

/// Gradients of a weighted operator: input (when asked for), filter and bias.
pub struct WeightGrads {
    pub dx: Option<Vec<f32>>,
    pub d_filter: Vec<f32>,
    pub d_bias: Vec<f32>,
}

/// Items per piece when `items` are split into at most `PIECES` pieces of at least `min` items.
fn piece_size(items: usize, min: usize) -> usize {
    items.div_ceil(PIECES).max(min).max(1)
}

/// Runs `work(items, dx, d_filter, d_bias)` on consecutive pieces of `per` of the `items` in parallel,
/// each with zeroed partial gradients (and its slice of `dx`, `dx_len` values per item, if needed),
/// then adds the partial parameter gradients in piece order.
fn over_pieces(
    items: usize,
    per: usize,
    dx_len: usize,
    need_dx: bool,
    (filter_len, bias_len): (usize, usize),
    work: impl Fn(Range<usize>, Option<&mut [f32]>, &mut [f32], &mut [f32]) + Sync,
) -> WeightGrads {
    let pieces = items.div_ceil(per);
    let run = |p: usize, dx: Option<&mut [f32]>| {
        let (mut d_filter, mut d_bias) = (vec![0.0f32; filter_len], vec![0.0f32; bias_len]);
        let range = p * per..((p + 1) * per).min(items);
        work(range, dx, &mut d_filter, &mut d_bias);
        (d_filter, d_bias)
    };
    let mut dx = need_dx.then(|| vec![0.0f32; items * dx_len]);
    let partials: Vec<(Vec<f32>, Vec<f32>)> = match dx.as_mut() {
        Some(dx) if dx_len > 0 => dx
            .par_chunks_mut(per * dx_len)
            .enumerate()
            .map(|(p, dx)| run(p, Some(dx)))
            .collect(),
        Some(_) => (0..pieces)
            .into_par_iter()
            .map(|p| run(p, Some(&mut [])))
            .collect(),
        None => (0..pieces).into_par_iter().map(|p| run(p, None)).collect(),
    };
    let mut sums = partials.into_iter();
    let (mut d_filter, mut d_bias) = sums
        .next()
        .unwrap_or_else(|| (vec![0.0; filter_len], vec![0.0; bias_len]));
    for (f, b) in sums {
        add_to(&mut d_filter, &f);
        add_to(&mut d_bias, &b);
    }
    WeightGrads {
        dx,
        d_filter,
        d_bias,
    }
}

fn add_to(sum: &mut [f32], part: &[f32]) {
    for (s, &p) in sum.iter_mut().zip(part) {
        *s += p;
    }
}

/// Adds each row of `rows` (`[_, sum.len()]`) to `sum`.
fn add_rows(sum: &mut [f32], rows: &[f32]) {
    if !sum.is_empty() {
        for row in rows.chunks_exact(sum.len()) {
            add_to(sum, row);
        }
    }
}

/// The taps of output pixel `(oy, ox)`'s window that fall inside the input, rows then columns (the
/// forward kernels' order): `(ky * kernel_w + kx, iy, ix)`. Without `dilated`, windows are dense.
fn window_taps(
    g: &ConvGeometry,
    dilated: bool,
    oy: usize,
    ox: usize,
) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let (dh, dw) = if dilated {
        (g.dilation_h, g.dilation_w)
    } else {
        (1, 1)
    };
    (0..g.kernel_h)
        .filter_map(move |ky| {
            let py = oy * g.stride_h + ky * dh;
            (py >= g.pad_top && py - g.pad_top < g.input.h).then(|| (ky, py - g.pad_top))
        })
        .flat_map(move |(ky, iy)| {
            (0..g.kernel_w).filter_map(move |kx| {
                let px = ox * g.stride_w + kx * dw;
                (px >= g.pad_left && px - g.pad_left < g.input.w)
                    .then(|| (ky * g.kernel_w + kx, iy, px - g.pad_left))
            })
        })
}

/// Adds the im2col rows `rows` of gradients `d_cols` (`[rows.len(), kh * kw * in_c]`) back into the
/// NHWC `dx` at the input positions they were read from (the transpose of `im2col`).
fn col2im_add(g: &ConvGeometry, rows: Range<usize>, d_cols: &[f32], dx: &mut [f32]) {
    let in_c = g.input.c;
    let k = g.kernel_h * g.kernel_w * in_c;
    let per_image = g.output.h * g.output.w;
    let row_len = g.kernel_w * in_c;
    for (row, src) in rows.zip(d_cols.chunks_exact(k)) {
        let (n, pixel) = (row / per_image, row % per_image);
        let (oy, ox) = (pixel / g.output.w, pixel % g.output.w);
        // Columns of the window's first and last taps, in padded coordinates.
        let px0 = ox * g.stride_w;
        let px1 = px0 + (g.kernel_w - 1) * g.dilation_w;
        if g.dilation_w == 1 && px0 >= g.pad_left && px1 - g.pad_left < g.input.w {
            // Each kernel row inside the input is one contiguous run of `dx`.
            for ky in 0..g.kernel_h {
                let py = oy * g.stride_h + ky * g.dilation_h;
                if py < g.pad_top || py - g.pad_top >= g.input.h {
                    continue;
                }
                let at = g.input.index(n, py - g.pad_top, px0 - g.pad_left, 0);
                let src = &src[ky * row_len..(ky + 1) * row_len];
                add_to(&mut dx[at..at + row_len], src);
            }
            continue;
        }
        for (tap, iy, ix) in window_taps(g, true, oy, ox) {
            let at = g.input.index(n, iy, ix, 0);
            add_to(&mut dx[at..at + in_c], &src[tap * in_c..(tap + 1) * in_c]);
        }
    }
}

/// Gradients of a 2-D convolution (NHWC `input`, `[out_c, kh, kw, in_c]` filter) given `dy`, the
/// gradient of its output before the clamp.
pub fn conv2d(
    g: &ConvGeometry,
    input: &[f32],
    filter: &[f32],
    dy: &[f32],
    need_dx: bool,
) -> WeightGrads {
    let (in_c, out_c) = (g.input.c, g.output.c);
    let k = g.kernel_h * g.kernel_w * in_c;
    let pixels = g.output.h * g.output.w;
    let in_len = g.input.h * g.input.w * in_c;
    let out_len = pixels * out_c;
    let pointwise = is_pointwise(g);
    let tile = (TILE_VALUES / k.max(1))
        .max(MIN_TILE_ROWS)
        .min(pixels.max(1));
    let per = piece_size(g.output.n, 1);
    over_pieces(
        g.output.n,
        per,
        in_len,
        need_dx,
        (out_c * k, out_c),
        |images, mut dx, d_filter, d_bias| {
            let scratch = if pointwise { 0 } else { tile * k };
            let mut cols = vec![0f32; scratch];
            let mut d_cols = vec![0f32; if need_dx { scratch } else { 0 }];
            for (i, n) in images.enumerate() {
                let x = &input[n * in_len..(n + 1) * in_len];
                let dy = &dy[n * out_len..(n + 1) * out_len];
                let mut dx = dx
                    .as_deref_mut()
                    .map(|dx| &mut dx[i * in_len..(i + 1) * in_len]);
                for start in (0..pixels).step_by(tile) {
                    let rows = start..(start + tile).min(pixels);
                    let m = rows.len();
                    let dy_t = Strided::row_major(&dy[rows.start * out_c..rows.end * out_c], out_c);
                    let a = if pointwise {
                        &x[rows.start * k..rows.end * k]
                    } else {
                        // Rows numbered within this image: `x` holds the image alone.
                        im2col(g, x, rows.clone(), &mut cols[..m * k]);
                        &cols[..m * k]
                    };
                    // dW[o, j] += sum_r dY[r, o] * cols[r, j]
                    let dy_tt = Strided::transposed(dy_t.data, out_c);
                    gemm_strided(out_c, k, m, dy_tt, Strided::row_major(a, k), d_filter, true);
                    let Some(dx) = dx.as_deref_mut() else {
                        continue;
                    };
                    // dCols = dY x W
                    let w = Strided::row_major(filter, k);
                    if pointwise {
                        let dst = &mut dx[rows.start * k..rows.end * k];
                        gemm_strided(m, k, out_c, dy_t, w, dst, false);
                    } else {
                        gemm_strided(m, k, out_c, dy_t, w, &mut d_cols[..m * k], false);
                        col2im_add(g, rows, &d_cols[..m * k], dx);
                    }
                }
                add_rows(d_bias, dy);
            }
        },
    )
}

/// Gradients of a depthwise convolution (`[1, kh, kw, out_c]` filter, output channel `ic *
/// depth_multiplier + m` reading input channel `ic`) given `dy` before the clamp.
pub fn depthwise_conv2d(
    g: &ConvGeometry,
    depth_multiplier: usize,
    input: &[f32],
    filter: &[f32],
    dy: &[f32],
    need_dx: bool,
) -> WeightGrads {
    let (in_c, out_c, dm) = (g.input.c, g.output.c, depth_multiplier);
    let in_len = g.input.h * g.input.w * in_c;
    let out_len = g.output.h * g.output.w * out_c;
    let taps = g.kernel_h * g.kernel_w;
    let per = piece_size(g.output.n, 1);
    over_pieces(
        g.output.n,
        per,
        in_len,
        need_dx,
        (taps * out_c, out_c),
        |images, mut dx, d_filter, d_bias| {
            if out_c == 0 {
                return;
            }
            for (i, n) in images.enumerate() {
                let x = &input[n * in_len..(n + 1) * in_len];
                let dy = &dy[n * out_len..(n + 1) * out_len];
                let mut dx = dx
                    .as_deref_mut()
                    .map(|dx| &mut dx[i * in_len..(i + 1) * in_len]);
                for (pixel, d) in dy.chunks_exact(out_c).enumerate() {
                    let (oy, ox) = (pixel / g.output.w, pixel % g.output.w);
                    for (tap, iy, ix) in window_taps(g, true, oy, ox) {
                        let at = (iy * g.input.w + ix) * in_c;
                        let xs = &x[at..at + in_c];
                        let df = &mut d_filter[tap * out_c..(tap + 1) * out_c];
                        let f = &filter[tap * out_c..(tap + 1) * out_c];
                        let dx = dx.as_deref_mut().map(|dx| &mut dx[at..at + in_c]);
                        if dm == 1 {
                            for ((df, &d), &x) in df.iter_mut().zip(d).zip(xs) {
                                *df += d * x;
                            }
                            if let Some(dx) = dx {
                                for ((g, &f), &d) in dx.iter_mut().zip(f).zip(d) {
                                    *g += f * d;
                                }
                            }
                            continue;
                        }
                        let per_input = df.chunks_exact_mut(dm).zip(d.chunks_exact(dm));
                        for ((df, d), &x) in per_input.zip(xs) {
                            for (df, &d) in df.iter_mut().zip(d) {
                                *df += d * x;
                            }
                        }
                        if let Some(dx) = dx {
                            let per_input = f.chunks_exact(dm).zip(d.chunks_exact(dm));
                            for (g, (f, d)) in dx.iter_mut().zip(per_input) {
                                *g += f.iter().zip(d).map(|(&f, &d)| f * d).sum::<f32>();
                            }
                        }
                    }
                }
                add_rows(d_bias, dy);
            }
        },
    )
}

/// Gradients of a fully connected layer over `input` as `[rows, in_f]` (`filter` `[out_f, in_f]`)
/// given `dy` before the clamp.
pub fn fully_connected(
    [out_f, in_f]: [usize; 2],
    input: &[f32],
    filter: &[f32],
    dy: &[f32],
    need_dx: bool,
) -> WeightGrads {
    let rows = (dy.len().checked_div(out_f))
        .or(input.len().checked_div(in_f))
        .unwrap_or(0);
    let per = piece_size(rows, FC_MIN_ROWS);
    over_pieces(
        rows,
        per,
        in_f,
        need_dx,
        (out_f * in_f, out_f),
        |range, dx, d_filter, d_bias| {
            let m = range.len();
            let x = &input[range.start * in_f..range.end * in_f];
            let d = &dy[range.start * out_f..range.end * out_f];
            // dW[o, i] += sum_r dY[r, o] * X[r, i]
            let d_t = Strided::transposed(d, out_f);
            gemm_strided(
                out_f,
                in_f,
                m,
                d_t,
                Strided::row_major(x, in_f),
                d_filter,
                true,
            );
            add_rows(d_bias, d);
            if let Some(dx) = dx {
                // dX = dY x W
                let (d, w) = (
                    Strided::row_major(d, out_f),
                    Strided::row_major(filter, in_f),
                );
                gemm_strided(m, in_f, out_f, d, w, dx, false);
            }
        },
    )
}

/// Runs `pool(dx, x, dy)` on each image in parallel (`dx` starts at zero).
fn per_image(
    g: &ConvGeometry,
    input: &[f32],
    dy: &[f32],
    pool: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
) -> Vec<f32> {
    let in_len = g.input.h * g.input.w * g.input.c;
    let out_len = g.output.h * g.output.w * g.output.c;
    let mut dx = vec![0.0f32; input.len()];
    if in_len == 0 || out_len == 0 {
        return dx;
    }
    dx.par_chunks_mut(in_len)
        .zip(input.par_chunks(in_len))
        .zip(dy.par_chunks(out_len))
        .for_each(|((dx, x), dy)| pool(dx, x, dy));
    dx
}

/// Max pooling's input gradient: each output's gradient goes to its window's first maximum in the
/// forward's scan order (rows, then columns; NaN taps never win), nothing for a window without taps.
pub fn max_pool2d(g: &ConvGeometry, input: &[f32], dy: &[f32]) -> Vec<f32> {
    let c = g.output.c;
    per_image(g, input, dy, |dx, x, dy| {
        let mut best = vec![f32::MIN; c];
        let mut winner = vec![usize::MAX; c];
        for (pixel, d) in dy.chunks_exact(c).enumerate() {
            let (oy, ox) = (pixel / g.output.w, pixel % g.output.w);
            best.fill(f32::MIN);
            winner.fill(usize::MAX);
            for (_, iy, ix) in window_taps(g, false, oy, ox) {
                let at = (iy * g.input.w + ix) * c;
                for (j, &v) in x[at..at + c].iter().enumerate() {
                    // Strictly greater: ties stay with the first maximum (`f32::MIN` itself can win).
                    if v > best[j] || (winner[j] == usize::MAX && v == best[j]) {
                        best[j] = v;
                        winner[j] = at + j;
                    }
                }
            }
            for (&w, &d) in winner.iter().zip(d) {
                if w != usize::MAX {
                    dx[w] += d;
                }
            }
        }
    })
}

/// Average pooling's input gradient: each output's gradient shared evenly by its window's taps
/// inside the input (padding is not counted, as in the forward).
pub fn average_pool2d(g: &ConvGeometry, input: &[f32], dy: &[f32]) -> Vec<f32> {
    let c = g.output.c;
    per_image(g, input, dy, |dx, _, dy| {
        for (pixel, d) in dy.chunks_exact(c).enumerate() {
            let (oy, ox) = (pixel / g.output.w, pixel % g.output.w);
            let count = window_taps(g, false, oy, ox).count() as f32;
            for (_, iy, ix) in window_taps(g, false, oy, ox) {
                let at = (iy * g.input.w + ix) * c;
                for (g, &d) in dx[at..at + c].iter_mut().zip(d) {
                    *g += d / count;
                }
            }
        }
    })
}
