//! Unstructured magnitude pruning during training (Zhu & Gupta 2017, "To prune, or not to prune").
//!
//! After every optimizer step the weights pruned before are set back to zero (the step moved them),
//! then the smallest-magnitude weights of each pruned layer are set to zero, as many as the schedule's
//! sparsity at that step asks: the set of zeros only grows, and fake quantization rounds each to an
//! exact int8 zero. The polynomial schedule rises from 0 to the target over the first [`RAMP`] of the
//! steps as `s (1 - (1 - t)^3)`: fast while many small weights remain, slowly near the end; the
//! remaining steps fine-tune at the target. Each layer's own target is the sparsity, or under the
//! default [`Scope::Sensitivity`] its share of the same zeros as measured before training
//! ([`allocate_by_sensitivity`]).
//!
//! By default the first and last weighted layers (the ones that see the raw input and produce the
//! logits) and depthwise layers (few weights, each a whole spatial filter) stay dense, as is usual.

use anyhow::{bail, ensure, Result};
use serde::Serialize;

use crate::ir::float_exec::Tensor;
use crate::ir::{Graph, Op};
use crate::quantize::ptq::Decided;
use crate::train::sensitivity::{allocate, curve, OutputError};

/// Share of the training steps over which the polynomial schedule reaches the target; the rest
/// fine-tune at it.
pub const RAMP: f64 = 2.0 / 3.0;

/// Steps of `total` after which the polynomial schedule is at its target.
pub fn polynomial_ramp(total: usize) -> usize {
    ((total as f64 * RAMP).ceil() as usize).clamp(1, total.max(1))
}

/// The polynomial schedule's share of its target after step `step` (0-based) of `total`:
/// `1 - (1 - t)^3` with `t` the share of the ramp done.
pub fn polynomial(step: usize, total: usize) -> f64 {
    let t = ((step + 1) as f64 / polynomial_ramp(total) as f64).min(1.0);
    1.0 - (1.0 - t).powi(3)
}

/// How the zeros are shared among the pruned layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// As many zeros in all as `layer` sets, each layer's share by how little its zeros move the
    /// float model's outputs ([`allocate_by_sensitivity`]).
    Sensitivity,
    /// Every pruned layer reaches the target sparsity.
    Layer,
    /// One threshold over all pruned layers' weights: the target is their total sparsity.
    Global,
}

/// How the sparsity rises over the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Zhu & Gupta's cubic rise over the first two thirds of the steps.
    Polynomial,
    /// The target from the first step on.
    Constant,
}

/// Pruning settings.
#[derive(Clone, Debug, Serialize)]
pub struct Sparsity {
    /// Fraction of the pruned layers' weights set to zero, in [0, 1).
    pub target: f64,
    pub scope: Scope,
    pub schedule: Schedule,
    /// Prune the first, last and depthwise layers too.
    pub all_layers: bool,
    /// Nodes kept dense besides the default ones.
    pub skip: Vec<String>,
    /// Weights pruned together: blocks of this many along the input channels (1: each weight alone).
    pub block: usize,
}

impl Sparsity {
    /// The sparsity after step `step` (0-based) of `total`.
    pub fn at_step(&self, step: usize, total: usize) -> f64 {
        self.target * self.progress(step, total)
    }

