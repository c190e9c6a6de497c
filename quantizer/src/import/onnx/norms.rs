//! LayerNormalization, InstanceNormalization and GroupNormalization as the IR's Normalize. PyTorch
//! writes `GroupNorm` as a Reshape to `[n, groups, -1]`, an InstanceNormalization of that and a
//! Reshape back (then Mul and Add per channel, which the passes fold into the Normalize): the
//! Reshape is followed on element indices ([`super::moves`]) and, where each instance of it is one
//! group of channels over every position, the three become one Normalize.

use anyhow::{bail, ensure, Context, Result};

use std::collections::{HashMap, HashSet};

use super::moves::{self, Moved};
use super::proto::{GraphProto, NodeProto};
use super::tensor::Const;
use super::{attr_f, attr_i, norm_axis, Importer};
use crate::ir::{Clamp, Op, Param, SourceLayout, ValueId};

impl Importer {
    /// A normalization node (see the module docs).
    pub(super) fn normalization(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        ensure!(
            n.output.iter().skip(1).all(|o| !self.read.contains(o)),
            "the mean and inverse standard deviation outputs of {} are not supported",
            n.op_type
        );
        let eps = attr_f(n, "epsilon", 1e-5);
        ensure!(
            eps.is_finite() && eps >= 0.0,
            "epsilon {eps} (it must be finite and at least 0)"
        );
        let input = self.input(n, 0).context("input 0 is missing")?.to_string();
        if n.op_type == "InstanceNormalization" {
            if let Some(m) = self.moved.get(&input).cloned() {
                if let Some(groups) = self.channel_groups(&m) {
                    return self.group_of_moved(n, label, m, groups, eps);
                }
            }
        }
        self.place_inputs(n)?;
        if n.op_type == "LayerNormalization" {
            self.layer_norm(n, label, eps)
        } else {
            self.group_norm(n, label, eps)
        }
    }

    /// InstanceNormalization (a group per channel) and GroupNormalization (`num_groups`) over an
    /// image, a signal or `[n, c]`.
    fn group_norm(&mut self, n: &NodeProto, label: &str, eps: f32) -> Result<()> {
        let x = self.act(n, 0)?;
        let rows = self.layout(x) == SourceLayout::Same && self.shape(x).len() == 3;
        if rows && n.op_type == "InstanceNormalization" {
            return self.instance_rows(n, label, x, eps);
        }
        let x = match x {
            x if self.shape(x).len() == 2 && n.op_type == "GroupNormalization" => {
                ensure!(
                    self.layout(x) == SourceLayout::Same,
                    "GroupNormalization of a flattened image (its channels and positions interleave)"
                );
                x
            }
            _ => self.spatial(n, 0)?,
        };
        let c = *self.shape(x).last().context("a scalar input")?;
        let groups = if n.op_type == "InstanceNormalization" {
            c
        } else {
            let g = attr_i(n, "num_groups", 0);
            ensure!(
                g >= 1 && c.is_multiple_of(g as usize),
                "num_groups {g} does not divide {c} channels"
            );
            g as usize
        };
        let per_group = |i: usize| -> Result<Vec<f32>> {
            let v = self.konst(n, i)?.f32()?;
            // GroupNormalization before opset 21: one scale and bias per group.
            if v.len() == groups && groups != c {
                return Ok((0..c).map(|ch| v[ch / (c / groups)]).collect());
            }
            ensure!(
                v.len() == c,
                "input {i} has {} values for {c} channels in {groups} groups",
                v.len()
            );
            Ok(v)
        };
        let (gamma, beta) = (per_group(1)?, per_group(2)?);
        let op = normalize(groups, true, eps, gamma, beta);
        let layout = self.layout(x);
        self.emit(n, label, op, vec![x], layout).map(drop)
    }

