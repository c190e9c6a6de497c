//! Concatenation: each int8 input quantized differently from the output is requantized on the way.

use ferrite_runtime::format::Seq;
use ferrite_runtime::ops::{ConcatInput, Concatenation, Op as RtOp, RequantizeParams};

use super::NodeCx;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>, axis: usize) -> RtOp<'a> {
    let out = cx.out_q;
    let parts: Vec<ConcatInput> = (0..cx.ins.len())
        .map(|k| {
            let p = cx.in_q(k);
            let requant = (!cx.float && (p.scale != out.scale || p.zero_point != out.zero_point))
                .then(|| {
                    RequantizeParams::prepare(p.scale, p.zero_point, out.scale, out.zero_point)
                });
            ConcatInput {
                input: cx.input(k),
                requant,
            }
        })
        .collect();
    RtOp::Concatenation(Concatenation {
        inputs: Seq::from(parts),
        output: cx.output(),
        axis: axis as u8,
    })
}
