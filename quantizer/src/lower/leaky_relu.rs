//! LeakyRelu: TFLite's LEAKY_RELU, requantizing from the input's quantization to the output's.

use ferrite_runtime::ops::{LeakyRelu, LeakyReluParams, Op as RtOp};

use super::NodeCx;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>, alpha: f32) -> RtOp<'a> {
    let quant = (!cx.float).then(|| {
        let (p, out) = (cx.in_q(0), cx.out_q);
        LeakyReluParams::prepare(p.scale, p.zero_point, alpha, out.scale, out.zero_point)
    });
    RtOp::LeakyRelu(LeakyRelu {
        input: cx.input(0),
        output: cx.output(),
        alpha,
        quant,
    })
}
