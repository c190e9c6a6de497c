//! FullyConnected: the runtime's matrix product with the node's weights and per-channel
//! requantization.

use anyhow::Result;
use ferrite_runtime::ops::{FullyConnected, Op as RtOp, SparseFullyConnected};

use super::NodeCx;
use crate::ir::Clamp;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>, clamp: Clamp) -> Result<RtOp<'a>> {
    let (act_min, act_max) = cx.act_range(clamp);
    let d = cx.data;
    let fc = FullyConnected {
        input: cx.input(0),
        output: cx.output(),
        activation: cx.activation(clamp)?,
        act_min,
        act_max,
        filter: &d.filter,
        bias: &d.bias,
        multiplier: &d.multiplier,
        shift: &d.shift,
    };
    Ok(if d.block > 0 {
        RtOp::FullyConnectedSparse(SparseFullyConnected {
            fc,
            block: d.block,
            mask: &d.mask,
        })
    } else {
        RtOp::FullyConnected(fc)
    })
}
