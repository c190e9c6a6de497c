//! MaxPool2d: the maximum over each window, with a fused clamp. The window code is AveragePool2d's
//! (`average_pool2d.rs`).

use anyhow::Result;
use ferrite_runtime::ops::Op as RtOp;

use super::average_pool2d::{pool, pool_backward, pool_eval, pool_export};
use super::{Channels, OutputQuant};
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{kernels, Tensor, View};
use crate::ir::{Clamp, Node, Window2d};
use crate::lower::NodeCx;
use crate::train::backward::kernels as backward_kernels;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn channels(clamp: Clamp) -> Channels<'static> {
    super::average_pool2d::channels(clamp)
}

pub(super) fn shape(window: &Window2d, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    super::average_pool2d::shape(window, inputs)
}

pub(super) fn eval(
    window: &Window2d,
    clamp: Clamp,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    pool_eval(kernels::max_pool2d, window, clamp, inputs, out)
}

pub(super) fn backward(window: &Window2d, g: &Grad<'_>) -> Result<OpGrads> {
    pool_backward(backward_kernels::max_pool2d, window, g)
}

pub(super) fn lower<'a>(w: &Window2d, clamp: Clamp, cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    Ok(RtOp::MaxPool2d(pool(cx, w, clamp)?))
}

pub(super) fn export(
    window: &Window2d,
    clamp: Clamp,
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    pool_export("MaxPool", window, clamp, e, n)
}
