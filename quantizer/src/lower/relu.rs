//! Relu: a standalone clamp. ReLU, ReLU6 and ReLU_N1_TO_1 requantize to the output's quantization as
//! TFLite does; any other clamp runs in the input's quantization.

use anyhow::Result;
use ferrite_runtime::ops::{Op as RtOp, Relu, ReluParams};
use ferrite_runtime::quant::prepare::quantize_multiplier;

use super::{act_range, NodeCx};
use crate::ir::Clamp;

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>, clamp: Clamp) -> Result<RtOp<'a>> {
    let quant = if cx.float {
        None
    } else {
        let (p, out) = (cx.in_q(0), cx.out_q);
        Some(match clamp.activation() {
            Some(a) => ReluParams::prepare(p.scale, p.zero_point, out.scale, out.zero_point, a),
            None => {
                // Any other clamp, in the input's domain (output quantization = input's).
                let (lo, hi) = act_range(clamp, p);
                ReluParams {
                    input_zero_point: p.zero_point,
                    output_zero_point: p.zero_point,
                    requant: quantize_multiplier(1.0),
                    act_min: lo,
                    act_max: hi,
                }
            }
        })
    };
    let activation = cx.activation(clamp)?;
    Ok(RtOp::Relu(Relu {
        input: cx.input(0),
        output: cx.output(),
        quant,
        activation,
    }))
}
