//! Tanh; its int8 output is fixed at scale 1/128, zero point 0.

use ferrite_runtime::ops::{Op as RtOp, TanhParams, Unary};

use super::NodeCx;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    let p = cx.in_q(0);
    RtOp::Tanh(Unary {
        input: cx.input(0),
        output: cx.output(),
        quant: (!cx.float).then(|| TanhParams::prepare(p.scale, p.zero_point)),
    })
}
