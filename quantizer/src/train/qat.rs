//! The network as quantization-aware training sees it: the float graph with every activation and
//! weight fake-quantized as the lowering quantizes it, one forward and one backward pass per batch.
//!
//! Per node: the weights are fake-quantized with their per-channel scales, the bias rounded to its
//! int32 grid (`input scale * weight scale`, as [`crate::quantize::params::bias`] does), the float
//! operator applied (fused clamp included), and its output fake-quantized with the value's scale and
//! zero point. Values the lowering gives the same parameters (the output of MaxPool, AveragePool,
//! Reshape, Pad and Relu keeps its input's) share one quantizer; Softmax, Logistic and Tanh outputs keep
//! their fixed parameters, and a wide output (int16 before a function's table) its int16 grid and
//! scale. Zero points stay as post-training quantization chose them; scales are learned
//! (LSQ), as are the weights and biases. BatchNorm is already folded into the convolutions (with its
//! inference statistics), so training sees the arithmetic the device runs.

use anyhow::{bail, ensure, Context, Result};

use super::backward;
use super::fake_quant::{self, ChannelAxis, Grid};
use crate::ir::float_exec::{self, Tensor, View};
use crate::ir::{Graph, Op, ValueId};
use crate::quantize::params::{self, QParams};
use crate::quantize::ptq::{fixed_output, keeps_input_quant, Decided};

/// One activation quantizer (per tensor).
#[derive(Clone, Debug)]
pub struct ActQuant {
    pub scale: f32,
    pub grid: Grid,
    pub learnable: bool,
    /// Elements per sample of the first value it quantizes (LSQ's gradient scale).
    pub elements: usize,
}

/// The weight quantizer of a Conv2d, DepthwiseConv2d or FullyConnected node.
#[derive(Clone, Debug)]
pub struct WeightQuant {
    pub scales: Vec<f32>,
    pub axis: ChannelAxis,
}

/// The trainable state: float weights (in the graph), activation scales, weight scales.
#[derive(Clone, Debug)]
pub struct Qat {
    pub graph: Graph,
    /// Per value: its activation quantizer in `acts` (none for constants).
    pub act_of: Vec<Option<usize>>,
    pub acts: Vec<ActQuant>,
    /// Per node.
    pub weights: Vec<Option<WeightQuant>>,
    /// Per value: a wide output (int16 between an int8 layer and its function table, as
    /// post-training quantization decided), fake-quantized on its fixed int16 grid.
    pub wide: Vec<bool>,
}

/// Gradients of one batch, laid out as [`Qat`]'s state.
#[derive(Clone, Debug)]
pub struct Grads {
    /// Per node: d loss / d each parameter array (`Op::params_mut` order); empty for nodes the loss
    /// does not reach.
    pub params: Vec<Vec<Vec<f64>>>,
    /// Per activation quantizer: d loss / d scale (LSQ-scaled).
    pub act_scales: Vec<f64>,
    /// Per node: d loss / d weight scale per channel (LSQ-scaled).
    pub weight_scales: Vec<Vec<f64>>,
}

/// One forward pass: each value before and after its fake quantization.
pub struct Pass {
    /// Per value: the operator's output (fused clamp applied), before fake quantization.
    pub raw: Vec<Option<Tensor>>,
    /// Per value: after fake quantization (what the next operators read).
    pub quantized: Vec<Option<Tensor>>,
}

impl Pass {
    /// The fake-quantized value `v`.
    pub fn value(&self, v: ValueId) -> Option<&Tensor> {
        self.quantized[v].as_ref()
    }
}

fn filter_and_bias(op: &Op) -> Option<(&crate::ir::Param, &crate::ir::Param, ChannelAxis)> {
    match op {
        Op::Conv2d { filter, bias, .. } | Op::FullyConnected { filter, bias, .. } => {
            Some((filter, bias, ChannelAxis::First))
        }
        Op::DepthwiseConv2d { filter, bias, .. } => Some((filter, bias, ChannelAxis::Last)),
        _ => None,
    }
}

