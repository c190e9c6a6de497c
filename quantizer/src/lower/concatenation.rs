//! Concatenation: each int8 input quantized differently from the output is requantized on the way.

use ferrite_runtime::format::Operand;
use ferrite_runtime::ops::{ConcatInput, RequantizeParams};

use super::NodeCx;

/// The inputs and the output of the node's Concatenation (the builder encodes the inputs once placed).
pub(super) fn lower(cx: &NodeCx<'_, '_>) -> (Vec<ConcatInput>, Operand) {
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
    (parts, cx.output())
}
