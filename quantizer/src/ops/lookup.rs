//! Element-wise functions without a kernel of their own (ELU, SELU, CELU, Softplus, Softsign, Exp,
//! Erf, GELU, Mish, HardSwish, SiLU, Abs, Neg, Sign, Sqrt, Sin, Cos, Shrink, ThresholdedRelu,
//! integer powers),
//! lowered to the
//! runtime's int8 LOOKUP: a table of the function at each of the 256 input values, dequantized with
//! the input's quantization and quantized with the output's (rounding half to even and saturating,
//! as ONNX's QuantizeLinear does, so the table is what a Q/DQ graph computes). int8 only: no f32 or
//! int16x8 form.

use anyhow::{ensure, Result};
use ferrite_runtime::ops::{Lookup, Op as RtOp};

use super::{same_shape, Channels, OutputQuant};
use crate::export::{a_float, a_str, Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::{Clamp, Node};
use crate::lower::NodeCx;
use crate::quantize::params::QParams;
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
pub(super) const INT16: bool = false;
pub(super) const CHANNELS: Channels<'static> = Channels::Kept {
    positive_scale: false,
};

/// A function of one value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryFn {
    /// `x` above 0, `alpha * (e^x - 1)` below.
    Elu {
        alpha: f32,
    },
    /// `max(0, x) + min(0, alpha * (e^(x / alpha) - 1))`.
    Celu {
        alpha: f32,
    },
    /// `gamma * x` above 0, `gamma * alpha * (e^x - 1)` below.
    Selu {
        alpha: f32,
        gamma: f32,
    },
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x / (1 + |x|)`.
    Softsign,
    Exp,
    Erf,
    /// `x * P(X <= x)` for a standard normal `X`; `tanh`: TANH's approximation of it.
    Gelu {
        tanh: bool,
    },
    /// `x * tanh(softplus(x))`.
    Mish,
    /// `x * clamp(x / 6 + 1 / 2, 0, 1)`.
    HardSwish,
    /// `x * sigmoid(x)` (swish): ONNX's `Mul(x, Sigmoid(x))`, joined by
    /// [`crate::ir::passes::join_swish`].
    Silu,
    Abs,
    Neg,
    /// -1, 0 or 1.
    Sign,
    /// The square root of `max(x, 0)`.
    Sqrt,
    Sin,
    Cos,
    /// `x + bias` below `-lambd`, `x - bias` above `lambd`, 0 between.
    Shrink {
        bias: f32,
        lambd: f32,
    },
    /// `x` above `alpha`, 0 otherwise.
    ThresholdedRelu {
        alpha: f32,
    },
    /// `x` to an integer power (ONNX `Pow` by a constant exponent).
    Pow {
        exponent: i32,
    },
    /// An arithmetic operator of `x` and a constant value (a TFLite ADD, SUB, MUL, MAXIMUM or
    /// MINIMUM with a constant operand, such as a Keras Rescaling layer's).
    WithConstant(ConstOperand),
}

/// The arithmetic of [`UnaryFn::WithConstant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConstArith {
    Add,
    Sub,
    Mul,
    Maximum,
    Minimum,
}

/// A constant operand: one int8 value with its own quantization (which TFLite's integer
/// arithmetic uses), on which side, and the operator's fused clamp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConstOperand {
    pub op: ConstArith,
    pub value: i8,
    pub scale: f32,
    pub zero_point: i32,
    /// The constant is the first operand (`c - x` for Sub).
    pub first: bool,
    pub clamp: Clamp,
}

impl ConstOperand {
    /// The constant's real value.
    pub fn real(&self) -> f64 {
        self.scale as f64 * (self.value as i32 - self.zero_point) as f64
    }

    /// The operator at `x`, before the clamp.
    fn unclamped(&self, x: f64) -> f64 {
        let c = self.real();
        match self.op {
            ConstArith::Add => x + c,
            ConstArith::Sub if self.first => c - x,
            ConstArith::Sub => x - c,
            ConstArith::Mul => x * c,
            ConstArith::Maximum => x.max(c),
            ConstArith::Minimum => x.min(c),
        }
    }

