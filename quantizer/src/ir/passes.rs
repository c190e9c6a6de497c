//! Graph simplifications run after import: each returns how many nodes it changed.
//!
//! After [`optimize`], every node maps to one runtime operator (Identity is gone, BatchNorm is folded
//! into its Conv/FullyConnected, constant subgraphs are values, activations are fused where the runtime
//! fuses them).

// Passes index nodes while rewriting the graph, so they loop over indices.
#![allow(clippy::needless_range_loop)]

use anyhow::Result;

use super::float_exec::{self, View};
use super::{Clamp, Graph, Op, Param, UnaryFn, ValueId, Window2d};

/// What [`optimize`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub identities_dropped: usize,
    pub constants_folded: usize,
    pub batchnorms_folded: usize,
    pub affines_folded: usize,
    pub activations_fused: usize,
    pub pads_folded: usize,
    pub reshapes_merged: usize,
    pub swishes_joined: usize,
    pub gelu_nodes_removed: usize,
}

/// All passes in order, then pruning of dead nodes and a consistency check.
pub fn optimize(g: &mut Graph) -> Result<Stats> {
    optimize_keeping(g, &|_| false)
}

/// [`optimize`], but functions written as several operators are not joined where an intermediate
/// value is one of those `keep` names (a Q/DQ model's quantized tensor, whose rounding the joined
/// table would skip).
pub fn optimize_keeping(g: &mut Graph, keep: &dyn Fn(&str) -> bool) -> Result<Stats> {
    let mut s = Stats {
        identities_dropped: drop_identity(g),
        constants_folded: fold_constants(g)?,
        swishes_joined: join_swish(g, keep),
        gelu_nodes_removed: join_gelu(g, keep),
        ..Stats::default()
    };
    s.batchnorms_folded = fold_batchnorm(g);
    s.affines_folded = fold_affine_constants(g);
    // What could not fold into a producer becomes a 1x1 depthwise convolution, into which the affine
    // constants after it fold in turn.
    let batchnorms = batchnorm_to_depthwise(g);
    s.batchnorms_folded += batchnorms;
    if batchnorms + affine_to_depthwise(g) > 0 {
        s.affines_folded += fold_affine_constants(g);
        view_as_nhwc(g);
    }
    s.activations_fused = fuse_activations(g);
    s.pads_folded = fold_pad_into_conv(g);
    s.reshapes_merged = merge_reshapes(g);
    g.prune();
    g.check()?;
    Ok(s)
}

/// Makes every reader of `from` (nodes and graph outputs) read `to` instead.
fn replace_uses(g: &mut Graph, from: ValueId, to: ValueId) {
    for n in &mut g.nodes {
        for v in &mut n.inputs {
            if *v == from {
                *v = to;
            }
        }
    }
    for o in &mut g.outputs {
        if *o == from {
            *o = to;
        }
    }
}

fn remove_nodes(g: &mut Graph, remove: &[bool]) {
    let mut it = remove.iter();
    g.nodes.retain(|_| !*it.next().unwrap());
}

/// The node producing `v` if `v` is read by exactly one node and is not a graph output (so the producer
/// may be rewritten to compute the reader's result instead).
/// Nodes marked in `removed` are ignored.
fn sole_producer(g: &Graph, v: ValueId, removed: &[bool]) -> Option<usize> {
    if g.outputs.contains(&v) || g.inputs.contains(&v) {
        return None;
    }
    let live = |&(i, _): &(usize, &super::Node)| !removed[i];
    let readers = g
        .nodes
        .iter()
        .enumerate()
        .filter(live)
        .filter(|(_, n)| n.inputs.contains(&v))
        .count();
    if readers != 1 {
        return None;
    }
    g.nodes
        .iter()
        .enumerate()
        .filter(live)
        .find(|(_, n)| n.output == v)
        .map(|(i, _)| i)
}

/// Removes Identity nodes (ONNX Identity and inference Dropout), rewiring their readers.
pub fn drop_identity(g: &mut Graph) -> usize {
    let mut remove = vec![false; g.nodes.len()];
    for i in 0..g.nodes.len() {
        if matches!(g.nodes[i].op, Op::Identity) {
            let (from, to) = (g.nodes[i].output, g.nodes[i].inputs[0]);
            if g.outputs.contains(&from) {
                if g.inputs.contains(&to) || g.outputs.contains(&to) {
                    // An input passed straight through, or one value given twice: keep a node to
                    // compute the output.
                    continue;
                }
                // The output keeps its name and the source's view of it (a signal `[n, c, l]`
                // relabelled from an image `[n, c, 1, l]` is the same IR tensor in another layout).
                g.values[to].name = g.values[from].name.clone();
                g.values[to].source = g.values[from].source;
            }
            replace_uses(g, from, to);
            remove[i] = true;
        }
    }
    remove_nodes(g, &remove);
    remove.iter().filter(|&&r| r).count()
}

/// Evaluates nodes whose inputs are all constants and turns their outputs into constants.
pub fn fold_constants(g: &mut Graph) -> Result<usize> {
    let mut remove = vec![false; g.nodes.len()];
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        if n.inputs.is_empty() || !n.inputs.iter().all(|&v| g.is_const(v)) {
            continue;
        }
        let views: Vec<View<'_>> = n
            .inputs
            .iter()
            .map(|&v| View {
                shape: &g.values[v].shape,
                data: g.values[v].data.as_deref().unwrap(),
            })
            .collect();
        let out = float_exec::eval(&n.op, &views)?;
        let o = n.output;
        g.values[o].shape = out.shape;
        g.values[o].data = Some(out.data);
        remove[i] = true;
    }
    remove_nodes(g, &remove);
    Ok(remove.iter().filter(|&&r| r).count())
}

/// Scales output channel `c` of a Conv/Depthwise/FullyConnected filter by `scale[c]`.
pub(crate) fn scale_filter(op: &mut Op, scale: &[f32]) {
    match op {
        Op::Conv2d { filter, .. } | Op::FullyConnected { filter, .. } => {
            let per = filter.data.len() / scale.len();
            for (row, &s) in filter.data.chunks_mut(per).zip(scale) {
                row.iter_mut().for_each(|w| *w *= s);
            }
        }
        Op::DepthwiseConv2d { filter, .. } => {
            for tap in filter.data.chunks_mut(scale.len()) {
                tap.iter_mut().zip(scale).for_each(|(w, &s)| *w *= s);
            }
        }
        _ => unreachable!("scale_filter on {}", op.name()),
    }
}

