//! Identity: copies its input (ONNX Identity, inference Dropout); the passes remove it. In a model
//! imported with its own quantization (TFLite QUANTIZE and DEQUANTIZE) it converts between differently
//! typed or quantized values and lowers to the runtime's Quantize or Dequantize.

use anyhow::{bail, Result};
use ferrite_runtime::format::DType;
use ferrite_runtime::ops::Op as RtOp;

use super::{same_shape, Channels, OutputQuant};
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::Node;
use crate::lower::{convert, NodeCx};
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

pub(super) fn eval(inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    out.data.copy_from_slice(inputs[0].data);
    Ok(())
}

pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    Ok(OpGrads::input(g.need[0].then(|| g.dy.to_vec())))
}

/// The conversion from the input's type and quantization to the output's.
pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    if cx.float && cx.b.def(cx.ins[0]).dtype == DType::F32 {
        bail!(
            "node `{}` ({}) should have been removed by the passes",
            cx.node.name,
            cx.node.op.name()
        );
    }
    Ok(convert(cx.b, cx.ins[0], cx.out))
}

/// ONNX Identity. The passes remove the copies; those left relabel a graph output's layout (an
/// NCHW map transposed to channels last is the same IR tensor), which the export writes after it.
pub(super) fn export(e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (x, l) = e.act(n.inputs[0])?;
    Ok((e.op("Identity", &n.name, vec![x], vec![]), l))
}