    /// The derivative of the clamped result at `x` (the first operand's on a tie of Maximum or
    /// Minimum, as the IR's operators).
    fn slope(&self, x: f64) -> f64 {
        let y = self.unclamped(x);
        if y < self.clamp.min as f64 || y > self.clamp.max as f64 {
            return 0.0;
        }
        let c = self.real();
        let picks_x = |x_wins: bool| if x_wins { 1.0 } else { 0.0 };
        match self.op {
            ConstArith::Add => 1.0,
            ConstArith::Sub if self.first => -1.0,
            ConstArith::Sub => 1.0,
            ConstArith::Mul => c,
            ConstArith::Maximum => picks_x(if self.first { x > c } else { x >= c }),
            ConstArith::Minimum => picks_x(if self.first { x < c } else { x <= c }),
        }
    }

    /// TFLite Micro's int8 result for each of the 256 inputs quantized with `input`, the output
    /// quantized with `output`: the runtime's own ADD, SUB and MUL arithmetic (bit-exact with
    /// TFLite Micro's) with the constant's quantization, and MAXIMUM and MINIMUM comparing the raw
    /// int8 values as TFLite Micro does.
    pub fn tflite_table(&self, input: QParams, output: QParams) -> Vec<u8> {
        use ferrite_runtime::kernels::elementwise::{add_s8, mul_s8, sub_s8};
        use ferrite_runtime::kernels::Nhwc;
        use ferrite_runtime::ops::{AddParams, MulParams};
        let (lo, hi) = crate::lower::act_range(self.clamp, output);
        let x: Vec<i8> = (-128..=127).collect();
        let c = [self.value];
        let (xs, cs) = (Nhwc::new(1, 1, 1, x.len()), Nhwc::new(1, 1, 1, 1));
        let (xq, cq) = (
            (input.scale, input.zero_point),
            (self.scale, self.zero_point),
        );
        // The operands in the operator's order.
        let ((a, sa, qa), (b, sb, qb)) = if self.first {
            ((&c[..], cs, cq), (&x[..], xs, xq))
        } else {
            ((&x[..], xs, xq), (&c[..], cs, cq))
        };
        let (os, oz) = (output.scale, output.zero_point);
        let mut y = vec![0i8; x.len()];
        match self.op {
            ConstArith::Add | ConstArith::Sub => {
                let p = AddParams::prepare(qa.0, qa.1, qb.0, qb.1, os, oz, lo, hi);
                let run = if self.op == ConstArith::Add {
                    add_s8
                } else {
                    sub_s8
                };
                run(&p, sa, a, sb, b, xs, &mut y);
            }
            ConstArith::Mul => {
                let p = MulParams::prepare(qa.0, qa.1, qb.0, qb.1, os, oz, lo, hi);
                mul_s8(&p, sa, a, sb, b, xs, &mut y);
            }
            // The raw values compared; the clamp (none from TFLite) after.
            ConstArith::Maximum | ConstArith::Minimum => {
                for (y, &v) in y.iter_mut().zip(&x) {
                    let m = if self.op == ConstArith::Maximum {
                        v.max(c[0])
                    } else {
                        v.min(c[0])
                    };
                    *y = (m as i32).clamp(lo, hi) as i8;
                }
            }
        }
        y.iter().map(|&v| v as u8).collect()
    }
}

