//! DepthwiseConv2d: each input channel convolved with its own `depth_multiplier` filters (`[1, kh, kw,
//! out_c]`). Lowers to DEPTHWISE_CONV_2D, exports as a grouped ONNX Conv.

use anyhow::{ensure, Result};
use ferrite_runtime::ops::Op as RtOp;

use super::conv2d::Conv2dExport;
use super::OutputQuant;
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{finish, geometry, kernels, split_clamp, Tensor, View};
use crate::ir::shape::{arity, window_out};
use crate::ir::{Clamp, Node, Param, Window2d};
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn shape(
    window: &Window2d,
    depth_multiplier: usize,
    filter: &Param,
    bias: &Param,
    inputs: &[&[usize]],
) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    ensure!(x.len() == 4, "input of rank {} (NHWC required)", x.len());
    let out_c = x[3] * depth_multiplier;
    ensure!(
        filter.shape == [1, window.kernel[0], window.kernel[1], out_c],
        "filter {:?} does not fit input {x:?}",
        filter.shape
    );
    ensure!(
        bias.data.len() == out_c,
        "bias of {} for {out_c} channels",
        bias.data.len()
    );
    window_out(window, x, out_c)
}

pub(super) fn eval(
    window: &Window2d,
    depth_multiplier: usize,
    filter: &Param,
    bias: &Param,
    clamp: Clamp,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    let x = inputs[0];
    let g = geometry(window, x.shape, &out.shape)?;
    let (act, rest) = split_clamp(clamp);
    kernels::depthwise_conv2d(
        &g,
        depth_multiplier,
        act,
        x.data,
        &filter.data,
        &bias.data,
        &mut out.data,
    );
    finish(clamp, rest, &mut out.data);
    Ok(())
}

pub(super) fn backward(
    window: &Window2d,
    depth_multiplier: usize,
    filter: &Param,
    g: &Grad<'_>,
) -> Result<OpGrads> {
    let x = g.inputs[0];
    let geo = geometry(window, x.shape, g.out_shape)?;
    Ok(OpGrads::weighted(
        crate::train::backward::kernels::depthwise_conv2d(
            &geo,
            depth_multiplier,
            x.data,
            &filter.data,
            g.dy,
            g.need[0],
        ),
    ))
}

pub(super) fn lower<'a>(
    w: &Window2d,
    depth_multiplier: usize,
    filter: &Param,
    clamp: Clamp,
    cx: &NodeCx<'_, 'a>,
) -> Result<RtOp<'a>> {
    super::conv2d::convolution(w, filter, clamp, depth_multiplier, cx).map(RtOp::DepthwiseConv2d)
}

pub(super) fn export(
    window: &Window2d,
    filter: &Param,
    bias: &Param,
    clamp: Clamp,
    e: &mut Exporter<'_>,
    i: usize,
    n: &Node,
) -> Result<(String, Layout)> {
    let c = e.g.values[n.inputs[0]].shape[3];
    let s = &filter.shape;
    let (kh, kw, m) = (s[1], s[2], s[3]);
    let mut perm = Vec::with_capacity(filter.data.len());
    for oc in 0..m {
        for y in 0..kh {
            for xx in 0..kw {
                perm.push((y * kw + xx) * m + oc);
            }
        }
    }
    let conv = Conv2dExport {
        window,
        filter,
        bias,
        clamp,
        dims: &[m, 1, kh, kw],
        perm: &perm,
        group: c,
    };
    conv.write(e, i, n)
}
