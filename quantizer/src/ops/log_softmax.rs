//! LogSoftmax over the last axis, `x - max - ln(sum(exp(x - max)))`: the runtime's int8
//! LOG_SOFTMAX, its output range calibrated (the exponential table and both factors come from the
//! input's and output's scales). int8 only: no f32 or int16x8 form.

use anyhow::{ensure, Result};
use ferrite_runtime::ops::{LogSoftmax, LogSoftmaxParams, Op as RtOp};

use super::{same_shape, Channels, OutputQuant};
use crate::export::{a_int, Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::Node;
use crate::lower::NodeCx;
use crate::quantize::params::QParams;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
pub(super) const INT16: bool = false;
pub(super) const CHANNELS: Channels<'static> = Channels::Mixed;

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    same_shape(inputs)
}

pub(super) fn eval(inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let x = inputs[0];
    let depth = (*x.shape.last().unwrap_or(&1)).max(1);
    for (x, y) in x
        .data
        .chunks_exact(depth)
        .zip(out.data.chunks_exact_mut(depth))
    {
        let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let lse = x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        for (y, &v) in y.iter_mut().zip(x) {
            *y = (v as f64 - max - lse) as f32;
        }
    }
    Ok(())
}

/// The gradient from the output: `dy_i - softmax(x)_i * sum_j dy_j` per row, with
/// `softmax(x) = exp(y)`.
pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    let depth = (*g.inputs[0].shape.last().unwrap_or(&1)).max(1);
    Ok(OpGrads::input(g.need[0].then(|| {
        let mut dx = vec![0.0f32; g.output.len()];
        for ((gx, y), d) in dx
            .chunks_exact_mut(depth)
            .zip(g.output.chunks_exact(depth))
            .zip(g.dy.chunks_exact(depth))
        {
            let total: f32 = d.iter().sum();
            for ((gx, &y), &d) in gx.iter_mut().zip(y).zip(d) {
                *gx = d - y.exp() * total;
            }
        }
        dx
    })))
}

/// The exponential table the runtime operator borrows, for an input quantized with `input`.
pub(super) fn table(input: QParams) -> Vec<u8> {
    LogSoftmaxParams::exp_table(input.scale)
}

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    ensure!(
        !cx.float,
        "LOG_SOFTMAX has no f32 form (it runs in int8 only)"
    );
    let (input, output) = (cx.in_q(0), cx.out_q);
    let quant = LogSoftmaxParams::prepare(input.scale, output.scale, output.zero_point);
    Ok(RtOp::LogSoftmax(LogSoftmax {
        input: cx.input(0),
        output: cx.output(),
        exp_table: &cx.data.filter,
        quant,
    }))
}

pub(super) fn export(e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (x, l) = e.act(n.inputs[0])?;
    let axis = if l == Layout::Nchw { 1 } else { -1 };
    Ok((
        e.op("LogSoftmax", &n.name, vec![x], vec![a_int("axis", axis)]),
        l,
    ))
}