impl Qat {
    /// The state post-training quantization decided: its graph, scales and zero points.
    pub fn new(decided: &Decided) -> Result<Qat> {
        let graph = decided.graph.clone();
        if let Some(i) = decided.float_node.iter().position(|&f| f) {
            bail!(
                "node `{}` is kept in float; training quantizes every node",
                graph.nodes[i].name
            );
        }
        let mut act_of = vec![None; graph.values.len()];
        let mut acts: Vec<ActQuant> = Vec::new();
        let wide_scale = |v: ValueId| decided.wide_scales.get(v).copied().flatten();
        let wide: Vec<bool> = (0..graph.values.len())
            .map(|v| wide_scale(v).is_some())
            .collect();
        let mut new_quant = |p: Option<QParams>, v: ValueId, learnable: bool| -> Result<usize> {
            let p = p.with_context(|| {
                format!("value `{}` has no int8 parameters", graph.values[v].name)
            })?;
            acts.push(ActQuant {
                scale: p.scale,
                grid: if wide[v] {
                    Grid::INT16
                } else {
                    Grid::activation(p.zero_point)
                },
                learnable,
                elements: graph.values[v].elements(),
            });
            Ok(acts.len() - 1)
        };
        for &v in &graph.inputs {
            act_of[v] = Some(new_quant(decided.params[v], v, true)?);
        }
        for n in &graph.nodes {
            if let Some(scale) = wide_scale(n.output) {
                // Its scale stays: it spans the inputs the function's int8 output tells apart.
                let p = QParams {
                    scale,
                    zero_point: 0,
                };
                act_of[n.output] = Some(new_quant(Some(p), n.output, false)?);
                continue;
            }
            let shared = act_of[n.inputs[0]].filter(|_| keeps_input_quant(&n.op));
            act_of[n.output] = Some(match (fixed_output(&n.op), shared) {
                (Some(p), _) => new_quant(Some(p), n.output, false)?,
                (None, Some(q)) => q,
                (None, None) => new_quant(decided.params[n.output], n.output, true)?,
            });
        }
        for (v, q) in act_of.iter().enumerate().filter(|&(v, _)| !wide[v]) {
            if let (Some(q), Some(p)) = (q, decided.params[v]) {
                let a = &acts[*q];
                ensure!(
                    a.scale == p.scale && a.grid.zero_point == p.zero_point,
                    "value `{}`: its int8 parameters differ from those of the value it shares them with",
                    graph.values[v].name
                );
            }
        }
        let weights = graph
            .nodes
            .iter()
            .zip(&decided.weights)
            .map(|(n, w)| {
                let (_, _, axis) = filter_and_bias(&n.op)?;
                let (_, scales) = w.as_ref()?;
                Some(WeightQuant {
                    scales: scales.clone(),
                    axis,
                })
            })
            .collect();
        Ok(Qat {
            graph,
            act_of,
            acts,
            weights,
            wide,
        })
    }

