//! Logistic (sigmoid); its int8 output is fixed at scale 1/256, zero point -128.

use ferrite_runtime::ops::{LogisticParams, Op as RtOp, Unary};

use super::NodeCx;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    let p = cx.in_q(0);
    RtOp::Logistic(Unary {
        input: cx.input(0),
        output: cx.output(),
        quant: (!cx.float).then(|| LogisticParams::prepare(p.scale, p.zero_point)),
    })
}
