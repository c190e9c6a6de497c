//! Mean over H and W of an NHWC tensor, with TFLite's or onnxruntime's rounding.

use anyhow::{ensure, Result};
use ferrite_runtime::ops::{MeanParams, Op as RtOp, Unary};

use super::{NodeCx, Requantization};
use crate::quantize::params::{self, QParams};

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
