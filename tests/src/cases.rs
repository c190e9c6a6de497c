//! Golden cases: one per operator (int8 and f32 paths) plus small networks, built with seeded random
//! weights and inputs. Each case's expected output is what the host runtime computes.

use anyhow::{anyhow, Result};
use ferrite_quantizer::builder::{ModelBuilder, TensorDef};
use ferrite_runtime::format::{Activation, DType, Shape, Window};
use ferrite_runtime::ops::{
    AddParams, Binary, ConcatInput, Conv, Dequantize, FullyConnected, LeakyRelu, LeakyReluParams,
    LogisticParams, MeanParams, MulParams, Op, PRelu, PReluParams, Pad, Pool, Quantize, Relu,
    ReluParams, RequantizeParams, Reshape, ResizeNearestNeighbor, Softmax, SoftmaxParams,
    TanhParams, Unary,
};
use ferrite_runtime::quant::prepare::quantize_multiplier;
use ferrite_runtime::{Interpreter, Model};

/// A model with one input vector and the outputs the host runtime gives for it.
#[derive(Clone)]
pub struct Case {
    pub name: String,
    pub about: String,
    pub model: Vec<u8>,
    /// All inputs' bytes, concatenated in input order.
    pub input: Vec<u8>,
    /// All outputs' bytes, concatenated in output order.
    pub expected: Vec<u8>,
    pub arena: usize,
}

/// Runs `model` on `input` (inputs concatenated) with the host runtime; returns the outputs concatenated.
pub fn run(model: &[u8], input: &[u8]) -> Result<Vec<u8>> {
    let m = Model::from_bytes(model).map_err(|e| anyhow!("loading: {e}"))?;
    let mut arena = vec![0u8; m.arena_size() + 16];
    let mut it = Interpreter::new(&m, &mut arena).map_err(|e| anyhow!("{e}"))?;
    let mut at = 0;
    for i in 0..it.inputs() {
        let dst = it.input_bytes_mut(i).map_err(|e| anyhow!("{e}"))?;
        let src = input
            .get(at..at + dst.len())
            .ok_or_else(|| anyhow!("input too short"))?;
        dst.copy_from_slice(src);
        at += dst.len();
    }
    if at != input.len() {
        return Err(anyhow!("input has {} bytes, model takes {at}", input.len()));
    }
    it.invoke().map_err(|e| anyhow!("invoke: {e}"))?;
    let mut out = Vec::new();
    for i in 0..it.outputs() {
        out.extend_from_slice(it.output_bytes(i).map_err(|e| anyhow!("{e}"))?);
    }
    Ok(out)
}

/// xorshift64*, seeded per case.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i32
    }
    pub fn i8s(&mut self, n: usize, lo: i32, hi: i32) -> Vec<u8> {
        (0..n).map(|_| self.range(lo, hi) as i8 as u8).collect()
    }
    pub fn i32s_le(&mut self, n: usize, lo: i32, hi: i32) -> Vec<u8> {
        (0..n)
            .flat_map(|_| self.range(lo, hi).to_le_bytes())
            .collect()
    }
    pub fn f32s_le(&mut self, n: usize, lo: f32, hi: f32) -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                (lo + (hi - lo) * (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
                    .to_le_bytes()
            })
            .collect()
    }
}

pub(crate) fn shape(d: &[usize]) -> Shape {
    Shape::new(d).expect("test shape fits")
}

pub(crate) fn t_i8(b: &mut ModelBuilder<'_>, name: &str, d: &[usize], scale: f32, zp: i32) -> u16 {
    b.tensor(TensorDef {
        name: name.into(),
        dtype: DType::I8,
        shape: shape(d),
        scale,
        zero_point: zp,
    })
}

fn t_f32(b: &mut ModelBuilder<'_>, name: &str, d: &[usize]) -> u16 {
    b.tensor(TensorDef {
        name: name.into(),
        dtype: DType::F32,
        shape: shape(d),
        scale: 0.0,
        zero_point: 0,
    })
}

