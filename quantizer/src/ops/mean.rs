//! Mean: the average over H and W of an NHWC tensor, output `[n, 1, 1, c]` (`keep_dims`) or `[n, c]`,
//! with TFLite's or onnxruntime's rounding (int8), TFLite Micro's int16 arithmetic (int16x8).

use anyhow::{ensure, Result};
use ferrite_runtime::kernels::float as k;
use ferrite_runtime::ops::{MeanParams, Op as RtOp, Unary};

use super::{Channels, OutputQuant};
use crate::export::{a_int, a_ints, Exporter, Layout};
use crate::ir::float_exec::{nhwc, Tensor, View};
use crate::ir::shape::arity;
use crate::ir::Node;
use crate::lower::{NodeCx, Precision, Requantization};
use crate::quantize::params::{self, QParams};
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;
/// A reduction: equalization does not look past it.
pub(super) const CHANNELS: Channels<'static> = Channels::Kept {
    positive_scale: false,
};

pub(super) fn shape(keep_dims: bool, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 1)?;
    let x = inputs[0];
    ensure!(x.len() == 4, "input of rank {} (NHWC required)", x.len());
    Ok(if keep_dims {
        vec![x[0], 1, 1, x[3]]
    } else {
        vec![x[0], x[3]]
    })
}

pub(super) fn eval(inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let x = inputs[0];
    k::mean_hw_f32(nhwc(x.shape)?, x.data, &mut out.data);
    Ok(())
}

pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    let x = g.inputs[0];
    let s = nhwc(x.shape)?;
    Ok(OpGrads::input(
        g.need[0].then(|| mean_hw(s.h * s.w, s.c, x.data.len(), g.dy)),
    ))
}

/// Gradient of the mean over `pixels` pixels of `channels` channels (input of `len` values).
fn mean_hw(pixels: usize, channels: usize, len: usize, dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0f32; len];
    let count = pixels as f32;
    if channels == 0 || pixels == 0 {
        return dx;
    }
    for (image, d) in dx
        .chunks_exact_mut(pixels * channels)
        .zip(dy.chunks_exact(channels))
    {
        for px in image.chunks_exact_mut(channels) {
            for (g, &d) in px.iter_mut().zip(d) {
                *g = d / count;
            }
        }
    }
    dx
}

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let s = cx.input_shape(0);
    ensure!(
        s.len() == 4,
        "node `{}`: mean of a rank-{} tensor",
        cx.node.name,
        s.len()
    );
    let (p, out) = (cx.in_q(0), cx.out_q);
    let count = s[1] * s[2];
    let quant = (!cx.float).then(|| match cx.requantization {
        // int16 has TFLite Micro's arithmetic only (zero points 0, the sum always rescaled).
        _ if cx.precision == Precision::Int16 => MeanParams::prepare16(p.scale, out.scale, count),
        Requantization::TfLite => {
            MeanParams::prepare(p.scale, p.zero_point, out.scale, out.zero_point, count)
        }
        Requantization::Onnx => onnx_mean(p, out, count),
    });
    Ok(RtOp::Mean(Unary {
        input: cx.input(0),
        output: cx.output(),
        quant,
    }))
}

/// Mean parameters as onnxruntime's integer mean (QLinearGlobalAveragePool) computes it: the
/// zero-point-corrected sum rescaled by `input_scale / (output_scale * count)` in f32 and rounded
/// once, also when input and output quantization are the same (where TFLite truncates the raw sum's
/// quotient).
pub(super) fn onnx_mean(input: QParams, output: QParams, count: usize) -> MeanParams {
    MeanParams {
        input_zero_point: input.zero_point,
        output_zero_point: output.zero_point,
        num_elements: count as u32,
        same_quantization: false,
        requant: params::single_rounding_multiplier(
            (input.scale / (output.scale * count as f32)) as f64,
        ),
    }
}

pub(super) fn export(keep_dims: bool, e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let x = e.nchw(n.inputs[0])?;
    Ok(if keep_dims {
        (
            e.op("GlobalAveragePool", name, vec![x], vec![]),
            Layout::Nchw,
        )
    } else {
        // The axes are an attribute up to opset 17, an input from 18.
        let (inputs, attrs) = if e.opset() >= 18 {
            let axes = e.init_i64(&format!("{name}/axes"), &[2, 3]);
            (vec![x, axes], vec![a_int("keepdims", 0)])
        } else {
            (vec![x], vec![a_ints("axes", &[2, 3]), a_int("keepdims", 0)])
        };
        (e.op("ReduceMean", name, inputs, attrs), Layout::Same)
    })
}