/// `erf(x)`.
fn erf(x: f64) -> f64 {
    libm::erf(x)
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `sqrt(2 / pi)` and the cubic coefficient of GELU's tanh approximation.
const GELU_TANH: (f64, f64) = (0.797_884_560_802_865_4, 0.044_715);

impl UnaryFn {
    /// The function's ONNX operator name.
    pub fn onnx_name(self) -> &'static str {
        match self {
            UnaryFn::Elu { .. } => "Elu",
            UnaryFn::Celu { .. } => "Celu",
            UnaryFn::Selu { .. } => "Selu",
            UnaryFn::Softplus => "Softplus",
            UnaryFn::Softsign => "Softsign",
            UnaryFn::Exp => "Exp",
            UnaryFn::Erf => "Erf",
            UnaryFn::Gelu { .. } => "Gelu",
            UnaryFn::Mish => "Mish",
            UnaryFn::HardSwish => "HardSwish",
            UnaryFn::Silu => "Silu",
            UnaryFn::Abs => "Abs",
            UnaryFn::Neg => "Neg",
            UnaryFn::Sign => "Sign",
            UnaryFn::Sqrt => "Sqrt",
            UnaryFn::Sin => "Sin",
            UnaryFn::Cos => "Cos",
            UnaryFn::Shrink { .. } => "Shrink",
            UnaryFn::ThresholdedRelu { .. } => "ThresholdedRelu",
            UnaryFn::Pow { .. } => "Pow",
            UnaryFn::WithConstant(k) => match k.op {
                ConstArith::Add => "Add",
                ConstArith::Sub => "Sub",
                ConstArith::Mul => "Mul",
                ConstArith::Maximum => "Max",
                ConstArith::Minimum => "Min",
            },
        }
    }

    /// The function at `x`.
    pub fn at(self, x: f64) -> f64 {
        match self {
            UnaryFn::Elu { alpha } if x <= 0.0 => alpha as f64 * x.exp_m1(),
            UnaryFn::Celu { alpha } if x <= 0.0 => alpha as f64 * (x / alpha as f64).exp_m1(),
            UnaryFn::Selu { alpha, gamma } if x <= 0.0 => gamma as f64 * alpha as f64 * x.exp_m1(),
            UnaryFn::Selu { gamma, .. } => gamma as f64 * x,
            UnaryFn::Elu { .. } | UnaryFn::Celu { .. } => x,
            UnaryFn::Softplus => softplus(x),
            UnaryFn::Softsign => x / (1.0 + x.abs()),
            UnaryFn::Exp => x.exp(),
            UnaryFn::Erf => erf(x),
            UnaryFn::Gelu { tanh: false } => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            UnaryFn::Gelu { tanh: true } => {
                let (k, c) = GELU_TANH;
                0.5 * x * (1.0 + (k * (x + c * x * x * x)).tanh())
            }
            UnaryFn::Mish => x * softplus(x).tanh(),
            UnaryFn::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            UnaryFn::Silu => x * sigmoid(x),
            UnaryFn::Abs => x.abs(),
            UnaryFn::Neg => -x,
            UnaryFn::Sign if x == 0.0 => 0.0,
            UnaryFn::Sign => x.signum(),
            UnaryFn::Sqrt => x.max(0.0).sqrt(),
            UnaryFn::Sin => x.sin(),
            UnaryFn::Cos => x.cos(),
            UnaryFn::Shrink { bias, lambd } if x < -(lambd as f64) => x + bias as f64,
            UnaryFn::Shrink { bias, lambd } if x > lambd as f64 => x - bias as f64,
            UnaryFn::Shrink { .. } => 0.0,
            UnaryFn::ThresholdedRelu { alpha } if x > alpha as f64 => x,
            UnaryFn::ThresholdedRelu { .. } => 0.0,
            UnaryFn::Pow { exponent } => x.powi(exponent),
            UnaryFn::WithConstant(k) => {
                k.unclamped(x).clamp(k.clamp.min as f64, k.clamp.max as f64)
            }
        }
    }

    /// The derivative at `x` (0 at the jumps of Sign, Shrink and ThresholdedRelu; the square root's
    /// is capped where it grows without bound).
    pub fn slope(self, x: f64) -> f64 {
        let normal = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        match self {
            UnaryFn::Elu { alpha } if x <= 0.0 => alpha as f64 * x.exp(),
            UnaryFn::Celu { alpha } if x <= 0.0 => (x / alpha as f64).exp(),
            UnaryFn::Selu { alpha, gamma } if x <= 0.0 => gamma as f64 * alpha as f64 * x.exp(),
            UnaryFn::Selu { gamma, .. } => gamma as f64,
            UnaryFn::Elu { .. } | UnaryFn::Celu { .. } => 1.0,
            UnaryFn::Softplus => sigmoid(x),
            UnaryFn::Softsign => 1.0 / (1.0 + x.abs()).powi(2),
            UnaryFn::Exp => x.exp(),
            UnaryFn::Erf => std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp(),
            UnaryFn::Gelu { tanh: false } => {
                0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2)) + x * normal(x)
            }
            UnaryFn::Gelu { tanh: true } => {
                let (k, c) = GELU_TANH;
                let t = (k * (x + c * x * x * x)).tanh();
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * c * x * x)
            }
            UnaryFn::Mish => {
                let t = softplus(x).tanh();
                t + x * sigmoid(x) * (1.0 - t * t)
            }
            UnaryFn::HardSwish if x <= -3.0 => 0.0,
            UnaryFn::HardSwish if x >= 3.0 => 1.0,
            UnaryFn::HardSwish => x / 3.0 + 0.5,
            UnaryFn::Silu => {
                let s = sigmoid(x);
                s + x * s * (1.0 - s)
            }
            UnaryFn::Abs if x == 0.0 => 0.0,
            UnaryFn::Abs => x.signum(),
            UnaryFn::Neg => -1.0,
            UnaryFn::Sign => 0.0,
            UnaryFn::Sqrt if x <= 0.0 => 0.0,
            UnaryFn::Sqrt => (0.5 / x.sqrt()).min(1e3),
            UnaryFn::Sin => x.cos(),
            UnaryFn::Cos => -x.sin(),
            UnaryFn::Shrink { lambd, .. } if x.abs() > lambd as f64 => 1.0,
            UnaryFn::Shrink { .. } => 0.0,
            UnaryFn::ThresholdedRelu { alpha } if x > alpha as f64 => 1.0,
            UnaryFn::ThresholdedRelu { .. } => 0.0,
            UnaryFn::Pow { exponent } => exponent as f64 * x.powi(exponent - 1),
            UnaryFn::WithConstant(k) => k.slope(x),
        }
    }

    /// The int8 table of the function: entry `q + 128` is the function of input `q` dequantized
    /// with `input`, quantized with `output` (half to even, saturated).
    pub fn table(self, input: QParams, output: QParams) -> Vec<u8> {
        table(|x| self.at(x), input, output)
    }
}