/// `bias = bias * scale + shift` per channel (`scale` may be empty for 1).
pub(crate) fn affine_bias(op: &mut Op, scale: &[f32], shift: &[f32]) {
    if let Op::Conv2d { bias, .. }
    | Op::DepthwiseConv2d { bias, .. }
    | Op::FullyConnected { bias, .. } = op
    {
        for (c, b) in bias.data.iter_mut().enumerate() {
            *b = *b * scale.get(c).copied().unwrap_or(1.0) + shift.get(c).copied().unwrap_or(0.0);
        }
    }
}

fn is_linear(op: &Op) -> bool {
    matches!(op, Op::Conv2d { clamp, .. } | Op::DepthwiseConv2d { clamp, .. } | Op::FullyConnected { clamp, .. } if clamp.is_none())
}

/// Scales a Normalize's gamma and beta by `scale[c]` and adds `shift[c]` to beta (an empty slice: 1
/// or 0); false for any other operator.
fn normalize_affine(op: &mut Op, scale: &[f32], shift: &[f32]) -> bool {
    let Op::Normalize {
        gamma, beta, clamp, ..
    } = op
    else {
        return false;
    };
    if !clamp.is_none() {
        return false;
    }
    for (c, (g, b)) in gamma.data.iter_mut().zip(&mut beta.data).enumerate() {
        let k = scale.get(c).copied().unwrap_or(1.0);
        *g *= k;
        *b = *b * k + shift.get(c).copied().unwrap_or(0.0);
    }
    true
}

/// Folds BatchNorm into the Conv, DepthwiseConv, FullyConnected or Normalize that produces its
/// input (when nothing else reads that output): `w' = w * scale[c]`, `b' = b * scale[c] + shift[c]`
/// (Normalize: its gamma and beta).
pub fn fold_batchnorm(g: &mut Graph) -> usize {
    let mut remove = vec![false; g.nodes.len()];
    for i in 0..g.nodes.len() {
        let Op::BatchNorm { scale, shift } = &g.nodes[i].op else {
            continue;
        };
        let Some(p) = sole_producer(g, g.nodes[i].inputs[0], &remove) else {
            continue;
        };
        let (scale, shift) = (scale.data.clone(), shift.data.clone());
        if is_linear(&g.nodes[p].op) {
            scale_filter(&mut g.nodes[p].op, &scale);
            affine_bias(&mut g.nodes[p].op, &scale, &shift);
        } else if !normalize_affine(&mut g.nodes[p].op, &scale, &shift) {
            continue;
        }
        g.nodes[p].output = g.nodes[i].output;
        remove[i] = true;
    }
    remove_nodes(g, &remove);
    remove.iter().filter(|&&r| r).count()
}

/// A constant that broadcasts along the last axis only: its per-channel values (length `channels`).
fn per_channel(g: &Graph, v: ValueId, channels: usize) -> Option<Vec<f32>> {
    let val = &g.values[v];
    let data = val.data.as_ref()?;
    let (last, rest) = val.shape.split_last()?;
    if rest.iter().any(|&d| d != 1) {
        return None;
    }
    match *last {
        l if l == channels => Some(data.clone()),
        1 => Some(vec![data[0]; channels]),
        _ => None,
    }
}

/// An `Add` or `Mul` of an activation `x` and a constant `c`.
struct Affine {
    is_add: bool,
    clamp: Clamp,
    x: ValueId,
    c: ValueId,
}

fn affine_constant(g: &Graph, node: usize) -> Option<Affine> {
    let n = &g.nodes[node];
    let (is_add, clamp) = match n.op {
        Op::Add { clamp } => (true, clamp),
        Op::Mul { clamp } => (false, clamp),
        _ => return None,
    };
    let (x, c) = match (g.is_const(n.inputs[0]), g.is_const(n.inputs[1])) {
        (false, true) => (n.inputs[0], n.inputs[1]),
        (true, false) => (n.inputs[1], n.inputs[0]),
        _ => return None,
    };
    Some(Affine {
        is_add,
        clamp,
        x,
        c,
    })
}

/// Folds `Add(x, const)` and `Mul(x, const)` with per-channel constants into the preceding Conv,
/// DepthwiseConv or FullyConnected (MatMul + Add becomes one FullyConnected with bias), or without a
/// clamp into the gamma and beta of a preceding Normalize.
pub fn fold_affine_constants(g: &mut Graph) -> usize {
    let mut remove = vec![false; g.nodes.len()];
    for i in 0..g.nodes.len() {
        let Some(Affine {
            is_add,
            clamp,
            x,
            c,
        }) = affine_constant(g, i)
        else {
            continue;
        };
        let n = &g.nodes[i];
        // The constant must not change the output's shape.
        if g.values[n.output].shape != g.values[x].shape {
            continue;
        }
        let Some(mut p) = sole_producer(g, x, &remove) else {
            continue;
        };
        // A Normalize seen through a reshape that keeps the channels (PyTorch's GroupNorm with
        // a group per channel: its Reshape back to NCHW before the Mul and Add).
        let mut through = None;
        if let Op::Reshape { .. } = g.nodes[p].op {
            let r = g.nodes[p].inputs[0];
            let keeps = g.values[r].shape.last() == g.values[x].shape.last();
            if let Some(q) = sole_producer(g, r, &remove).filter(|_| keeps) {
                if matches!(g.nodes[q].op, Op::Normalize { .. }) {
                    (through, p) = (Some(p), q);
                }
            }
        }
        let normalize = matches!(g.nodes[p].op, Op::Normalize { clamp, .. } if clamp.is_none());
        if !(is_linear(&g.nodes[p].op) || normalize && clamp.is_none()) {
            continue;
        }
        let channels = *g.values[x].shape.last().unwrap();
        let Some(k) = per_channel(g, c, channels) else {
            continue;
        };
        let out = g.nodes[i].output;
        let op = &mut g.nodes[p].op;
        if normalize {
            let (scale, shift) = if is_add {
                (&[][..], &k[..])
            } else {
                (&k[..], &[][..])
            };
            normalize_affine(op, scale, shift);
            g.nodes[through.unwrap_or(p)].output = out;
            remove[i] = true;
            continue;
        }
        if is_add {
            affine_bias(op, &[], &k);
        } else {
            scale_filter(op, &k);
            affine_bias(op, &k, &[]);
        }
        *op.clamp_mut().unwrap() = clamp;
        g.nodes[p].output = out;
        remove[i] = true;
    }
    remove_nodes(g, &remove);
    remove.iter().filter(|&&r| r).count()
}

/// `x * factors[c] + terms[c]` per channel, then `clamp`: a 1x1 depthwise convolution.
fn channel_affine(factors: Vec<f32>, terms: Vec<f32>, clamp: Clamp) -> Op {
    let channels = factors.len();
    Op::DepthwiseConv2d {
        window: Window2d {
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
        },
        depth_multiplier: 1,
        filter: Param::new(vec![1, 1, 1, channels], factors),
        bias: Param::new(vec![channels], terms),
        clamp,
    }
}

