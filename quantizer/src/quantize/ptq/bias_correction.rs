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
pub(super) fn with_weights(op: &Op, q: &(Vec<i8>, Vec<f32>), keep_clamp: bool) -> Op {
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

/// Calibration samples used to estimate bias shifts.
const BIAS_CORRECTION_SAMPLES: usize = 128;

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

/// Where the simulated model is not int8: per node, kept in float or run in int16x8; per value, a
/// wide output (int16 between an int8 layer and its function table).
#[derive(Clone, Copy)]
pub(super) struct Precisions<'a> {
    pub float_node: &'a [bool],
    pub int16_node: &'a [bool],
    pub wide_value: &'a [bool],
}

/// The int8 model simulated in float arithmetic on the first calibration samples: rounded weights,
/// and (with quantized inputs) every activation rounded to its int8 parameters. What stays the same
/// for every set of activation parameters is computed once.
pub(super) struct Simulation<'g> {
    graph: &'g Graph,
    /// Per node: its activations are not rounded (kept in float, or int16x8 whose rounding is 256
    /// times finer than int8's).
    wide_node: Vec<bool>,
    /// Per value: a wide output, which its int8 layer leaves unrounded for its function.
    wide_value: Vec<bool>,
    /// Per value: f32 at run time (`lower::float_values`). An int8 node reads such a value through a
    /// Quantize; a float node reads an int8 one through a Dequantize (exact).
    float_value: Vec<bool>,
    /// The float activations of the samples simulated.
    float_acts: Vec<Option<Tensor>>,
    /// Per weighted node: the operator with its clamp removed and its weights rounded (float nodes
    /// keep theirs), and its float output's mean per channel on float inputs, before the clamp.
    rounded: Vec<Option<(Op, Vec<f32>)>>,
}

/// What one simulation gives.
pub(super) struct Simulated {
    /// Per node: the bias change that makes its output's mean per channel the float model's.
    pub shifts: Vec<Option<Vec<f32>>>,
    /// The simulated values (empty when the inputs were not quantized).
    pub values: Vec<Option<Tensor>>,
}

impl<'g> Simulation<'g> {
    /// `float_acts`: the float activations of the `samples` calibration samples (the first
    /// [`BIAS_CORRECTION_SAMPLES`] are simulated); `weights`: each node's int8 weights. Nodes in
    /// `float_node` keep their float weights; those in `int16_node` have int8 weights and
    /// activations left unrounded, as do wide values.
    pub fn new(
        graph: &'g Graph,
        precisions: Precisions<'_>,
        weights: &[Option<(Vec<i8>, Vec<f32>)>],
        float_acts: &[Option<Tensor>],
        samples: usize,
    ) -> Result<Self> {
        let n = samples.min(BIAS_CORRECTION_SAMPLES);
        let float_acts: Vec<Option<Tensor>> = float_acts
            .iter()
            .map(|t| t.as_ref().map(|t| t.slice_batch(0, n)))
            .collect();
        let mut rounded = Vec::with_capacity(graph.nodes.len());
        for (i, node) in graph.nodes.iter().enumerate() {
            let Some(w) = weights[i].as_ref() else {
                rounded.push(None);
                continue;
            };
            let float_in: Vec<View<'_>> = node
                .inputs
                .iter()
                .map(|&v| view(graph, &float_acts, v))
                .collect::<Result<_>>()?;
            let mut no_clamp = node.op.clone();
            if let Some(c) = no_clamp.clamp_mut() {
                *c = Clamp::NONE;
            }
            let reference = float_exec::eval(&no_clamp, &float_in)?;
            // A float node keeps its weights; its bias is corrected for its inputs' rounding.
            let op = if precisions.float_node[i] {
                no_clamp
            } else {
                with_weights(&node.op, w, false)
            };
            rounded.push(Some((op, channel_means(&reference))));
        }
        let wide_value: Vec<bool> = (0..graph.values.len())
            .map(|v| precisions.wide_value.get(v).copied().unwrap_or(false))
            .collect();
        let wide_node: Vec<bool> = precisions
            .float_node
            .iter()
            .zip(precisions.int16_node)
            .map(|(&f, &w)| f || w)
            .collect();
        Ok(Simulation {
            graph,
            float_value: crate::lower::float_values(graph, &wide_node),
            wide_node,
            wide_value,
            float_acts,
            rounded,
        })
    }

