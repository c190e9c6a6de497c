//! Slice: the box of the input that starts at `begin` with `size` elements per dimension (the
//! batch whole); ONNX Slice with steps of 1 and each output of Split. The runtime stores the box's
//! start in up to four dimensions.

use anyhow::{ensure, Result};
use ferrite_runtime::ops::{Op as RtOp, Slice};

use super::{Channels, OutputQuant};
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{nhwc, Tensor, View};
use crate::ir::shape::arity;
use crate::ir::Node;
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

/// Conservatively mixed: equalization and filter pruning do not look through a box.
pub(super) const CHANNELS: Channels<'static> = Channels::Mixed;

pub(super) fn shape(begin: &[usize], size: &[usize], inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    ensure!(
        begin.len() == x.len() && size.len() == x.len() && (1..=4).contains(&x.len()),
        "slice of rank {} for input {x:?}",
        begin.len()
    );
    ensure!(begin[0] == 0, "slicing the batch dimension");
    for d in 1..x.len() {
        ensure!(
            size[d] >= 1 && begin[d] + size[d] <= x[d],
            "slice [{}, {}) of axis {d} of {x:?}",
            begin[d],
            begin[d] + size[d]
        );
    }
    let mut out = size.to_vec();
    out[0] = x[0];
    Ok(out)
}

/// `v` as four NHWC values, missing leading dimensions 0.
fn four(v: &[usize]) -> [usize; 4] {
    let mut b = [0; 4];
    b[4 - v.len()..].copy_from_slice(v);
    b
}

/// Visits each row along C of the box: its start in the input and in the output.
fn rows(begin: &[usize], input: &[usize], output: &[usize], mut f: impl FnMut(usize, usize)) {
    let (i, o) = (nhwc(input).unwrap(), nhwc(output).unwrap());
    let b = four(begin);
    for n in 0..o.n {
        for y in 0..o.h {
            for x in 0..o.w {
                f(
                    i.index(n + b[0], y + b[1], x + b[2], b[3]),
                    o.index(n, y, x, 0),
                );
            }
        }
    }
}

pub(super) fn eval(begin: &[usize], inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let x = inputs[0];
    let c = *out.shape.last().unwrap_or(&1);
    let shape = out.shape.clone();
    rows(begin, x.shape, &shape, |src, dst| {
        out.data[dst..dst + c].copy_from_slice(&x.data[src..src + c]);
    });
    Ok(())
}

/// The output's gradient placed in the box, zero elsewhere.
pub(super) fn backward(begin: &[usize], g: &Grad<'_>) -> Result<OpGrads> {
    if !g.need[0] {
        return Ok(OpGrads::input(None));
    }
    let x = g.inputs[0].shape;
    let c = *g.out_shape.last().unwrap_or(&1);
    let mut dx = vec![0.0f32; x.iter().product()];
    rows(begin, x, g.out_shape, |src, dst| {
        dx[src..src + c].copy_from_slice(&g.dy[dst..dst + c]);
    });
    Ok(OpGrads::input(Some(dx)))
}

pub(super) fn lower<'a>(begin: &[usize], cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let b = four(begin);
    ensure!(
        b.iter().all(|&v| v <= u16::MAX as usize),
        "node `{}`: slice start {begin:?} beyond 65535",
        cx.node.name
    );
    Ok(RtOp::Slice(Slice {
        input: cx.input(0),
        output: cx.output(),
        begin: b.map(|v| v as u16),
    }))
}

pub(super) fn export(
    begin: &[usize],
    size: &[usize],
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let (x, l) = e.act(n.inputs[0])?;
    let (x, l, axes): (String, Layout, Vec<usize>) = match l {
        // IR axes H, W, C are the file's 2, 3, 1.
        Layout::Nchw => (x, l, vec![0, 2, 3, 1]),
        _ => {
            let xs = e.g.values[n.inputs[0]].shape.clone();
            let x = e.in_ir_order(x, l, &xs, &format!("{name}/to_hwc"));
            (x, Layout::Same, (0..begin.len()).collect())
        }
    };
    let (mut starts, mut ends, mut file_axes) = (Vec::new(), Vec::new(), Vec::new());
    for d in 1..begin.len() {
        starts.push(begin[d] as i64);
        ends.push((begin[d] + size[d]) as i64);
        file_axes.push(axes[d] as i64);
    }
    let s = e.init_i64(&format!("{name}/starts"), &starts);
    let t = e.init_i64(&format!("{name}/ends"), &ends);
    let a = e.init_i64(&format!("{name}/axes"), &file_axes);
    Ok((e.op("Slice", name, vec![x, s, t, a], vec![]), l))
}