/// A BatchNorm that no producer absorbed (after a Concat, an Add or an activation: pre-activation
/// networks) becomes a 1x1 depthwise convolution of its scale and shift.
pub fn batchnorm_to_depthwise(g: &mut Graph) -> usize {
    let mut rewritten = 0;
    for i in 0..g.nodes.len() {
        let rank = g.values[g.nodes[i].inputs[0]].shape.len();
        let node = &mut g.nodes[i];
        let Op::BatchNorm { scale, shift } = &node.op else {
            continue;
        };
        if !(2..=4).contains(&rank) {
            continue;
        }
        node.op = channel_affine(scale.data.clone(), shift.data.clone(), Clamp::NONE);
        rewritten += 1;
    }
    rewritten
}

/// Rewrites `Add(x, const)` and `Mul(x, const)` with a per-channel or scalar constant as a 1x1
/// depthwise convolution (weights: the factors, bias: the terms), which the runtime runs in int8;
/// returns how many were rewritten. On a rank-2 or rank-3 `x` the convolution is left reading it
/// until [`view_as_nhwc`] wraps it (after the constants behind it have folded into it).
pub fn affine_to_depthwise(g: &mut Graph) -> usize {
    let mut rewritten = 0;
    for i in 0..g.nodes.len() {
        let Some(Affine {
            is_add,
            clamp,
            x,
            c,
        }) = affine_constant(g, i)
        else {
            continue;
        };
        let n = &g.nodes[i];
        let shape = &g.values[x].shape;
        if !(2..=4).contains(&shape.len()) || g.values[n.output].shape != *shape {
            continue;
        }
        // One that a producer (perhaps rewritten just before) can absorb is left to
        // `fold_affine_constants`.
        let keep = vec![false; g.nodes.len()];
        if sole_producer(g, x, &keep).is_some_and(|p| is_linear(&g.nodes[p].op)) {
            continue;
        }
        let channels = *shape.last().unwrap();
        let Some(k) = per_channel(g, c, channels) else {
            continue;
        };
        let (factors, terms) = if is_add {
            (vec![1.0; channels], k)
        } else {
            (k, vec![0.0; channels])
        };
        let node = &mut g.nodes[i];
        node.op = channel_affine(factors, terms, clamp);
        node.inputs = vec![x];
        rewritten += 1;
    }
    rewritten
}

/// Wraps each depthwise convolution on a rank-2 or rank-3 value (`[n, c]`, `[n, w, c]`, made by
/// [`affine_to_depthwise`]) in Reshapes to and from the NHWC view `[n, 1, w, c]` (in place at run
/// time); returns how many.
pub fn view_as_nhwc(g: &mut Graph) -> usize {
    let old = std::mem::take(&mut g.nodes);
    let mut wrapped = 0;
    for mut node in old {
        let rank = g.values[node.inputs[0]].shape.len();
        if !matches!(node.op, Op::DepthwiseConv2d { .. }) || rank >= 4 {
            g.nodes.push(node);
            continue;
        }
        wrapped += 1;
        let (x, out) = (node.inputs[0], node.output);
        let shape = g.values[x].shape.clone();
        let width = if shape.len() == 3 { shape[1] } else { 1 };
        let nhwc = vec![shape[0], 1, width, *shape.last().unwrap()];
        let x4 = g.add_value(format!("{}/nhwc", node.name), nhwc.clone());
        let out4 = g.add_value(format!("{}/nhwc_out", node.name), nhwc.clone());
        let reshape = |name: String, shape: Vec<usize>, input, output| crate::ir::Node {
            name,
            source_op: node.source_op.clone(),
            op: Op::Reshape { shape },
            inputs: vec![input],
            output,
        };
        let to = reshape(format!("{}/to_nhwc", node.name), nhwc, x, x4);
        let from = reshape(format!("{}/from_nhwc", node.name), shape, out4, out);
        node.inputs = vec![x4];
        node.output = out4;
        g.nodes.extend([to, node, from]);
    }
    wrapped
}

/// Joins `Mul(x, Sigmoid(x))` (SiLU, as ONNX exporters write it) into one element-wise function
/// of `x`, when the Sigmoid's output has no other reader: one int8 table, exact for each input
/// value, where the pair rounds the Sigmoid's output to int8 before multiplying.
pub fn join_swish(g: &mut Graph, keep: &dyn Fn(&str) -> bool) -> usize {
    let mut remove = vec![false; g.nodes.len()];
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        if !matches!(n.op, Op::Mul { clamp } if clamp.is_none()) || n.inputs.len() != 2 {
            continue;
        }
        let (a, b) = (n.inputs[0], n.inputs[1]);
        let gate = [(a, b), (b, a)].into_iter().find_map(|(x, s)| {
            let p = sole_producer(g, s, &remove)?;
            let q = &g.nodes[p];
            (matches!(q.op, Op::Logistic) && q.inputs == [x] && !keep(&g.values[s].name))
                .then_some((x, p))
        });
        let Some((x, p)) = gate else { continue };
        let n = &mut g.nodes[i];
        n.op = Op::Lookup { f: UnaryFn::Silu };
        n.inputs = vec![x];
        n.source_op = "Sigmoid*Mul".into();
        remove[p] = true;
    }
    remove_nodes(g, &remove);
    remove.iter().filter(|&&r| r).count()
}

/// Whether `v` is a constant whose every element is `want` (to 1e-6 relative).
fn constant_is(g: &Graph, v: ValueId, want: f32) -> bool {
    g.values[v]
        .data
        .as_ref()
        .is_some_and(|d| !d.is_empty() && d.iter().all(|&d| (d - want).abs() <= 1e-6 * want.abs()))
}

/// Of a two-input node reading `v`, the other input.
fn other_input(n: &super::Node, v: ValueId) -> Option<ValueId> {
    match n.inputs[..] {
        [a, b] if a == v => Some(b),
        [a, b] if b == v => Some(a),
        _ => None,
    }
}

