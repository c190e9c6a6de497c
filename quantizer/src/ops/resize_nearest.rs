//! ResizeNearest: nearest-neighbour resize of an NHWC tensor to `size` (height, width); output pixel
//! `(y, x)` copies input pixel `(y * in_h / out_h, x * in_w / out_w)`. Lowers to
//! RESIZE_NEAREST_NEIGHBOR in the input's quantization.

use anyhow::{bail, ensure, Result};
use ferrite_runtime::kernels::resize::{resize_nearest, source_index};
use ferrite_runtime::ops::{Op as RtOp, ResizeNearestNeighbor};

use super::{Channels, OutputQuant};
use crate::export::{a_str, Exporter, Layout};
use crate::ir::float_exec::{nhwc, Tensor, View};
use crate::ir::shape::arity;
use crate::ir::Node;
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime has no int16x8 kernel for this operator.
pub(super) const INT16: bool = false;
pub(super) const CHANNELS: Channels<'static> = Channels::Kept {
    positive_scale: true,
};

pub(super) fn shape(size: [usize; 2], inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    ensure!(x.len() == 4, "input of rank {} (NHWC required)", x.len());
    ensure!(
        size[0] > 0 && size[1] > 0,
        "resize to an empty size {size:?}"
    );
    Ok(vec![x[0], size[0], size[1], x[3]])
}

pub(super) fn eval(inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let x = inputs[0];
    let (i, o) = (nhwc(x.shape)?, nhwc(&out.shape)?);
    resize_nearest(i, o, x.data, &mut out.data);
    Ok(())
}

/// Each input pixel sums the gradients of the output pixels that copied it.
pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    if !g.need[0] {
        return Ok(OpGrads::input(None));
    }
    let (i, o) = (nhwc(g.inputs[0].shape)?, nhwc(g.out_shape)?);
    let mut dx = vec![0f32; i.len()];
    for n in 0..o.n {
        for y in 0..o.h {
            let sy = source_index(y, i.h, o.h);
            for xx in 0..o.w {
                let sx = source_index(xx, i.w, o.w);
                let (src, dst) = (i.index(n, sy, sx, 0), o.index(n, y, xx, 0));
                for c in 0..i.c {
                    dx[src + c] += g.dy[dst + c];
                }
            }
        }
    }
    Ok(OpGrads::input(Some(dx)))
}

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    RtOp::ResizeNearestNeighbor(ResizeNearestNeighbor {
        input: cx.input(0),
        output: cx.output(),
    })
}

pub(super) fn export(size: [usize; 2], e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let x = e.nchw(n.inputs[0])?;
    let s = &e.g.values[n.inputs[0]].shape;
    let factor = |o: usize, i: usize| o.is_multiple_of(i).then_some((o / i) as f32);
    let (Some(fh), Some(fw)) = (factor(size[0], s[1]), factor(size[1], s[2])) else {
        bail!(
            "a resize from {}x{} to {}x{} is not exported (only by whole factors)",
            s[1],
            s[2],
            size[0],
            size[1]
        );
    };
    let scales = e.init_f32(&format!("{name}/scales"), &[4], &[1.0, 1.0, fh, fw]);
    let attrs = vec![
        a_str("mode", "nearest"),
        a_str("coordinate_transformation_mode", "asymmetric"),
        a_str("nearest_mode", "floor"),
    ];
    let inputs = vec![x, String::new(), scales];
    Ok((e.op("Resize", name, inputs, attrs), Layout::Nchw))
}