    /// InstanceNormalization of `x`, `[n, c, l]` in the IR's order too (after data movement the IR
    /// did not follow): each of its rows normalized, the IR's last axis being the ONNX `l`. Its
    /// scale and bias, one per row, must then be one value each.
    fn instance_rows(&mut self, n: &NodeProto, label: &str, x: ValueId, eps: f32) -> Result<()> {
        let l = self.shape(x)[2];
        let one = |i: usize| -> Result<f32> {
            let v = self.konst(n, i)?.f32()?;
            match v.first() {
                Some(&first) if v.iter().all(|&e| e == first) => Ok(first),
                _ => bail!(
                    "InstanceNormalization of {:?} laid out as rows of its last axis: input {i} must hold one value (it holds {} values, not all equal)",
                    self.onnx_dims(x),
                    v.len()
                ),
            }
        };
        let (gamma, beta) = (vec![one(1)?; l], vec![one(2)?; l]);
        let op = normalize(1, false, eps, gamma, beta);
        self.emit(n, label, op, vec![x], SourceLayout::Same)
            .map(drop)
    }

    /// LayerNormalization over the channels of each position, or over every axis but the batch.
    fn layer_norm(&mut self, n: &NodeProto, label: &str, eps: f32) -> Result<()> {
        let x = self.act(n, 0)?;
        let rank = self.onnx_dims(x).len();
        let axis = norm_axis(attr_i(n, "axis", -1), rank)?;
        let gamma = self.opt_const(n, 1)?.cloned();
        let beta = self.opt_const(n, 2)?.cloned();
        let axes: Vec<usize> = (axis..rank).collect();
        self.normalize_over(n, label, x, &axes, eps, gamma, beta)
    }

    /// A layer normalization written out in primitive operators ([`Decomposed`]), imported at its
    /// last node `n`.
    pub(super) fn decomposed_layer_norm(
        &mut self,
        n: &NodeProto,
        label: &str,
        dec: &Decomposed,
    ) -> Result<()> {
        if self.moved.contains_key(&dec.x) {
            self.place(&dec.x)?;
        }
        let x = *self
            .vals
            .get(&dec.x)
            .with_context(|| format!("`{}` is not an activation", dec.x))?;
        let rank = self.onnx_dims(x).len();
        let mut axes = Vec::new();
        match &dec.axes {
            Some(list) => {
                for &a in list {
                    axes.push(norm_axis(a, rank)?);
                }
            }
            None => axes.extend(2..rank),
        }
        axes.sort_unstable();
        axes.dedup();
        if let Some(shape) = &dec.mean_shape {
            // The mean keeps the reduced axes as 1; a Reshape to anything else is another function.
            let d = self.onnx_dims(x);
            let kept: Vec<usize> = (0..rank)
                .map(|a| if axes.contains(&a) { 1 } else { d[a] })
                .collect();
            let k = self
                .consts
                .get(shape)
                .with_context(|| format!("`{shape}` is not a constant"))?;
            let to = super::resolve_reshape(&kept, &k.i64()?, false)?;
            ensure!(
                to == kept,
                "the mean of a normalization pattern reshaped from {kept:?} to {to:?}"
            );
        }
        let scalar = |im: &Self, name: &str| -> Result<f32> {
            let c = im
                .consts
                .get(name)
                .with_context(|| format!("`{name}` is not a constant"))?;
            match c.f32()?[..] {
                [v] => Ok(v),
                _ => bail!("`{name}` is not one value"),
            }
        };
        if let Some(e) = &dec.exponent {
            let p = scalar(self, e)?;
            ensure!(
                p == 2.0,
                "a normalization pattern whose Pow has exponent {p} (2 is a variance)"
            );
        }
        let eps = scalar(self, &dec.eps)?;
        ensure!(
            eps.is_finite() && eps >= 0.0,
            "epsilon {eps} (it must be finite and at least 0)"
        );
        let get = |name: &Option<String>| -> Result<Option<Const>> {
            name.as_ref()
                .map(|k| {
                    let c = self
                        .consts
                        .get(k)
                        .with_context(|| format!("`{k}` is not a constant"))?;
                    ensure!(
                        c.f32()?.iter().all(|v| v.is_finite()),
                        "`{k}` holds a value that is not finite"
                    );
                    Ok(c.clone())
                })
                .transpose()
        };
        let (gamma, beta) = (get(&dec.gamma)?, get(&dec.beta)?);
        self.normalize_over(n, label, x, &axes, eps, gamma, beta)
            .context("a layer normalization written out in ReduceMean, Sub, Sqrt and their kin")
    }

