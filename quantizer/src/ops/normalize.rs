//! Normalize: each set of values brought to zero mean and unit variance, then
//! `gamma[c] * x + beta[c]` per channel (the last axis). A set is one position's channels (ONNX
//! LayerNormalization over the channels) or, `across_positions`, every position of a sample
//! (GroupNormalization, InstanceNormalization, LayerNormalization over all of a sample), in each case
//! per group of `c / groups` consecutive channels. The runtime's NORMALIZE computes it in integers
//! (`ferrite_runtime::ops::normalize`); gamma and beta are trainable.

use anyhow::{ensure, Context, Result};
use ferrite_runtime::ops::normalize::{GAMMA_BITS, MAX_BETA, MAX_EPSILON, MAX_SET};
use ferrite_runtime::ops::{Normalize, Op as RtOp};

use super::{Channels, OutputQuant};
use crate::export::{a_float, a_int, Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::shape::arity;
use crate::ir::{Clamp, Node, Param};
use crate::lower::NodeCx;
use crate::quantize::params::QParams;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime has no int16x8 kernel for this operator.
pub(super) const INT16: bool = false;
/// Every output channel of a set reads every channel of it.
pub(super) const CHANNELS: Channels<'static> = Channels::Mixed;

/// How the operator groups an input: positions per sample, channels, groups, positions per set.
#[derive(Clone, Copy)]
struct Sets {
    positions: usize,
    channels: usize,
    groups: usize,
    rows: usize,
}

impl Sets {
    fn of(shape: &[usize], groups: usize, across_positions: bool) -> Sets {
        let channels = shape.last().copied().unwrap_or(1).max(1);
        let positions = shape[1..shape.len().saturating_sub(1)].iter().product();
        Sets {
            positions,
            channels,
            groups: groups.max(1),
            rows: if across_positions { positions } else { 1 },
        }
    }

    /// Values in each set.
    fn size(&self) -> usize {
        self.rows * self.channels / self.groups
    }

    /// The element indices of every set of a tensor of `len` elements, one set at a time.
    fn each(&self, len: usize, mut f: impl FnMut(&[usize])) {
        let per_group = self.channels / self.groups;
        let sample = (self.positions * self.channels).max(1);
        let mut idx = Vec::with_capacity(self.size());
        for start in (0..len).step_by(sample) {
            for row in (0..self.positions).step_by(self.rows.max(1)) {
                for g in 0..self.groups {
                    idx.clear();
                    for r in 0..self.rows {
                        let first = start + (row + r) * self.channels + g * per_group;
                        idx.extend(first..first + per_group);
                    }
                    f(&idx);
                }
            }
        }
    }
}

pub(super) fn shape(
    groups: usize,
    across_positions: bool,
    gamma: &Param,
    beta: &Param,
    inputs: &[&[usize]],
) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    ensure!(
        x.len() >= 2,
        "normalization of a rank-{} input {x:?}",
        x.len()
    );
    let c = x[x.len() - 1];
    ensure!(
        gamma.data.len() == c && beta.data.len() == c,
        "{} scales and {} offsets for {c} channels",
        gamma.data.len(),
        beta.data.len()
    );
    ensure!(
        groups >= 1 && c.is_multiple_of(groups),
        "{groups} groups do not divide {c} channels"
    );
    let sets = Sets::of(x, groups, across_positions);
    ensure!(
        sets.size() <= MAX_SET,
        "sets of {} values (the runtime normalizes at most {MAX_SET})",
        sets.size()
    );
    Ok(x.to_vec())
}