/// Per-channel multipliers and shifts (little-endian int32) for `input_scale * w[c] / output_scale`.
pub(crate) fn requant_le(
    input_scale: f32,
    weight_scales: &[f32],
    output_scale: f32,
) -> (Vec<u8>, Vec<u8>) {
    let mut m = Vec::new();
    let mut s = Vec::new();
    for &w in weight_scales {
        let r = quantize_multiplier(input_scale as f64 * w as f64 / output_scale as f64);
        m.extend_from_slice(&r.multiplier.to_le_bytes());
        s.extend_from_slice(&r.shift.to_le_bytes());
    }
    (m, s)
}

pub(crate) fn window(stride: u16, dilation: u16, pad_top: u16, pad_left: u16) -> Window {
    Window {
        stride_h: stride,
        stride_w: stride,
        dilation_h: dilation,
        dilation_w: dilation,
        pad_top,
        pad_left,
    }
}

/// Finishes a case: builds the model, draws an input of every input tensor, runs the host runtime.
pub(crate) fn finish(name: &str, about: &str, b: ModelBuilder<'_>, rng: &mut Rng) -> Result<Case> {
    let inputs: Vec<(DType, usize)> = b_inputs(&b);
    let built = b.finish()?;
    let mut input = Vec::new();
    for (dtype, n) in inputs {
        match dtype {
            DType::F32 => input.extend(rng.f32s_le(n, -2.0, 2.0)),
            _ => input.extend(rng.i8s(n, -128, 127)),
        }
    }
    let expected = run(&built.bytes, &input)?;
    Ok(Case {
        name: name.into(),
        about: about.into(),
        model: built.bytes,
        input,
        expected,
        arena: built.plan.arena_size,
    })
}

fn b_inputs(b: &ModelBuilder<'_>) -> Vec<(DType, usize)> {
    b.inputs()
        .iter()
        .map(|&t| (b.def(t).dtype, b.def(t).shape.elements().unwrap_or(0)))
        .collect()
}

/// Conv2D or DepthwiseConv2D, int8, per-channel weights.
#[allow(clippy::too_many_arguments)]
fn conv_case(
    name: &str,
    seed: u64,
    depthwise: bool,
    input: [usize; 4],
    out_c: usize,
    k: usize,
    w: Window,
    out_hw: (usize, usize),
    act: Activation,
) -> Result<Case> {
    let mut rng = Rng::new(seed);
    let [n, _, _, c] = input;
    let (in_s, in_zp, out_s, out_zp) = (0.05f32, -3, 0.12f32, 5);
    let filter_len = if depthwise {
        k * k * out_c
    } else {
        out_c * k * k * c
    };
    let filter = rng.i8s(filter_len, -127, 127);
    let bias = rng.i32s_le(out_c, -2000, 2000);
    let wscales: Vec<f32> = (0..out_c).map(|i| 0.004 + 0.001 * (i % 5) as f32).collect();
    let (mult, shift) = requant_le(in_s, &wscales, out_s);
    let (act_min, act_max) = act.quantized_range(out_s, out_zp);
    let mut b = ModelBuilder::new();
    let x = t_i8(&mut b, "x", &input, in_s, in_zp);
    let y = t_i8(&mut b, "y", &[n, out_hw.0, out_hw.1, out_c], out_s, out_zp);
    let conv = Conv {
        input: b.operand(x),
        output: b.operand(y),
        kernel_h: k as u16,
        kernel_w: k as u16,
        window: w,
        depth_multiplier: if depthwise { (out_c / c) as u16 } else { 1 },
        activation: act,
        act_min,
        act_max,
        filter: &filter,
        bias: &bias,
        multiplier: &mult,
        shift: &shift,
    };
    b.push(if depthwise {
        Op::DepthwiseConv2d(conv)
    } else {
        Op::Conv2d(conv)
    });
    b.set_inputs(&[x]);
    b.set_outputs(&[y]);
    finish(name, "int8 convolution, per-channel weights", b, &mut rng)
}

