//! Mul: element-wise product with broadcasting; int8 products requantized to the output's scale.

use anyhow::Result;
use ferrite_runtime::ops::{MulParams, Op as RtOp};

use super::NodeCx;
use crate::ir::Clamp;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>, clamp: Clamp) -> Result<RtOp<'a>> {
    super::add::binary(cx, clamp, MulParams::prepare).map(RtOp::Mul)
}
