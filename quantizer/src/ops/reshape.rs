//! Reshape: the same elements under a new shape (`shape[0]`, the batch, follows the input's). The
//! runtime hands the bytes over in place.

use anyhow::{ensure, Result};
use ferrite_runtime::ops::{Op as RtOp, Reshape};

use super::OutputQuant;
use crate::export::{a_int, ir_order, Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::shape::arity;
use crate::ir::Node;
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn shape(shape: &[usize], inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    ensure!(
        !shape.is_empty() && !x.is_empty(),
        "reshape to or from a scalar"
    );
    let per_in: usize = x[1..].iter().product();
    let per_out: usize = shape[1..].iter().product();
    ensure!(per_in == per_out, "cannot reshape {x:?} to {shape:?}");
    let mut out = shape.to_vec();
    out[0] = x[0];
    Ok(out)
}

pub(super) fn eval(inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    out.data.copy_from_slice(inputs[0].data);
    Ok(())
}

pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    Ok(OpGrads::input(g.need[0].then(|| g.dy.to_vec())))
}

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    RtOp::Reshape(Reshape {
        input: cx.input(0),
        output: cx.output(),
    })
}

/// A flatten of a spatial tensor stays in the file's CHW order; other reshapes work on the IR's
/// element order.
pub(super) fn export(shape: &[usize], e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let v = n.inputs[0];
    let (x, l) = e.act(v)?;
    let xs = e.g.values[v].shape.clone();
    if l == Layout::Nchw
        && !ir_order(l, &xs)
        && shape.len() == 2
        && shape[1] == xs[1] * xs[2] * xs[3]
    {
        let y = e.op("Flatten", name, vec![x], vec![a_int("axis", 1)]);
        let (h, w, c) = (xs[1], xs[2], xs[3]);
        return Ok((y, Layout::Flat { c, h, w }));
    }
    if l == Layout::Nchw && shape.len() == 4 && shape[3] == xs[3] {
        // Positions regrouped, channels kept: the same reshape in NCHW terms.
        let d = [0, shape[3] as i64, shape[1] as i64, shape[2] as i64];
        return Ok((e.reshape(x, &d, name), Layout::Nchw));
    }
    let x = if ir_order(l, &xs) {
        x
    } else {
        e.in_ir_order(x, l, &xs, &format!("{name}/to_hwc"))
    };
    Ok(match shape.len() {
        4 if ir_order(Layout::Nchw, shape) => {
            let d = [0, shape[3] as i64, shape[1] as i64, shape[2] as i64];
            (e.reshape(x, &d, name), Layout::Nchw)
        }
        4 => {
            let d = [0, shape[1] as i64, shape[2] as i64, shape[3] as i64];
            let y = e.reshape(x, &d, &format!("{name}/nhwc"));
            e.ir_to_nchw(y, shape, name)
        }
        2 => (
            e.op("Flatten", name, vec![x], vec![a_int("axis", 1)]),
            Layout::Same,
        ),
        _ => {
            let mut d = vec![0i64];
            d.extend(shape[1..].iter().map(|&s| s as i64));
            (e.reshape(x, &d, name), Layout::Same)
        }
    })
}
