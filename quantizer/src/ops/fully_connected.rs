//! FullyConnected: `out = in * filter^T + bias` over the last axis, with a fused clamp. Lowers to
//! FULLY_CONNECTED (or its sparse form), exports as an ONNX Gemm.

use anyhow::{ensure, Result};
use ferrite_runtime::ops::{FullyConnected, Op as RtOp, SparseFullyConnected};

use super::OutputQuant;
use crate::export::{a_int, chw_from_hwc, Exporter, Layout};
use crate::ir::float_exec::{finish, kernels, split_clamp, Tensor, View};
use crate::ir::shape::arity;
use crate::ir::{Clamp, Node, Param};
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn shape(filter: &Param, bias: &Param, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    ensure!(
        filter.shape.len() == 2,
        "filter of rank {}",
        filter.shape.len()
    );
    ensure!(
        x.len() >= 2 && x[x.len() - 1] == filter.shape[1],
        "input {x:?} does not fit filter {:?}",
        filter.shape
    );
    ensure!(
        bias.data.len() == filter.shape[0],
        "bias of {} for {} outputs",
        bias.data.len(),
        filter.shape[0]
    );
    let mut out = x.to_vec();
    *out.last_mut().unwrap() = filter.shape[0];
    Ok(out)
}

pub(super) fn eval(
    filter: &Param,
    bias: &Param,
    clamp: Clamp,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    let (act, rest) = split_clamp(clamp);
    let in_f = filter.shape[1];
    kernels::fully_connected(
        in_f,
        act,
        inputs[0].data,
        &filter.data,
        &bias.data,
        &mut out.data,
    );
    finish(clamp, rest, &mut out.data);
    Ok(())
}

pub(super) fn backward(filter: &Param, g: &Grad<'_>) -> Result<OpGrads> {
    Ok(OpGrads::weighted(
        crate::train::backward::kernels::fully_connected(
            [filter.shape[0], filter.shape[1]],
            g.inputs[0].data,
            &filter.data,
            g.dy,
            g.need[0],
        ),
    ))
}

pub(super) fn lower<'a>(clamp: Clamp, cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let (act_min, act_max) = cx.act_range(clamp);
    let d = cx.data;
    let fc = FullyConnected {
        input: cx.input(0),
        output: cx.output(),
        activation: cx.activation(clamp)?,
        act_min,
        act_max,
        filter: &d.filter,
        bias: &d.bias,
        multiplier: &d.multiplier,
        shift: &d.shift,
    };
    Ok(if d.block > 0 {
        RtOp::FullyConnectedSparse(SparseFullyConnected {
            fc,
            block: d.block,
            mask: &d.mask,
        })
    } else {
        RtOp::FullyConnected(fc)
    })
}

pub(super) fn export(
    filter: &Param,
    bias: &Param,
    clamp: Clamp,
    e: &mut Exporter<'_>,
    i: usize,
    n: &Node,
) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let (x, l) = e.act(n.inputs[0])?;
    let xs = &e.g.values[n.inputs[0]].shape;
    ensure!(
        xs.len() == 2,
        "a FullyConnected over a rank-{} input {xs:?} is not exported (only [batch, features])",
        xs.len()
    );
    let (o, inp) = (filter.shape[0], filter.shape[1]);
    // Columns in the order of the input's elements in the file.
    let cols: Vec<usize> = match l {
        Layout::Flat { c, h, w } => chw_from_hwc(c, h, w),
        _ => (0..inp).collect(),
    };
    let perm: Vec<usize> = (0..o)
        .flat_map(|r| cols.iter().map(move |&k| r * inp + k))
        .collect();
    let w = e.weight(i, name, filter, &[o, inp], &perm)?;
    let b = e.bias(i, name, bias, n.inputs[0])?;
    let y = e.op("Gemm", name, vec![x, w, b], vec![a_int("transB", 1)]);
    Ok((e.clamp(y, clamp, name), Layout::Same))
}
