//! AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization"):
//! each weight is rounded up or down by what best reconstructs its layer's output on calibration
//! data, instead of to the nearest level.
//!
//! Per layer, a continuous variable `V` per weight gives the rounding `h(V)` in `[0, 1]` (a stretched,
//! clipped sigmoid); the quantized weight is `s * clip(floor(w / s) + h(V), -127, 127)` with the
//! layer's per-channel scale `s`. Adam minimizes the squared error of the layer's output (bias and
//! fused clamp applied) on the float model's activations fake-quantized with the layer's input
//! parameters (errors from earlier layers are not seen), against the float layer on float inputs, plus a regularizer `sum(1 - |2h - 1|^beta)` with `beta` annealed from 20 to 2 that
//! pushes every `h` to 0 or 1. Each row group (the layer, or one depthwise channel) keeps the result
//! only where its reconstruction error on the sampled positions is below that of rounding to nearest.

use anyhow::Result;
use serde::Serialize;

use crate::ir::float_exec::Tensor;
use crate::ir::{Clamp, Graph, Op};
use crate::quantize::params::QParams;
use crate::rng::Rng;

/// Output positions (columns) sampled from the calibration activations per layer.
const COLUMNS: usize = 4096;
/// Adam steps per layer, columns per step, and the learning rate. Fuzzing builds take a few steps:
/// the count changes no code path, and the full count would make AdaRound most of every run.
const STEPS: usize = if cfg!(fuzzing) { 8 } else { 1000 };
const BATCH: usize = 256;
const LEARNING_RATE: f32 = 0.01;
/// Regularizer weight, its exponent's annealing and the share of steps without it.
const LAMBDA: f32 = 0.01;
const BETA: (f32, f32) = (20.0, 2.0);
const WARM_UP: f32 = 0.2;
/// The rectified sigmoid's stretch: `h(V) = clip(sigmoid(V) * (ZETA - GAMMA) + GAMMA, 0, 1)`.
const ZETA: f32 = 1.1;
const GAMMA: f32 = -0.1;

/// What AdaRound did to one layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerRounding {
    pub name: String,
    /// Squared output error per sampled position with rounding to nearest, and with the rounding
    /// kept (the learned one where it is lower).
    pub nearest_error: f64,
    pub adaround_error: f64,
    /// Row groups that kept the learned rounding, of `groups`.
    pub kept: usize,
    pub groups: usize,
    /// Weights rounded the other way than to nearest.
    pub flipped: usize,
}

/// One reconstruction problem: weight rows that read the same input columns.
struct Problem {
    /// Inputs per column: float and quantized, `columns x k` (each column contiguous).
    x: Vec<f32>,
    xq: Vec<f32>,
    k: usize,
    /// Per row: the index of each of its `k` weights in the filter, its scale and its bias.
    index: Vec<Vec<usize>>,
    scale: Vec<f32>,
    bias: Vec<f32>,
}