/// The int8 table of `f`: entry `q + 128` is `f` of input `q` dequantized with `input`, quantized
/// with `output` (half to even, saturated).
pub(crate) fn table(f: impl Fn(f64) -> f64, input: QParams, output: QParams) -> Vec<u8> {
    (-128i32..128)
        .map(|q| {
            let x = (q - input.zero_point) as f32 * input.scale;
            let y = f(x as f64) as f32 / output.scale;
            let v = y.round_ties_even() as i64 + output.zero_point as i64;
            v.clamp(-128, 127) as i8 as u8
        })
        .collect()
}

/// The int16-input table of `f` (the runtime's LOOKUP over a wide output): entry `k` is `f` at the
/// int16 input `-32768 + 128 k` dequantized with `input_scale`, in 1/256ths of a step of the int8
/// `output` (zero point included, rounded half to even), saturated to the int8 range; 513
/// little-endian int16 values.
pub(crate) fn table16(f: impl Fn(f64) -> f64, input_scale: f32, output: QParams) -> Vec<u8> {
    (0..ferrite_runtime::ops::lookup::TABLE16_LEN as i32)
        .flat_map(|k| {
            let x = (-32768 + 128 * k) as f64 * input_scale as f64;
            let y = f(x) / output.scale as f64 + output.zero_point as f64;
            let q = (256.0 * y).round_ties_even().clamp(-32768.0, 127.0 * 256.0) as i16;
            q.to_le_bytes()
        })
        .collect()
}