    /// The int8 decisions of the current state (weights rounded with the learned scales), for
    /// [`crate::quantize::ptq::build`]. A wide output keeps its int8 parameters from `like` and
    /// takes its int16 scale, at least its layer's accumulator step (input scale times largest
    /// weight scale) as post-training quantization has it, so that no accumulator is shifted left.
    pub fn decided(&self, like: &Decided) -> Decided {
        let params = self
            .act_of
            .iter()
            .enumerate()
            .map(|(v, q)| {
                if self.wide[v] {
                    return like.params[v];
                }
                q.map(|q| QParams {
                    scale: self.acts[q].scale,
                    zero_point: self.acts[q].grid.zero_point,
                })
            })
            .collect();
        let mut wide_scales = vec![None; self.graph.values.len()];
        for (i, n) in self.graph.nodes.iter().enumerate() {
            if self.wide[n.output] {
                wide_scales[n.output] = self.output_quant(i).map(|a| a.scale);
            }
        }
        let weights = self
            .graph
            .nodes
            .iter()
            .zip(&self.weights)
            .map(|(n, wq)| {
                let wq = wq.as_ref()?;
                let (filter, _, _) = filter_and_bias(&n.op)?;
                let len = filter.data.len();
                let q = filter
                    .data
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| {
                        let s = wq.scales[wq.axis.channel(i, len, wq.scales.len())];
                        (w / s).round().clamp(-127.0, 127.0) as i8
                    })
                    .collect();
                Some((q, wq.scales.clone()))
            })
            .collect();
        Decided {
            graph: self.graph.clone(),
            float_node: vec![false; self.graph.nodes.len()],
            int16_node: vec![false; self.graph.nodes.len()],
            params,
            int16_scales: Vec::new(),
            wide_scales,
            weights,
            source_sha256: like.source_sha256,
            weight_storage: like.weight_storage,
            arena: like.arena,
        }
    }

    fn act(&self, v: ValueId) -> Option<&ActQuant> {
        self.act_of[v].map(|q| &self.acts[q])
    }

    /// The quantizer of node `i`'s output as the lowering applies it: a wide output's int16 scale
    /// is at least the node's accumulator step (input scale times largest weight scale), which
    /// learned scales can move above the post-training one.
    fn output_quant(&self, i: usize) -> Option<ActQuant> {
        let n = &self.graph.nodes[i];
        let mut a = self.act(n.output)?.clone();
        if self.wide[n.output] {
            let input = self.act(n.inputs[0]).map_or(0.0, |a| a.scale);
            let weight = self.weights[i]
                .as_ref()
                .map_or(0.0, |w| w.scales.iter().fold(0f32, |m, &s| m.max(s)));
            a.scale = a.scale.max(input * weight);
        }
        Some(a)
    }

    /// Each node's operator with fake-quantized weights and bias.
    pub fn quantized_ops(&self) -> Vec<Op> {
        self.graph
            .nodes
            .iter()
            .zip(&self.weights)
            .map(|(n, wq)| {
                let mut op = n.op.clone();
                let (Some(wq), Some(s_in)) = (wq, self.act(n.inputs[0]).map(|a| a.scale)) else {
                    return op;
                };
                if let Op::Conv2d { filter, bias, .. }
                | Op::DepthwiseConv2d { filter, bias, .. }
                | Op::FullyConnected { filter, bias, .. } = &mut op
                {
                    let w = filter.data.clone();
                    fake_quant::weights_forward(wq.axis, &wq.scales, &w, &mut filter.data);
                    let q = params::bias(&bias.data, s_in, &wq.scales);
                    for (c, (b, q)) in bias.data.iter_mut().zip(q).enumerate() {
                        let s = wq.scales[if wq.scales.len() == 1 { 0 } else { c }];
                        *b = (q as f64 * s_in as f64 * s as f64) as f32;
                    }
                }
                op
            })
            .collect()
    }

    /// Runs the fake-quantized network on a batch (NHWC, batch first).
    pub fn forward(&self, ops: &[Op], inputs: &[Tensor]) -> Result<Pass> {
        let g = &self.graph;
        ensure!(
            inputs.len() == g.inputs.len(),
            "the model has {} input(s)",
            g.inputs.len()
        );
        let mut pass = Pass {
            raw: vec![None; g.values.len()],
            quantized: vec![None; g.values.len()],
        };
        let quantize = |a: Option<&ActQuant>, t: &Tensor| -> Tensor {
            let mut q = t.clone();
            if let Some(a) = a {
                fake_quant::forward(a.grid, a.scale, &t.data, &mut q.data);
            }
            q
        };
        for (t, &v) in inputs.iter().zip(&g.inputs) {
            pass.quantized[v] = Some(quantize(self.act(v), t));
            pass.raw[v] = Some(t.clone());
        }
        for (i, (n, op)) in g.nodes.iter().zip(ops).enumerate() {
            let views = n
                .inputs
                .iter()
                .map(|&v| value_view(g, &pass, v))
                .collect::<Result<Vec<_>>>()?;
            let out = float_exec::eval(op, &views)
                .with_context(|| format!("node `{}` ({})", n.name, op.name()))?;
            pass.quantized[n.output] = Some(quantize(self.output_quant(i).as_ref(), &out));
            pass.raw[n.output] = Some(out);
        }
        Ok(pass)
    }

    /// Per activation quantizer: the range its grid covers now, `(s * (lo - z), s * (hi - z))`.
    pub fn covered(&self) -> Vec<(f32, f32)> {
        self.acts
            .iter()
            .map(|a| {
                let (below, above) = a.grid.steps();
                (a.scale * below, a.scale * above)
            })
            .collect()
    }

    /// Widens `seen` (per activation quantizer: a range, from [`Qat::covered`] at the start) by
    /// `pass`'s values.
    pub fn observe(&self, pass: &Pass, seen: &mut [(f32, f32)]) {
        for (v, raw) in pass.raw.iter().enumerate() {
            if let (Some(q), Some(t)) = (self.act_of[v], raw) {
                let (lo, hi) = &mut seen[q];
                for &x in &t.data {
                    *lo = lo.min(x);
                    *hi = hi.max(x);
                }
            }
        }
    }

    /// Lowers every learnable activation scale that exceeds the smallest one whose integer range
    /// covers all of `seen` (so never below its scale at the start): a wider grid clips nothing more
    /// and only loses resolution. (LSQ's scale gradient inside the range, `n - x / s`, can keep
    /// pushing a scale up where the rounding of every value to zero is what the loss prefers; under
    /// Adam such a drift does not slow down.)
    pub fn cap_scales(&mut self, seen: &[(f32, f32)]) {
        for (a, &(lo, hi)) in self.acts.iter_mut().zip(seen) {
            let (below, above) = a.grid.steps();
            let cover = (hi.max(0.0) / above.max(1.0)).max(lo.min(0.0) / below.min(-1.0));
            if a.learnable && cover > 0.0 && a.scale > cover {
                a.scale = cover;
            }
        }
    }

    /// Gradients of the loss whose gradient at value `at` is `d_at` (the same shape as the value).
    pub fn backward(&self, ops: &[Op], pass: &Pass, at: ValueId, d_at: Vec<f32>) -> Result<Grads> {
        let g = &self.graph;
        let mut grads = Grads {
            params: vec![Vec::new(); g.nodes.len()],
            act_scales: vec![0.0; self.acts.len()],
            weight_scales: self
                .weights
                .iter()
                .map(|w| w.as_ref().map_or(Vec::new(), |w| vec![0.0; w.scales.len()]))
                .collect(),
        };
        // d loss / d (fake-quantized value), per value.
        let mut d: Vec<Option<Vec<f32>>> = vec![None; g.values.len()];
        d[at] = Some(d_at);
        for (i, (n, op)) in g.nodes.iter().zip(ops).enumerate().rev() {
            let Some(d_out) = d[n.output].take() else {
                continue;
            };
            let raw = pass.raw[n.output]
                .as_ref()
                .context("forward pass incomplete")?;
            let d_raw = self.through_act_quant(
                n.output,
                self.output_quant(i).as_ref(),
                &raw.data,
                &d_out,
                &mut grads,
            );
            let views = n
                .inputs
                .iter()
                .map(|&v| value_view(g, pass, v))
                .collect::<Result<Vec<_>>>()?;
            let need: Vec<bool> = n.inputs.iter().map(|&v| !g.is_const(v)).collect();
            let og = backward::backward(op, &views, &raw.data, &d_raw, &need)
                .with_context(|| format!("gradient of node `{}` ({})", n.name, op.name()))?;
            for (&v, dv) in n.inputs.iter().zip(og.inputs) {
                if let Some(dv) = dv {
                    match &mut d[v] {
                        Some(acc) => acc.iter_mut().zip(&dv).for_each(|(a, b)| *a += b),
                        slot => *slot = Some(dv),
                    }
                }
            }
            self.through_weight_quant(i, og.params, &mut grads);
        }
        // The graph inputs' quantizers.
        for &v in &g.inputs {
            if let (Some(dv), Some(raw)) = (d[v].take(), pass.raw[v].as_ref()) {
                self.through_act_quant(v, self.act(v), &raw.data, &dv, &mut grads);
            }
        }
        Ok(grads)
    }

    /// d loss / d raw value from d loss / d its fake quantization by `a` (value `v`'s quantizer as
    /// applied); adds the scale's gradient.
    fn through_act_quant(
        &self,
        v: ValueId,
        a: Option<&ActQuant>,
        raw: &[f32],
        d: &[f32],
        grads: &mut Grads,
    ) -> Vec<f32> {
        let (Some(q), Some(a)) = (self.act_of[v], a) else {
            return d.to_vec();
        };
        let mut dx = vec![0f32; d.len()];
        let ds = fake_quant::backward(a.grid, a.scale, raw, d, &mut dx);
        if a.learnable {
            grads.act_scales[q] += ds * a.grid.gradient_scale(a.elements) as f64;
        }
        dx
    }

    /// Node `i`'s parameter gradients from those of its fake-quantized parameters: straight through
    /// for the weights inside their range and for the bias, LSQ for the weight scales.
    fn through_weight_quant(&self, i: usize, d_params: Vec<Vec<f32>>, grads: &mut Grads) {
        let n = &self.graph.nodes[i];
        let target = &mut grads.params[i];
        if target.is_empty() {
            *target = d_params.iter().map(|p| vec![0.0; p.len()]).collect();
        }
        match (&self.weights[i], filter_and_bias(&n.op)) {
            (Some(wq), Some((filter, _, _))) => {
                let mut dw = vec![0f32; filter.data.len()];
                let mut ds = vec![0f64; wq.scales.len()];
                fake_quant::weights_backward(
                    wq.axis,
                    &wq.scales,
                    &filter.data,
                    &d_params[0],
                    &mut dw,
                    &mut ds,
                );
                let per_channel = filter.data.len() / wq.scales.len().max(1);
                let gs = Grid::WEIGHT.gradient_scale(per_channel) as f64;
                for (a, b) in grads.weight_scales[i].iter_mut().zip(&ds) {
                    *a += b * gs;
                }
                add_f32(&mut target[0], &dw);
                add_f32(&mut target[1], &d_params[1]);
            }
            _ => {
                for (t, p) in target.iter_mut().zip(&d_params) {
                    add_f32(t, p);
                }
            }
        }
    }
}

fn add_f32(a: &mut [f64], b: &[f32]) {
    for (a, &b) in a.iter_mut().zip(b) {
        *a += b as f64;
    }
}

fn value_view<'a>(g: &'a Graph, pass: &'a Pass, v: ValueId) -> Result<View<'a>> {
    if let Some(t) = &pass.quantized[v] {
        return Ok(View {
            shape: &t.shape,
            data: &t.data,
        });
    }
    let c = &g.values[v];
    let data = c
        .data
        .as_ref()
        .with_context(|| format!("value `{}` is not computed", c.name))?;
    Ok(View {
        shape: &c.shape,
        data,
    })
}
