//! Sub: element-wise difference (first operand minus second) with broadcasting and a fused clamp;
//! int8 and int16 operands are rescaled to a common scale as TFLite's SUB does. The broadcasting
//! code is Add's (`add.rs`).

use anyhow::Result;
use ferrite_runtime::ops::{AddParams, Op as RtOp};

use super::add::{binary, binary_backward, binary_eval, binary_export, Arith};
use super::OutputQuant;
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::{Clamp, Node};
use crate::lower::{NodeCx, Precision};
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    super::add::shape(inputs)
}

pub(super) fn eval(clamp: Clamp, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    binary_eval(Arith::Sub, clamp, inputs, out)
}

pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    binary_backward(Arith::Sub, g)
}

/// Add's parameters (TFLite Micro prepares SUB as ADD).
pub(super) fn lower<'a>(clamp: Clamp, cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let prepare = if cx.precision == Precision::Int16 {
        AddParams::prepare_int16
    } else {
        AddParams::prepare
    };
    binary(cx, clamp, prepare).map(RtOp::Sub)
}

pub(super) fn export(clamp: Clamp, e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    binary_export("Sub", clamp, e, n)
}