    /// The share of the target the schedule asks for after step `step` (0-based) of `total`.
    pub fn progress(&self, step: usize, total: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => 1.0,
            Schedule::Polynomial => polynomial(step, total),
        }
    }

    /// Steps after which the schedule is at its target.
    pub fn ramp_steps(&self, total: usize) -> usize {
        match self.schedule {
            Schedule::Constant => 1,
            Schedule::Polynomial => polynomial_ramp(total),
        }
    }

    /// The nodes to prune: weighted nodes (Conv2d, DepthwiseConv2d, FullyConnected) less the default
    /// exclusions and `skip`. An unknown name in `skip`, or nothing left to prune, is an error.
    pub fn layers(&self, graph: &Graph) -> Result<Vec<usize>> {
        ensure!(
            (0.0..1.0).contains(&self.target),
            "the sparsity {} is not in [0, 1)",
            self.target
        );
        for name in &self.skip {
            if !graph.nodes.iter().any(|n| &n.name == name) {
                bail!("--sparsity-skip: the model has no node `{name}`");
            }
        }
        let weighted: Vec<usize> = (0..graph.nodes.len())
            .filter(|&i| filter_of(&graph.nodes[i].op).is_some())
            .collect();
        let (first, last) = (weighted.first().copied(), weighted.last().copied());
        let chosen: Vec<usize> = weighted
            .into_iter()
            .filter(|&i| {
                let n = &graph.nodes[i];
                let default_dense = Some(i) == first
                    || Some(i) == last
                    || matches!(n.op, Op::DepthwiseConv2d { .. });
                (self.all_layers || !default_dense) && !self.skip.contains(&n.name)
            })
            .collect();
        if self.target > 0.0 && chosen.is_empty() {
            bail!(
                "no layer to prune: the first and last weighted layers and depthwise layers stay \
                 dense by default (--sparsity-all-layers prunes them too)"
            );
        }
        Ok(chosen)
    }
}

fn filter_of(op: &Op) -> Option<&[f32]> {
    match op {
        Op::Conv2d { filter, .. }
        | Op::DepthwiseConv2d { filter, .. }
        | Op::FullyConnected { filter, .. } => Some(&filter.data),
        _ => None,
    }
}

fn filter_of_mut(op: &mut Op) -> Option<&mut Vec<f32>> {
    match op {
        Op::Conv2d { filter, .. }
        | Op::DepthwiseConv2d { filter, .. }
        | Op::FullyConnected { filter, .. } => Some(&mut filter.data),
        _ => None,
    }
}

/// A unit of pruning: (mean square, layer, first weight, length).
type Unit = (f32, usize, usize, usize);

/// Every unit of `group`'s filters: `block` consecutive weights along the filter's last axis
/// (input channels for convolutions and fully connected layers; 1: single weights).
fn units_of(graph: &Graph, group: &[usize], block: usize) -> Vec<Unit> {
    let block = block.max(1);
    let mut units = Vec::new();
    for &l in group {
        let Some(w) = filter_of(&graph.nodes[l].op) else {
            continue;
        };
        let row = row_len(&graph.nodes[l].op);
        for (r, chunk) in w.chunks(row.max(1)).enumerate() {
            for (b, unit) in chunk.chunks(block).enumerate() {
                let ms = unit.iter().map(|x| x * x).sum::<f32>() / unit.len() as f32;
                units.push((ms, l, r * row + b * block, unit.len()));
            }
        }
    }
    units
}

/// Sets the `k` smallest of `units` to zero (ties broken by position).
fn zero_smallest(graph: &mut Graph, mut units: Vec<Unit>, k: usize) {
    if k == 0 {
        return;
    }
    let order = |a: &Unit, b: &Unit| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2)));
    if k < units.len() {
        units.select_nth_unstable_by(k, order);
    }
    for &(_, l, start, len) in &units[..k.min(units.len())] {
        if let Some(w) = filter_of_mut(&mut graph.nodes[l].op) {
            w[start..start + len].fill(0.0);
        }
    }
}

/// Sets the smallest `fraction` of the weights of `layers` to zero: units of `block` consecutive
/// weights along the filter's last axis ranked by their mean square, each layer on its own
/// (`Layer` and `Sensitivity`: see [`prune_each`] for the latter's shares) or all together
/// (`Global`). Exactly `floor(fraction * units)` units are zeroed, ties broken by position.
pub fn prune(graph: &mut Graph, layers: &[usize], fraction: f64, scope: Scope, block: usize) {
    match scope {
        Scope::Layer | Scope::Sensitivity => {
            prune_each(graph, layers, &vec![fraction; layers.len()], block)
        }
        Scope::Global => {
            let units = units_of(graph, layers, block);
            let k = (fraction * units.len() as f64).floor() as usize;
            zero_smallest(graph, units, k);
        }
    }
}