/// One int8 operator from input `x` (shape `d`, scale 0.06, zero point 7) to `y` (`out_q`).
fn unary_case(
    name: &str,
    seed: u64,
    d: &[usize],
    out_d: &[usize],
    out_q: (f32, i32),
    make: impl FnOnce(&ModelBuilder<'_>, u16, u16) -> Op<'static>,
) -> Result<Case> {
    let mut rng = Rng::new(seed);
    let mut b = ModelBuilder::new();
    let x = t_i8(&mut b, "x", d, 0.06, 7);
    let y = t_i8(&mut b, "y", out_d, out_q.0, out_q.1);
    let op = make(&b, x, y);
    b.push(op);
    b.set_inputs(&[x]);
    b.set_outputs(&[y]);
    finish(name, "one int8 operator", b, &mut rng)
}

/// Add or Mul with broadcasting of the second operand.
fn binary_case(name: &str, seed: u64, mul: bool) -> Result<Case> {
    let mut rng = Rng::new(seed);
    let mut b = ModelBuilder::new();
    let (sa, za, sb, zb, so, zo) = (
        0.05f32,
        -4,
        0.09f32,
        11,
        if mul { 0.02f32 } else { 0.1 },
        -2,
    );
    let x = t_i8(&mut b, "a", &[1, 4, 5, 8], sa, za);
    let z = t_i8(&mut b, "b", &[1, 1, 5, 8], sb, zb);
    let y = t_i8(&mut b, "y", &[1, 4, 5, 8], so, zo);
    let act = Activation::Relu;
    let (lo, hi) = act.quantized_range(so, zo);
    let (oa, ob, oy) = (b.operand(x), b.operand(z), b.operand(y));
    b.push(if mul {
        Op::Mul(Binary {
            a: oa,
            b: ob,
            output: oy,
            activation: act,
            quant: Some(MulParams::prepare(sa, za, sb, zb, so, zo, lo, hi)),
        })
    } else {
        Op::Add(Binary {
            a: oa,
            b: ob,
            output: oy,
            activation: act,
            quant: Some(AddParams::prepare(sa, za, sb, zb, so, zo, lo, hi)),
        })
    });
    b.set_inputs(&[x, z]);
    b.set_outputs(&[y]);
    finish(
        name,
        "int8 binary operator with broadcasting and fused ReLU",
        b,
        &mut rng,
    )
}

fn pool_case(name: &str, seed: u64, average: bool) -> Result<Case> {
    let (s, zp) = (0.06f32, 7);
    let act = Activation::Relu6;
    let (lo, hi) = act.quantized_range(s, zp);
    unary_case(
        name,
        seed,
        &[1, 9, 9, 6],
        &[1, 5, 5, 6],
        (s, zp),
        |b, x, y| {
            let p = Pool {
                input: b.operand(x),
                output: b.operand(y),
                filter_h: 3,
                filter_w: 3,
                window: window(2, 1, 1, 1),
                activation: act,
                act_min: lo,
                act_max: hi,
            };
            if average {
                Op::AveragePool2d(p)
            } else {
                Op::MaxPool2d(p)
            }
        },
    )
}

/// Every single-operator case and the small networks.
pub fn all() -> Result<Vec<Case>> {
    let same = |k: usize| window(1, 1, ((k - 1) / 2) as u16, ((k - 1) / 2) as u16);
    let mut cases = vec![
        conv_case(
            "conv2d_3x3_same_relu",
            1,
            false,
            [1, 8, 8, 3],
            8,
            3,
            same(3),
            (8, 8),
            Activation::Relu,
        )?,
        // TF SAME with stride 2 on an even input puts the odd padding row/column after the input.
        conv_case(
            "conv2d_3x3_s2_relu6",
            2,
            false,
            [1, 10, 9, 4],
            6,
            3,
            window(2, 1, 0, 1),
            (5, 5),
            Activation::Relu6,
        )?,
        conv_case(
            "conv2d_3x3_dilation2_b2",
            3,
            false,
            [2, 9, 9, 2],
            4,
            3,
            window(1, 2, 2, 2),
            (9, 9),
            Activation::None,
        )?,
        conv_case(
            "conv2d_1x1",
            4,
            false,
            [1, 6, 6, 16],
            16,
            1,
            same(1),
            (6, 6),
            Activation::Relu,
        )?,
        conv_case(
            "depthwise_3x3_relu",
            5,
            true,
            [1, 8, 8, 8],
            8,
            3,
            same(3),
            (8, 8),
            Activation::Relu,
        )?,
        conv_case(
            "depthwise_3x3_s2_dm2",
            6,
            true,
            [1, 7, 7, 4],
            8,
            3,
            window(2, 1, 1, 1),
            (4, 4),
            Activation::None,
        )?,
        binary_case("add_broadcast_relu", 7, false)?,
        binary_case("mul_broadcast_relu", 8, true)?,
        pool_case("average_pool_3x3_s2", 9, true)?,
        pool_case("max_pool_3x3_s2", 10, false)?,
        fully_connected_case()?,
        unary_case(
            "mean_hw",
            12,
            &[1, 5, 6, 10],
            &[1, 1, 1, 10],
            (0.03, -1),
            |b, x, y| {
                Op::Mean(Unary {
                    input: b.operand(x),
                    output: b.operand(y),
                    quant: Some(MeanParams::prepare(0.06, 7, 0.03, -1, 30)),
                })
            },
        )?,
        unary_case(
            "softmax",
            13,
            &[2, 10],
            &[2, 10],
            (1.0 / 256.0, -128),
            |b, x, y| {
                Op::Softmax(Softmax {
                    input: b.operand(x),
                    output: b.operand(y),
                    beta: 1.0,
                    quant: Some(SoftmaxParams::prepare(1.0, 0.06)),
                })
            },
        )?,
        unary_case(
            "logistic",
            14,
            &[1, 64],
            &[1, 64],
            (1.0 / 256.0, -128),
            |b, x, y| {
                Op::Logistic(Unary {
                    input: b.operand(x),
                    output: b.operand(y),
                    quant: Some(LogisticParams::prepare(0.06, 7)),
                })
            },
        )?,
        unary_case(
            "tanh",
            15,
            &[1, 64],
            &[1, 64],
            (1.0 / 128.0, 0),
            |b, x, y| {
                Op::Tanh(Unary {
                    input: b.operand(x),
                    output: b.operand(y),
                    quant: Some(TanhParams::prepare(0.06, 7)),
                })
            },
        )?,
        unary_case("relu", 16, &[1, 64], &[1, 64], (0.03, -128), |b, x, y| {
            let p = ReluParams::prepare(0.06, 7, 0.03, -128, Activation::Relu);
            Op::Relu(Relu {
                input: b.operand(x),
                output: b.operand(y),
                quant: Some(p),
                activation: Activation::Relu,
            })
        })?,
        // Relu6 keeps its input's quantization, as in TFLite Micro.
        unary_case("relu6", 22, &[1, 64], &[1, 64], (0.06, 7), |b, x, y| {
            let p = ReluParams::prepare(0.06, 7, 0.06, 7, Activation::Relu6);
            Op::Relu(Relu {
                input: b.operand(x),
                output: b.operand(y),
                quant: Some(p),
                activation: Activation::Relu6,
            })
        })?,
        // The output keeps the input's quantization (unary_case's (0.06, 7)).
        unary_case(
            "resize_nearest_neighbor",
            25,
            &[1, 3, 4, 5],
            &[1, 6, 12, 5],
            (0.06, 7),
            |b, x, y| {
                Op::ResizeNearestNeighbor(ResizeNearestNeighbor {
                    input: b.operand(x),
                    output: b.operand(y),
                })
            },
        )?,
        unary_case(
            "prelu",
            26,
            &[1, 4, 4, 6],
            &[1, 4, 4, 6],
            (0.05, -10),
            |b, x, y| {
                // One int8 alpha per channel (40, -100, 0, 127, -128, 10 as bytes), zero point 3:
                // slopes 0.37, -1.03, -0.03, 1.24, -1.31, 0.07 at scale 0.01.
                const ALPHA: [u8; 6] = [40, 156, 0, 127, 128, 10];
                Op::PRelu(PRelu {
                    input: b.operand(x),
                    output: b.operand(y),
                    alpha: &ALPHA,
                    quant: Some(PReluParams::prepare(0.06, 7, 0.01, 3, 0.05, -10)),
                })
            },
        )?,
        unary_case(
            "leaky_relu",
            24,
            &[1, 64],
            &[1, 64],
            (0.04, -20),
            |b, x, y| {
                Op::LeakyRelu(LeakyRelu {
                    input: b.operand(x),
                    output: b.operand(y),
                    alpha: 0.2,
                    quant: Some(LeakyReluParams::prepare(0.06, 7, 0.2, 0.04, -20)),
                })
            },
        )?,
        unary_case(
            "requantize",
            17,
            &[1, 64],
            &[1, 64],
            (0.1, 20),
            |b, x, y| {
                let r = RequantizeParams::prepare(0.06, 7, 0.1, 20);
                Op::Quantize(Quantize {
                    input: b.operand(x),
                    output: b.operand(y),
                    scale: 0.1,
                    requant: Some(r),
                })
            },
        )?,
        unary_case(
            "pad_nhwc",
            18,
            &[1, 3, 4, 2],
            &[1, 5, 7, 3],
            (0.06, 7),
            |b, x, y| {
                Op::Pad(Pad {
                    input: b.operand(x),
                    output: b.operand(y),
                    before: [0, 1, 2, 1],
                })
            },
        )?,
        reshape_concat_case()?,
        float_case()?,
    ];
    cases.push(small_cnn_case()?);
    Ok(cases)
}

fn fully_connected_case() -> Result<Case> {
    let mut rng = Rng::new(11);
    let (in_s, in_zp, out_s, out_zp) = (0.04f32, 3, 0.2f32, -6);
    let filter = rng.i8s(10 * 24, -127, 127);
    let bias = rng.i32s_le(10, -3000, 3000);
    let (mult, shift) = requant_le(in_s, &[0.01], out_s);
    let mut b = ModelBuilder::new();
    let x = t_i8(&mut b, "x", &[2, 24], in_s, in_zp);
    let y = t_i8(&mut b, "y", &[2, 10], out_s, out_zp);
    b.push(Op::FullyConnected(FullyConnected {
        input: b.operand(x),
        output: b.operand(y),
        activation: Activation::None,
        act_min: -128,
        act_max: 127,
        filter: &filter,
        bias: &bias,
        multiplier: &mult,
        shift: &shift,
    }));
    b.set_inputs(&[x]);
    b.set_outputs(&[y]);
    finish(
        "fully_connected_b2",
        "int8 fully connected, per-tensor weights, batch 2",
        b,
        &mut rng,
    )
}

/// Reshape (in place), then Concatenation of it with a second input needing requantization.
fn reshape_concat_case() -> Result<Case> {
    let mut rng = Rng::new(19);
    let mut b = ModelBuilder::new();
    let x = t_i8(&mut b, "x", &[1, 2, 3, 4], 0.05, 1);
    let r = t_i8(&mut b, "r", &[1, 6, 4], 0.05, 1);
    let z = t_i8(&mut b, "z", &[1, 6, 2], 0.08, -3);
    let y = t_i8(&mut b, "y", &[1, 6, 6], 0.05, 1);
    b.push(Op::Reshape(Reshape {
        input: b.operand(x),
        output: b.operand(r),
    }));
    let parts = vec![
        ConcatInput {
            input: b.operand(r),
            requant: None,
        },
        ConcatInput {
            input: b.operand(z),
            requant: Some(RequantizeParams::prepare(0.08, -3, 0.05, 1)),
        },
    ];
    b.concatenation(parts, b.operand(y), 2);
    b.set_inputs(&[x, z]);
    b.set_outputs(&[y]);
    finish(
        "reshape_concat",
        "in-place reshape, then concatenation on the last axis with requantization",
        b,
        &mut rng,
    )
}

/// f32 input -> Quantize -> int8 conv -> Dequantize -> f32 fully connected -> f32 softmax.
fn float_case() -> Result<Case> {
    let mut rng = Rng::new(20);
    let (qs, qz, cs, cz) = (0.016f32, 0, 0.05f32, -10);
    let filter = rng.i8s(4 * 3 * 3 * 2, -127, 127);
    let bias = rng.i32s_le(4, -500, 500);
    let (mult, shift) = requant_le(qs, &[0.01; 4], cs);
    let fc_w = rng.f32s_le(5 * 64, -0.3, 0.3);
    let fc_b = rng.f32s_le(5, -0.1, 0.1);
    let (lo, hi) = Activation::Relu.quantized_range(cs, cz);
    let mut b = ModelBuilder::new();
    let x = t_f32(&mut b, "x", &[1, 4, 4, 2]);
    let q = t_i8(&mut b, "q", &[1, 4, 4, 2], qs, qz);
    let c = t_i8(&mut b, "c", &[1, 4, 4, 4], cs, cz);
    let d = t_f32(&mut b, "d", &[1, 4, 4, 4]);
    let f = t_f32(&mut b, "f", &[1, 5]);
    let y = t_f32(&mut b, "y", &[1, 5]);
    b.push(Op::Quantize(Quantize {
        input: b.operand(x),
        output: b.operand(q),
        scale: qs,
        requant: None,
    }));
    b.push(Op::Conv2d(Conv {
        input: b.operand(q),
        output: b.operand(c),
        kernel_h: 3,
        kernel_w: 3,
        window: window(1, 1, 1, 1),
        depth_multiplier: 1,
        activation: Activation::Relu,
        act_min: lo,
        act_max: hi,
        filter: &filter,
        bias: &bias,
        multiplier: &mult,
        shift: &shift,
    }));
    b.push(Op::Dequantize(Dequantize {
        input: b.operand(c),
        output: b.operand(d),
        scale: cs,
    }));
    b.push(Op::FullyConnected(FullyConnected {
        input: b.operand(d),
        output: b.operand(f),
        activation: Activation::None,
        act_min: 0,
        act_max: 0,
        filter: &fc_w,
        bias: &fc_b,
        multiplier: &[],
        shift: &[],
    }));
    b.push(Op::Softmax(Softmax {
        input: b.operand(f),
        output: b.operand(y),
        beta: 1.0,
        quant: None,
    }));
    b.set_inputs(&[x]);
    b.set_outputs(&[y]);
    finish(
        "float_islands",
        "f32 in and out around an int8 convolution; f32 fully connected and softmax",
        b,
        &mut rng,
    )
}

/// A DS-CNN-like network: conv -> depthwise -> pointwise -> average pool -> reshape -> FC -> softmax.
fn small_cnn_case() -> Result<Case> {
    let mut rng = Rng::new(21);
    let s = [0.05f32, 0.04, 0.045, 0.05, 0.05, 0.1];
    let z = [-5, -128, -128, -128, -128, 3];
    let c1w = rng.i8s(8 * 3 * 3, -127, 127);
    let c1b = rng.i32s_le(8, -500, 500);
    let dww = rng.i8s(3 * 3 * 8, -127, 127);
    let dwb = rng.i32s_le(8, -500, 500);
    let pww = rng.i8s(8 * 8, -127, 127);
    let pwb = rng.i32s_le(8, -500, 500);
    let fcw = rng.i8s(4 * 8, -127, 127);
    let fcb = rng.i32s_le(4, -500, 500);
    let ws = [0.01f32; 8];
    let (m1, h1) = requant_le(s[0], &ws, s[1]);
    let (m2, h2) = requant_le(s[1], &ws, s[2]);
    let (m3, h3) = requant_le(s[2], &ws, s[3]);
    let (m5, h5) = requant_le(s[4], &ws[..1], s[5]);
    let relu = |i: usize| Activation::Relu.quantized_range(s[i], z[i]);
    let mut b = ModelBuilder::new();
    let x = t_i8(&mut b, "input", &[1, 10, 8, 1], s[0], z[0]);
    let a1 = t_i8(&mut b, "conv1", &[1, 5, 4, 8], s[1], z[1]);
    let a2 = t_i8(&mut b, "dw", &[1, 5, 4, 8], s[2], z[2]);
    let a3 = t_i8(&mut b, "pw", &[1, 5, 4, 8], s[3], z[3]);
    let a4 = t_i8(&mut b, "pool", &[1, 1, 1, 8], s[4], z[4]);
    let a5 = t_i8(&mut b, "flat", &[1, 8], s[4], z[4]);
    let a6 = t_i8(&mut b, "logits", &[1, 4], s[5], z[5]);
    let y = t_i8(&mut b, "probs", &[1, 4], 1.0 / 256.0, -128);
    let conv = |b: &ModelBuilder<'_>, i, o, k: u16, w, dm, act: (i32, i32), f, bias, m, sh| Conv {
        input: b.operand(i),
        output: b.operand(o),
        kernel_h: k,
        kernel_w: k,
        window: w,
        depth_multiplier: dm,
        activation: Activation::Relu,
        act_min: act.0,
        act_max: act.1,
        filter: f,
        bias,
        multiplier: m,
        shift: sh,
    };
    let c1 = conv(
        &b,
        x,
        a1,
        3,
        window(2, 1, 1, 1),
        1,
        relu(1),
        &c1w[..],
        &c1b[..],
        &m1[..],
        &h1[..],
    );
    let c2 = conv(
        &b,
        a1,
        a2,
        3,
        window(1, 1, 1, 1),
        1,
        relu(2),
        &dww[..],
        &dwb[..],
        &m2[..],
        &h2[..],
    );
    let c3 = conv(
        &b,
        a2,
        a3,
        1,
        window(1, 1, 0, 0),
        1,
        relu(3),
        &pww[..],
        &pwb[..],
        &m3[..],
        &h3[..],
    );
    b.push(Op::Conv2d(c1));
    b.push(Op::DepthwiseConv2d(c2));
    b.push(Op::Conv2d(c3));
    let pool = Pool {
        input: b.operand(a3),
        output: b.operand(a4),
        filter_h: 5,
        filter_w: 4,
        window: window(1, 1, 0, 0),
        activation: Activation::None,
        act_min: -128,
        act_max: 127,
    };
    b.push(Op::AveragePool2d(pool));
    b.push(Op::Reshape(Reshape {
        input: b.operand(a4),
        output: b.operand(a5),
    }));
    b.push(Op::FullyConnected(FullyConnected {
        input: b.operand(a5),
        output: b.operand(a6),
        activation: Activation::None,
        act_min: -128,
        act_max: 127,
        filter: &fcw,
        bias: &fcb,
        multiplier: &m5,
        shift: &h5,
    }));
    let sm = SoftmaxParams::prepare(1.0, s[5]);
    b.push(Op::Softmax(Softmax {
        input: b.operand(a6),
        output: b.operand(y),
        beta: 1.0,
        quant: Some(sm),
    }));
    b.set_inputs(&[x]);
    b.set_outputs(&[y]);
    finish(
        "small_dscnn",
        "a DS-CNN-like network: conv, depthwise, pointwise, pool, reshape, FC, softmax",
        b,
        &mut rng,
    )
}
