//! The backward pass of every IR operator: the derivative of [`crate::ir::float_exec::eval`], one
//! node at a time.
//!
//! Training walks a graph's nodes in reverse with the activations
//! [`crate::ir::float_exec::run_observed`] kept, calling [`backward`] on each node. A fused clamp lets
//! the gradient through only where the output lies strictly inside it (an infinite bound never
//! blocks). The weighted and windowed operators' kernels are in `kernels.rs`; their batch is split
//! into pieces that depend on the batch size only, so gradients are the same whatever the number of
//! rayon threads.

use std::borrow::Cow;

use anyhow::{ensure, Result};

use crate::ir::float_exec::{geometry, nhwc, View};
use crate::ir::{shape, Clamp, Op};

mod kernels;

#[cfg(test)]
mod tests;

/// Gradients of one operator application.
#[derive(Clone, Debug)]
pub struct OpGrads {
    /// d loss / d input for each input of the node; `None` where `need_input[i]` was false.
    pub inputs: Vec<Option<Vec<f32>>>,
    /// d loss / d parameter, in `Op::params_mut` order (Conv/Depthwise/FC: filter then bias;
    /// BatchNorm: scale then shift); empty for operators without parameters.
    pub params: Vec<Vec<f32>>,
}

/// The backward pass of `op`. `inputs` are the forward inputs (batch first), `output` the forward output
/// (as `float_exec::eval` returned it, fused clamp included), `d_output` d loss / d output (same length as
/// `output`). Computes the input gradients where `need_input[i]` and always the parameter gradients.
pub fn backward(
    op: &Op,
    inputs: &[View<'_>],
    output: &[f32],
    d_output: &[f32],
    need_input: &[bool],
) -> Result<OpGrads> {
    ensure!(
        need_input.len() == inputs.len(),
        "{} need_input flags for {} inputs",
        need_input.len(),
        inputs.len()
    );
    for (i, v) in inputs.iter().enumerate() {
        ensure!(
            v.data.len() == v.shape.iter().product::<usize>(),
            "input {i}: {} values for shape {:?}",
            v.data.len(),
            v.shape
        );
    }
    let shapes: Vec<&[usize]> = inputs.iter().map(|v| v.shape).collect();
    let out_shape = shape::infer(op, &shapes)?;
    let out_len: usize = out_shape.iter().product();
    ensure!(
        output.len() == out_len && d_output.len() == out_len,
        "output of {} and d_output of {} values for output shape {out_shape:?}",
        output.len(),
        d_output.len()
    );
    let dy = match op.clamp() {
        Some(clamp) => pass_inside(clamp, output, d_output),
        None => Cow::Borrowed(d_output),
    };
    let x = inputs[0];
    let need = need_input[0];
    let only_input = |dx: Option<Vec<f32>>| OpGrads {
        inputs: vec![dx],
        params: Vec::new(),
    };
    let weighted = |g: kernels::WeightGrads| OpGrads {
        inputs: vec![g.dx],
        params: vec![g.d_filter, g.d_bias],
    };
    Ok(match op {
        Op::Conv2d { window, filter, .. } => {
            let g = geometry(window, x.shape, &out_shape)?;
            weighted(kernels::conv2d(&g, x.data, &filter.data, &dy, need))
        }
        Op::DepthwiseConv2d {
            window,
            depth_multiplier,
            filter,
            ..
        } => {
            let g = geometry(window, x.shape, &out_shape)?;
            let dm = *depth_multiplier;
            weighted(kernels::depthwise_conv2d(
                &g,
                dm,
                x.data,
                &filter.data,
                &dy,
                need,
            ))
        }
        Op::FullyConnected { filter, .. } => weighted(kernels::fully_connected(
            [filter.shape[0], filter.shape[1]],
            x.data,
            &filter.data,
            &dy,
            need,
        )),
        Op::Add { .. } | Op::Mul { .. } => OpGrads {
            inputs: binary(
                matches!(op, Op::Mul { .. }),
                x,
                inputs[1],
                &out_shape,
                &dy,
                need_input,
            )?,
            params: Vec::new(),
        },
        Op::AveragePool2d { window, .. } | Op::MaxPool2d { window, .. } => {
            let g = geometry(window, x.shape, &out_shape)?;
            only_input(need.then(|| {
                if matches!(op, Op::MaxPool2d { .. }) {
                    kernels::max_pool2d(&g, x.data, &dy)
                } else {
                    kernels::average_pool2d(&g, x.data, &dy)
                }
            }))
        }
        Op::Mean { .. } => {
            let s = nhwc(x.shape)?;
            only_input(need.then(|| mean_hw(s.h * s.w, s.c, x.data.len(), &dy)))
        }
        Op::Softmax { beta } => {
            let depth = *x.shape.last().unwrap_or(&1);
            only_input(need.then(|| softmax(*beta, depth, output, &dy)))
        }
        Op::Logistic => only_input(need.then(|| {
            let slope = |y: f32| y * (1.0 - y);
            output
                .iter()
                .zip(&*dy)
                .map(|(&y, &d)| d * slope(y))
                .collect()
        })),
        Op::Tanh => only_input(need.then(|| {
            let slope = |y: f32| 1.0 - y * y;
            output
                .iter()
                .zip(&*dy)
                .map(|(&y, &d)| d * slope(y))
                .collect()
        })),
        Op::LeakyRelu { alpha } => only_input(need.then(|| {
            x.data
                .iter()
                .zip(&*dy)
                .map(|(&x, &d)| if x >= 0.0 { d } else { alpha * d })
                .collect()
        })),
        Op::ResizeNearest { .. } => only_input(if need {
            Some(resize_nearest(x.shape, &out_shape, &dy)?)
        } else {
            None
        }),
        Op::Relu { .. } | Op::Reshape { .. } | Op::Identity => {
            only_input(need.then(|| dy.into_owned()))
        }
        Op::Concatenation { axis } => OpGrads {
            inputs: split_concat(*axis, inputs, &out_shape, &dy, need_input),
            params: Vec::new(),
        },
        Op::Pad { before, .. } => only_input(if need {
            Some(crop_pad(before, x.shape, &out_shape, &dy)?)
        } else {
            None
        }),
        Op::BatchNorm { scale, .. } => {
            let (dx, d_scale, d_shift) = batch_norm(&scale.data, x.data, &dy, need);
            OpGrads {
                inputs: vec![dx],
                params: vec![d_scale, d_shift],
            }
        }
    })
}

/// `d_output` where `clamp.min < output < clamp.max` (infinite bounds never block), zero elsewhere.
fn pass_inside<'a>(clamp: Clamp, output: &[f32], d_output: &'a [f32]) -> Cow<'a, [f32]> {
    let (open_below, open_above) = (clamp.min == f32::NEG_INFINITY, clamp.max == f32::INFINITY);
    if open_below && open_above {
        return Cow::Borrowed(d_output);
    }
    let inside = |y: f32| (open_below || clamp.min < y) && (open_above || y < clamp.max);
    Cow::Owned(
        output
            .iter()
            .zip(d_output)
            .map(|(&y, &d)| if inside(y) { d } else { 0.0 })
            .collect(),
    )
}

