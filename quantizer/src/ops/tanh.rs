//! Tanh; its int8 output is fixed at scale 1/128, zero point 0.

use anyhow::Result;
use ferrite_runtime::kernels::float as k;
use ferrite_runtime::ops::{Op as RtOp, TanhParams, Unary};

use super::{same_shape, Channels, OutputQuant};
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::Node;
use crate::lower::{NodeCx, Precision};
use crate::quantize::params::QParams;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Fixed(QParams {
    scale: 1.0 / 128.0,
    zero_point: 0,
});
/// The runtime runs this operator on int16 activations (output scale 1/32768, zero point 0).
pub(super) const INT16: bool = true;
pub(super) const CHANNELS: Channels<'static> = Channels::Kept {
    positive_scale: false,
};

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    same_shape(inputs)
}

pub(super) fn eval(inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    k::tanh_f32(inputs[0].data, &mut out.data);
    Ok(())
}

/// The gradient from the output: `1 - y^2`.
pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    Ok(OpGrads::input(g.need[0].then(|| {
        g.output
            .iter()
            .zip(g.dy)
            .map(|(&y, &d)| d * (1.0 - y * y))
            .collect()
    })))
}

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    let p = cx.in_q(0);
    RtOp::Tanh(Unary {
        input: cx.input(0),
        output: cx.output(),
        quant: match cx.precision {
            Precision::Int8 => Some(TanhParams::prepare(p.scale, p.zero_point)),
            Precision::Int16 => Some(TanhParams::prepare_int16(p.scale)),
            Precision::Float => None,
        },
    })
}

pub(super) fn export(e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (x, l) = e.act(n.inputs[0])?;
    Ok((e.op("Tanh", &n.name, vec![x], vec![]), l))
}