/// Joins GELU written out in elementary operators into one element-wise function of `x`:
/// `Mul(Mul(x, gate), 0.5)`, or with the half taken of `x` first, operands in either order, every
/// intermediate read once. The gate is `Add(Erf(x / sqrt(2)), 1)` (PyTorch's exporter before opset
/// 20) or, for the tanh approximation, `Add(Tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)), 1)` (PyTorch
/// with `approximate="tanh"`, TensorFlow converters). Five operators (a table, three 1x1 depthwise
/// convolutions and a Mul, each rounding to int8), or seven with tanh, become one table. Returns
/// the nodes removed.
pub fn join_gelu(g: &mut Graph, keep: &dyn Fn(&str) -> bool) -> usize {
    let mut remove = vec![false; g.nodes.len()];
    for i in 0..g.nodes.len() {
        // The node `p` producing `v` alone, if it is an unclamped Mul or Add.
        let sole = |v: ValueId, remove: &[bool], add: bool| {
            let p = sole_producer(g, v, remove)?;
            let ok = match g.nodes[p].op {
                Op::Mul { clamp } => !add && clamp.is_none(),
                Op::Add { clamp } => add && clamp.is_none(),
                _ => false,
            };
            (ok && g.nodes[p].inputs.len() == 2).then_some(p)
        };
        // Of a Mul of a value by the constant `k`, the value.
        let times = |mul: usize, k: f32| -> Option<ValueId> {
            let [p, q] = g.nodes[mul].inputs[..] else {
                return None;
            };
            let x = if g.is_const(q) { p } else { q };
            let c = other_input(&g.nodes[mul], x)?;
            constant_is(g, c, k).then_some(x)
        };
        // `gate` = Add(f(u), 1) with `f` an Erf table or a Tanh: the node of `f` and the Add.
        let plus_one = |v: ValueId, remove: &[bool]| -> Option<(usize, usize)> {
            let add = sole(v, remove, true)?;
            let [a, b] = g.nodes[add].inputs[..] else {
                return None;
            };
            let e = if constant_is(g, b, 1.0) { a } else { b };
            let one = other_input(&g.nodes[add], e)?;
            constant_is(g, one, 1.0).then_some(())?;
            Some((sole_producer(g, e, remove)?, add))
        };
        // The gate's x, its nodes, and whether it is the tanh approximation.
        let gate = |v: ValueId, remove: &[bool]| -> Option<(ValueId, Vec<usize>, bool)> {
            let (f, add) = plus_one(v, remove)?;
            let scale = sole(g.nodes[f].inputs[0], remove, false)?;
            if g.nodes[f].op == (Op::Lookup { f: UnaryFn::Erf }) {
                let x = times(scale, std::f32::consts::FRAC_1_SQRT_2)?;
                return Some((x, vec![add, f, scale], false));
            }
            if g.nodes[f].op != Op::Tanh {
                return None;
            }
            // sqrt(2 / pi) * (x + 0.044715 * x^3).
            let sum = sole(times(scale, 0.797_884_6)?, remove, true)?;
            let [a, b] = g.nodes[sum].inputs[..] else {
                return None;
            };
            [(a, b), (b, a)].into_iter().find_map(|(x, c)| {
                let cubic = sole(c, remove, false)?;
                let cubed = times(cubic, 0.044_715)?;
                let p = sole_producer(g, cubed, remove)?;
                let mut nodes = vec![add, f, scale, sum, cubic, p];
                // x^3 as Pow(x, 3), or as Mul(x, Mul(x, x)) in either order.
                let pow3 = Op::Lookup {
                    f: UnaryFn::Pow { exponent: 3 },
                };
                let cube = if g.nodes[p].op == pow3 {
                    g.nodes[p].inputs == [x]
                } else {
                    let m = sole(cubed, remove, false)?;
                    let sq = other_input(&g.nodes[m], x)?;
                    let s = sole(sq, remove, false)?;
                    nodes.push(s);
                    g.nodes[s].inputs == [x, x]
                };
                cube.then_some((x, nodes, true))
            })
        };
        let n = &g.nodes[i];
        if remove[i] || !matches!(n.op, Op::Mul { clamp } if clamp.is_none()) || n.inputs.len() != 2
        {
            continue;
        }
        let (a, b) = (n.inputs[0], n.inputs[1]);
        let mut found = None;
        // x * gate, then * 0.5.
        for (m, half) in [(a, b), (b, a)] {
            if found.is_some() || !constant_is(g, half, 0.5) {
                continue;
            }
            let Some(pm) = sole(m, &remove, false) else {
                continue;
            };
            let [p, q] = g.nodes[pm].inputs[..] else {
                continue;
            };
            for (x, gv) in [(p, q), (q, p)] {
                if let Some((gx, nodes, tanh)) = gate(gv, &remove) {
                    if gx == x && found.is_none() {
                        found = Some((x, pm, nodes, tanh));
                    }
                }
            }
        }
        // x * 0.5, then * gate.
        for (h, gv) in [(a, b), (b, a)] {
            if found.is_some() {
                break;
            }
            let Some(ph) = sole(h, &remove, false) else {
                continue;
            };
            let Some(x) = times(ph, 0.5) else {
                continue;
            };
            if let Some((gx, nodes, tanh)) = gate(gv, &remove) {
                if gx == x {
                    found = Some((x, ph, nodes, tanh));
                }
            }
        }
        // x * (gate * 0.5).
        for (x, h) in [(a, b), (b, a)] {
            if found.is_some() {
                break;
            }
            let Some(ph) = sole(h, &remove, false) else {
                continue;
            };
            let Some(gv) = times(ph, 0.5) else {
                continue;
            };
            if let Some((gx, nodes, tanh)) = gate(gv, &remove) {
                if gx == x {
                    found = Some((x, ph, nodes, tanh));
                }
            }
        }
        let Some((x, first, mut nodes, tanh)) = found else {
            continue;
        };
        nodes.push(first);
        if nodes
            .iter()
            .any(|&k| keep(&g.values[g.nodes[k].output].name))
        {
            continue;
        }
        for k in nodes {
            remove[k] = true;
        }
        let n = &mut g.nodes[i];
        n.op = Op::Lookup {
            f: UnaryFn::Gelu { tanh },
        };
        n.inputs = vec![x];
        n.source_op = if tanh { "Tanh GELU" } else { "Erf GELU" }.into();
    }
    remove_nodes(g, &remove);
    remove.iter().filter(|&&r| r).count()
}

/// Fuses standalone ReLU/ReLU6/Clip nodes into the operator producing their input (Conv, Depthwise,
/// FullyConnected, Add, Mul, pooling, or another clamp), composing clamps.
pub fn fuse_activations(g: &mut Graph) -> usize {
    let mut remove = vec![false; g.nodes.len()];
    for i in 0..g.nodes.len() {
        let Op::Relu { clamp } = g.nodes[i].op else {
            continue;
        };
        let Some(p) = sole_producer(g, g.nodes[i].inputs[0], &remove) else {
            continue;
        };
        if remove[p] {
            continue;
        }
        let Some(c) = g.nodes[p].op.clamp_mut() else {
            continue;
        };
        *c = c.then(clamp);
        g.nodes[p].output = g.nodes[i].output;
        remove[i] = true;
    }
    remove_nodes(g, &remove);
    remove.iter().filter(|&&r| r).count()
}