/// Gradients of `a + b` (or `a * b` with `mul`) with broadcasting: each operand's gradient is summed
/// over the dimensions it was stretched along.
fn binary(
    mul: bool,
    a: View<'_>,
    b: View<'_>,
    out_shape: &[usize],
    dy: &[f32],
    need: &[bool],
) -> Result<Vec<Option<Vec<f32>>>> {
    if a.shape == out_shape && b.shape == out_shape {
        let grad = |other: &[f32]| -> Vec<f32> {
            if mul {
                dy.iter().zip(other).map(|(&d, &o)| d * o).collect()
            } else {
                dy.to_vec()
            }
        };
        return Ok(vec![
            need[0].then(|| grad(b.data)),
            need[1].then(|| grad(a.data)),
        ]);
    }
    let (sa, sb, so) = (nhwc(a.shape)?, nhwc(b.shape)?, nhwc(out_shape)?);
    let mut da = need[0].then(|| vec![0.0f32; a.data.len()]);
    let mut db = need[1].then(|| vec![0.0f32; b.data.len()]);
    let pick = |size: usize, i: usize| if size == 1 { 0 } else { i };
    let mut at = 0;
    for n in 0..so.n {
        for y in 0..so.h {
            for x in 0..so.w {
                for c in 0..so.c {
                    let ia = sa.index(pick(sa.n, n), pick(sa.h, y), pick(sa.w, x), pick(sa.c, c));
                    let ib = sb.index(pick(sb.n, n), pick(sb.h, y), pick(sb.w, x), pick(sb.c, c));
                    let d = dy[at];
                    at += 1;
                    if let Some(da) = &mut da {
                        da[ia] += if mul { d * b.data[ib] } else { d };
                    }
                    if let Some(db) = &mut db {
                        db[ib] += if mul { d * a.data[ia] } else { d };
                    }
                }
            }
        }
    }
    Ok(vec![da, db])
}

