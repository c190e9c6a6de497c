//! PRelu: `x` where `x >= 0`, `slope[c] * x` below, with one slope or one per channel (the last
//! axis); TFLite's PRELU. The slope is a trainable parameter. In int8 it is stored in the runtime
//! operator as int8 values quantized per tensor, symmetric (zero point 0, scale `max |slope| / 127`)
//! as TensorFlow's converter quantizes PReLU's alpha; a TFLite model's own int8 alpha (any zero
//! point) is kept as is.

use anyhow::{ensure, Context, Result};
use ferrite_runtime::ops::{Op as RtOp, PRelu, PReluParams};

use super::{same_shape, Channels, OutputQuant};
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::{Node, Param};
use crate::lower::NodeCx;
use crate::quantize::params::{self, QParams};
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime has no int16x8 kernel for this operator.
pub(super) const INT16: bool = false;
/// Scaling input channel `c` by `s > 0` scales output channel `c` by `s` on both sides of zero (the
/// sign of `x` is kept and the slope is per channel), so equalization may look through.
pub(super) const CHANNELS: Channels<'static> = Channels::Kept {
    positive_scale: true,
};

pub(super) fn shape(slope: &Param, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    let s = same_shape(inputs)?;
    let c = s.last().copied().unwrap_or(1);
    ensure!(
        slope.data.len() == 1 || slope.data.len() == c,
        "PRelu has {} slopes for input {s:?}: one, or one per channel ({c}), is required",
        slope.data.len()
    );
    Ok(s)
}

/// The slope of element `i` of a tensor whose last axis `slope` broadcasts over.
fn slope_at(slope: &[f32], i: usize) -> f32 {
    slope[i % slope.len()]
}

pub(super) fn eval(slope: &Param, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    for (i, (o, &x)) in out.data.iter_mut().zip(inputs[0].data).enumerate() {
        *o = if x >= 0.0 {
            x
        } else {
            slope_at(&slope.data, i) * x
        };
    }
    Ok(())
}

/// Gradients of the input (where needed) and of the slope (summed over every element it scales).
pub(super) fn backward(slope: &Param, g: &Grad<'_>) -> Result<OpGrads> {
    let (x, dy) = (g.inputs[0].data, g.dy);
    let s = &slope.data;
    let mut d_slope = vec![0.0f32; s.len()];
    for (i, (&x, &d)) in x.iter().zip(dy).enumerate() {
        if x < 0.0 {
            d_slope[i % s.len()] += x * d;
        }
    }
    let dx = g.need[0].then(|| {
        x.iter()
            .zip(dy)
            .enumerate()
            .map(|(i, (&x, &d))| if x >= 0.0 { d } else { slope_at(s, i) * d })
            .collect()
    });
    Ok(OpGrads {
        inputs: vec![dx],
        params: vec![d_slope],
    })
}

/// The slope as the runtime operator stores it: little-endian f32 for a node kept in float;
/// otherwise int8 values and their quantization, `imported` ones (int8 values and their one scale,
/// `slope` holding their dequantized values) or the slope quantized per tensor, symmetric.
pub(crate) fn alpha_data(
    slope: &Param,
    float: bool,
    imported: Option<&(Vec<i8>, Vec<f32>)>,
) -> Result<(Vec<u8>, Option<QParams>)> {
    if float {
        let bytes = slope.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        return Ok((bytes, None));
    }
    if let Some((q, scales)) = imported {
        ensure!(
            q.len() == slope.data.len() && scales.len() == 1,
            "PRelu int8 alpha has {} values and {} scales for {} slopes (one scale is required)",
            q.len(),
            scales.len(),
            slope.data.len()
        );
        let scale = scales[0];
        // slope = scale * (q - zero_point), so the zero point is q - slope / scale.
        let zero_point = match (q.first(), slope.data.first()) {
            (Some(&q0), Some(&s0)) => (q0 as f32 - s0 / scale).round() as i32,
            _ => 0,
        };
        let bytes = q.iter().map(|&v| v as u8).collect();
        return Ok((bytes, Some(QParams { scale, zero_point })));
    }
    let (q, scales) = params::weights_per_channel(&slope.data, 1);
    let bytes = q.iter().map(|&v| v as u8).collect();
    Ok((
        bytes,
        Some(QParams {
            scale: scales[0],
            zero_point: 0,
        }),
    ))
}

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let d = cx.data;
    let quant = if cx.float {
        None
    } else {
        let a = d.alpha.context("PRelu alpha not quantized")?;
        let (p, out) = (cx.in_q(0), cx.out_q);
        Some(PReluParams::prepare(
            p.scale,
            p.zero_point,
            a.scale,
            a.zero_point,
            out.scale,
            out.zero_point,
        ))
    };
    Ok(RtOp::PRelu(PRelu {
        input: cx.input(0),
        output: cx.output(),
        alpha: &d.filter,
        quant,
    }))
}

/// ONNX PRelu, its slope shaped to broadcast over the file's channel axis: `[C, 1, 1]` for NCHW,
/// `[C]` when the channels are last (a flattened spatial tensor is first put in the IR's order).
pub(super) fn export(slope: &Param, e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (mut x, mut l) = e.act(n.inputs[0])?;
    let c = slope.data.len();
    let dims = match l {
        Layout::Nchw if c > 1 => vec![c, 1, 1],
        Layout::Flat { .. } if c > 1 => {
            let shape = e.g.values[n.inputs[0]].shape.clone();
            x = e.in_ir_order(x, l, &shape, &n.name);
            l = Layout::Same;
            vec![c]
        }
        _ => vec![c],
    };
    let s = e.init_f32(&format!("{}_slope", n.name), &dims, &slope.data);
    Ok((e.op("PRelu", &n.name, vec![x, s], Vec::new()), l))
}
