//! Concatenation along `axis` (not the batch); each int8 input quantized differently from the output
//! is requantized on the way.

use anyhow::{ensure, Context, Result};
use ferrite_runtime::ops::{ConcatInput, RequantizeParams};

use super::OutputQuant;
use crate::export::{a_int, Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::Node;
use crate::lower::{Lowered, NodeCx, Precision};
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn shape(axis: usize, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    ensure!(!inputs.is_empty(), "no inputs");
    let first = inputs[0];
    ensure!(
        axis > 0 && axis < first.len(),
        "axis {axis} of rank {}",
        first.len()
    );
    let mut out = first.to_vec();
    out[axis] = 0;
    for s in inputs {
        ensure!(
            s.len() == first.len()
                && s.iter()
                    .zip(first)
                    .enumerate()
                    .all(|(d, (a, b))| d == axis || a == b),
            "shapes {first:?} and {s:?} do not concatenate on axis {axis}"
        );
        out[axis] = out[axis].checked_add(s[axis]).context("size overflows")?;
    }
    Ok(out)
}

pub(super) fn eval(axis: usize, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let outer: usize = out.shape[..axis].iter().product();
    let inner: usize = out.shape[axis + 1..].iter().product();
    let mut at = 0;
    for o in 0..outer {
        for v in inputs {
            let chunk = v.shape[axis] * inner;
            out.data[at..at + chunk].copy_from_slice(&v.data[o * chunk..(o + 1) * chunk]);
            at += chunk;
        }
    }
    Ok(())
}

/// The output's gradient split into one per input (where needed).
pub(super) fn backward(axis: usize, g: &Grad<'_>) -> Result<OpGrads> {
    let outer: usize = g.out_shape[..axis].iter().product();
    let inner: usize = g.out_shape[axis + 1..].iter().product();
    let mut grads: Vec<Option<Vec<f32>>> = g
        .inputs
        .iter()
        .zip(g.need)
        .map(|(v, &n)| n.then(|| Vec::with_capacity(v.data.len())))
        .collect();
    let mut at = 0;
    for _ in 0..outer {
        for (v, gx) in g.inputs.iter().zip(&mut grads) {
            let chunk = v.shape[axis] * inner;
            if let Some(gx) = gx {
                gx.extend_from_slice(&g.dy[at..at + chunk]);
            }
            at += chunk;
        }
    }
    Ok(OpGrads::inputs(grads))
}

/// The inputs (the builder encodes them once placed) and the output of the node's Concatenation.
/// int16 inputs are copied as they are (TFLite Micro's int16 concatenation does not rescale), so
/// they need the output's scale.
pub(super) fn lower<'a>(axis: usize, cx: &NodeCx<'_, 'a>) -> Result<Lowered<'a>> {
    let out = cx.out_q;
    if cx.precision == Precision::Int16 {
        for k in 0..cx.ins.len() {
            let p = cx.in_q(k);
            ensure!(
                p.scale == out.scale,
                "node `{}`: int16 CONCATENATION input {k} has scale {} and the output {}; int16 inputs need the output's scale (they are copied unscaled, as TFLite Micro does)",
                cx.node.name,
                p.scale,
                out.scale
            );
        }
    }
    let inputs: Vec<ConcatInput> = (0..cx.ins.len())
        .map(|k| {
            let p = cx.in_q(k);
            let requant = (!cx.float && (p.scale != out.scale || p.zero_point != out.zero_point))
                .then(|| {
                    RequantizeParams::prepare(p.scale, p.zero_point, out.scale, out.zero_point)
                });
            ConcatInput {
                input: cx.input(k),
                requant,
            }
        })
        .collect();
    Ok(Lowered::Concatenation {
        inputs,
        output: cx.output(),
        axis: axis as u8,
    })
}

pub(super) fn export(axis: usize, e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (ins, l) = e.operands(n, false)?;
    let axis = if l == Layout::Nchw {
        [0, 2, 3, 1][axis]
    } else {
        axis
    };
    let attrs = vec![a_int("axis", axis as i64)];
    Ok((e.op("Concat", &n.name, ins, attrs), l))
}