/// The int16 scale of a wide output read by `f`, whose int8 output is quantized with `output`,
/// for the values `lo..=hi` seen in calibration: the input range beyond which `f`'s int8 output no
/// longer changes (Tanh and Sigmoid saturate) is clipped away, so int16's steps cover only the
/// inputs that matter; the range is symmetric (zero point 0).
pub(crate) fn wide_scale(f: impl Fn(f64) -> f64, lo: f32, hi: f32, output: QParams) -> f32 {
    const STEPS: usize = 4096;
    let (lo, hi) = (lo.min(0.0) as f64, hi.max(0.0) as f64);
    let level = |x: f64| {
        let y = (f(x) / output.scale as f64).round_ties_even() + output.zero_point as f64;
        y.clamp(-128.0, 127.0) as i32
    };
    let at = |i: usize| lo + (hi - lo) * i as f64 / STEPS as f64;
    // The last input whose level is still `level(lo)` and the first whose level is `level(hi)`.
    let first = (0..=STEPS)
        .find(|&i| level(at(i)) != level(lo))
        .map_or(STEPS, |i| i.saturating_sub(1));
    let last = (0..=STEPS)
        .rev()
        .find(|&i| level(at(i)) != level(hi))
        .map_or(0, |i| (i + 1).min(STEPS));
    let magnitude = at(first).abs().max(at(last).abs());
    if magnitude > 0.0 {
        (magnitude / 32767.0) as f32
    } else {
        1.0 / 32767.0
    }
}

/// TFLite Micro's int8 HARD_SWISH for each of the 256 inputs (`reference_ops::HardSwish` with the
/// parameters of its Prepare): the input moved to a finer scale (`2^7` times), a "relu-ish" gate
/// in `[0, 1]` computed in 16-bit fixed point with saturation, multiplied by the input on the
/// output scale without rounding, then shifted and offset to the output.
pub(crate) fn tflite_hard_swish_table(input: QParams, output: QParams) -> Vec<u8> {
    use ferrite_runtime::quant::prepare::quantize_multiplier;
    // QuantizeMultiplier, then the Q31 mantissa rounded to Q15 (DownScaleInt32ToInt16Multiplier).
    let q15 = |real: f32| {
        let r = quantize_multiplier(real as f64);
        let m = if r.multiplier >= i32::MAX - (1 << 15) {
            i16::MAX
        } else {
            ((r.multiplier + (1 << 15)) >> 16) as i16
        };
        (m, r.shift)
    };
    let hires_scale = (1.0f32 / 128.0) * input.scale;
    let (out_m, out_exp) = q15(hires_scale / output.scale);
    let (relu_m, relu_exp) = q15(hires_scale / (3.0f32 / 32768.0));
    // gemmlowp's SaturatingRoundingDoublingHighMul on int16.
    let rdhm = |a: i16, b: i16| -> i16 {
        if a == i16::MIN && b == i16::MIN {
            return i16::MAX;
        }
        let ab = a as i32 * b as i32;
        let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
        ((ab + nudge) / (1 << 15)) as i16
    };
    // The same, rounding toward zero.
    let dhm = |a: i16, b: i16| -> i16 {
        if a == i16::MIN && b == i16::MIN {
            return i16::MAX;
        }
        ((a as i32 * b as i32) / (1 << 15)) as i16
    };
    // Exponents are within QuantizeMultiplier's -31..=31 or so; beyond 16 bits a left shift
    // saturates the same way.
    let shl_sat = |v: i16, amount: i32| -> i16 {
        (v as i64 * (1i64 << amount.clamp(0, 32))).clamp(i16::MIN as i64, i16::MAX as i64) as i16
    };
    // gemmlowp's RoundingDivideByPOT on int16: the mask in int16, the shift of the value promoted
    // to int, the sum truncated back to int16 (as C++ computes it).
    let rdiv = |x: i16, exponent: i32| -> i16 {
        let exponent = exponent.clamp(0, 31);
        let mask = ((1i64 << exponent) - 1) as i16;
        let remainder = x & mask;
        let threshold = (mask >> 1).wrapping_add((x < 0) as i16);
        ((x as i32 >> exponent) + (remainder > threshold) as i32) as i16
    };
    (-128i32..128)
        .map(|q| {
            let hires = (q - input.zero_point).wrapping_mul(1 << 7) as i16;
            let on_output_scale = rdhm(hires, out_m);
            let mut gate = hires;
            if relu_exp > 0 {
                gate = shl_sat(gate, relu_exp - 1);
            }
            gate = rdhm(gate, relu_m);
            if relu_exp > 0 {
                gate = shl_sat(gate, 1);
            }
            if relu_exp < 0 {
                gate = rdiv(gate, -relu_exp);
            }
            let gate = ((gate as i32 + (1 << 15)) >> 1) as i16;
            let y = (rdiv(dhm(gate, on_output_scale), -out_exp) as i32)
                .saturating_add(output.zero_point);
            y.clamp(-128, 127) as i8 as u8
        })
        .collect()
}

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    same_shape(inputs)
}

