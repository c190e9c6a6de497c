//! ResizeBilinear: bilinear resize of an NHWC tensor to `size` (height, width), with TFLite's
//! coordinate flags (ONNX Resize in linear mode: `half_pixel`, `pytorch_half_pixel`,
//! `align_corners`, `asymmetric`). Lowers to RESIZE_BILINEAR in the input's quantization, whose
//! fixed-point coordinates are within 1/2048 of a pixel per row of these.

use anyhow::Result;
use ferrite_runtime::kernels::resize::{bilinear_taps, resize_bilinear_f32, BilinearMode};
use ferrite_runtime::ops::{Op as RtOp, ResizeBilinear};

use super::{Channels, OutputQuant};
use crate::export::{a_str, Exporter, Layout};
use crate::ir::float_exec::{nhwc, Tensor, View};
use crate::ir::Node;
use crate::lower::NodeCx;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;
/// A blend of pixels of the same channel: a positive scale of a channel scales its output.
pub(super) const CHANNELS: Channels<'static> = Channels::Kept {
    positive_scale: true,
};

pub(super) fn shape(size: [usize; 2], inputs: &[&[usize]]) -> Result<Vec<usize>> {
    super::resize_nearest::shape(size, inputs)
}

pub(super) fn eval(mode: BilinearMode, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let x = inputs[0];
    let (i, o) = (nhwc(x.shape)?, nhwc(&out.shape)?);
    resize_bilinear_f32(i, o, mode, x.data, &mut out.data);
    Ok(())
}

/// Each output pixel's gradient goes to the four input pixels it blends, by their weights.
pub(super) fn backward(mode: BilinearMode, g: &Grad<'_>) -> Result<OpGrads> {
    if !g.need[0] {
        return Ok(OpGrads::input(None));
    }
    let (i, o) = (nhwc(g.inputs[0].shape)?, nhwc(g.out_shape)?);
    let mut dx = vec![0f32; i.len()];
    for n in 0..o.n {
        for y in 0..o.h {
            let (y0, y1, fy) = bilinear_taps(y, i.h, o.h, mode);
            for xx in 0..o.w {
                let (x0, x1, fx) = bilinear_taps(xx, i.w, o.w, mode);
                let weights = [
                    (y0, x0, (1.0 - fy) * (1.0 - fx)),
                    (y1, x0, fy * (1.0 - fx)),
                    (y0, x1, (1.0 - fy) * fx),
                    (y1, x1, fy * fx),
                ];
                let dst = o.index(n, y, xx, 0);
                for (py, px, w) in weights {
                    let src = i.index(n, py, px, 0);
                    for c in 0..i.c {
                        dx[src + c] += w * g.dy[dst + c];
                    }
                }
            }
        }
    }
    Ok(OpGrads::input(Some(dx)))
}

pub(super) fn lower<'a>(mode: BilinearMode, cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    RtOp::ResizeBilinear(ResizeBilinear {
        input: cx.input(0),
        output: cx.output(),
        align_corners: mode.align_corners,
        half_pixel_centers: mode.half_pixel_centers,
    })
}

/// ONNX Resize in linear mode by scales `out / in` (as f32, raised by an ulp where needed so that
/// `floor(in * scale)` is `out`), with the coordinate mode of the flags.
pub(super) fn export(
    size: [usize; 2],
    mode: BilinearMode,
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let x = e.nchw(n.inputs[0])?;
    let s = &e.g.values[n.inputs[0]].shape;
    let scale = |o: usize, i: usize| {
        let mut f = o as f32 / i as f32;
        while ((i as f32) * f).floor() < o as f32 {
            f = f32::from_bits(f.to_bits() + 1);
        }
        f
    };
    let scales = [1.0, 1.0, scale(size[0], s[1]), scale(size[1], s[2])];
    let scales = e.init_f32(&format!("{name}/scales"), &[4], &scales);
    let transform = match (mode.align_corners, mode.half_pixel_centers) {
        (true, _) => "align_corners",
        (false, true) => "half_pixel",
        (false, false) => "asymmetric",
    };
    let attrs = vec![
        a_str("mode", "linear"),
        a_str("coordinate_transformation_mode", transform),
    ];
    let inputs = vec![x, String::new(), scales];
    Ok((e.op("Resize", name, inputs, attrs), Layout::Nchw))
}
