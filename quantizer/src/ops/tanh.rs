//! Tanh; its int8 output is fixed at scale 1/128, zero point 0.

use anyhow::Result;
use ferrite_runtime::kernels::float as k;
use ferrite_runtime::ops::{Op as RtOp, TanhParams, Unary};

use super::{same_shape, Channels, OutputQuant};
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::Node;
use crate::lower::{NodeCx, Precision};
use crate::quantize::params::QParams;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Fixed(QParams {
    scale: 1.0 / 128.0,
    zero_point: 0,
});
/// The runtime runs this operator on int16 activations (output scale 1/32768, zero point 0).
pub(super) const INT16: bool = true;
pub(super) const CHANNELS: Channels<'static> = Channels::Kept {
    positive_scale: false,
};

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    same_shape(inputs)
}

pub(super) fn eval(inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    k::tanh_f32(inputs[0].data, &mut out.data);
    Ok(())
}

/// The gradient from the output: `1 - y^2`.
pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    Ok(OpGrads::input(g.need[0].then(|| {
        g.output
            .iter()
            .zip(g.dy)
            .map(|(&y, &d)| d * (1.0 - y * y))
            .collect()
    })))
}

/// int8 by the table the lowering computed ([`crate::ir::Op::table`]); int16 and f32 by the
/// runtime's kernels.
pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    let quant = match cx.precision {
        Precision::Int8 => return super::lookup::lower_table(cx),
        Precision::Int16 => Some(TanhParams::prepare_int16(cx.in_q(0).scale)),
        Precision::Float => None,
    };
    RtOp::Tanh(Unary {
        input: cx.input(0),
        output: cx.output(),
        quant,
    })
}

/// TFLite Micro's int8 results for each of the 256 inputs quantized with `input` (the output's
/// quantization is the fixed one), as the runtime's TANH kernel computes them.
pub(super) fn tflite_table(input: QParams) -> Vec<u8> {
    let p = TanhParams::prepare(input.scale, input.zero_point);
    super::lookup::kernel_table(|x, y| ferrite_runtime::kernels::activation::tanh_s8(&p, x, y))
}

pub(super) fn export(e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (x, l) = e.act(n.inputs[0])?;
    Ok((e.op("Tanh", &n.name, vec![x], vec![]), l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::lookup::{sigmoid, table};
    use ferrite_runtime::kernels::activation::{logistic_s8, tanh_s8};
    use ferrite_runtime::ops::LogisticParams;

    /// The tables of Ferrite's own models (the correctly rounded function) against TFLite Micro's
    /// fixed-point TANH and LOGISTIC, every int8 input at 2,000 input scales from 1e-4 to 3.2
    /// (inputs up to +-400) and seven zero points: at most one step apart, and apart somewhere (so
    /// a TFLite import, which must give TFLite Micro's bytes, takes a table of those kernels'
    /// results instead: `lower::Options::tflite_functions`).
    #[test]
    fn tables_are_within_one_step_of_tflite_micro_kernels() {
        let input: Vec<i8> = (-128..=127).map(|q| q as i8).collect();
        let tanh_out = QParams {
            scale: 1.0 / 128.0,
            zero_point: 0,
        };
        let logistic_out = QParams {
            scale: 1.0 / 256.0,
            zero_point: -128,
        };
        let mut got = vec![0i8; 256];
        let (mut worst, mut differ) = (0, 0);
        let mut compare = |got: &[i8], want: &[u8]| {
            for (&a, &b) in got.iter().zip(want) {
                let d = (a as i32 - b as i8 as i32).abs();
                worst = worst.max(d);
                differ += (d > 0) as usize;
            }
        };
        for k in 0..2000 {
            let scale = 10f32.powf(-4.0 + 4.5 * k as f32 / 2000.0);
            for zero_point in [-128, -100, -37, 0, 5, 64, 127] {
                let x = QParams { scale, zero_point };
                tanh_s8(&TanhParams::prepare(scale, zero_point), &input, &mut got);
                compare(&got, &table(f64::tanh, x, tanh_out));
                logistic_s8(
                    &LogisticParams::prepare(scale, zero_point),
                    &input,
                    &mut got,
                );
                compare(&got, &table(sigmoid, x, logistic_out));
            }
        }
        assert_eq!(worst, 1);
        assert!(differ > 0);
    }
}