pub(super) fn eval(f: UnaryFn, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    for (y, &x) in out.data.iter_mut().zip(inputs[0].data) {
        *y = f.at(x as f64) as f32;
    }
    Ok(())
}

pub(super) fn backward(f: UnaryFn, g: &Grad<'_>) -> Result<OpGrads> {
    Ok(OpGrads::input(g.need[0].then(|| {
        g.inputs[0]
            .data
            .iter()
            .zip(g.dy)
            .map(|(&x, &d)| d * f.slope(x as f64) as f32)
            .collect()
    })))
}

pub(super) fn lower<'a>(cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    ensure!(
        !cx.float,
        "LOOKUP has no f32 form (the function runs in int8 only)"
    );
    Ok(lower_table(cx))
}

/// A LOOKUP over the table the lowering computed for the node ([`crate::ir::Op::table`]).
pub(super) fn lower_table<'a>(cx: &NodeCx<'_, 'a>) -> RtOp<'a> {
    RtOp::Lookup(Lookup {
        input: cx.input(0),
        output: cx.output(),
        table: &cx.data.filter,
    })
}

/// The table of an int8 kernel of one value: its output for each of the 256 inputs.
pub(super) fn kernel_table(kernel: impl Fn(&[i8], &mut [i8])) -> Vec<u8> {
    let x: Vec<i8> = (-128..=127).map(|q| q as i8).collect();
    let mut y = vec![0i8; x.len()];
    kernel(&x, &mut y);
    y.iter().map(|&v| v as u8).collect()
}

/// The ONNX opset that has the function's operator: Mish is from opset 18, Gelu from 20 (SiLU is
/// written as Sigmoid and Mul).
pub(super) fn onnx_opset(f: UnaryFn) -> i64 {
    match f {
        UnaryFn::Gelu { .. } => 20,
        UnaryFn::Mish => 18,
        _ => crate::export::OPSET,
    }
}