    /// `x` normalized over its source axes `axes` (sorted), gamma and beta broadcast over its
    /// source dims and one value per channel: one position's channels, or every axis but the batch.
    #[allow(clippy::too_many_arguments)]
    fn normalize_over(
        &mut self,
        n: &NodeProto,
        label: &str,
        x: ValueId,
        axes: &[usize],
        eps: f32,
        gamma: Option<Const>,
        beta: Option<Const>,
    ) -> Result<()> {
        let d = self.onnx_dims(x);
        ensure!(!axes.contains(&0), "normalizing over the batch axis");
        let layout = self.layout(x);
        if let SourceLayout::FlatChw { .. } = layout {
            bail!("normalizing a flattened image (its channels and positions interleave)");
        }
        let ir_rank = self.shape(x).len();
        let mut normalized = Vec::new();
        for &a in axes.iter().filter(|&&a| d[a] != 1) {
            normalized.push(self.ir_axis(x, a)?);
        }
        normalized.sort_unstable();
        let last = ir_rank - 1;
        let ir = self.shape(x);
        let everything: Vec<usize> = (1..ir_rank).filter(|&a| ir[a] != 1).collect();
        let per_position = normalized == [last] || (normalized.is_empty() && ir[last] == 1);
        let across = !per_position && normalized == everything && normalized.contains(&last);
        ensure!(
            per_position || across,
            "normalization over axes {axes:?} of {d:?}: the channel axis alone, or every axis but the batch, is supported"
        );
        // The source's channel axis (the IR's last).
        let channel_axis = match layout {
            SourceLayout::Nchw | SourceLayout::Ncl => 1,
            _ => d.len() - 1,
        };
        let c = ir[last];
        let per_channel = |k: Option<Const>, default: f32, what: &str| -> Result<Vec<f32>> {
            let Some(k) = k else {
                return Ok(vec![default; c]);
            };
            channel_values(&k.dims, &k.f32()?, &d, channel_axis, c)
                .with_context(|| format!("the {what}"))
        };
        let gamma = per_channel(gamma, 1.0, "scale")?;
        let beta = per_channel(beta, 0.0, "bias")?;
        let op = normalize(1, across, eps, gamma, beta);
        self.emit(n, label, op, vec![x], layout).map(drop)
    }

    /// The number of groups if followed value `m` is `[n, groups, ...]` where each `[n, g]` instance
    /// holds exactly the `g`-th group of consecutive channels of its source at every position.
    fn channel_groups(&self, m: &Moved) -> Option<usize> {
        let (src, dims) = (self.shape(m.src), &m.dims);
        let c = *src.last()?;
        if dims.len() < 3 || src.len() < 2 || c == 0 {
            return None;
        }
        let groups = dims[1];
        let len: usize = dims[2..].iter().product();
        let positions: usize = src[1..src.len() - 1].iter().product();
        if groups == 0 || !c.is_multiple_of(groups) || len != positions * (c / groups) {
            return None;
        }
        let at = moves::onnx_to_ir(self.layout(m.src), src);
        if m.from.len() != at.len() {
            return None;
        }
        let mut seen = vec![false; at.len()];
        m.from
            .iter()
            .enumerate()
            .all(|(e, &from)| {
                let ir = at[from as usize] as usize;
                let first = !std::mem::replace(&mut seen[ir], true);
                let (sample, group) = (e / (groups * len), e / len % groups);
                first && ir / (positions * c) == sample && ir % c / (c / groups) == group
            })
            .then_some(groups)
    }

