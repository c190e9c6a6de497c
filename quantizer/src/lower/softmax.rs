//! Softmax over the last axis; its int8 output is fixed at scale 1/256, zero point -128.

use ferrite_runtime::ops::{Op as RtOp, Softmax, SoftmaxParams};

use super::NodeCx;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>, beta: f32) -> RtOp<'a> {
    let quant = (!cx.float).then(|| SoftmaxParams::prepare(beta, cx.in_q(0).scale));
    RtOp::Softmax(Softmax {
        input: cx.input(0),
        output: cx.output(),
        beta,
        quant,
    })
}
