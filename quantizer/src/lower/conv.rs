//! Conv2d and DepthwiseConv2d: the runtime's convolution with the node's window, weights and
//! per-channel requantization.

use anyhow::Result;
use ferrite_runtime::ops::{Conv, Op as RtOp, SparseConv};

use super::NodeCx;
use crate::ir::Op;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let (w, filter, clamp, depth_multiplier) = match &cx.node.op {
        Op::Conv2d {
            window,
            filter,
            clamp,
            ..
        } => (window, filter, *clamp, 1),
        Op::DepthwiseConv2d {
            window,
            depth_multiplier,
            filter,
            clamp,
            ..
        } => (window, filter, *clamp, *depth_multiplier),
        _ => unreachable!("conv::lower called on {}", cx.node.op.name()),
    };
    let (act_min, act_max) = cx.act_range(clamp);
    let activation = cx.activation(clamp)?;
    let d = cx.data;
    let conv = Conv {
        input: cx.input(0),
        output: cx.output(),
        kernel_h: filter.shape[1] as u16,
        kernel_w: filter.shape[2] as u16,
        window: super::window(w)?,
        depth_multiplier: depth_multiplier as u16,
        activation,
        act_min,
        act_max,
        filter: &d.filter,
        bias: &d.bias,
        multiplier: &d.multiplier,
        shift: &d.shift,
    };
    Ok(if matches!(cx.node.op, Op::DepthwiseConv2d { .. }) {
        RtOp::DepthwiseConv2d(conv)
    } else if d.block > 0 {
        RtOp::Conv2dSparse(SparseConv {
            conv,
            block: d.block,
            mask: &d.mask,
        })
    } else {
        RtOp::Conv2d(conv)
    })
}