impl Problem {
    fn columns(&self) -> usize {
        self.x.len() / self.k.max(1)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The reconstruction problems of a weighted layer on `input` (float activations, batch first,
/// NHWC), sampling `COLUMNS` output positions.
fn problems(
    op: &Op,
    input: &Tensor,
    input_q: QParams,
    scales: &[f32],
    rng: &mut Rng,
) -> Vec<Problem> {
    let scale_of = |c: usize| scales[if scales.len() == 1 { 0 } else { c }];
    match op {
        Op::FullyConnected { filter, bias, .. } => {
            let (out, k) = (filter.shape[0], filter.shape[1]);
            if k == 0 || out == 0 {
                return Vec::new();
            }
            let rows = input.data.len() / k;
            let mut x = Vec::new();
            for _ in 0..COLUMNS.min(rows) {
                let r = rng.below(rows);
                x.extend_from_slice(&input.data[r * k..(r + 1) * k]);
            }
            vec![Problem {
                xq: x.iter().map(|&v| input_q.fake_quant(v)).collect(),
                x,
                k,
                index: (0..out).map(|o| (o * k..(o + 1) * k).collect()).collect(),
                scale: (0..out).map(scale_of).collect(),
                bias: (0..out)
                    .map(|o| bias.data.get(o).copied().unwrap_or(0.0))
                    .collect(),
            }]
        }
        Op::Conv2d {
            window,
            filter,
            bias,
            ..
        }
        | Op::DepthwiseConv2d {
            window,
            filter,
            bias,
            ..
        } => {
            let depthwise = matches!(op, Op::DepthwiseConv2d { .. });
            let [n, h, w, c] = input.shape[..] else {
                return Vec::new();
            };
            if c == 0 || filter.data.is_empty() {
                return Vec::new();
            }
            let (kh, kw) = (window.kernel[0], window.kernel[1]);
            let (Some(oh), Some(ow)) = (window.out_size(0, h), window.out_size(1, w)) else {
                return Vec::new();
            };
            let positions: Vec<(usize, usize, usize)> = (0..COLUMNS.min(n * oh * ow))
                .map(|_| {
                    let p = rng.below(n * oh * ow);
                    (p / (oh * ow), (p / ow) % oh, p % ow)
                })
                .collect();
            // The input at tap (ky, kx), channel ch, for output position p (0 in the padding).
            let tap = |(b, oy, ox): (usize, usize, usize), ky: usize, kx: usize, ch: usize| {
                let iy =
                    (oy * window.stride[0] + ky * window.dilation[0]).checked_sub(window.pads[0]);
                let ix =
                    (ox * window.stride[1] + kx * window.dilation[1]).checked_sub(window.pads[1]);
                match (iy, ix) {
                    (Some(iy), Some(ix)) if iy < h && ix < w => {
                        input.data[((b * h + iy) * w + ix) * c + ch]
                    }
                    _ => 0.0,
                }
            };
            let bias_of = |o: usize| bias.data.get(o).copied().unwrap_or(0.0);
            if depthwise {
                let out_c = filter.shape[3];
                let multiplier = out_c / c;
                (0..out_c)
                    .map(|o| {
                        let mut x = Vec::with_capacity(positions.len() * kh * kw);
                        for &p in &positions {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    x.push(tap(p, ky, kx, o / multiplier));
                                }
                            }
                        }
                        Problem {
                            xq: x.iter().map(|&v| input_q.fake_quant(v)).collect(),
                            x,
                            k: kh * kw,
                            index: vec![(0..kh * kw).map(|t| t * out_c + o).collect()],
                            scale: vec![scale_of(o)],
                            bias: vec![bias_of(o)],
                        }
                    })
                    .collect()
            } else {
                let out = filter.shape[0];
                let k = kh * kw * c;
                let mut x = Vec::with_capacity(positions.len() * k);
                for &p in &positions {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            for ch in 0..c {
                                x.push(tap(p, ky, kx, ch));
                            }
                        }
                    }
                }
                vec![Problem {
                    xq: x.iter().map(|&v| input_q.fake_quant(v)).collect(),
                    x,
                    k,
                    index: (0..out).map(|o| (o * k..(o + 1) * k).collect()).collect(),
                    scale: (0..out).map(scale_of).collect(),
                    bias: (0..out).map(bias_of).collect(),
                }]
            }
        }
        _ => Vec::new(),
    }
}

fn rectified_sigmoid(v: f32) -> f32 {
    (1.0 / (1.0 + (-v).exp()) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)
}

/// Squared output error per column of integer weights `q` (rows x k) on the problem's inputs.
fn error(p: &Problem, q: &[f32], target: &[f32], clamp: Clamp) -> f64 {
    let columns = p.columns();
    let rows = p.index.len();
    let mut total = 0f64;
    for j in 0..columns {
        let x = &p.xq[j * p.k..(j + 1) * p.k];
        for r in 0..rows {
            let y = clamp.apply(dot(&q[r * p.k..(r + 1) * p.k], x) * p.scale[r] + p.bias[r]);
            total += ((y - target[j * rows + r]) as f64).powi(2);
        }
    }
    total / columns.max(1) as f64
}