/// Gradient of the mean over `pixels` pixels of `channels` channels (input of `len` values).
fn mean_hw(pixels: usize, channels: usize, len: usize, dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0f32; len];
    let count = pixels as f32;
    if channels == 0 || pixels == 0 {
        return dx;
    }
    for (image, d) in dx
        .chunks_exact_mut(pixels * channels)
        .zip(dy.chunks_exact(channels))
    {
        for px in image.chunks_exact_mut(channels) {
            for (g, &d) in px.iter_mut().zip(d) {
                *g = d / count;
            }
        }
    }
    dx
}

/// Softmax gradient from its output: `beta * y_i * (dy_i - sum_j dy_j * y_j)` per row of `depth`.
fn softmax(beta: f32, depth: usize, output: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0f32; output.len()];
    if depth == 0 {
        return dx;
    }
    for ((g, y), d) in dx
        .chunks_exact_mut(depth)
        .zip(output.chunks_exact(depth))
        .zip(dy.chunks_exact(depth))
    {
        let dot: f32 = y.iter().zip(d).map(|(&y, &d)| y * d).sum();
        for ((g, &y), &d) in g.iter_mut().zip(y).zip(d) {
            *g = beta * y * (d - dot);
        }
    }
    dx
}

/// Splits the concatenation's gradient into one per input (where needed).
fn split_concat(
    axis: usize,
    inputs: &[View<'_>],
    out_shape: &[usize],
    dy: &[f32],
    need: &[bool],
) -> Vec<Option<Vec<f32>>> {
    let outer: usize = out_shape[..axis].iter().product();
    let inner: usize = out_shape[axis + 1..].iter().product();
    let mut grads: Vec<Option<Vec<f32>>> = inputs
        .iter()
        .zip(need)
        .map(|(v, &n)| n.then(|| Vec::with_capacity(v.data.len())))
        .collect();
    let mut at = 0;
    for _ in 0..outer {
        for (v, g) in inputs.iter().zip(&mut grads) {
            let chunk = v.shape[axis] * inner;
            if let Some(g) = g {
                g.extend_from_slice(&dy[at..at + chunk]);
            }
            at += chunk;
        }
    }
    grads
}

/// The gradient of zero padding: `dy` cropped to the input.
fn crop_pad(
    before: &[usize],
    in_shape: &[usize],
    out_shape: &[usize],
    dy: &[f32],
) -> Result<Vec<f32>> {
    let (i, o) = (nhwc(in_shape)?, nhwc(out_shape)?);
    let mut b = [0usize; 4];
    b[4 - before.len()..].copy_from_slice(before);
    let mut dx = vec![0.0f32; i.len()];
    for n in 0..i.n {
        for y in 0..i.h {
            for x in 0..i.w {
                let dst = i.index(n, y, x, 0);
                let src = o.index(n + b[0], y + b[1], x + b[2], b[3]);
                dx[dst..dst + i.c].copy_from_slice(&dy[src..src + i.c]);
            }
        }
    }
    Ok(dx)
}

/// BatchNorm's gradients: input (where needed), scale and shift summed over every row.
fn batch_norm(
    scale: &[f32],
    x: &[f32],
    dy: &[f32],
    need: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let c = scale.len();
    let (mut d_scale, mut d_shift) = (vec![0.0f32; c], vec![0.0f32; c]);
    if c == 0 {
        return (need.then(Vec::new), d_scale, d_shift);
    }
    for (xs, ds) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
        for j in 0..c {
            d_scale[j] += ds[j] * xs[j];
            d_shift[j] += ds[j];
        }
    }
    let dx = need.then(|| {
        dy.chunks_exact(c)
            .flat_map(|ds| ds.iter().zip(scale).map(|(&d, &s)| d * s))
            .collect()
    });
    (dx, d_scale, d_shift)
}

/// The gradient of a nearest-neighbour resize: each input pixel sums the output pixels that copied it.
fn resize_nearest(x_shape: &[usize], out_shape: &[usize], dy: &[f32]) -> Result<Vec<f32>> {
    use ferrite_runtime::kernels::resize::source_index;
    let (i, o) = (nhwc(x_shape)?, nhwc(out_shape)?);
    let mut dx = vec![0f32; i.len()];
    for n in 0..o.n {
        for y in 0..o.h {
            let sy = source_index(y, i.h, o.h);
            for xx in 0..o.w {
                let sx = source_index(xx, i.w, o.w);
                let (src, dst) = (i.index(n, sy, sx, 0), o.index(n, y, xx, 0));
                for c in 0..i.c {
                    dx[src + c] += dy[dst + c];
                }
            }
        }
    }
    Ok(dx)
}