/// Sets the smallest `fractions[i]` of the units of layer `layers[i]` to zero, each layer on its
/// own (as [`prune`]).
pub fn prune_each(graph: &mut Graph, layers: &[usize], fractions: &[f64], block: usize) {
    for (&l, &f) in layers.iter().zip(fractions) {
        let units = units_of(graph, &[l], block);
        let k = (f * units.len() as f64).floor() as usize;
        zero_smallest(graph, units, k);
    }
}

/// Each pruned layer's share of zeros under [`Scope::Sensitivity`]: as many units in all as
/// `target` of every layer gives, each taken from the layer where zeroing its next smallest unit
/// moves the float model's outputs least. Each layer's curve of output error (squared, relative to
/// the outputs' power) against units zeroed is measured on
/// [`SENSITIVITY_SAMPLES`](crate::train::sensitivity::SENSITIVITY_SAMPLES) of `x`, one
/// layer pruned at a time by magnitude, at
/// [`SENSITIVITY_POINTS`](crate::train::sensitivity::SENSITIVITY_POINTS) counts (Li et al. 2017's
/// sensitivity analysis, as filter pruning allocates channels). No layer gets more than twice
/// `target`, nor every unit.
pub fn allocate_by_sensitivity(
    graph: &Graph,
    layers: &[usize],
    x: &Tensor,
    target: f64,
    block: usize,
) -> Result<Vec<f64>> {
    let error = OutputError::new(graph, x)?;
    let mut curves = Vec::new();
    let mut caps = Vec::new();
    let mut sizes = Vec::new();
    for &l in layers {
        let units = units_of(graph, &[l], block);
        let n = units.len();
        let cap = (((2.0 * target).min(1.0) * n as f64).round() as usize).min(n.saturating_sub(1));
        curves.push(curve(cap, |k| {
            let mut g = graph.clone();
            zero_smallest(&mut g, units.clone(), k);
            error.of(&g)
        })?);
        caps.push(cap);
        sizes.push(n);
    }
    let total: usize = sizes
        .iter()
        .map(|&n| (target * n as f64).floor() as usize)
        .sum();
    let counts = allocate(&curves, &caps, total);
    // A share a little above `count / n` so that `floor(share * n)` gives the count back.
    Ok(counts
        .iter()
        .zip(&sizes)
        .map(|(&c, &n)| {
            if n == 0 {
                0.0
            } else {
                (c as f64 + 0.5) / n as f64
            }
        })
        .collect())
}

/// Which weights of the pruned layers are zero.
pub struct Mask(Vec<Vec<bool>>);

impl Mask {
    /// The zeros of `layers`' filters now.
    pub fn of(graph: &Graph, layers: &[usize]) -> Mask {
        Mask(
            layers
                .iter()
                .map(|&l| {
                    filter_of(&graph.nodes[l].op)
                        .map_or(Vec::new(), |w| w.iter().map(|&x| x == 0.0).collect())
                })
                .collect(),
        )
    }

    /// Sets the weights that were zero back to zero.
    pub fn restore(&self, graph: &mut Graph, layers: &[usize]) {
        for (&l, zero) in layers.iter().zip(&self.0) {
            if let Some(w) = filter_of_mut(&mut graph.nodes[l].op) {
                for (x, &z) in w.iter_mut().zip(zero) {
                    if z {
                        *x = 0.0;
                    }
                }
            }
        }
    }
}

/// The length of the filter's last axis (a weighted operator's).
fn row_len(op: &Op) -> usize {
    match op {
        Op::Conv2d { filter, .. }
        | Op::DepthwiseConv2d { filter, .. }
        | Op::FullyConnected { filter, .. } => filter.shape.last().copied().unwrap_or(1),
        _ => 1,
    }
}

