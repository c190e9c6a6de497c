//! LayerNormalization, InstanceNormalization and GroupNormalization as the IR's Normalize. PyTorch
//! writes `GroupNorm` as a Reshape to `[n, groups, -1]`, an InstanceNormalization of that and a
//! Reshape back (then Mul and Add per channel, which the passes fold into the Normalize): the
//! Reshape is followed on element indices ([`super::moves`]) and, where each instance of it is one
//! group of channels over every position, the three become one Normalize.

use anyhow::{bail, ensure, Context, Result};

use super::moves::{self, Moved};
use super::proto::NodeProto;
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
            x if self.shape(x).len() == 2 && n.op_type == "GroupNormalization" => x,
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
        let d = self.onnx_dims(x);
        let axis = norm_axis(attr_i(n, "axis", -1), d.len())?;
        ensure!(axis >= 1, "LayerNormalization over the batch axis");
        let layout = self.layout(x);
        if let SourceLayout::FlatChw { .. } = layout {
            bail!(
                "LayerNormalization of a flattened image (its channels and positions interleave)"
            );
        }
        let ir_rank = self.shape(x).len();
        let mut normalized = Vec::new();
        for a in (axis..d.len()).filter(|&a| d[a] != 1) {
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
            "LayerNormalization over axes {axis}.. of {d:?}: the channel axis alone, or every axis but the batch, is supported"
        );
        // The source's channel axis (the IR's last).
        let channel_axis = match layout {
            SourceLayout::Nchw | SourceLayout::Ncl => 1,
            _ => d.len() - 1,
        };
        let c = ir[last];
        let per_channel = |i: usize, default: f32| -> Result<Vec<f32>> {
            let Some(k) = self.opt_const(n, i)? else {
                return Ok(vec![default; c]);
            };
            let name = if i == 1 { "scale" } else { "bias" };
            channel_values(
                &k.dims,
                &k.f32()?,
                &d[axis..],
                channel_axis.checked_sub(axis),
                c,
            )
            .with_context(|| format!("LayerNormalization {name}"))
        };
        let (gamma, beta) = (per_channel(1, 1.0)?, per_channel(2, 0.0)?);
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

/// The value per channel of a constant of `dims` broadcast over `normalized` (the normalized axes'
/// source dims), whose axis `channel_axis` holds the `c` channels (none: every value is one
/// channel's); an error if it varies along any other axis.
fn channel_values(
    dims: &[usize],
    data: &[f32],
    normalized: &[usize],
    channel_axis: Option<usize>,
    c: usize,
) -> Result<Vec<f32>> {
    ensure!(
        dims.len() <= normalized.len()
            && dims
                .iter()
                .rev()
                .zip(normalized.iter().rev())
                .all(|(&k, &d)| k == d || k == 1),
        "of shape {dims:?} does not broadcast to {normalized:?}"
    );
    let offset = normalized.len() - dims.len();
    let mut strides = vec![0; normalized.len()];
    let mut s = 1;
    for (k, &d) in dims.iter().enumerate().rev() {
        strides[offset + k] = if d == 1 { 0 } else { s };
        s *= d;
    }
    let mut out: Vec<Option<f32>> = vec![None; c.max(1)];
    let mut at = vec![0; normalized.len()];
    for _ in 0..normalized.iter().product::<usize>() {
        let v = data[at.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()];
        let ch = channel_axis.map_or(0, |a| at[a]);
        match out[ch] {
            Some(seen) if seen != v => {
                bail!("varies within channel {ch}: only one value per channel is supported")
            }
            _ => out[ch] = Some(v),
        }
        for a in (0..at.len()).rev() {
            at[a] += 1;
            if at[a] < normalized[a] {
                break;
            }
            at[a] = 0;
        }
    }
    if channel_axis.is_none() {
        // One value for every channel.
        return Ok(vec![out[0].unwrap_or(0.0); c]);
    }
    Ok(out.into_iter().map(|v| v.unwrap_or(0.0)).collect())
}
