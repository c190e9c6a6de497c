//! Relu: a standalone clamp (ReLU, ReLU6, Clip). ReLU, ReLU6 and ReLU_N1_TO_1 requantize to the
//! output's quantization as TFLite does; any other clamp runs in the input's quantization.

use anyhow::Result;
use ferrite_runtime::format::quantized_clamp_in;
use ferrite_runtime::kernels::float as k;
use ferrite_runtime::ops::{Op as RtOp, Relu, ReluParams};
use ferrite_runtime::quant::prepare::quantize_multiplier;

use super::{clamp_keeps_scale, same_shape, Channels, OutputQuant};
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{finish, split_clamp, Tensor, View};
use crate::ir::{Clamp, Node};
use crate::lower::{act_range, NodeCx, Precision};
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Input;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn channels(clamp: Clamp) -> Channels<'static> {
    Channels::Kept {
        positive_scale: clamp_keeps_scale(clamp),
    }
}

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    same_shape(inputs)
}

pub(super) fn eval(clamp: Clamp, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let (act, rest) = split_clamp(clamp);
    k::relu_f32(act, inputs[0].data, &mut out.data);
    finish(clamp, rest, &mut out.data);
    Ok(())
}

/// The clamp's gradient is applied before (the fused-clamp rule): what is left passes through.
pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    Ok(OpGrads::input(g.need[0].then(|| g.dy.to_vec())))
}

pub(super) fn lower<'a>(clamp: Clamp, cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let quant = if cx.float {
        None
    } else {
        let (p, out) = (cx.in_q(0), cx.out_q);
        let int16 = cx.precision == Precision::Int16;
        Some(match clamp.activation() {
            Some(a) if int16 => ReluParams::prepare_int16(p.scale, out.scale, a),
            Some(a) => ReluParams::prepare(p.scale, p.zero_point, out.scale, out.zero_point, a),
            None => {
                // Any other clamp, in the input's domain (output quantization = input's).
                let (lo, hi) = if int16 {
                    let range = cx.precision.int_range();
                    quantized_clamp_in(clamp.min, clamp.max, p.scale, p.zero_point, range)
                } else {
                    act_range(clamp, p)
                };
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

pub(super) fn export(clamp: Clamp, e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (x, l) = e.act(n.inputs[0])?;
    let y = if clamp.is_none() {
        e.op("Identity", &n.name, vec![x], vec![])
    } else {
        e.clamp(x, clamp, &n.name)
    };
    Ok((y, l))
}
