//! Mul: element-wise product with broadcasting; int8 products requantized to the output's scale.

use anyhow::Result;
use ferrite_runtime::ops::{Binary, MulParams, Op as RtOp};

use super::NodeCx;
use crate::ir::Clamp;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>, clamp: Clamp) -> Result<RtOp<'a>> {
    let (lo, hi) = cx.act_range(clamp);
    let activation = cx.activation(clamp)?;
    let (p1, p2, out) = (cx.in_q(0), cx.in_q(1), cx.out_q);
    let quant = (!cx.float).then(|| {
        MulParams::prepare(
            p1.scale,
            p1.zero_point,
            p2.scale,
            p2.zero_point,
            out.scale,
            out.zero_point,
            lo,
            hi,
        )
    });
    Ok(RtOp::Mul(Binary {
        a: cx.input(0),
        b: cx.input(1),
        output: cx.output(),
        activation,
        quant,
    }))
}
