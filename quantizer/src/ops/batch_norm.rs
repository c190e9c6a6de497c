//! BatchNorm: a per-channel affine over the last axis, `x * scale[c] + shift[c]` (inference
//! BatchNormalization). The passes fold it into the preceding Conv/FullyConnected; one they cannot
//! fold is refused by lowering and export.

use anyhow::{bail, ensure, Result};
use ferrite_runtime::ops::Op as RtOp;

use super::{Channels, OutputQuant};
use crate::export::Layout;
use crate::ir::float_exec::{Tensor, View};
use crate::ir::shape::arity;
use crate::ir::{Node, Param};
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime has no int16x8 kernel for this operator.
pub(super) const INT16: bool = false;
pub(super) const CHANNELS: Channels<'static> = Channels::Kept {
    positive_scale: false,
};

pub(super) fn shape(scale: &Param, shift: &Param, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    let c = *x.last().unwrap_or(&0);
    ensure!(
        x.len() >= 2 && scale.data.len() == c && shift.data.len() == c,
        "{} channels for input {x:?}",
        scale.data.len()
    );
    Ok(x.to_vec())
}

pub(super) fn eval(
    scale: &Param,
    shift: &Param,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    let c = scale.data.len();
    for (o, xs) in out.data.chunks_mut(c).zip(inputs[0].data.chunks(c)) {
        for j in 0..c {
            o[j] = xs[j] * scale.data[j] + shift.data[j];
        }
    }
    Ok(())
}

/// Gradients of the input (where needed), and of scale and shift summed over every row.
pub(super) fn backward(scale: &Param, g: &Grad<'_>) -> Result<OpGrads> {
    let (scale, x, dy, need) = (&scale.data, g.inputs[0].data, g.dy, g.need[0]);
    let c = scale.len();
    let (mut d_scale, mut d_shift) = (vec![0.0f32; c], vec![0.0f32; c]);
    if c == 0 {
        return Ok(OpGrads {
            inputs: vec![need.then(Vec::new)],
            params: vec![d_scale, d_shift],
        });
    }
    for (xs, ds) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
        for j in 0..c {
            d_scale[j] += ds[j] * xs[j];
            d_shift[j] += ds[j];
        }
    }
    let dx = need.then(|| {
        dy.chunks_exact(c)
            .flat_map(|ds| ds.iter().zip(scale).map(|(&d, &s)| d * s))
            .collect()
    });
    Ok(OpGrads {
        inputs: vec![dx],
        params: vec![d_scale, d_shift],
    })
}

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    bail!(
        "node `{}` ({}) should have been removed by the passes",
        cx.node.name,
        cx.node.op.name()
    )
}

pub(super) fn export(n: &Node) -> Result<(String, Layout)> {
    bail!(
        "operator {} is not exported (run the graph through ir::passes::optimize first)",
        n.op.name()
    )
}
