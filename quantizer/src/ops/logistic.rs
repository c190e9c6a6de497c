//! Logistic (sigmoid); its int8 output is fixed at scale 1/256, zero point -128.

use anyhow::Result;
use ferrite_runtime::kernels::float as k;
use ferrite_runtime::ops::{LogisticParams, Op as RtOp, Unary};

use super::{same_shape, Channels, OutputQuant};
use crate::export::{Exporter, Layout};
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
pub(super) const CHANNELS: Channels<'static> = Channels::Kept {
    positive_scale: false,
};

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    same_shape(inputs)
}

pub(super) fn eval(inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    k::logistic_f32(inputs[0].data, &mut out.data);
    Ok(())
}

/// The gradient from the output: `y * (1 - y)`.
pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    Ok(OpGrads::input(g.need[0].then(|| {
        g.output
            .iter()
            .zip(g.dy)
            .map(|(&y, &d)| d * (y * (1.0 - y)))
            .collect()
    })))
}

/// int8 by the table the lowering computed ([`crate::ir::Op::table`]); int16 and f32 by the
/// runtime's kernels.
pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    let quant = match cx.precision {
        Precision::Int8 => return super::lookup::lower_table(cx),
        Precision::Int16 => Some(LogisticParams::prepare_int16(cx.in_q(0).scale)),
        Precision::Float => None,
    };
    RtOp::Logistic(Unary {
        input: cx.input(0),
        output: cx.output(),
        quant,
    })
}

/// TFLite Micro's int8 results for each of the 256 inputs quantized with `input` (the output's
/// quantization is the fixed one), as the runtime's LOGISTIC kernel computes them.
pub(super) fn tflite_table(input: QParams) -> Vec<u8> {
    let p = LogisticParams::prepare(input.scale, input.zero_point);
    super::lookup::kernel_table(|x, y| ferrite_runtime::kernels::activation::logistic_s8(&p, x, y))
}

pub(super) fn export(e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (x, l) = e.act(n.inputs[0])?;
    Ok((e.op("Sigmoid", &n.name, vec![x], vec![]), l))
}