/// Folds a zero Pad over H and W into the Conv or DepthwiseConv that reads it.
pub fn fold_pad_into_conv(g: &mut Graph) -> usize {
    let mut remove = vec![false; g.nodes.len()];
    for i in 0..g.nodes.len() {
        if !matches!(
            g.nodes[i].op,
            Op::Conv2d { .. } | Op::DepthwiseConv2d { .. }
        ) {
            continue;
        }
        let Some(p) = sole_producer(g, g.nodes[i].inputs[0], &remove) else {
            continue;
        };
        let Op::Pad { before, after } = &g.nodes[p].op else {
            continue;
        };
        if before.len() != 4 || before[3] != 0 || after[3] != 0 {
            continue;
        }
        let (b, a) = ([before[1], before[2]], [after[1], after[2]]);
        let src = g.nodes[p].inputs[0];
        let (Op::Conv2d { window, .. } | Op::DepthwiseConv2d { window, .. }) = &mut g.nodes[i].op
        else {
            unreachable!()
        };
        window.pads[0] += b[0];
        window.pads[1] += b[1];
        window.pads[2] += a[0];
        window.pads[3] += a[1];
        g.nodes[i].inputs[0] = src;
        remove[p] = true;
    }
    remove_nodes(g, &remove);
    remove.iter().filter(|&&r| r).count()
}

