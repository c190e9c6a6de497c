//! Reshape: the same elements under the output's shape.

use ferrite_runtime::ops::{Op as RtOp, Reshape};

use super::NodeCx;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    RtOp::Reshape(Reshape {
        input: cx.input(0),
        output: cx.output(),
    })
}
