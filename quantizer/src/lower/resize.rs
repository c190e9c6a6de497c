//! ResizeNearest: TFLite's RESIZE_NEAREST_NEIGHBOR; the output keeps the input's quantization.

use ferrite_runtime::ops::{Op as RtOp, ResizeNearestNeighbor};

use super::NodeCx;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    RtOp::ResizeNearestNeighbor(ResizeNearestNeighbor {
        input: cx.input(0),
        output: cx.output(),
    })
}