/// Mean and `1 / sqrt(var + eps)` of the values at `idx`.
fn moments(x: &[f32], idx: &[usize], epsilon: f32) -> (f64, f64) {
    let n = idx.len().max(1) as f64;
    let mean = idx.iter().map(|&i| x[i] as f64).sum::<f64>() / n;
    let var = idx
        .iter()
        .map(|&i| (x[i] as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let v = var + epsilon as f64;
    (mean, if v > 0.0 { 1.0 / v.sqrt() } else { 0.0 })
}

/// How the sets are formed: groups, across positions, epsilon.
pub(super) type Setting = (usize, bool, f32);

pub(super) fn eval(
    (groups, across_positions, epsilon): Setting,
    gamma: &Param,
    beta: &Param,
    clamp: Clamp,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    let x = inputs[0];
    let sets = Sets::of(x.shape, groups, across_positions);
    let c = sets.channels;
    sets.each(x.data.len(), |idx| {
        let (mean, inv) = moments(x.data, idx, epsilon);
        for &i in idx {
            let norm = (x.data[i] as f64 - mean) * inv;
            let y = (gamma.data[i % c] as f64 * norm + beta.data[i % c] as f64) as f32;
            out.data[i] = clamp.apply(y);
        }
    });
    Ok(())
}

/// Gradients of the input (where needed) and of gamma and beta. With `h` the normalized values and
/// `e = dy * gamma`, per set: `dx = inv * (e - mean(e) - h * mean(e * h))`.
pub(super) fn backward(
    groups: usize,
    across_positions: bool,
    epsilon: f32,
    gamma: &Param,
    g: &Grad<'_>,
) -> Result<OpGrads> {
    let x = g.inputs[0];
    let sets = Sets::of(x.shape, groups, across_positions);
    let c = sets.channels;
    let (mut d_gamma, mut d_beta) = (vec![0f64; c], vec![0f64; c]);
    let mut dx = vec![0f32; if g.need[0] { x.data.len() } else { 0 }];
    sets.each(x.data.len(), |idx| {
        let (mean, inv) = moments(x.data, idx, epsilon);
        let n = idx.len().max(1) as f64;
        let (mut e_sum, mut eh_sum) = (0f64, 0f64);
        for &i in idx {
            let h = (x.data[i] as f64 - mean) * inv;
            let d = g.dy[i] as f64;
            d_gamma[i % c] += d * h;
            d_beta[i % c] += d;
            let e = d * gamma.data[i % c] as f64;
            e_sum += e;
            eh_sum += e * h;
        }
        if g.need[0] {
            for &i in idx {
                let h = (x.data[i] as f64 - mean) * inv;
                let e = g.dy[i] as f64 * gamma.data[i % c] as f64;
                dx[i] = (inv * (e - e_sum / n - h * eh_sum / n)) as f32;
            }
        }
    });
    Ok(OpGrads {
        inputs: vec![g.need[0].then_some(dx)],
        params: vec![to_f32(d_gamma), to_f32(d_beta)],
    })
}

fn to_f32(v: Vec<f64>) -> Vec<f32> {
    v.into_iter().map(|x| x as f32).collect()
}

/// Gamma and beta as the runtime operator stores them for an output quantized with `output`
/// (`ferrite_runtime::ops::normalize`); its `epsilon` is [`epsilon_term`].
pub(crate) struct Prepared {
    /// `i32` per channel, little-endian: `gamma / s_out` in Q12.
    pub gamma: Vec<u8>,
    /// `i64` per channel, little-endian: `beta / s_out + zero_point` in Q32, plus `2^31`.
    pub beta: Vec<u8>,
}

/// The runtime's `epsilon`: `eps * n^2 / input_scale^2`, rounded, for sets of `n` values of an
/// input of `shape`.
fn epsilon_term(
    (groups, across_positions, epsilon): Setting,
    shape: &[usize],
    input: QParams,
) -> Result<u64> {
    let n = Sets::of(shape, groups, across_positions).size() as f64;
    let s_in = input.scale as f64;
    let eps = (epsilon.max(0.0) as f64 * n * n / (s_in * s_in)).round();
    ensure!(
        eps <= MAX_EPSILON as f64,
        "epsilon {epsilon} is too large for an input step of {s_in}"
    );
    Ok(eps as u64)
}

pub(crate) fn prepare(gamma: &Param, beta: &Param, output: QParams) -> Result<Prepared> {
    let s_out = output.scale as f64;
    let (g_scale, b_scale) = (2f64.powi(GAMMA_BITS as i32), 2f64.powi(32));
    let mut g_bytes = Vec::with_capacity(gamma.data.len() * 4);
    let mut b_bytes = Vec::with_capacity(beta.data.len() * 8);
    for (&g, &b) in gamma.data.iter().zip(&beta.data) {
        let gq = (g as f64 / s_out * g_scale).round();
        let bq = ((b as f64 / s_out + output.zero_point as f64) * b_scale).round() + 2f64.powi(31);
        ensure!(
            gq.abs() < 2f64.powi(31) && bq.abs() <= MAX_BETA as f64,
            "scale {g} or offset {b} out of range for an output step of {s_out}"
        );
        g_bytes.extend((gq as i32).to_le_bytes());
        b_bytes.extend((bq as i64).to_le_bytes());
    }
    Ok(Prepared {
        gamma: g_bytes,
        beta: b_bytes,
    })
}

pub(super) fn lower<'a>(
    (groups, across_positions, epsilon): Setting,
    clamp: Clamp,
    cx: &NodeCx<'_, 'a>,
) -> Result<RtOp<'a>> {
    ensure!(
        !cx.float,
        "NORMALIZE runs in int8 only; `{}` cannot be kept in float",
        cx.node.name
    );
    // Gamma and beta are the node's data, made by `prepare`.
    let eps = epsilon_term(
        (groups, across_positions, epsilon),
        cx.input_shape(0),
        cx.in_q(0),
    )?;
    let (act_min, act_max) = cx.act_range(clamp);
    Ok(RtOp::Normalize(Normalize {
        input: cx.input(0),
        output: cx.output(),
        groups: u16::try_from(groups).context("more than 65535 groups")?,
        across_positions,
        epsilon: eps.to_le_bytes(),
        gamma: &cx.data.filter,
        beta: &cx.data.bias,
        act_min,
        act_max,
    }))
}

