//! Transpose: the input's axes in another order (output axis `i` is input axis `perm[i]`, the batch
//! first); TFLite TRANSPOSE, and the movements the ONNX importer follows that are one (a channel
//! shuffle: `[n, h * w, g, c / g]` to `[n, h * w, c / g, g]`).

use anyhow::{ensure, Result};
use ferrite_runtime::ops::transpose::transpose;
use ferrite_runtime::ops::{Op as RtOp, Transpose};

use super::{Channels, OutputQuant};
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::shape::arity;
use crate::ir::Node;
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;
/// Elements change places across axes: the passes do not look through it.
pub(super) const CHANNELS: Channels<'static> = Channels::Mixed;

pub(super) fn shape(perm: &[usize], inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    let mut sorted = perm.to_vec();
    sorted.sort_unstable();
    ensure!(
        (1..=4).contains(&x.len()) && sorted == (0..x.len()).collect::<Vec<_>>(),
        "perm {perm:?} for input {x:?}"
    );
    ensure!(perm[0] == 0, "transposing the batch dimension");
    Ok(perm.iter().map(|&p| x[p]).collect())
}

/// `shape` and `perm` as the runtime's four NHWC-aligned dimensions (lower ranks padded in front).
fn four(shape: &[usize], perm: &[usize]) -> ([usize; 4], [usize; 4]) {
    let pad = 4 - shape.len();
    let mut s = [1; 4];
    s[pad..].copy_from_slice(shape);
    let mut p = [0, 1, 2, 3];
    for (i, &a) in perm.iter().enumerate() {
        p[pad + i] = pad + a;
    }
    (s, p)
}

pub(super) fn eval(perm: &[usize], inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let x = inputs[0];
    let (s, p) = four(x.shape, perm);
    transpose(s, p, x.data, &mut out.data);
    Ok(())
}

/// The output's gradient moved back to the input element each output element copies.
pub(super) fn backward(perm: &[usize], g: &Grad<'_>) -> Result<OpGrads> {
    if !g.need[0] {
        return Ok(OpGrads::input(None));
    }
    let x = g.inputs[0].shape;
    let (s, p) = four(x, perm);
    let index: Vec<usize> = (0..x.iter().product()).collect();
    let mut from = vec![0usize; index.len()];
    transpose(s, p, &index, &mut from);
    let mut dx = vec![0f32; index.len()];
    for (&src, &d) in from.iter().zip(g.dy) {
        dx[src] = d;
    }
    Ok(OpGrads::input(Some(dx)))
}

pub(super) fn lower<'a>(perm: &[usize], cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let (_, p) = four(&perm.iter().map(|_| 1).collect::<Vec<_>>(), perm);
    Ok(RtOp::Transpose(Transpose {
        input: cx.input(0),
        output: cx.output(),
        perm: p.map(|a| a as u8),
    }))
}

/// ONNX Transpose of the input in the IR's order (a rank-4 result then as NCHW, as the exporter
/// keeps rank-4 values).
pub(super) fn export(perm: &[usize], e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let v = n.inputs[0];
    let (x, l) = e.act(v)?;
    let xs = e.g.values[v].shape.clone();
    let x = e.in_ir_order(x, l, &xs, &format!("{name}/to_hwc"));
    let attrs = vec![crate::export::a_ints("perm", perm)];
    let out = e.g.values[n.output].shape.clone();
    let y = e.op("Transpose", &format!("{name}/ir"), vec![x], attrs);
    Ok(e.ir_to_nchw(y, &out, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_ranks_are_padded_in_front() {
        assert_eq!(four(&[2, 3, 4], &[0, 2, 1]), ([1, 2, 3, 4], [0, 1, 3, 2]));
        assert_eq!(four(&[5, 6], &[0, 1]), ([1, 1, 5, 6], [0, 1, 2, 3]));
    }
}
