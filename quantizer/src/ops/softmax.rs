//! Softmax over the last axis, `exp(beta * x)` normalized; its int8 output is fixed at scale 1/256,
//! zero point -128.

use anyhow::{ensure, Result};
use ferrite_runtime::kernels::float as k;
use ferrite_runtime::ops::{Op as RtOp, Softmax, SoftmaxParams};

use super::{same_shape, Channels, OutputQuant};
use crate::export::{a_int, Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::Node;
use crate::lower::{NodeCx, Precision};
use crate::quantize::params::QParams;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Fixed(QParams {
    scale: 1.0 / 256.0,
    zero_point: -128,
});
/// The runtime runs this operator on int16 activations (output scale 1/32768, zero point 0).
pub(super) const INT16: bool = true;
pub(super) const CHANNELS: Channels<'static> = Channels::Mixed;

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    same_shape(inputs)
}

pub(super) fn eval(beta: f32, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let x = inputs[0];
    let depth = *x.shape.last().unwrap_or(&1);
    k::softmax_f32(
        beta,
        x.data.len() / depth.max(1),
        depth,
        x.data,
        &mut out.data,
    );
    Ok(())
}

/// The gradient from the output: `beta * y_i * (dy_i - sum_j dy_j * y_j)` per row.
pub(super) fn backward(beta: f32, g: &Grad<'_>) -> Result<OpGrads> {
    let depth = *g.inputs[0].shape.last().unwrap_or(&1);
    Ok(OpGrads::input(g.need[0].then(|| {
        let mut dx = vec![0.0f32; g.output.len()];
        if depth == 0 {
            return dx;
        }
        for ((gx, y), d) in dx
            .chunks_exact_mut(depth)
            .zip(g.output.chunks_exact(depth))
            .zip(g.dy.chunks_exact(depth))
        {
            let dot: f32 = y.iter().zip(d).map(|(&y, &d)| y * d).sum();
            for ((gx, &y), &d) in gx.iter_mut().zip(y).zip(d) {
                *gx = beta * y * (d - dot);
            }
        }
        dx
    })))
}

pub(super) fn lower<'a>(beta: f32, cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    let input_scale = cx.in_q(0).scale;
    let quant = match cx.precision {
        Precision::Int8 => Some(SoftmaxParams::prepare(beta, input_scale)),
        Precision::Int16 => Some(SoftmaxParams::prepare_int16(beta, input_scale)),
        Precision::Float => None,
    };
    RtOp::Softmax(Softmax {
        input: cx.input(0),
        output: cx.output(),
        beta,
        quant,
    })
}

pub(super) fn export(beta: f32, e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    ensure!(
        beta == 1.0,
        "Softmax with beta {beta} is not exported (ONNX Softmax has no beta)"
    );
    let (x, l) = e.act(n.inputs[0])?;
    let axis = if l == Layout::Nchw { 1 } else { -1 };
    Ok((
        e.op("Softmax", &n.name, vec![x], vec![a_int("axis", axis)]),
        l,
    ))
}
