//! Conv2d: convolution over NHWC with a `[out_c, kh, kw, in_c]` filter, a bias and a fused clamp.
//! Lowers to CONV_2D (or CONV_2D_SPARSE where the filter's zero blocks take fewer bytes), exports as
//! an ONNX Conv with OIHW weights.

use anyhow::{ensure, Result};
use ferrite_runtime::ops::{Conv, Op as RtOp, SparseConv};

use super::OutputQuant;
use crate::export::{a_int, window_attrs, Exporter, Layout};
use crate::ir::float_exec::{finish, geometry, kernels, split_clamp, Tensor, View};
use crate::ir::shape::{arity, window_out};
use crate::ir::{Clamp, Node, Param, Window2d};
use crate::lower::{window, NodeCx};
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn shape(
    window: &Window2d,
    filter: &Param,
    bias: &Param,
    inputs: &[&[usize]],
) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    ensure!(
        filter.shape.len() == 4,
        "filter of rank {}",
        filter.shape.len()
    );
    ensure!(
        x.len() == 4 && x[3] == filter.shape[3],
        "input {x:?} does not fit filter {:?}",
        filter.shape
    );
    ensure!(
        window.kernel == [filter.shape[1], filter.shape[2]],
        "kernel size differs from the filter's"
    );
    ensure!(
        bias.data.len() == filter.shape[0],
        "bias of {} for {} channels",
        bias.data.len(),
        filter.shape[0]
    );
    window_out(window, x, filter.shape[0])
}

pub(super) fn eval(
    window: &Window2d,
    filter: &Param,
    bias: &Param,
    clamp: Clamp,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    let x = inputs[0];
    let g = geometry(window, x.shape, &out.shape)?;
    let (act, rest) = split_clamp(clamp);
    kernels::conv2d(&g, act, x.data, &filter.data, &bias.data, &mut out.data);
    finish(clamp, rest, &mut out.data);
    Ok(())
}

pub(super) fn backward(window: &Window2d, filter: &Param, g: &Grad<'_>) -> Result<OpGrads> {
    let x = g.inputs[0];
    let geo = geometry(window, x.shape, g.out_shape)?;
    Ok(OpGrads::weighted(crate::train::backward::kernels::conv2d(
        &geo,
        x.data,
        &filter.data,
        g.dy,
        g.need[0],
    )))
}

pub(super) fn lower<'a>(
    w: &Window2d,
    filter: &Param,
    clamp: Clamp,
    cx: &NodeCx<'_, 'a>,
) -> Result<RtOp<'a>> {
    let conv = convolution(w, filter, clamp, 1, cx)?;
    let d = cx.data;
    Ok(if d.block > 0 {
        RtOp::Conv2dSparse(SparseConv {
            conv,
            block: d.block,
            mask: &d.mask,
        })
    } else {
        RtOp::Conv2d(conv)
    })
}

/// The runtime's convolution parameters of a Conv2d or DepthwiseConv2d node.
pub(super) fn convolution<'a>(
    w: &Window2d,
    filter: &Param,
    clamp: Clamp,
    depth_multiplier: usize,
    cx: &NodeCx<'_, 'a>,
) -> Result<Conv<'a>> {
    let (act_min, act_max) = cx.act_range(clamp);
    let activation = cx.activation(clamp)?;
    let d = cx.data;
    Ok(Conv {
        input: cx.input(0),
        output: cx.output(),
        kernel_h: filter.shape[1] as u16,
        kernel_w: filter.shape[2] as u16,
        window: window(w)?,
        depth_multiplier: depth_multiplier as u16,
        activation,
        act_min,
        act_max,
        filter: &d.filter,
        bias: &d.bias,
        multiplier: &d.multiplier,
        shift: &d.shift,
    })
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
    let s = &filter.shape;
    let (o, kh, kw, c) = (s[0], s[1], s[2], s[3]);
    let mut perm = Vec::with_capacity(filter.data.len());
    for oc in 0..o {
        for ic in 0..c {
            for y in 0..kh {
                for xx in 0..kw {
                    perm.push(((oc * kh + y) * kw + xx) * c + ic);
                }
            }
        }
    }
    let conv = Conv2dExport {
        window,
        filter,
        bias,
        clamp,
        dims: &[o, c, kh, kw],
        perm: &perm,
        group: 1,
    };
    conv.write(e, i, n)
}

/// An ONNX Conv: the filter rearranged into `dims` (element `k` of the file's filter is `perm[k]` of
/// the IR's), `group` groups, then the clamp.
pub(super) struct Conv2dExport<'a> {
    pub window: &'a Window2d,
    pub filter: &'a Param,
    pub bias: &'a Param,
    pub clamp: Clamp,
    pub dims: &'a [usize],
    pub perm: &'a [usize],
    pub group: usize,
}

impl Conv2dExport<'_> {
    pub(super) fn write(
        &self,
        e: &mut Exporter<'_>,
        i: usize,
        n: &Node,
    ) -> Result<(String, Layout)> {
        let name = n.name.as_str();
        let x = e.nchw(n.inputs[0])?;
        let w = e.weight(i, name, self.filter, self.dims, self.perm)?;
        let b = e.bias(i, name, self.bias, n.inputs[0])?;
        let mut attrs = window_attrs(self.window, true);
        attrs.push(a_int("group", self.group as i64));
        let y = e.op("Conv", name, vec![x, w, b], attrs);
        Ok((e.clamp(y, self.clamp, name), Layout::Nchw))
    }
}
