//! AveragePool2d: the average over each window, padding excluded from the count, with a fused clamp.
//! Under ONNX semantics a global int8 average pool lowers to a Mean instead. MaxPool2d shares this
//! file's window code.

use anyhow::{ensure, Result};
use ferrite_runtime::format::Activation;
use ferrite_runtime::kernels::ConvGeometry;
use ferrite_runtime::ops::{Op as RtOp, Pool, Unary};

use super::{clamp_keeps_scale, Channels, OutputQuant};
use crate::export::{window_attrs, Exporter, Layout, OPSET};
use crate::ir::float_exec::{finish, geometry, kernels, split_clamp, Tensor, View};
use crate::ir::shape::{arity, window_out};
use crate::ir::{Clamp, Node, Window2d};
use crate::lower::{window, NodeCx, Precision, Requantization};
use crate::train::backward::kernels as backward_kernels;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn channels(clamp: Clamp) -> Channels<'static> {
    Channels::Kept {
        positive_scale: clamp_keeps_scale(clamp),
    }
}

pub(super) fn shape(window: &Window2d, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    ensure!(window.dilation == [1, 1], "pooling with dilation");
    let x = inputs[0];
    ensure!(x.len() == 4, "input of rank {} (NHWC required)", x.len());
    window_out(window, x, x[3])
}

pub(super) fn eval(
    window: &Window2d,
    clamp: Clamp,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    pool_eval(kernels::average_pool2d, window, clamp, inputs, out)
}

/// A pooling kernel over the node's window, then the rest of the clamp.
pub(super) fn pool_eval(
    kernel: fn(&ConvGeometry, Activation, &[f32], &mut [f32]),
    window: &Window2d,
    clamp: Clamp,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    let x = inputs[0];
    let g = geometry(window, x.shape, &out.shape)?;
    let (act, rest) = split_clamp(clamp);
    kernel(&g, act, x.data, &mut out.data);
    finish(clamp, rest, &mut out.data);
    Ok(())
}

pub(super) fn backward(window: &Window2d, g: &Grad<'_>) -> Result<OpGrads> {
    pool_backward(backward_kernels::average_pool2d, window, g)
}

/// The input's gradient of a pooling over the node's window.
pub(super) fn pool_backward(
    kernel: fn(&ConvGeometry, &[f32], &[f32]) -> Vec<f32>,
    window: &Window2d,
    g: &Grad<'_>,
) -> Result<OpGrads> {
    let x = g.inputs[0];
    let geo = geometry(window, x.shape, g.out_shape)?;
    Ok(OpGrads::input(
        g.need[0].then(|| kernel(&geo, x.data, g.dy)),
    ))
}

/// Whether a pooling window over an NHWC `input` covers the whole of H and W in one step.
pub(crate) fn global_pool(w: &Window2d, input: &[usize]) -> bool {
    input.len() == 4 && w.kernel == [input[1], input[2]] && w.dilation == [1, 1] && w.pads == [0; 4]
}

pub(super) fn lower<'a>(w: &Window2d, clamp: Clamp, cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    if cx.precision == Precision::Int8
        && cx.requantization == Requantization::Onnx
        && global_pool(w, cx.input_shape(0))
        && cx.act_range(clamp) == (-128, 127)
    {
        // A global average pool is the spatial mean; as a Mean it rounds once, as onnxruntime
        // does, and its output may be quantized differently from its input.
        let s = cx.input_shape(0);
        return Ok(RtOp::Mean(Unary {
            input: cx.input(0),
            output: cx.output(),
            quant: Some(super::mean::onnx_mean(cx.in_q(0), cx.out_q, s[1] * s[2])),
        }));
    }
    Ok(RtOp::AveragePool2d(pool(cx, w, clamp)?))
}

/// The runtime's pooling parameters of the node's window and clamp.
pub(super) fn pool(cx: &NodeCx<'_, '_>, w: &Window2d, clamp: Clamp) -> Result<Pool> {
    let (act_min, act_max) = cx.act_range(clamp);
    let activation = cx.activation(clamp)?;
    Ok(Pool {
        input: cx.input(0),
        output: cx.output(),
        filter_h: w.kernel[0] as u16,
        filter_w: w.kernel[1] as u16,
        window: window(w)?,
        activation,
        act_min,
        act_max,
    })
}

pub(super) fn export(
    window: &Window2d,
    clamp: Clamp,
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    pool_export("AveragePool", window, clamp, e, n)
}

/// An ONNX pooling operator over the node's window, then the clamp.
pub(super) fn pool_export(
    op: &str,
    window: &Window2d,
    clamp: Clamp,
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    ensure!(
        window.dilation == [1, 1],
        "pooling with dilations {:?} is not exported (ONNX AveragePool has none at opset {OPSET})",
        window.dilation
    );
    let x = e.nchw(n.inputs[0])?;
    let y = e.op(op, name, vec![x], window_attrs(window, false));
    Ok((e.clamp(y, clamp, name), Layout::Nchw))
}