    /// InstanceNormalization of `m`, `[n, groups, ...]` of groups of channels: a Normalize of its
    /// source, followed on as `m` was.
    fn group_of_moved(
        &mut self,
        n: &NodeProto,
        label: &str,
        m: Moved,
        groups: usize,
        eps: f32,
    ) -> Result<()> {
        let c = *self.shape(m.src).last().context("a scalar input")?;
        let per_channel = |i: usize| -> Result<Vec<f32>> {
            let v = self.konst(n, i)?.f32()?;
            ensure!(
                v.len() == groups,
                "input {i} has {} values for {groups} instances",
                v.len()
            );
            Ok((0..c).map(|ch| v[ch / (c / groups)]).collect())
        };
        let op = normalize(groups, true, eps, per_channel(1)?, per_channel(2)?);
        let out = n.output.first().context("the node has no output")?.clone();
        let layout = self.layout(m.src);
        let v: ValueId = self.g.add_node(
            label,
            &n.op_type,
            op,
            vec![m.src],
            format!("{out}/normalized"),
        )?;
        self.g.values[v].source = layout;
        let mut path = m.path.clone();
        path.push(format!("{} `{label}`", n.op_type));
        let next = Moved {
            src: v,
            path,
            why: None,
            last: None,
            ..m
        };
        self.moved.insert(out, next);
        Ok(())
    }
}

fn normalize(groups: usize, across: bool, eps: f32, gamma: Vec<f32>, beta: Vec<f32>) -> Op {
    let c = gamma.len();
    Op::Normalize {
        groups,
        across_positions: across,
        epsilon: eps,
        gamma: Param::new(vec![c], gamma),
        beta: Param::new(vec![c], beta),
        clamp: Clamp::NONE,
    }
}

/// The value per channel of a constant of `dims` broadcast over `full` (the activation's source
/// dims, right-aligned as ONNX broadcasts), whose axis `channel_axis` holds the `c` channels; an
/// error if it varies along any other axis.
fn channel_values(
    dims: &[usize],
    data: &[f32],
    full: &[usize],
    channel_axis: usize,
    c: usize,
) -> Result<Vec<f32>> {
    ensure!(
        dims.len() <= full.len()
            && dims
                .iter()
                .rev()
                .zip(full.iter().rev())
                .all(|(&k, &d)| k == d || k == 1)
            && (dims.len() < full.len() || dims.first() == Some(&1)),
        "of shape {dims:?} does not broadcast to {full:?} with one value per sample"
    );
    let offset = full.len() - dims.len();
    let mut strides = vec![0; full.len()];
    let mut s = 1;
    for (k, &d) in dims.iter().enumerate().rev() {
        strides[offset + k] = if d == 1 { 0 } else { s };
        s *= d;
    }
    // The batch contributes nothing (a constant with a batch axis of its own is 1 there).
    let mut out: Vec<Option<f32>> = vec![None; c];
    let mut at = vec![0; full.len()];
    let inner: usize = full[1..].iter().product();
    for _ in 0..inner {
        let v = data[at.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()];
        let ch = at[channel_axis];
        match out[ch] {
            Some(seen) if seen != v => {
                bail!("varies within channel {ch}: only one value per channel is supported")
            }
            _ => out[ch] = Some(v),
        }
        for a in (1..at.len()).rev() {
            at[a] += 1;
            if at[a] < full[a] {
                break;
            }
            at[a] = 0;
        }
    }
    Ok(out.into_iter().map(|v| v.unwrap_or(0.0)).collect())
}

/// A layer normalization written out in primitive operators, as PyTorch's older exporters
/// (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, then Mul and Add) and tf2onnx for Keras
/// (ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Reciprocal, Mul by gamma, then `x * k - mean * k`
/// and beta) write it. Its nodes are imported as one Normalize at the last of them.
#[derive(Clone, Debug)]
pub(super) struct Decomposed {
    /// The normalized activation and the axes of its two ReduceMeans (`None`: every axis from 2 on,
    /// two GlobalAveragePools).
    x: String,
    axes: Option<Vec<i64>>,
    /// The shape a Reshape of the mean gives it before the Sub (it must be the mean's own).
    mean_shape: Option<String>,
    /// Names of the constants: epsilon, the exponent of a Pow (2), gamma and beta.
    eps: String,
    exponent: Option<String>,
    gamma: Option<String>,
    beta: Option<String>,
    /// Every node of the pattern, the last one included.
    pub nodes: Vec<usize>,
    pub last: usize,
}

