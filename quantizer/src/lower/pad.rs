//! Pad: zero padding (the zero point for int8) before and after each dimension; the runtime stores
//! the leading amounts of up to four dimensions.

use anyhow::{ensure, Result};
use ferrite_runtime::ops::{Op as RtOp, Pad};

use super::NodeCx;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>, before: &[usize]) -> Result<RtOp<'a>> {
    ensure!(
        before.len() <= 4,
        "node `{}`: pad of rank {}",
        cx.node.name,
        before.len()
    );
    let mut padded = [0u16; 4];
    for (k, &p) in before.iter().enumerate() {
        padded[4 - before.len() + k] = p as u16;
    }
    Ok(RtOp::Pad(Pad {
        input: cx.input(0),
        output: cx.output(),
        before: padded,
    }))
}
