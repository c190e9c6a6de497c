//! LeakyRelu: `x` where `x >= 0`, `alpha * x` below (`alpha >= 0`); TFLite's LEAKY_RELU, requantizing
//! from the input's quantization to the output's.

use anyhow::Result;
use ferrite_runtime::kernels::float as k;
use ferrite_runtime::ops::{LeakyRelu, LeakyReluParams, Op as RtOp};

use super::{same_shape, Channels, OutputQuant};
use crate::export::{a_float, Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::Node;
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;
pub(super) const CHANNELS: Channels<'static> = Channels::Kept {
    positive_scale: true,
};

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    same_shape(inputs)
}

pub(super) fn eval(alpha: f32, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    k::activation::leaky_relu_f32(alpha, inputs[0].data, &mut out.data);
    Ok(())
}

pub(super) fn backward(alpha: f32, g: &Grad<'_>) -> Result<OpGrads> {
    Ok(OpGrads::input(g.need[0].then(|| {
        g.inputs[0]
            .data
            .iter()
            .zip(g.dy)
            .map(|(&x, &d)| if x >= 0.0 { d } else { alpha * d })
            .collect()
    })))
}

pub(super) fn lower<'a>(alpha: f32, cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    let quant = (!cx.float).then(|| {
        let (p, out) = (cx.in_q(0), cx.out_q);
        // int16 alike (zero points 0): TFLite Micro prepares both types the same way.
        LeakyReluParams::prepare(p.scale, p.zero_point, alpha, out.scale, out.zero_point)
    });
    RtOp::LeakyRelu(LeakyRelu {
        input: cx.input(0),
        output: cx.output(),
        alpha,
        quant,
    })
}

pub(super) fn export(alpha: f32, e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (x, l) = e.act(n.inputs[0])?;
    let attrs = vec![a_float("alpha", alpha)];
    Ok((e.op("LeakyRelu", &n.name, vec![x], attrs), l))
}