/// Optimizes the rounding of one problem; returns the integer weights kept (rows x k), the error of
/// rounding to nearest and that of the rounding kept.
fn optimize(p: &Problem, w: &[f32], clamp: Clamp, rng: &mut Rng) -> (Vec<f32>, f64, f64) {
    let (rows, k, columns) = (p.index.len(), p.k, p.columns());
    // Weights in units of their scale, their floor and the initial V with h(V) = the fraction.
    let ws: Vec<f32> = (0..rows * k).map(|i| w[i] / p.scale[i / k]).collect();
    let floor: Vec<f32> = ws.iter().map(|v| v.floor()).collect();
    let mut v: Vec<f32> = ws
        .iter()
        .zip(&floor)
        .map(|(x, f)| {
            let s = ((x - f - GAMMA) / (ZETA - GAMMA)).clamp(1e-4, 1.0 - 1e-4);
            (s / (1.0 - s)).ln()
        })
        .collect();
    let target: Vec<f32> = (0..columns)
        .flat_map(|j| {
            let x = &p.x[j * k..(j + 1) * k];
            (0..rows).map(move |r| clamp.apply(dot(&w[r * k..(r + 1) * k], x) + p.bias[r]))
        })
        .collect();
    let nearest: Vec<f32> = ws.iter().map(|x| x.round().clamp(-127.0, 127.0)).collect();
    let (mut m, mut s2) = (vec![0f32; v.len()], vec![0f32; v.len()]);
    let mut wq = vec![0f32; v.len()];
    let mut grad = vec![0f32; v.len()];
    let batch = BATCH.min(columns);
    for step in 0..STEPS {
        for i in 0..v.len() {
            wq[i] = (floor[i] + rectified_sigmoid(v[i])).clamp(-127.0, 127.0);
        }
        grad.iter_mut().for_each(|g| *g = 0.0);
        for _ in 0..batch {
            let j = rng.below(columns);
            let x = &p.xq[j * k..(j + 1) * k];
            for r in 0..rows {
                let pre = dot(&wq[r * k..(r + 1) * k], x) * p.scale[r] + p.bias[r];
                let y = clamp.apply(pre);
                if y != pre {
                    continue;
                }
                // d(error^2)/d(integer weight), averaged over the batch.
                let g = 2.0 * (y - target[j * rows + r]) * p.scale[r] / batch as f32;
                for (gi, &xi) in grad[r * k..(r + 1) * k].iter_mut().zip(x) {
                    *gi += g * xi;
                }
            }
        }
        let t = step as f32 / STEPS as f32;
        let beta =
            (t > WARM_UP).then(|| BETA.0 + (BETA.1 - BETA.0) * (t - WARM_UP) / (1.0 - WARM_UP));
        for i in 0..v.len() {
            let sig = 1.0 / (1.0 + (-v[i]).exp());
            let h = sig * (ZETA - GAMMA) + GAMMA;
            let inside = h > 0.0 && h < 1.0 && (floor[i] + h).abs() < 127.0;
            let mut g = if inside { grad[i] } else { 0.0 };
            if let Some(beta) = beta {
                let u = 2.0 * h.clamp(0.0, 1.0) - 1.0;
                // d/dh (1 - |u|^beta) = -2 beta |u|^(beta - 1) sign(u).
                g += LAMBDA * -2.0 * beta * u.abs().powf(beta - 1.0) * u.signum();
            }
            if !(h > 0.0 && h < 1.0) {
                g = 0.0;
            }
            let g = g * (ZETA - GAMMA) * sig * (1.0 - sig);
            // Adam.
            m[i] = 0.9 * m[i] + 0.1 * g;
            s2[i] = 0.999 * s2[i] + 0.001 * g * g;
            let mh = m[i] / (1.0 - 0.9f32.powi(step as i32 + 1));
            let sh = s2[i] / (1.0 - 0.999f32.powi(step as i32 + 1));
            v[i] -= LEARNING_RATE * mh / (sh.sqrt() + 1e-8);
        }
    }
    let learned: Vec<f32> = (0..v.len())
        .map(|i| {
            (floor[i]
                + if rectified_sigmoid(v[i]) >= 0.5 {
                    1.0
                } else {
                    0.0
                })
            .clamp(-127.0, 127.0)
        })
        .collect();
    let e_nearest = error(p, &nearest, &target, clamp);
    let e_learned = error(p, &learned, &target, clamp);
    if e_learned < e_nearest {
        (learned, e_nearest, e_learned)
    } else {
        (nearest, e_nearest, e_nearest)
    }
}

/// Re-rounds the int8 weights of every quantized weighted layer (`weights[node]`: int8 values and
/// per-channel scales) on the calibration activations.
pub(super) fn adaround(
    graph: &Graph,
    float_node: &[bool],
    float_acts: &[Option<Tensor>],
    qp: &[Option<QParams>],
    weights: &mut [Option<(Vec<i8>, Vec<f32>)>],
) -> Result<Vec<LayerRounding>> {
    let mut report = Vec::new();
    let mut rng = Rng::new(0x5eed);
    for (i, node) in graph.nodes.iter().enumerate() {
        let (Some((q, scales)), false) = (weights[i].as_mut(), float_node[i]) else {
            continue;
        };
        let (Some(input), Some(input_q)) =
            (float_acts[node.inputs[0]].as_ref(), qp[node.inputs[0]])
        else {
            continue;
        };
        let (filter, clamp) = match &node.op {
            Op::Conv2d { filter, clamp, .. }
            | Op::DepthwiseConv2d { filter, clamp, .. }
            | Op::FullyConnected { filter, clamp, .. } => (filter, *clamp),
            _ => continue,
        };
        let mut line = LayerRounding {
            name: node.name.clone(),
            nearest_error: 0.0,
            adaround_error: 0.0,
            kept: 0,
            groups: 0,
            flipped: 0,
        };
        for p in problems(&node.op, input, input_q, scales, &mut rng) {
            let w: Vec<f32> = p.index.iter().flatten().map(|&i| filter.data[i]).collect();
            let (ints, e_nearest, e_kept) = optimize(&p, &w, clamp, &mut rng);
            line.nearest_error += e_nearest;
            line.adaround_error += e_kept;
            line.groups += 1;
            line.kept += usize::from(e_kept < e_nearest);
            for (&at, &v) in p.index.iter().flatten().zip(&ints) {
                let v = v as i8;
                line.flipped += usize::from(q[at] != v);
                q[at] = v;
            }
        }
        report.push(line);
    }
    Ok(report)
}
