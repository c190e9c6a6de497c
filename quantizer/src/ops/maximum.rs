//! Maximum and Minimum: the larger (smaller) of two elements, with broadcasting. int8 inputs of
//! another quantization than the output's are requantized to it before the comparison (which
//! commutes with it), so the result is one rounding of the exact maximum (minimum).

use anyhow::{ensure, Result};
use ferrite_runtime::format::Activation;
use ferrite_runtime::kernels::float as k;
use ferrite_runtime::ops::{Binary, ExtremumParams, Op as RtOp, RequantizeParams};

use super::add::each_broadcast_pair;
use super::OutputQuant;
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{kernels, nhwc, Tensor, View};
use crate::ir::Node;
use crate::lower::{NodeCx, Precision};
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime runs this operator on int16 activations (int16x8) whose inputs are quantized as the
/// output (TFLite's 16x8 models); the lowering refuses others.
pub(super) const INT16: bool = true;

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    super::add::shape(inputs)
}

/// `max(a, b)` (`max`) or `min(a, b)`, with broadcasting.
pub(super) fn eval(max: bool, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    let (a, b) = (inputs[0], inputs[1]);
    if a.shape == out.shape.as_slice() && b.shape == out.shape.as_slice() {
        let f = if max { f32::max } else { f32::min };
        kernels::binary_same_shape(f, Activation::None, a.data, b.data, &mut out.data);
    } else {
        let (sa, sb, so) = (nhwc(a.shape)?, nhwc(b.shape)?, nhwc(&out.shape)?);
        let kernel = if max { k::maximum_f32 } else { k::minimum_f32 };
        kernel(sa, a.data, sb, b.data, so, &mut out.data);
    }
    Ok(())
}

/// The gradient goes to the operand chosen at each element (the first on a tie), summed over
/// the dimensions it was stretched along.
pub(super) fn backward(max: bool, g: &Grad<'_>) -> Result<OpGrads> {
    let (a, b, dy, need) = (g.inputs[0], g.inputs[1], g.dy, g.need);
    let first = |va: f32, vb: f32| if max { va >= vb } else { va <= vb };
    if a.shape == g.out_shape && b.shape == g.out_shape {
        let pick = |mine: bool| -> Vec<f32> {
            (0..dy.len())
                .map(|i| {
                    let f = first(a.data[i], b.data[i]);
                    if f == mine {
                        dy[i]
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        return Ok(OpGrads::inputs(vec![
            need[0].then(|| pick(true)),
            need[1].then(|| pick(false)),
        ]));
    }
    let mut da = need[0].then(|| vec![0.0f32; a.data.len()]);
    let mut db = need[1].then(|| vec![0.0f32; b.data.len()]);
    each_broadcast_pair(a.shape, b.shape, g.out_shape, |ia, ib, at| {
        match (first(a.data[ia], b.data[ib]), &mut da, &mut db) {
            (true, Some(da), _) => da[ia] += dy[at],
            (false, _, Some(db)) => db[ib] += dy[at],
            _ => {}
        }
    })?;
    Ok(OpGrads::inputs(vec![da, db]))
}

/// int8 inputs quantized otherwise than the output carry their requantization; int16 inputs (the
/// runtime compares them as they are, as TFLite Micro does) need the output's quantization.
pub(super) fn lower<'a>(max: bool, cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let out = cx.out_q;
    let int16 = cx.precision == Precision::Int16;
    let requant = |k: usize| -> Result<Option<RequantizeParams>> {
        let q = cx.in_q(k);
        if q == out {
            return Ok(None);
        }
        ensure!(
            !int16,
            "node `{}`: int16 {} input {k} is quantized as {q} and the output as {out}; int16 inputs need the output's quantization (they are compared as they are, as TFLite Micro does)",
            cx.node.name,
            if max { "MAXIMUM" } else { "MINIMUM" }
        );
        Ok(Some(RequantizeParams::prepare(
            q.scale,
            q.zero_point,
            out.scale,
            out.zero_point,
        )))
    };
    let quant = if cx.float {
        None
    } else {
        Some(ExtremumParams {
            input1: requant(0)?,
            input2: requant(1)?,
        })
    };
    let b = Binary {
        a: cx.input(0),
        b: cx.input(1),
        output: cx.output(),
        activation: Activation::None,
        quant,
    };
    Ok(if max {
        RtOp::Maximum(b)
    } else {
        RtOp::Minimum(b)
    })
}

/// An ONNX `Max` or `Min` of the node's two operands.
pub(super) fn export(max: bool, e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (ins, l) = e.operands(n, true)?;
    let y = e.op(if max { "Max" } else { "Min" }, &n.name, ins, vec![]);
    Ok((y, l))
}