/// The decomposed layer normalizations of `graph` ([`Decomposed`]).
pub(super) fn decomposed(graph: &GraphProto) -> Vec<Decomposed> {
    let nodes = &graph.node[..];
    // Initializers and what is computed from constants only.
    let mut constant: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    for n in nodes {
        let from_constants = n.op_type == "Constant"
            || (!n.input.is_empty()
                && n.input
                    .iter()
                    .all(|i| i.is_empty() || constant.contains(i.as_str())));
        if from_constants {
            constant.extend(n.output.iter().map(|o| o.as_str()));
        }
    }
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for input in &n.input {
            readers.entry(input.as_str()).or_default().push(i);
        }
    }
    let reader_of = |name: &str, op: &str| -> Option<usize> {
        readers
            .get(name)?
            .iter()
            .copied()
            .find(|&r| nodes[r].op_type == op)
    };
    let out = |i: usize| nodes[i].output.first().map_or("", |s| s.as_str());
    // The other input of binary node `i` when one input is `name`.
    let other = |i: usize, name: &str| -> Option<&str> {
        let n = &nodes[i];
        match (n.input.first()?.as_str(), n.input.get(1)?.as_str()) {
            (a, b) if a == name => Some(b),
            (a, b) if b == name => Some(a),
            _ => None,
        }
    };
    let const_operand = |i: usize, name: &str| other(i, name).filter(|o| constant.contains(o));
    let mut found = Vec::new();
    for (r1, n) in nodes.iter().enumerate() {
        let mean_op = n.op_type.as_str();
        if !matches!(mean_op, "ReduceMean" | "GlobalAveragePool") || attr_i(n, "keepdims", 1) != 1 {
            continue;
        }
        let axes = match mean_op {
            "ReduceMean" => reduce_axes(n, graph),
            _ => None,
        };
        // An empty axes list reduces everything (or nothing, with `noop_with_empty_axes`).
        let usable = axes.as_ref().is_some_and(|a| !a.is_empty()) || mean_op != "ReduceMean";
        let Some(x) = n.input.first().filter(|_| usable) else {
            continue;
        };
        let mean = out(r1);
        let mut matched = vec![r1];
        let sub = |m: &str| {
            readers.get(m).into_iter().flatten().copied().find(|&s| {
                nodes[s].op_type == "Sub"
                    && nodes[s].input.first() == Some(x)
                    && nodes[s].input.get(1).map(|i| i.as_str()) == Some(m)
            })
        };
        // tf2onnx reshapes the mean to its own shape before the Sub.
        let (sub, alias) = match sub(mean) {
            Some(s) => (s, None),
            None => {
                let Some(a) = ["Reshape", "Identity"]
                    .iter()
                    .find_map(|op| reader_of(mean, op))
                else {
                    continue;
                };
                let Some(s) = sub(out(a)) else { continue };
                (s, Some(a))
            }
        };
        let mean_shape = alias
            .filter(|&a| nodes[a].op_type == "Reshape")
            .map(|a| nodes[a].input.get(1).cloned().unwrap_or_default());
        matched.extend(alias);
        matched.push(sub);
        let d = out(sub);
        let (sq, exponent) = match (reader_of(d, "Pow"), reader_of(d, "Mul")) {
            (Some(p), _) if nodes[p].input.first().map(|s| s.as_str()) == Some(d) => {
                match const_operand(p, d) {
                    Some(e) => (p, Some(e.to_string())),
                    None => continue,
                }
            }
            (_, Some(m)) if nodes[m].input.iter().all(|i| i == d) => (m, None),
            _ => continue,
        };
        matched.push(sq);
        let Some(r2) = reader_of(out(sq), mean_op).filter(|&r| {
            attr_i(&nodes[r], "keepdims", 1) == 1
                && (mean_op != "ReduceMean" || reduce_axes(&nodes[r], graph) == axes)
        }) else {
            continue;
        };
        let Some(add) = reader_of(out(r2), "Add") else {
            continue;
        };
        let Some(eps) = const_operand(add, out(r2)) else {
            continue;
        };
        let Some(sqrt) = reader_of(out(add), "Sqrt") else {
            continue;
        };
        matched.extend([r2, add, sqrt]);
        let s = out(sqrt);
        // An Add of a constant after node `from`, if there is one: beta.
        let add_beta = |from: usize, matched: &mut Vec<usize>| -> (usize, Option<String>) {
            match reader_of(out(from), "Add") {
                Some(a) if const_operand(a, out(from)).is_some() => {
                    matched.push(a);
                    (a, const_operand(a, out(from)).map(str::to_string))
                }
                _ => (from, None),
            }
        };
        let (last, gamma, beta) = if let Some(div) =
            reader_of(s, "Div").filter(|&v| nodes[v].input.first().map(|i| i.as_str()) == Some(d))
        {
            // (x - mean) / s, times gamma, plus beta.
            matched.push(div);
            let (scaled, gamma) = match reader_of(out(div), "Mul") {
                Some(m) if const_operand(m, out(div)).is_some() => {
                    matched.push(m);
                    (m, const_operand(m, out(div)).map(str::to_string))
                }
                _ => (div, None),
            };
            let (last, beta) = add_beta(scaled, &mut matched);
            (last, gamma, beta)
        } else if let Some(rc) = reader_of(s, "Reciprocal") {
            // k = gamma / s; x * k + (beta - mean * k), or x * k + (-mean) * k then beta.
            matched.push(rc);
            let (k, gamma) = match reader_of(out(rc), "Mul") {
                Some(m) if const_operand(m, out(rc)).is_some() => {
                    matched.push(m);
                    (m, const_operand(m, out(rc)).map(str::to_string))
                }
                _ => (rc, None),
            };
            let k_name = out(k);
            let muls: Vec<usize> = readers
                .get(k_name)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&m| nodes[m].op_type == "Mul")
                .collect();
            let Some(&y1) = muls.iter().find(|&&m| other(m, k_name) == Some(x.as_str())) else {
                continue;
            };
            let neg = reader_of(mean, "Neg");
            let Some(&y2) = muls.iter().find(|&&m| {
                let o = other(m, k_name);
                o == Some(mean) || neg.is_some_and(|g| o == Some(out(g)))
            }) else {
                continue;
            };
            let negated = other(y2, k_name) != Some(mean);
            matched.extend(neg.filter(|_| negated));
            matched.extend([y1, y2]);
            let (term, beta) = if negated {
                (y2, None)
            } else {
                let Some(t) = reader_of(out(y2), "Sub").filter(|&t| {
                    nodes[t].input.get(1).map(|i| i.as_str()) == Some(out(y2))
                        && constant.contains(nodes[t].input[0].as_str())
                }) else {
                    continue;
                };
                matched.push(t);
                (t, Some(nodes[t].input[0].clone()))
            };
            let Some(y) =
                reader_of(out(y1), "Add").filter(|&a| other(a, out(y1)) == Some(out(term)))
            else {
                continue;
            };
            matched.push(y);
            if beta.is_some() {
                (y, gamma, beta)
            } else {
                let (last, beta) = add_beta(y, &mut matched);
                (last, gamma, beta)
            }
        } else {
            continue;
        };
        // Every value of the pattern but the last is read inside it only.
        let inside: HashSet<usize> = matched.iter().copied().collect();
        let closed = matched.iter().filter(|&&m| m != last).all(|&m| {
            nodes[m].output.iter().all(|o| {
                !graph.output.iter().any(|g| &g.name == o)
                    && readers
                        .get(o.as_str())
                        .is_none_or(|rs| rs.iter().all(|r| inside.contains(r)))
            })
        });
        if !closed {
            continue;
        }
        found.push(Decomposed {
            x: x.clone(),
            axes,
            mean_shape,
            eps: eps.to_string(),
            exponent,
            gamma,
            beta,
            nodes: matched,
            last,
        });
    }
    found
}

/// The axes a ReduceMean reduces: its attribute, or (opset 18) its constant second input.
fn reduce_axes(n: &NodeProto, graph: &GraphProto) -> Option<Vec<i64>> {
    if let Some(a) = super::attr_ints(n, "axes") {
        return Some(a);
    }
    let name = n.input.get(1)?;
    if let Some(t) = graph.initializer.iter().find(|t| &t.name == name) {
        return Const::from_proto(t).ok()?.i64().ok();
    }
    graph
        .node
        .iter()
        .find(|p| p.op_type == "Constant" && p.output.first() == Some(name))
        .and_then(|p| Const::from_constant_node(p).ok()?.i64().ok())
}