    /// The first samples' float outputs.
    pub fn float_outputs(&self) -> Vec<Option<&Tensor>> {
        let g = self.graph;
        g.outputs
            .iter()
            .map(|&o| self.float_acts[o].as_ref())
            .collect()
    }

    /// Simulates with activation parameters `qp`. `quantized_inputs`: every node reads the
    /// simulated (rounded) values of the nodes before it, each weighted node with its bias shift
    /// applied when `correct` (full bias correction); otherwise each node reads the float
    /// activations (fast bias correction: only the shifts are computed).
    pub fn run(
        &self,
        qp: &[Option<QParams>],
        quantized_inputs: bool,
        correct: bool,
    ) -> Result<Simulated> {
        self.run_observed(qp, quantized_inputs, correct, |_| {})
    }

    /// [`Self::run`], calling `on_node(i)` once node `i` is simulated.
    pub fn run_observed(
        &self,
        qp: &[Option<QParams>],
        quantized_inputs: bool,
        correct: bool,
        mut on_node: impl FnMut(usize),
    ) -> Result<Simulated> {
        let g = self.graph;
        let mut shifts = vec![None; g.nodes.len()];
        let mut values: Vec<Option<Tensor>> = vec![None; g.values.len()];
        if quantized_inputs {
            self.quantize_inputs(qp, &mut values)?;
        }
        for i in 0..g.nodes.len() {
            let acts = if quantized_inputs {
                &values
            } else {
                &self.float_acts
            };
            let (shift, out) = self.node(i, qp, |v| view(g, acts, v), quantized_inputs, correct)?;
            shifts[i] = shift;
            if let Some(out) = out {
                values[g.nodes[i].output] = Some(out);
            }
            on_node(i);
        }
        Ok(Simulated { shifts, values })
    }

    /// `run(qp, true, correct)`'s values computed from node `from` on: the values of the nodes
    /// before it (and the graph inputs, unless `from` is 0) are `base`'s, which must come from a
    /// run whose parameters agree with `qp` on every value those nodes read or write. Only the
    /// values of nodes `from..` (and the inputs when `from` is 0) are set in the result.
    pub fn run_from(
        &self,
        qp: &[Option<QParams>],
        correct: bool,
        base: &[Option<Tensor>],
        from: usize,
    ) -> Result<Vec<Option<Tensor>>> {
        let g = self.graph;
        let mut values: Vec<Option<Tensor>> = vec![None; g.values.len()];
        if from == 0 {
            self.quantize_inputs(qp, &mut values)?;
        }
        for i in from..g.nodes.len() {
            let lookup = |v: ValueId| match &values[v] {
                Some(_) => view(g, &values, v),
                None => view(g, base, v),
            };
            let (_, out) = self.node(i, qp, lookup, true, correct)?;
            if let Some(out) = out {
                values[g.nodes[i].output] = Some(out);
            }
        }
        Ok(values)
    }

    /// The graph inputs' float values rounded to their parameters, into `values`.
    fn quantize_inputs(&self, qp: &[Option<QParams>], values: &mut [Option<Tensor>]) -> Result<()> {
        for &v in &self.graph.inputs {
            let mut t = self.float_acts[v].clone().context("input not computed")?;
            if !self.float_value[v] {
                fake_quant(&mut t, qp[v].context("input without parameters")?);
            }
            values[v] = Some(t);
        }
        Ok(())
    }