/// Collapses chains of Reshapes into one and removes Reshapes that keep the shape.
pub fn merge_reshapes(g: &mut Graph) -> usize {
    let mut remove = vec![false; g.nodes.len()];
    for i in 0..g.nodes.len() {
        let Op::Reshape { shape } = &g.nodes[i].op else {
            continue;
        };
        let shape = shape.clone();
        if let Some(p) = sole_producer(g, g.nodes[i].inputs[0], &remove) {
            if matches!(g.nodes[p].op, Op::Reshape { .. }) {
                // The earlier reshape now produces this one's result directly.
                g.nodes[p].op = Op::Reshape { shape };
                g.nodes[p].output = g.nodes[i].output;
                remove[i] = true;
                continue;
            }
        }
        let (x, out) = (g.nodes[i].inputs[0], g.nodes[i].output);
        if g.values[x].shape == g.values[out].shape
            && !g.inputs.contains(&x)
            && !g.outputs.contains(&out)
        {
            replace_uses(g, out, x);
            remove[i] = true;
        }
    }
    remove_nodes(g, &remove);
    remove.iter().filter(|&&r| r).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::float_exec::{run, Tensor};
    use crate::ir::{Clamp, Param, Window2d};

    /// Deterministic pseudo-random values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn conv(in_c: usize, out_c: usize, seed: u64) -> Op {
        Op::Conv2d {
            window: Window2d {
                kernel: [3, 3],
                stride: [1, 1],
                dilation: [1, 1],
                pads: [1, 1, 1, 1],
            },
            filter: Param::new(vec![out_c, 3, 3, in_c], values(out_c * 9 * in_c, seed)),
            bias: Param::new(vec![out_c], values(out_c, seed + 1)),
            clamp: Clamp::NONE,
        }
    }

    /// Runs `g` before and after `pass` on the same random batch; outputs must agree.
    fn check_pass(
        mut g: Graph,
        pass: impl Fn(&mut Graph) -> usize,
        expect_changed: usize,
    ) -> Graph {
        g.check().unwrap();
        let shape = g.values[g.inputs[0]].shape.clone();
        let mut batch_shape = shape.clone();
        batch_shape[0] = 3;
        let x = Tensor::new(
            batch_shape.clone(),
            values(batch_shape.iter().product(), 42),
        );
        let before = run(&g, std::slice::from_ref(&x), 1).unwrap();
        let n_before = g.nodes.len();
        assert_eq!(pass(&mut g), expect_changed);
        g.prune();
        g.check().unwrap();
        assert_eq!(g.nodes.len(), n_before - expect_changed);
        let after = run(&g, &[x], 1).unwrap();
        for (a, b) in before.iter().zip(&after) {
            assert_eq!(a.shape, b.shape);
            for (x, y) in a.data.iter().zip(&b.data) {
                assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{x} vs {y}");
            }
        }
        g
    }

    #[test]
    fn batchnorm_folds_into_conv_depthwise_and_fc() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 5, 5, 3]);
        g.inputs = vec![x];
        let c = g
            .add_node("conv", "Conv", conv(3, 4, 1), vec![x], "c")
            .unwrap();
        let bn = |seed| Op::BatchNorm {
            scale: Param::new(vec![4], values(4, seed)),
            shift: Param::new(vec![4], values(4, seed + 7)),
        };
        let b = g
            .add_node("bn", "BatchNormalization", bn(3), vec![c], "b")
            .unwrap();
        let dw = Op::DepthwiseConv2d {
            window: Window2d {
                kernel: [3, 3],
                stride: [2, 2],
                dilation: [1, 1],
                pads: [1, 1, 1, 1],
            },
            depth_multiplier: 1,
            filter: Param::new(vec![1, 3, 3, 4], values(36, 5)),
            bias: Param::new(vec![4], values(4, 6)),
            clamp: Clamp::NONE,
        };
        let d = g.add_node("dw", "Conv", dw, vec![b], "d").unwrap();
        let b2 = g
            .add_node("bn2", "BatchNormalization", bn(9), vec![d], "b2")
            .unwrap();
        let f = g
            .add_node(
                "flat",
                "Flatten",
                Op::Reshape { shape: vec![1, 36] },
                vec![b2],
                "f",
            )
            .unwrap();
        let fc = Op::FullyConnected {
            filter: Param::new(vec![4, 36], values(144, 11)),
            bias: Param::new(vec![4], values(4, 12)),
            clamp: Clamp::NONE,
        };
        let y = g.add_node("fc", "Gemm", fc, vec![f], "y").unwrap();
        let z = g
            .add_node("bn3", "BatchNormalization", bn(13), vec![y], "z")
            .unwrap();
        g.outputs = vec![z];
        let g = check_pass(g, fold_batchnorm, 3);
        assert!(g
            .nodes
            .iter()
            .all(|n| !matches!(n.op, Op::BatchNorm { .. })));
    }

    /// A BatchNorm after an activation (a pre-activation network's) becomes a 1x1 depthwise
    /// convolution of the same function, for rank-4 and rank-2 inputs alike.
    #[test]
    fn batchnorm_without_a_linear_producer_becomes_a_depthwise_convolution() {
        for shape in [vec![1, 3, 4, 5], vec![1, 5]] {
            let mut g = Graph::default();
            let x = g.add_value("x", shape.clone());
            g.inputs = vec![x];
            let r = g
                .add_node(
                    "relu",
                    "Relu",
                    Op::Relu { clamp: Clamp::RELU },
                    vec![x],
                    "r",
                )
                .unwrap();
            let bn = Op::BatchNorm {
                scale: Param::new(vec![5], values(5, 3)),
                shift: Param::new(vec![5], values(5, 4)),
            };
            let b = g
                .add_node("bn", "BatchNormalization", bn, vec![r], "b")
                .unwrap();
            g.outputs = vec![b];
            let mut batch = shape.clone();
            batch[0] = 3;
            let input = Tensor::new(batch.clone(), values(batch.iter().product(), 42));
            let before = run(&g, std::slice::from_ref(&input), 1).unwrap();
            let stats = optimize(&mut g).unwrap();
            assert_eq!(stats.batchnorms_folded, 1, "{shape:?}");
            assert!(g
                .nodes
                .iter()
                .all(|n| !matches!(n.op, Op::BatchNorm { .. })));
            assert!(g
                .nodes
                .iter()
                .any(|n| matches!(n.op, Op::DepthwiseConv2d { .. })));
            let after = run(&g, &[input], 1).unwrap();
            for (a, b) in before[0].data.iter().zip(&after[0].data) {
                assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn batchnorm_stays_when_the_conv_output_is_shared() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 4, 4, 2]);
        g.inputs = vec![x];
        let c = g
            .add_node("conv", "Conv", conv(2, 2, 1), vec![x], "c")
            .unwrap();
        let bn = Op::BatchNorm {
            scale: Param::new(vec![2], vec![2.0, 3.0]),
            shift: Param::new(vec![2], vec![0.5, 1.0]),
        };
        let b = g
            .add_node("bn", "BatchNormalization", bn, vec![c], "b")
            .unwrap();
        let s = g
            .add_node(
                "add",
                "Add",
                Op::Add { clamp: Clamp::NONE },
                vec![b, c],
                "s",
            )
            .unwrap();
        g.outputs = vec![s];
        check_pass(g, fold_batchnorm, 0);
    }

    #[test]
    fn activations_fuse_and_compose() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 4, 4, 2]);
        g.inputs = vec![x];
        let c = g
            .add_node("conv", "Conv", conv(2, 3, 1), vec![x], "c")
            .unwrap();
        let r = g
            .add_node(
                "relu",
                "Relu",
                Op::Relu { clamp: Clamp::RELU },
                vec![c],
                "r",
            )
            .unwrap();
        let r6 = g
            .add_node(
                "clip",
                "Clip",
                Op::Relu {
                    clamp: Clamp::RELU6,
                },
                vec![r],
                "r6",
            )
            .unwrap();
        let a = g
            .add_node(
                "add",
                "Add",
                Op::Add { clamp: Clamp::NONE },
                vec![r6, r6],
                "a",
            )
            .unwrap();
        let cl = g
            .add_node(
                "clamp",
                "Clip",
                Op::Relu {
                    clamp: Clamp::new(-1.0, 0.5),
                },
                vec![a],
                "cl",
            )
            .unwrap();
        // A Relu whose input is also a graph output cannot fuse.
        let o = g
            .add_node(
                "relu2",
                "Relu",
                Op::Relu { clamp: Clamp::RELU },
                vec![cl],
                "o",
            )
            .unwrap();
        g.outputs = vec![o, cl];
        let g = check_pass(g, fuse_activations, 3);
        let clamps: Vec<String> = g
            .nodes
            .iter()
            .map(|n| format!("{:?}", n.op.clamp()))
            .collect();
        assert_eq!(g.nodes.len(), 3, "{clamps:?}");
        assert!(matches!(g.nodes[0].op, Op::Conv2d { clamp, .. } if clamp == Clamp::RELU6));
        assert!(matches!(g.nodes[1].op, Op::Add { clamp, .. } if clamp == Clamp::new(-1.0, 0.5)));
    }

    /// `Mul(x, Sigmoid(x))` in either order becomes one SiLU; a Sigmoid read elsewhere, a Sigmoid
    /// of another value, a graph output and (`keep`) a Sigmoid whose own rounding must stay are
    /// left as they are.
    #[test]
    fn swish_joins_into_one_function() {
        for kept in [None, Some("s1")] {
            swish_joins(kept);
        }
    }

    fn swish_joins(kept: Option<&str>) {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 4, 4, 2]);
        g.inputs = vec![x];
        let mul = Op::Mul { clamp: Clamp::NONE };
        let add = |g: &mut Graph, name: &str, op: Op, inputs: Vec<ValueId>| {
            g.add_node(name, name, op, inputs, name).unwrap()
        };
        let c = add(&mut g, "c", conv(2, 2, 1), vec![x]);
        let s1 = add(&mut g, "s1", Op::Logistic, vec![c]);
        let m1 = add(&mut g, "m1", mul.clone(), vec![c, s1]);
        let s2 = add(&mut g, "s2", Op::Logistic, vec![m1]);
        let m2 = add(&mut g, "m2", mul.clone(), vec![s2, m1]);
        // Read twice: kept.
        let s3 = add(&mut g, "s3", Op::Logistic, vec![m2]);
        let m3 = add(&mut g, "m3", mul.clone(), vec![m2, s3]);
        let k = add(&mut g, "k", Op::Add { clamp: Clamp::NONE }, vec![m3, s3]);
        // The Sigmoid of another value: kept.
        let s4 = add(&mut g, "s4", Op::Logistic, vec![c]);
        let m4 = add(&mut g, "m4", mul.clone(), vec![k, s4]);
        // A Sigmoid that is a graph output: kept.
        let s5 = add(&mut g, "s5", Op::Logistic, vec![m4]);
        let m5 = add(&mut g, "m5", mul, vec![m4, s5]);
        g.outputs = vec![m5, s5];
        let joined = if kept.is_some() { 1 } else { 2 };
        let g = check_pass(g, |g| join_swish(g, &|v| Some(v) == kept), joined);
        let silu: Vec<&str> = g
            .nodes
            .iter()
            .filter(|n| n.op == Op::Lookup { f: UnaryFn::Silu })
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(silu, ["m1", "m2"][2 - joined..]);
        assert_eq!(
            g.nodes.iter().filter(|n| n.op == Op::Logistic).count(),
            5 - joined
        );
    }

    /// GELU written with Erf joins into one function with the half taken last or first; with
    /// another constant (2 instead of 1) nothing joins.
    #[test]
    fn erf_gelu_joins_into_one_function() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 4, 4, 2]);
        g.inputs = vec![x];
        let k = |g: &mut Graph, name: &str, v: f32| g.add_const(name, vec![1, 1, 1, 1], vec![v]);
        let (r2, one, two, half) = (
            k(&mut g, "r2", std::f32::consts::FRAC_1_SQRT_2),
            k(&mut g, "one", 1.0),
            k(&mut g, "two", 2.0),
            k(&mut g, "half", 0.5),
        );
        let mul = Op::Mul { clamp: Clamp::NONE };
        let plus = Op::Add { clamp: Clamp::NONE };
        let erf = Op::Lookup { f: UnaryFn::Erf };
        let add = |g: &mut Graph, name: &str, op: Op, inputs: Vec<ValueId>| {
            g.add_node(name, name, op, inputs, name).unwrap()
        };
        // PyTorch's order: Mul(Mul(x, Add(Erf(x * r2), 1)), 0.5).
        let c = add(&mut g, "c", conv(2, 2, 1), vec![x]);
        let a1 = add(&mut g, "a1", mul.clone(), vec![c, r2]);
        let e1 = add(&mut g, "e1", erf.clone(), vec![a1]);
        let g1 = add(&mut g, "g1", plus.clone(), vec![e1, one]);
        let m1 = add(&mut g, "m1", mul.clone(), vec![c, g1]);
        let y1 = add(&mut g, "y1", mul.clone(), vec![m1, half]);
        // The half first, operands swapped: Mul(Add(1, Erf(r2 * y1)), Mul(0.5, y1)).
        let a2 = add(&mut g, "a2", mul.clone(), vec![r2, y1]);
        let e2 = add(&mut g, "e2", erf.clone(), vec![a2]);
        let g2 = add(&mut g, "g2", plus.clone(), vec![one, e2]);
        let h2 = add(&mut g, "h2", mul.clone(), vec![half, y1]);
        let y2 = add(&mut g, "y2", mul.clone(), vec![g2, h2]);
        // Not a GELU: 2 + erf.
        let a3 = add(&mut g, "a3", mul.clone(), vec![y2, r2]);
        let e3 = add(&mut g, "e3", erf, vec![a3]);
        let g3 = add(&mut g, "g3", plus, vec![e3, two]);
        let m3 = add(&mut g, "m3", mul.clone(), vec![y2, g3]);
        let y3 = add(&mut g, "y3", mul, vec![m3, half]);
        g.outputs = vec![y3];
        let g = check_pass(g, |g| join_gelu(g, &|_| false), 8);
        let gelu: Vec<&str> = g
            .nodes
            .iter()
            .filter(|n| {
                n.op == Op::Lookup {
                    f: UnaryFn::Gelu { tanh: false },
                }
            })
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(gelu, ["y1", "y2"]);
    }

    /// GELU's tanh approximation joins into one function as TensorFlow converters write it (the
    /// half first), with the half last and operands swapped, and with the cube as two Muls and the
    /// half on the gate (PyTorch's exporters); with another cubic coefficient nothing joins.
    #[test]
    fn tanh_gelu_joins_into_one_function() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 4, 4, 2]);
        g.inputs = vec![x];
        let k = |g: &mut Graph, name: &str, v: f32| g.add_const(name, vec![1, 1, 1, 1], vec![v]);
        let (root, cubic, other, one, half) = (
            k(&mut g, "root", 0.797_884_6),
            k(&mut g, "cubic", 0.044_715),
            k(&mut g, "other", 0.05),
            k(&mut g, "one", 1.0),
            k(&mut g, "half", 0.5),
        );
        let mul = Op::Mul { clamp: Clamp::NONE };
        let plus = Op::Add { clamp: Clamp::NONE };
        let pow3 = Op::Lookup {
            f: UnaryFn::Pow { exponent: 3 },
        };
        let add = |g: &mut Graph, name: &str, op: Op, inputs: Vec<ValueId>| {
            g.add_node(name, name, op, inputs, name).unwrap()
        };
        let c = add(&mut g, "c", conv(2, 2, 1), vec![x]);
        // Mul(Mul(0.5, x), Add(1, Tanh(Mul(root, Add(x, Mul(cubic, Pow(x, 3))))))).
        let h1 = add(&mut g, "h1", mul.clone(), vec![half, c]);
        let p1 = add(&mut g, "p1", pow3.clone(), vec![c]);
        let q1 = add(&mut g, "q1", mul.clone(), vec![cubic, p1]);
        let s1 = add(&mut g, "s1", plus.clone(), vec![c, q1]);
        let r1 = add(&mut g, "r1", mul.clone(), vec![root, s1]);
        let t1 = add(&mut g, "t1", Op::Tanh, vec![r1]);
        let g1 = add(&mut g, "g1", plus.clone(), vec![one, t1]);
        let y1 = add(&mut g, "y1", mul.clone(), vec![h1, g1]);
        // Mul(Mul(x, Add(Tanh(Mul(Add(Mul(Pow(x, 3), cubic), x), root)), 1)), 0.5).
        let p2 = add(&mut g, "p2", pow3.clone(), vec![y1]);
        let q2 = add(&mut g, "q2", mul.clone(), vec![p2, cubic]);
        let s2 = add(&mut g, "s2", plus.clone(), vec![q2, y1]);
        let r2 = add(&mut g, "r2", mul.clone(), vec![s2, root]);
        let t2 = add(&mut g, "t2", Op::Tanh, vec![r2]);
        let g2 = add(&mut g, "g2", plus.clone(), vec![t2, one]);
        let m2 = add(&mut g, "m2", mul.clone(), vec![g2, y1]);
        let y2 = add(&mut g, "y2", mul.clone(), vec![m2, half]);
        // The cube as Mul(x, Mul(x, x)), the half on the gate: Mul(x, Mul(0.5, Add(1, Tanh(...)))).
        let sq = add(&mut g, "sq", mul.clone(), vec![y2, y2]);
        let cu = add(&mut g, "cu", mul.clone(), vec![sq, y2]);
        let q4 = add(&mut g, "q4", mul.clone(), vec![cubic, cu]);
        let s4 = add(&mut g, "s4", plus.clone(), vec![y2, q4]);
        let r4 = add(&mut g, "r4", mul.clone(), vec![root, s4]);
        let t4 = add(&mut g, "t4", Op::Tanh, vec![r4]);
        let g4 = add(&mut g, "g4", plus.clone(), vec![one, t4]);
        let h4 = add(&mut g, "h4", mul.clone(), vec![half, g4]);
        let y4 = add(&mut g, "y4", mul.clone(), vec![y2, h4]);
        // Not the tanh approximation: a cubic coefficient of 0.05.
        let h3 = add(&mut g, "h3", mul.clone(), vec![half, y4]);
        let p3 = add(&mut g, "p3", pow3, vec![y4]);
        let q3 = add(&mut g, "q3", mul.clone(), vec![other, p3]);
        let s3 = add(&mut g, "s3", plus.clone(), vec![y4, q3]);
        let r3 = add(&mut g, "r3", mul.clone(), vec![root, s3]);
        let t3 = add(&mut g, "t3", Op::Tanh, vec![r3]);
        let g3 = add(&mut g, "g3", plus, vec![one, t3]);
        let y3 = add(&mut g, "y3", mul, vec![h3, g3]);
        g.outputs = vec![y3];
        let g = check_pass(g, |g| join_gelu(g, &|_| false), 22);
        let gelu: Vec<&str> = g
            .nodes
            .iter()
            .filter(|n| {
                n.op == Op::Lookup {
                    f: UnaryFn::Gelu { tanh: true },
                }
            })
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(gelu, ["y1", "y2", "y4"]);
    }

    #[test]
    fn identities_drop() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 6]);
        g.inputs = vec![x];
        let i1 = g
            .add_node("id", "Identity", Op::Identity, vec![x], "i1")
            .unwrap();
        let s = g
            .add_node("sig", "Sigmoid", Op::Logistic, vec![i1], "s")
            .unwrap();
        let d = g
            .add_node("drop", "Dropout", Op::Identity, vec![s], "d")
            .unwrap();
        g.outputs = vec![d];
        let g = check_pass(g, drop_identity, 2);
        assert_eq!(g.outputs, vec![g.nodes[0].output]);
    }

    #[test]
    fn constants_fold_and_affine_constants_fold_into_fc() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 3]);
        g.inputs = vec![x];
        // bias = relu(c1 * c2) computed from constants, then MatMul + Add(bias) + Mul(scale).
        let c1 = g.add_const("c1", vec![1, 2], vec![0.5, -2.0]);
        let c2 = g.add_const("c2", vec![1, 2], vec![3.0, 1.0]);
        let prod = g
            .add_node(
                "m",
                "Mul",
                Op::Mul { clamp: Clamp::NONE },
                vec![c1, c2],
                "p",
            )
            .unwrap();
        let bias = g
            .add_node(
                "r",
                "Relu",
                Op::Relu { clamp: Clamp::RELU },
                vec![prod],
                "bias",
            )
            .unwrap();
        let fc = Op::FullyConnected {
            filter: Param::new(vec![2, 3], values(6, 3)),
            bias: Param::new(vec![2], vec![0.0; 2]),
            clamp: Clamp::NONE,
        };
        let y = g.add_node("mm", "MatMul", fc, vec![x], "y").unwrap();
        let z = g
            .add_node(
                "add",
                "Add",
                Op::Add { clamp: Clamp::NONE },
                vec![y, bias],
                "z",
            )
            .unwrap();
        let k = g.add_const("k", vec![1], vec![-3.0]);
        let k = {
            // Rank 2 to match: [1, 1].
            g.values[k].shape = vec![1, 1];
            k
        };
        let w = g
            .add_node(
                "scale",
                "Mul",
                Op::Mul { clamp: Clamp::RELU },
                vec![k, z],
                "w",
            )
            .unwrap();
        g.outputs = vec![w];
        let mut g = check_pass(g, |g| fold_constants(g).unwrap(), 2);
        assert_eq!(
            g.values[g.nodes[1].inputs[1]].data.as_deref(),
            Some(&[1.5f32, 0.0][..])
        );
        let g = check_pass(std::mem::take(&mut g), fold_affine_constants, 2);
        assert!(
            matches!(&g.nodes[0].op, Op::FullyConnected { clamp, .. } if *clamp == Clamp::RELU)
        );
    }

    /// Mul and Add by per-channel constants on a rank-3 value become one depthwise convolution on
    /// its NHWC view, computing the same values for a batch of 3.
    #[test]
    fn affine_constants_on_rank_3_become_one_viewed_depthwise() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 5, 3]);
        g.inputs = vec![x];
        let k = g.add_const("k", vec![1, 1, 3], vec![0.5, -2.0, 3.0]);
        let b = g.add_const("b", vec![1, 1, 3], vec![1.0, 0.0, -1.0]);
        let m = Op::Mul { clamp: Clamp::NONE };
        let y = g.add_node("m", "Mul", m, vec![x, k], "y").unwrap();
        let a = Op::Add { clamp: Clamp::RELU };
        let z = g.add_node("a", "Add", a, vec![y, b], "z").unwrap();
        g.outputs = vec![z];
        let input = Tensor::new(vec![3, 5, 3], values(45, 7));
        let before = run(&g, std::slice::from_ref(&input), 1).unwrap();
        optimize(&mut g).unwrap();
        let kinds: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(kinds, ["RESHAPE", "DEPTHWISE_CONV_2D", "RESHAPE"]);
        assert_eq!(g.values[g.nodes[1].output].shape, [1, 1, 5, 3]);
        let after = run(&g, &[input], 1).unwrap();
        assert_eq!(after[0].shape, [3, 5, 3]);
        for (p, q) in before[0].data.iter().zip(&after[0].data) {
            assert!((p - q).abs() <= 1e-6, "{p} vs {q}");
        }
    }

    #[test]
    fn reshape_chains_merge() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 2, 2, 3]);
        g.inputs = vec![x];
        let a = g
            .add_node(
                "a",
                "Flatten",
                Op::Reshape { shape: vec![1, 12] },
                vec![x],
                "a",
            )
            .unwrap();
        let b = g
            .add_node(
                "b",
                "Unsqueeze",
                Op::Reshape {
                    shape: vec![1, 1, 1, 12],
                },
                vec![a],
                "b",
            )
            .unwrap();
        let c = g
            .add_node(
                "c",
                "Reshape",
                Op::Reshape { shape: vec![1, 12] },
                vec![b],
                "c",
            )
            .unwrap();
        let s = g
            .add_node("s", "Sigmoid", Op::Logistic, vec![c], "s")
            .unwrap();
        let d = g
            .add_node(
                "d",
                "Reshape",
                Op::Reshape { shape: vec![1, 12] },
                vec![s],
                "d",
            )
            .unwrap();
        let e = g.add_node("e", "Tanh", Op::Tanh, vec![d], "e").unwrap();
        g.outputs = vec![e];
        let g = check_pass(g, merge_reshapes, 3);
        assert!(matches!(&g.nodes[0].op, Op::Reshape { shape } if *shape == [1, 12]));
    }

    #[test]
    fn pad_folds_into_conv() {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 4, 4, 2]);
        g.inputs = vec![x];
        let p = g
            .add_node(
                "pad",
                "Pad",
                Op::Pad {
                    before: vec![0, 1, 0, 0],
                    after: vec![0, 2, 1, 0],
                },
                vec![x],
                "p",
            )
            .unwrap();
        let c = g
            .add_node("conv", "Conv", conv(2, 3, 4), vec![p], "c")
            .unwrap();
        g.outputs = vec![c];
        let g = check_pass(g, fold_pad_into_conv, 1);
        assert!(matches!(&g.nodes[0].op, Op::Conv2d { window, .. } if window.pads == [2, 1, 3, 2]));
    }
}
