//! MirrorPad: padding by the input's own elements, `before` and `after` each dimension (ONNX Pad in
//! `reflect`, `edge` and `wrap` modes; TFLite MIRROR_PAD, REFLECT and SYMMETRIC). Lowers to
//! MIRROR_PAD in the input's quantization.

use anyhow::{bail, ensure, Result};
use ferrite_runtime::ops::mirror_pad::mirror_pad;
use ferrite_runtime::ops::{MirrorPad, Op as RtOp, PadMode};

use super::pad::before4;
use super::{Channels, OutputQuant};
use crate::export::{a_str, Exporter, Layout};
use crate::ir::float_exec::{nhwc, Tensor, View};
use crate::ir::Node;
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

/// Copies of the same channel keep a channel's scale; padding the channels mixes them.
pub(super) fn channels(before: &[usize], after: &[usize]) -> Channels<'static> {
    if before.last() != Some(&0) || after.last() != Some(&0) {
        Channels::Mixed
    } else {
        Channels::Kept {
            positive_scale: true,
        }
    }
}

pub(super) fn shape(
    before: &[usize],
    after: &[usize],
    mode: PadMode,
    inputs: &[&[usize]],
) -> Result<Vec<usize>> {
    let y = super::pad::shape(before, after, inputs)?;
    ensure!(y.len() <= 4, "padding a tensor of rank {}", y.len());
    for (d, &len) in inputs[0].iter().enumerate() {
        let max = mode.max_pad(len.max(1));
        ensure!(
            len >= 1 && before[d] <= max && after[d] <= max,
            "{mode:?} padding of {} and {} around {len} elements (at most {max} a side)",
            before[d],
            after[d]
        );
    }
    Ok(y)
}

pub(super) fn eval(
    before: &[usize],
    mode: PadMode,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    let x = inputs[0];
    let (i, o) = (nhwc(x.shape)?, nhwc(&out.shape)?);
    mirror_pad(i, o, before4(before), mode, x.data, &mut out.data);
    Ok(())
}

/// Each output element's gradient added to the input element it copies.
pub(super) fn backward(before: &[usize], mode: PadMode, g: &Grad<'_>) -> Result<OpGrads> {
    if !g.need[0] {
        return Ok(OpGrads::input(None));
    }
    let (i, o) = (nhwc(g.inputs[0].shape)?, nhwc(g.out_shape)?);
    let index: Vec<usize> = (0..i.len()).collect();
    let mut from = vec![0usize; o.len()];
    mirror_pad(i, o, before4(before), mode, &index, &mut from);
    let mut dx = vec![0f32; i.len()];
    for (&src, &d) in from.iter().zip(g.dy) {
        dx[src] += d;
    }
    Ok(OpGrads::input(Some(dx)))
}

pub(super) fn lower<'a>(before: &[usize], mode: PadMode, cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let mut padded = [0u16; 4];
    for (k, &p) in before.iter().enumerate() {
        let Ok(p) = u16::try_from(p) else {
            bail!("node `{}`: padding of {p} (at most 65535)", cx.node.name);
        };
        padded[4 - before.len() + k] = p;
    }
    Ok(RtOp::MirrorPad(MirrorPad {
        input: cx.input(0),
        output: cx.output(),
        before: padded,
        mode,
    }))
}

/// ONNX Pad in the matching mode (`wrap` from opset 19); SYMMETRIC has none.
pub(super) fn export(
    before: &[usize],
    after: &[usize],
    mode: PadMode,
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let onnx_mode = match mode {
        PadMode::Reflect => "reflect",
        PadMode::Edge => "edge",
        PadMode::Wrap => "wrap",
        PadMode::Symmetric => bail!("node `{name}`: symmetric padding has no ONNX Pad mode"),
    };
    super::pad::export_with(before, after, vec![a_str("mode", onnx_mode)], e, n)
}