    /// Node `i` on the inputs `input` gives: its bias shift (weighted nodes) and, with quantized
    /// inputs, its simulated output (see [`Self::run`]).
    fn node<'v>(
        &self,
        i: usize,
        qp: &[Option<QParams>],
        input: impl Fn(ValueId) -> Result<View<'v>>,
        quantized_inputs: bool,
        correct: bool,
    ) -> Result<(Option<Vec<f32>>, Option<Tensor>)> {
        let n = &self.graph.nodes[i];
        let mut ins: Vec<View<'_>> = n.inputs.iter().map(|&v| input(v)).collect::<Result<_>>()?;
        // An int8 node reads the f32 values of float nodes rounded to their parameters.
        let mut rounded_inputs = Vec::new();
        if quantized_inputs && !self.wide_node[i] {
            for (k, &v) in n.inputs.iter().enumerate() {
                if self.float_value[v] && !self.graph.is_const(v) {
                    let mut t = Tensor::new(ins[k].shape.to_vec(), ins[k].data.to_vec());
                    fake_quant(&mut t, qp[v].context("value without parameters")?);
                    rounded_inputs.push((k, t));
                }
            }
        }
        for (k, t) in &rounded_inputs {
            ins[*k] = View {
                shape: &t.shape,
                data: &t.data,
            };
        }
        let (shift, out) = match &self.rounded[i] {
            Some((op, reference)) => {
                let mut out = float_exec::eval(op, &ins)?;
                let mean = channel_means(&out);
                let shift: Vec<f32> = reference.iter().zip(&mean).map(|(r, m)| r - m).collect();
                if quantized_inputs {
                    let clamp = n.op.clamp().unwrap_or(Clamp::NONE);
                    let c = shift.len();
                    for (k, x) in out.data.iter_mut().enumerate() {
                        let shifted = if correct { *x + shift[k % c] } else { *x };
                        *x = clamp.apply(shifted);
                    }
                }
                (Some(shift), out)
            }
            None if quantized_inputs => (None, float_exec::eval(&n.op, &ins)?),
            None => return Ok((None, None)),
        };
        if !quantized_inputs {
            return Ok((shift, None));
        }
        let mut out = out;
        if !self.wide_node[i] && !self.wide_value[n.output] {
            fake_quant(&mut out, qp[n.output].context("value without parameters")?);
        }
        Ok((shift, Some(out)))
    }
}

/// Per-channel (last axis) mean.
fn channel_means(t: &Tensor) -> Vec<f32> {
    let c = *t.shape.last().unwrap_or(&1);
    let mut sum = vec![0f64; c];
    for (i, x) in t.data.iter().enumerate() {
        sum[i % c] += *x as f64;
    }
    let n = (t.data.len() / c.max(1)).max(1) as f64;
    sum.iter().map(|s| (s / n) as f32).collect()
}

/// Corrects the biases of `graph`'s weighted nodes in place and returns, per corrected node, the
/// largest absolute bias change (nodes kept in float are corrected for their inputs' rounding only,
/// which full correction sees). `float_acts` are the calibration
/// activations, `qp` the activations' parameters and `weights` each node's quantized weights.
/// `on_node(i)` hears that node `i` is simulated.
#[allow(clippy::too_many_arguments)]
pub(super) fn correct_biases(
    graph: &mut Graph,
    mode: BiasCorrection,
    float_node: &[bool],
    int16_node: &[bool],
    wide_value: &[bool],
    qp: &[Option<QParams>],
    weights: &[Option<(Vec<i8>, Vec<f32>)>],
    float_acts: &[Option<Tensor>],
    samples: usize,
    on_node: impl FnMut(usize),
) -> Result<Vec<(String, f32)>> {
    if mode == BiasCorrection::Off {
        return Ok(Vec::new());
    }
    let full = mode == BiasCorrection::Full;
    let nodes = Precisions {
        float_node,
        int16_node,
        wide_value,
    };
    let shifts = Simulation::new(graph, nodes, weights, float_acts, samples)?
        .run_observed(qp, full, full, on_node)?
        .shifts;
    let mut bias_shift = Vec::new();
    for (node, shift) in graph.nodes.iter_mut().zip(shifts) {
        let Some(shift) = shift else { continue };
        let largest = shift.iter().fold(0f32, |a, s| a.max(s.abs()));
        bias_shift.push((node.name.clone(), largest));
        if let Some(b) = bias_mut(&mut node.op) {
            for (b, s) in b.data.iter_mut().zip(&shift) {
                *b += s;
            }
        }
    }
    Ok(bias_shift)
}
