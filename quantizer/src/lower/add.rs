//! Add: element-wise sum with broadcasting; int8 operands rescaled to a common scale as TFLite does.

use anyhow::Result;
use ferrite_runtime::ops::{AddParams, Binary, Op as RtOp};

use super::NodeCx;
use crate::ir::Clamp;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>, clamp: Clamp) -> Result<RtOp<'a>> {
    binary(cx, clamp, AddParams::prepare).map(RtOp::Add)
}

/// An element-wise binary operator (Add, Mul): its operands, fused activation and, for int8, the
/// parameters `prepare` computes from both inputs' and the output's quantization and the clamp.
pub(super) fn binary<P>(
    cx: &NodeCx<'_, '_>,
    clamp: Clamp,
    prepare: fn(f32, i32, f32, i32, f32, i32, i32, i32) -> P,
) -> Result<Binary<P>> {
    let (lo, hi) = cx.act_range(clamp);
    let activation = cx.activation(clamp)?;
    let (p1, p2, out) = (cx.in_q(0), cx.in_q(1), cx.out_q);
    let quant = (!cx.float).then(|| {
        prepare(
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
    Ok(Binary {
        a: cx.input(0),
        b: cx.input(1),
        output: cx.output(),
        activation,
        quant,
    })
}
