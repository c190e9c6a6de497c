//! Pad: zero padding (the zero point for int8) `before` and `after` each dimension; the runtime
//! stores the leading amounts of up to four dimensions.

use anyhow::{ensure, Context, Result};
use ferrite_runtime::ops::{Op as RtOp, Pad};

use super::{Channels, OutputQuant};
use crate::export::{Exporter, Layout};
use crate::import::onnx::proto::AttributeProto;
use crate::ir::float_exec::{nhwc, Tensor, View};
use crate::ir::shape::arity;
use crate::ir::Node;
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn channels(before: &[usize], after: &[usize]) -> Channels<'static> {
    Channels::Padded {
        channels: before.last() != Some(&0) || after.last() != Some(&0),
    }
}

pub(super) fn shape(before: &[usize], after: &[usize], inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    ensure!(
        before.len() == x.len() && after.len() == x.len(),
        "padding of rank {} for input {x:?}",
        before.len()
    );
    ensure!(
        before[0] == 0 && after[0] == 0,
        "padding the batch dimension"
    );
    x.iter()
        .zip(before)
        .zip(after)
        .map(|((d, b), a)| d.checked_add(*b)?.checked_add(*a))
        .collect::<Option<Vec<_>>>()
        .context("padding overflows")
}

/// `before` as four NHWC amounts, missing leading dimensions 0.
pub(super) fn before4(before: &[usize]) -> [usize; 4] {
    let mut b = [0usize; 4];
    b[4 - before.len()..].copy_from_slice(before);
    b
}

pub(super) fn eval(before: &[usize], inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let x = inputs[0];
    let (i, o) = (nhwc(x.shape)?, nhwc(&out.shape)?);
    let b = before4(before);
    for n in 0..i.n {
        for y in 0..i.h {
            for xx in 0..i.w {
                let src = i.index(n, y, xx, 0);
                let dst = o.index(n + b[0], y + b[1], xx + b[2], b[3]);
                out.data[dst..dst + i.c].copy_from_slice(&x.data[src..src + i.c]);
            }
        }
    }
    Ok(())
}

/// The output's gradient cropped to the input.
pub(super) fn backward(before: &[usize], g: &Grad<'_>) -> Result<OpGrads> {
    if !g.need[0] {
        return Ok(OpGrads::input(None));
    }
    let (i, o) = (nhwc(g.inputs[0].shape)?, nhwc(g.out_shape)?);
    let b = before4(before);
    let mut dx = vec![0.0f32; i.len()];
    for n in 0..i.n {
        for y in 0..i.h {
            for x in 0..i.w {
                let dst = i.index(n, y, x, 0);
                let src = o.index(n + b[0], y + b[1], x + b[2], b[3]);
                dx[dst..dst + i.c].copy_from_slice(&g.dy[src..src + i.c]);
            }
        }
    }
    Ok(OpGrads::input(Some(dx)))
}

pub(super) fn lower<'a>(before: &[usize], cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
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

pub(super) fn export(
    before: &[usize],
    after: &[usize],
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    export_with(before, after, vec![], e, n)
}

/// ONNX Pad with the attributes `attrs` (its mode).
pub(super) fn export_with(
    before: &[usize],
    after: &[usize],
    attrs: Vec<AttributeProto>,
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let (x, l) = e.act(n.inputs[0])?;
    let (x, l, before, after) = match l {
        Layout::Nchw => {
            let nchw = |p: &[usize]| vec![p[0], p[3], p[1], p[2]];
            (x, l, nchw(before), nchw(after))
        }
        _ => {
            let xs = e.g.values[n.inputs[0]].shape.clone();
            let x = e.in_ir_order(x, l, &xs, &format!("{name}/to_hwc"));
            (x, Layout::Same, before.to_vec(), after.to_vec())
        }
    };
    let pads: Vec<i64> = before.iter().chain(&after).map(|&p| p as i64).collect();
    let p = e.init_i64(&format!("{name}/pads"), &pads);
    Ok((e.op("Pad", name, vec![x, p], attrs), l))
}