/// ONNX as the importer reads it back as this operator, its quantization on the last tensor
/// written: LayerNormalization (axis -1, gamma and beta as its scale and bias) of the input in the
/// IR's order, channels last; InstanceNormalization of an NCHW image with a group per channel;
/// across positions otherwise, PyTorch's GroupNorm: the channels-first input
/// reshaped to `[n, groups, -1]`, InstanceNormalization, reshaped back, Mul by gamma and Add of
/// beta per channel. Groups within each position (no importer makes them) are a
/// LayerNormalization of `[n, positions * groups, c / groups]` then Mul and Add.
pub(super) fn export(
    setting: Setting,
    gamma: &Param,
    beta: &Param,
    clamp: Clamp,
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    let (y, l) = export_normalization(setting, gamma, beta, e, n)?;
    Ok((e.clamp(y, clamp, &format!("{}/clamp", n.name)), l))
}

fn export_normalization(
    (groups, across_positions, epsilon): Setting,
    gamma: &Param,
    beta: &Param,
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let v = n.inputs[0];
    let (x, l) = e.act(v)?;
    let shape = e.g.values[v].shape.clone();
    let sets = Sets::of(&shape, groups, across_positions);
    let (p, g, c) = (sets.positions, sets.groups, sets.channels);
    let eps = a_float("epsilon", epsilon);
    if across_positions && g == c && l == Layout::Nchw {
        let gm = e.init_f32(&format!("{name}_gamma"), &[c], &gamma.data);
        let bt = e.init_f32(&format!("{name}_beta"), &[c], &beta.data);
        let y = e.op("InstanceNormalization", name, vec![x, gm, bt], vec![eps]);
        return Ok((y, Layout::Nchw));
    }
    if across_positions {
        // Channels first: NCHW as the file has it, or [n, c, positions].
        let (x, first_dims) = if l == Layout::Nchw {
            (x, vec![0, c as i64, shape[1] as i64, shape[2] as i64])
        } else {
            let x = e.in_ir_order(x, l, &shape, &format!("{name}/to_ir"));
            let x = e.reshape(x, &[0, p as i64, c as i64], &format!("{name}/rows"));
            let perm = crate::export::a_ints("perm", &[0, 2, 1]);
            let t = e.op(
                "Transpose",
                &format!("{name}/channels_first"),
                vec![x],
                vec![perm],
            );
            (t, vec![0, c as i64, p as i64])
        };
        let x = e.reshape(x, &[0, g as i64, -1], &format!("{name}/instances"));
        let ones = e.init_f32(&format!("{name}_unit"), &[g], &vec![1.0; g]);
        let zeros = e.init_f32(&format!("{name}_zero"), &[g], &vec![0.0; g]);
        let y = e.op(
            "InstanceNormalization",
            &format!("{name}/normalize"),
            vec![x, ones, zeros],
            vec![eps],
        );
        let y = e.reshape(y, &first_dims, &format!("{name}/channels"));
        let mut dims = vec![c];
        dims.resize(first_dims.len() - 1, 1);
        let gm = e.init_f32(&format!("{name}_gamma"), &dims, &gamma.data);
        let bt = e.init_f32(&format!("{name}_beta"), &dims, &beta.data);
        let y = e.op("Mul", &format!("{name}/scale"), vec![y, gm], vec![]);
        if l == Layout::Nchw {
            return Ok((e.op("Add", name, vec![y, bt], vec![]), Layout::Nchw));
        }
        let y = e.op("Add", &format!("{name}/shift"), vec![y, bt], vec![]);
        let perm = crate::export::a_ints("perm", &[0, 2, 1]);
        let y = e.op(
            "Transpose",
            &format!("{name}/channels_last"),
            vec![y],
            vec![perm],
        );
        let dims: Vec<i64> = std::iter::once(0)
            .chain(shape[1..].iter().map(|&d| d as i64))
            .collect();
        let y = e.reshape(y, &dims, &format!("{name}/ir"));
        return Ok(e.ir_to_nchw(y, &shape, name));
    }
    let x = e.in_ir_order(x, l, &shape, &format!("{name}/to_ir"));
    if g == 1 {
        let gm = e.init_f32(&format!("{name}_gamma"), &[c], &gamma.data);
        let bt = e.init_f32(&format!("{name}_beta"), &[c], &beta.data);
        let y = e.op(
            "LayerNormalization",
            &format!("{name}/ir"),
            vec![x, gm, bt],
            vec![a_int("axis", -1), eps],
        );
        return Ok(e.ir_to_nchw(y, &shape, name));
    }
    let k = c / g;
    let x = e.reshape(x, &[0, (p * g) as i64, k as i64], &format!("{name}/sets"));
    let ones = e.init_f32(&format!("{name}_unit"), &[k], &vec![1.0; k]);
    let y = e.op(
        "LayerNormalization",
        &format!("{name}/normalize"),
        vec![x, ones],
        vec![a_int("axis", -1), eps],
    );
    let dims: Vec<i64> = std::iter::once(0)
        .chain(shape[1..].iter().map(|&d| d as i64))
        .collect();
    let y = e.reshape(y, &dims, &format!("{name}/back"));
    let gm = e.init_f32(&format!("{name}_gamma"), &[c], &gamma.data);
    let bt = e.init_f32(&format!("{name}_beta"), &[c], &beta.data);
    let y = e.op("Mul", &format!("{name}/scale"), vec![y, gm], vec![]);
    let y = e.op("Add", &format!("{name}/ir"), vec![y, bt], vec![]);
    Ok(e.ir_to_nchw(y, &shape, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_a_positions_group_or_every_positions_group() {
        let mut seen = Vec::new();
        Sets::of(&[1, 2, 4], 2, false).each(8, |idx| seen.push(idx.to_vec()));
        assert_eq!(seen, [[0, 1], [2, 3], [4, 5], [6, 7]]);
        seen.clear();
        Sets::of(&[2, 2, 4], 2, true).each(16, |idx| seen.push(idx.to_vec()));
        assert_eq!(
            seen,
            [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
        );
    }
}
