//! DepthToSpace: each pixel's `bh * bw * c` channels become a `bh x bw` block of pixels of `c`
//! channels, in TFLite's (ONNX DCR) or ONNX's CRD channel order; ONNX DepthToSpace, and the second
//! half of a transposed convolution (a convolution whose output channels are the block's phases).

use anyhow::{bail, ensure, Result};
use ferrite_runtime::ops::depth_to_space::depth_to_space;
use ferrite_runtime::ops::{DepthToSpace, Op as RtOp};

use super::{Channels, OutputQuant};
use crate::export::{a_int, a_str, Exporter, Layout};
use crate::ir::float_exec::{nhwc, Tensor, View};
use crate::ir::shape::arity;
use crate::ir::Node;
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;
/// Output channels are input channels of different pixels: the passes do not look through it.
pub(super) const CHANNELS: Channels<'static> = Channels::Mixed;

pub(super) fn shape(block: [usize; 2], inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    ensure!(x.len() == 4, "input of rank {} (NHWC required)", x.len());
    let [bh, bw] = block;
    ensure!(
        bh >= 1 && bw >= 1 && x[3].is_multiple_of(bh * bw),
        "blocks of {bh}x{bw} pixels from {} channels",
        x[3]
    );
    Ok(vec![x[0], x[1] * bh, x[2] * bw, x[3] / (bh * bw)])
}

pub(super) fn eval(
    block: [usize; 2],
    crd: bool,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    let x = inputs[0];
    depth_to_space(nhwc(x.shape)?, block, crd, x.data, &mut out.data);
    Ok(())
}

/// The output's gradient moved back to the input element each output element copies.
pub(super) fn backward(block: [usize; 2], crd: bool, g: &Grad<'_>) -> Result<OpGrads> {
    if !g.need[0] {
        return Ok(OpGrads::input(None));
    }
    let i = nhwc(g.inputs[0].shape)?;
    // The forward copy of each input element's index tells where its gradient comes from.
    let index: Vec<usize> = (0..i.len()).collect();
    let mut from = vec![0usize; i.len()];
    depth_to_space(i, block, crd, &index, &mut from);
    let mut dx = vec![0f32; i.len()];
    for (&src, &d) in from.iter().zip(g.dy) {
        dx[src] = d;
    }
    Ok(OpGrads::input(Some(dx)))
}

pub(super) fn lower<'a>(block: [usize; 2], crd: bool, cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let [bh, bw] = block.map(|b| u8::try_from(b).ok());
    let (Some(bh), Some(bw)) = (bh, bw) else {
        bail!(
            "node `{}`: blocks of {}x{} pixels (at most 255)",
            cx.node.name,
            block[0],
            block[1]
        );
    };
    Ok(RtOp::DepthToSpace(DepthToSpace {
        input: cx.input(0),
        output: cx.output(),
        block: [bh, bw],
        crd,
    }))
}

/// Square blocks as ONNX DepthToSpace; blocks one row high (a 1-D transposed convolution's) as the
/// reshape they are in NHWC order, `[n, h, w, bw * c]` to `[n, h, w * bw, c]`.
pub(super) fn export(
    block: [usize; 2],
    crd: bool,
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    if block[0] == block[1] {
        let x = e.nchw(n.inputs[0])?;
        let attrs = vec![
            a_int("blocksize", block[0] as i64),
            a_str("mode", if crd { "CRD" } else { "DCR" }),
        ];
        return Ok((e.op("DepthToSpace", name, vec![x], attrs), Layout::Nchw));
    }
    ensure!(
        block[0] == 1 && !crd,
        "node `{name}`: blocks of {}x{} pixels have no ONNX form (square blocks, or one row in DCR order)",
        block[0],
        block[1]
    );
    let v = n.inputs[0];
    let (x, l) = e.act(v)?;
    let xs = e.g.values[v].shape.clone();
    let x = e.in_ir_order(x, l, &xs, &format!("{name}/to_hwc"));
    let out = e.g.values[n.output].shape.clone();
    let dims = [0, out[1] as i64, out[2] as i64, out[3] as i64];
    let y = e.reshape(x, &dims, &format!("{name}/rows"));
    Ok(e.ir_to_nchw(y, &out, name))
}