pub(super) fn export(f: UnaryFn, e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    let (x, l) = e.act(n.inputs[0])?;
    if f == UnaryFn::Silu {
        let gate = e.op(
            "Sigmoid",
            &format!("{}/sigmoid", n.name),
            vec![x.clone()],
            Vec::new(),
        );
        return Ok((e.op("Mul", &n.name, vec![x, gate], Vec::new()), l));
    }
    if let UnaryFn::WithConstant(k) = f {
        let c = e.init_f32(&format!("{}/constant", n.name), &[], &[k.real() as f32]);
        let operands = if k.first { vec![c, x] } else { vec![x, c] };
        let y = e.op(f.onnx_name(), &n.name, operands, Vec::new());
        return Ok((e.clamp(y, k.clamp, &n.name), l));
    }
    if let UnaryFn::Pow { exponent } = f {
        let k = e.init_f32(&format!("{}/exponent", n.name), &[], &[exponent as f32]);
        return Ok((e.op("Pow", &n.name, vec![x, k], Vec::new()), l));
    }
    let attrs = match f {
        UnaryFn::Elu { alpha } | UnaryFn::Celu { alpha } | UnaryFn::ThresholdedRelu { alpha } => {
            vec![a_float("alpha", alpha)]
        }
        UnaryFn::Selu { alpha, gamma } => vec![a_float("alpha", alpha), a_float("gamma", gamma)],
        UnaryFn::Shrink { bias, lambd } => vec![a_float("bias", bias), a_float("lambd", lambd)],
        UnaryFn::Gelu { tanh } => vec![a_str("approximate", if tanh { "tanh" } else { "none" })],
        _ => Vec::new(),
    };
    Ok((e.op(f.onnx_name(), &n.name, vec![x], attrs), l))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A constant operand's function, slope and TFLite table agree: each table entry is the
    /// function of its input within one output step, the constant on either side of Sub and with
    /// the fused clamp.
    #[test]
    fn a_constant_operand_tables_its_operator() {
        let input = QParams {
            scale: 0.05,
            zero_point: -3,
        };
        let output = QParams {
            scale: 0.04,
            zero_point: 5,
        };
        for op in [
            ConstArith::Add,
            ConstArith::Sub,
            ConstArith::Mul,
            ConstArith::Maximum,
            ConstArith::Minimum,
        ] {
            for first in [false, true] {
                for clamp in [Clamp::NONE, Clamp::RELU] {
                    // TFLite gives MAXIMUM and MINIMUM one quantization for all three tensors.
                    let extremum = matches!(op, ConstArith::Maximum | ConstArith::Minimum);
                    let (q, output) = if extremum {
                        (input, input)
                    } else {
                        (
                            QParams {
                                scale: 0.02,
                                zero_point: -11,
                            },
                            output,
                        )
                    };
                    let k = ConstOperand {
                        op,
                        value: 37,
                        scale: q.scale,
                        zero_point: q.zero_point,
                        first,
                        clamp,
                    };
                    let f = UnaryFn::WithConstant(k);
                    let table = k.tflite_table(input, output);
                    for (i, &t) in table.iter().enumerate() {
                        let x = input.scale as f64 * (i as i32 - 128 - input.zero_point) as f64;
                        let want = (f.at(x) / output.scale as f64 + output.zero_point as f64)
                            .clamp(-128.0, 127.0);
                        let got = t as i8 as f64;
                        assert!(
                            (got - want).abs() <= 1.0,
                            "{k:?} at {x}: {got} against {want}"
                        );
                    }
                    // The slope by a central difference away from the kinks.
                    let x = -1.7;
                    let d = (f.at(x + 1e-6) - f.at(x - 1e-6)) / 2e-6;
                    assert!(
                        (f.slope(x) - d).abs() < 1e-6,
                        "{k:?}: {} against {d}",
                        f.slope(x)
                    );
                }
            }
        }
        let sub = |first| ConstOperand {
            op: ConstArith::Sub,
            value: 37,
            scale: 0.02,
            zero_point: -11,
            first,
            clamp: Clamp::NONE,
        };
        assert!((sub(true).real() - 0.96).abs() < 1e-6);
        assert!((UnaryFn::WithConstant(sub(true)).at(0.5) - 0.46).abs() < 1e-6);
        assert!((UnaryFn::WithConstant(sub(false)).at(0.5) + 0.46).abs() < 1e-6);
    }

    /// The int16-input table, as the runtime interpolates it, is the correctly rounded function at
    /// every int16 input but within one int8 step where rounding ties are close; at least 99% of
    /// the inputs give exactly the correctly rounded value.
    #[test]
    fn int16_tables_interpolate_to_the_rounded_function() {
        let cases: [(UnaryFn, f32, QParams); 3] = [
            (
                UnaryFn::Erf,
                4.0 / 32767.0,
                QParams {
                    scale: 1.0 / 128.0,
                    zero_point: 0,
                },
            ),
            (
                UnaryFn::Silu,
                9.0 / 32767.0,
                QParams {
                    scale: 0.035,
                    zero_point: -120,
                },
            ),
            (
                UnaryFn::Softsign,
                1e-3,
                QParams {
                    scale: 0.0075,
                    zero_point: 3,
                },
            ),
        ];
        for (f, scale, out) in cases {
            let table = table16(|x| f.at(x), scale, out);
            let table: &[u8; 1026] = table.as_slice().try_into().unwrap();
            let x: Vec<i16> = (i16::MIN..=i16::MAX).collect();
            let mut y = vec![0i8; x.len()];
            ferrite_runtime::ops::lookup::lookup_s16(table, &x, &mut y);
            let mut exact = 0;
            for (&x, &y) in x.iter().zip(&y) {
                let want = (f.at(x as f64 * scale as f64) / out.scale as f64).round()
                    + out.zero_point as f64;
                let want = want.clamp(-128.0, 127.0) as i32;
                assert!((y as i32 - want).abs() <= 1, "{f:?} at {x}: {y} vs {want}");
                exact += (y as i32 == want) as usize;
            }
            assert!(exact * 100 >= 99 * x.len(), "{f:?}: {exact} exact");
        }
    }

    /// The int16 range of a wide output ends where the function's int8 output stops changing:
    /// Tanh (output step 1/128) rounds to its extremes beyond about 3.1; Exp (output step 0.5)
    /// keeps growing up to the largest input seen, 4, while below about -1.4 it rounds to 0, so
    /// the inputs down to -9 do not widen the range.
    #[test]
    fn wide_scales_clip_where_the_output_saturates() {
        let tanh_out = QParams {
            scale: 1.0 / 128.0,
            zero_point: 0,
        };
        let magnitude = wide_scale(f64::tanh, -40.0, 25.0, tanh_out) * 32767.0;
        let edge = (1.0f64 - 1.0 / 256.0).atanh() as f32;
        assert!((magnitude - edge).abs() < 0.05, "{magnitude} vs {edge}");
        let exp_out = QParams {
            scale: 0.5,
            zero_point: -128,
        };
        let magnitude = wide_scale(f64::exp, -9.0, 4.0, exp_out) * 32767.0;
        assert!((magnitude - 4.0).abs() < 0.01, "{magnitude}");
    }

    /// TFLite Micro's HARD_SWISH table: within two steps of the correctly rounded function at the
    /// scales a converter gives (its golden fixture checks the exact bytes), and no overflow at any
    /// scale or zero point (test builds check arithmetic overflow).
    #[test]
    fn tflite_hard_swish_is_close_to_the_function_and_never_overflows() {
        for (x_scale, y_scale) in [(0.05, 0.04), (0.02, 0.011), (0.1, 0.09)] {
            let (x, y) = (
                QParams {
                    scale: x_scale,
                    zero_point: -10,
                },
                QParams {
                    scale: y_scale,
                    zero_point: -100,
                },
            );
            let got = tflite_hard_swish_table(x, y);
            let want = UnaryFn::HardSwish.table(x, y);
            for (&a, &b) in got.iter().zip(&want) {
                assert!(
                    (a as i8 as i32 - b as i8 as i32).abs() <= 2,
                    "{x_scale}: {a} vs {b}"
                );
            }
        }
        for e in -30..30 {
            for zero_point in [-128, 0, 127] {
                let x = QParams {
                    scale: 2f32.powi(e),
                    zero_point,
                };
                let y = QParams {
                    scale: 2f32.powi(-e / 2),
                    zero_point,
                };
                tflite_hard_swish_table(x, y);
            }
        }
    }
}