/// One weighted layer's int8 weights: how many, how many zero.
#[derive(Clone, Debug, Serialize)]
pub struct LayerDensity {
    pub node: String,
    pub op: &'static str,
    pub weights: usize,
    pub zeros: usize,
    pub pruned: bool,
}

/// The int8 weights' zeros per weighted layer of `decided`; `pruned` marks the layers in `layers`.
pub fn densities(decided: &Decided, layers: &[usize]) -> Vec<LayerDensity> {
    decided
        .graph
        .nodes
        .iter()
        .zip(&decided.weights)
        .enumerate()
        .filter_map(|(i, (n, w))| {
            let (q, _) = w.as_ref()?;
            Some(LayerDensity {
                node: n.name.clone(),
                op: n.op.name(),
                weights: q.len(),
                zeros: q.iter().filter(|&&x| x == 0).count(),
                pruned: layers.contains(&i),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(target: f64, schedule: Schedule) -> Sparsity {
        Sparsity {
            target,
            scope: Scope::Layer,
            schedule,
            all_layers: false,
            skip: Vec::new(),
            block: 1,
        }
    }

    #[test]
    fn the_polynomial_schedule_rises_cubically_to_the_target_and_stays() {
        let s = settings(0.8, Schedule::Polynomial);
        let total = 300;
        assert_eq!(s.ramp_steps(total), 200);
        // After step 99 (half the ramp): 0.8 * (1 - 0.5^3) = 0.7.
        assert!((s.at_step(99, total) - 0.7).abs() < 1e-12);
        assert!((s.at_step(199, total) - 0.8).abs() < 1e-12);
        assert!((s.at_step(299, total) - 0.8).abs() < 1e-12);
        let mut last = 0.0;
        for step in 0..total {
            let now = s.at_step(step, total);
            assert!(now >= last && now <= 0.8);
            last = now;
        }
        assert_eq!(settings(0.8, Schedule::Constant).at_step(0, total), 0.8);
        // One step: the target at once.
        assert!((s.at_step(0, 1) - 0.8).abs() < 1e-12);
    }

    fn graph_of(filters: &[Vec<f32>]) -> Graph {
        use crate::ir::{Node, Param};
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, filters[0].len()]);
        g.inputs.push(x);
        for (i, f) in filters.iter().enumerate() {
            g.add_value(format!("y{i}"), vec![1, 1]);
            g.nodes.push(Node {
                name: format!("fc{i}"),
                source_op: "Gemm".into(),
                op: Op::FullyConnected {
                    filter: Param::new(vec![1, f.len()], f.clone()),
                    bias: Param::new(vec![1], vec![0.0]),
                    clamp: crate::ir::Clamp::NONE,
                },
                inputs: vec![i],
                output: i + 1,
            });
        }
        g
    }

    fn filter(g: &Graph, i: usize) -> &[f32] {
        filter_of(&g.nodes[i].op).unwrap()
    }

    #[test]
    fn each_layer_loses_exactly_its_smallest_weights() {
        let mut g = graph_of(&[vec![0.5, -0.1, 0.3, -0.7, 0.2], vec![9.0, -8.0, 7.0, 0.01]]);
        prune(&mut g, &[0, 1], 0.5, Scope::Layer, 1);
        // floor(2.5) = 2 and 2 of each.
        assert_eq!(filter(&g, 0), &[0.5, 0.0, 0.3, -0.7, 0.0]);
        assert_eq!(filter(&g, 1), &[9.0, -8.0, 0.0, 0.0]);
    }

    #[test]
    fn a_global_threshold_prunes_where_the_weights_are_smallest() {
        let mut g = graph_of(&[vec![0.5, -0.1, 0.3, -0.7, 0.2], vec![9.0, -8.0, 7.0, 0.01]]);
        prune(&mut g, &[0, 1], 0.5, Scope::Global, 1);
        // floor(4.5) = 4: 0.01, -0.1, 0.2, 0.3.
        assert_eq!(filter(&g, 0), &[0.5, 0.0, 0.0, -0.7, 0.0]);
        assert_eq!(filter(&g, 1), &[9.0, -8.0, 7.0, 0.0]);
    }

    #[test]
    fn blocks_along_the_input_channels_are_pruned_whole() {
        // Rows of 6 weights: blocks [0..4) and [4..6) in each row.
        let mut g = graph_of(&[vec![
            1.0, 1.0, 1.0, 1.0, 0.9, 0.9, //
            0.1, 2.0, 0.1, 0.1, 0.2, 0.3,
        ]]);
        if let Op::FullyConnected { filter, .. } = &mut g.nodes[0].op {
            filter.shape = vec![2, 6];
        }
        // Mean squares: 1.0, 0.81, 1.005, 0.065: two of four blocks go.
        prune(&mut g, &[0], 0.5, Scope::Layer, 4);
        assert_eq!(
            filter(&g, 0),
            &[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.1, 2.0, 0.1, 0.1, 0.0, 0.0]
        );
        prune(&mut g, &[0], 0.75, Scope::Layer, 4);
        assert_eq!(
            filter(&g, 0),
            &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 2.0, 0.1, 0.1, 0.0, 0.0]
        );
    }

    #[test]
    fn zeros_stay_pruned_as_the_sparsity_rises() {
        let mut g = graph_of(&[vec![0.4, 0.0, -0.2, 0.9, 0.1, -0.6]]);
        prune(&mut g, &[0], 1.0 / 3.0, Scope::Layer, 1);
        assert_eq!(filter(&g, 0), &[0.4, 0.0, -0.2, 0.9, 0.0, -0.6]);
        prune(&mut g, &[0], 0.5, Scope::Layer, 1);
        assert_eq!(filter(&g, 0), &[0.4, 0.0, 0.0, 0.9, 0.0, -0.6]);
    }

    #[test]
    fn a_step_that_moves_pruned_weights_is_undone() {
        let mut g = graph_of(&[vec![0.5, 0.0, -0.375, 1.0, 0.0, -0.75]]);
        let mask = Mask::of(&g, &[0]);
        if let Some(w) = filter_of_mut(&mut g.nodes[0].op) {
            w.iter_mut().for_each(|x| *x += 0.25);
        }
        mask.restore(&mut g, &[0]);
        prune(&mut g, &[0], 1.0 / 3.0, Scope::Layer, 1);
        // -0.125 is smaller than the moved zeros (0.25), but they are zero again first.
        assert_eq!(filter(&g, 0), &[0.75, 0.0, -0.125, 1.25, 0.0, -0.5]);
    }

    #[test]
    fn first_last_and_depthwise_layers_stay_dense_unless_asked() {
        let g = graph_of(&[vec![1.0; 4], vec![1.0; 4], vec![1.0; 4], vec![1.0; 4]]);
        let mut s = settings(0.5, Schedule::Polynomial);
        assert_eq!(s.layers(&g).unwrap(), vec![1, 2]);
        s.skip = vec!["fc2".into()];
        assert_eq!(s.layers(&g).unwrap(), vec![1]);
        s.all_layers = true;
        assert_eq!(s.layers(&g).unwrap(), vec![0, 1, 3]);
        s.skip = vec!["fc9".into()];
        let e = s.layers(&g).unwrap_err().to_string();
        assert!(e.contains("no node `fc9`"), "{e}");
        let two = graph_of(&[vec![1.0; 4], vec![1.0; 4]]);
        let e = settings(0.5, Schedule::Polynomial)
            .layers(&two)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no layer to prune"), "{e}");
        let e = settings(1.0, Schedule::Polynomial)
            .layers(&g)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in [0, 1)"), "{e}");
    }
}
