//! Bias correction: the mean error that weight quantization shifts into each output channel, measured
//! on calibration samples and folded into the float bias before it is quantized.

use anyhow::{Context, Result};

use super::BiasCorrection;
use crate::ir::float_exec::{self, Tensor, View};
use crate::ir::{Clamp, Graph, Op, Param, ValueId};
use crate::quantize::params::QParams;

/// Quantize-dequantize every element with `p`.
fn fake_quant(t: &mut Tensor, p: QParams) {
    for x in &mut t.data {
        *x = p.fake_quant(*x);
    }
}

/// The op with its weights replaced by their dequantized int8 values and the clamp removed.
fn with_weights(op: &Op, q: &(Vec<i8>, Vec<f32>), keep_clamp: bool) -> Op {
    let mut op = op.clone();
    let channel_last = matches!(op, Op::DepthwiseConv2d { .. });
    if let Some(filter) = op.params_mut().into_iter().next() {
        let channels = q.1.len();
        let per = filter.data.len() / channels;
        for (i, x) in filter.data.iter_mut().enumerate() {
            let c = if channels == 1 {
                0
            } else if channel_last {
                i % channels
            } else {
                i / per
            };
            *x = q.0[i] as f32 * q.1[c];
        }
    }
    if !keep_clamp {
        if let Some(c) = op.clamp_mut() {
            *c = Clamp::NONE;
        }
    }
    op
}

fn bias_mut(op: &mut Op) -> Option<&mut Param> {
    match op {
        Op::Conv2d { bias, .. }
        | Op::DepthwiseConv2d { bias, .. }
        | Op::FullyConnected { bias, .. } => Some(bias),
        _ => None,
    }
}

/// Per-channel (last axis) mean of `a - b`.
fn channel_mean_diff(a: &Tensor, b: &Tensor) -> Vec<f32> {
    let c = *a.shape.last().unwrap_or(&1);
    let mut sum = vec![0f64; c];
    for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
        sum[i % c] += (*x - *y) as f64;
    }
    let n = (a.data.len() / c.max(1)).max(1) as f64;
    sum.iter().map(|s| (s / n) as f32).collect()
}

/// Calibration samples used to estimate bias shifts.
const BIAS_CORRECTION_SAMPLES: usize = 128;

/// `float_exec::eval` over the batch split across the machine's cores (every input is batch first).
fn eval_batched(op: &Op, inputs: &[View<'_>]) -> Result<Tensor> {
    let batch = inputs.first().map_or(1, |v| v.shape[0]);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(batch)
        .max(1);
    if threads == 1 || batch < 8 {
        return float_exec::eval(op, inputs);
    }
    let chunk = batch.div_ceil(threads);
    let parts: Vec<Tensor> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..batch)
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(batch);
                s.spawn(move || {
                    let shapes: Vec<Vec<usize>> = inputs
                        .iter()
                        .map(|v| {
                            let mut sh = v.shape.to_vec();
                            sh[0] = end - start;
                            sh
                        })
                        .collect();
                    let views: Vec<View<'_>> = inputs
                        .iter()
                        .zip(&shapes)
                        .map(|(v, sh)| {
                            let per = v.data.len() / v.shape[0];
                            View {
                                shape: sh,
                                data: &v.data[start * per..end * per],
                            }
                        })
                        .collect();
                    float_exec::eval(op, &views)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("evaluation thread panicked"))
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(Tensor::cat_batch(parts))
}

/// Value `v` from computed activations, or the graph's constant.
fn view<'x>(graph: &'x Graph, acts: &'x [Option<Tensor>], v: ValueId) -> Result<View<'x>> {
    match &acts[v] {
        Some(t) => Ok(View {
            shape: &t.shape,
            data: &t.data,
        }),
        None => {
            let c = &graph.values[v];
            let d = c
                .data
                .as_ref()
                .with_context(|| format!("value `{}` not computed", c.name))?;
            Ok(View {
                shape: &c.shape,
                data: d,
            })
        }
    }
}

/// Corrects the biases of `graph`'s weighted nodes in place (nodes kept in float excepted) and
/// returns, per corrected node, the largest absolute bias change. `float_acts` are the calibration
/// activations, `qp` the activations' parameters and `weights` each node's quantized weights.
pub(super) fn correct_biases(
    graph: &mut Graph,
    mode: BiasCorrection,
    float_node: &[bool],
    qp: &[Option<QParams>],
    weights: &[Option<(Vec<i8>, Vec<f32>)>],
    float_acts: &[Option<Tensor>],
    samples: usize,
) -> Result<Vec<(String, f32)>> {
    let mut bias_shift = Vec::new();
    if mode != BiasCorrection::Off {
        let full = mode == BiasCorrection::Full;
        // Per-channel output means settle long before 300 samples: correct on the first ones.
        let n_bc = samples.min(BIAS_CORRECTION_SAMPLES);
        let float_acts: Vec<Option<Tensor>> = float_acts
            .iter()
            .map(|t| t.as_ref().map(|t| t.slice_batch(0, n_bc)))
            .collect();
        let mut q_acts: Vec<Option<Tensor>> = vec![None; graph.values.len()];
        if full {
            for &v in &graph.inputs {
                let mut t = float_acts[v].clone().context("input not computed")?;
                fake_quant(&mut t, qp[v].unwrap());
                q_acts[v] = Some(t);
            }
        }
        for i in 0..graph.nodes.len() {
            let n = graph.nodes[i].clone();
            if let (Some(w), false) = (&weights[i], float_node[i]) {
                let float_in: Vec<View<'_>> = n
                    .inputs
                    .iter()
                    .map(|&v| view(graph, &float_acts, v))
                    .collect::<Result<_>>()?;
                let mut no_clamp = n.op.clone();
                if let Some(c) = no_clamp.clamp_mut() {
                    *c = Clamp::NONE;
                }
                let reference = eval_batched(&no_clamp, &float_in)?;
                let quant_in: Vec<View<'_>> = if full {
                    n.inputs
                        .iter()
                        .map(|&v| view(graph, &q_acts, v))
                        .collect::<Result<_>>()?
                } else {
                    float_in
                };
                let candidate = eval_batched(&with_weights(&n.op, w, false), &quant_in)?;
                let shift = channel_mean_diff(&reference, &candidate);
                let largest = shift.iter().fold(0f32, |a, s| a.max(s.abs()));
                bias_shift.push((n.name.clone(), largest));
                if let Some(b) = bias_mut(&mut graph.nodes[i].op) {
                    for (b, s) in b.data.iter_mut().zip(&shift) {
                        *b += s;
                    }
                }
            }
            if full {
                let op = match &weights[i] {
                    Some(w) if !float_node[i] => with_weights(&graph.nodes[i].op, w, true),
                    _ => graph.nodes[i].op.clone(),
                };
                let ins: Vec<View<'_>> = n
                    .inputs
                    .iter()
                    .map(|&v| view(graph, &q_acts, v))
                    .collect::<Result<_>>()?;
                let mut out = eval_batched(&op, &ins)?;
                if !float_node[i] {
                    fake_quant(&mut out, qp[n.output].unwrap());
                }
                q_acts[n.output] = Some(out);
            }
        }
    }
    Ok(bias_shift)
}
