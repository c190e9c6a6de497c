//! AveragePool2d and MaxPool2d: the runtime's pooling over the node's window. Under ONNX semantics
//! a global int8 average pool becomes a Mean instead.

use anyhow::Result;
use ferrite_runtime::ops::{Op as RtOp, Pool, Unary};

use super::{mean, NodeCx, Requantization};
use crate::ir::{Clamp, Window2d};

/// Whether a pooling window over an NHWC `input` covers the whole of H and W in one step.
pub(crate) fn global_pool(w: &Window2d, input: &[usize]) -> bool {
    input.len() == 4 && w.kernel == [input[1], input[2]] && w.dilation == [1, 1] && w.pads == [0; 4]
}

pub(super) fn average<'a>(cx: &NodeCx<'_, 'a>, w: &Window2d, clamp: Clamp) -> Result<RtOp<'a>> {
    if !cx.float
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
            quant: Some(mean::onnx_mean(cx.in_q(0), cx.out_q, s[1] * s[2])),
        }));
    }
    Ok(RtOp::AveragePool2d(pool(cx, w, clamp)?))
}

pub(super) fn max<'a>(cx: &NodeCx<'_, 'a>, w: &Window2d, clamp: Clamp) -> Result<RtOp<'a>> {
    Ok(RtOp::MaxPool2d(pool(cx, w, clamp)?))
}

fn pool(cx: &NodeCx<'_, '_>, w: &Window2d, clamp: Clamp) -> Result<Pool> {
    let (act_min, act_max) = cx.act_range(clamp);
    let activation = cx.activation(clamp)?;
    Ok(Pool {
        input: cx.input(0),
        output: cx.output(),
        filter_h: w.kernel[0] as u16,
        filter_w: w.kernel[1] as u16,
        window: super::window(w)?,
        activation,
        act_min,
        act_max,
    })
}
