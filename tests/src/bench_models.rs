//! Benchmark models: the layer shapes of the MLPerf Tiny keyword-spotting DS-CNN and image-classification
//! ResNet-8 (see `BASELINES.md`), with seeded random int8 weights and input. Only the shapes matter for
//! speed and size; the outputs are still checked bit for bit against the host runtime.
//!
//! Written to `tests/bench/<name>/` by `cargo run -p ferrite-tests --bin make-golden`; measured by
//! `cargo xtask bench`. Layer names (the operators' output tensors) are what the bench report shows.

use anyhow::Result;
use ferrite_quantizer::builder::ModelBuilder;
use ferrite_runtime::format::{Activation, Window};
use ferrite_runtime::ops::{
    AddParams, Binary, Conv, FullyConnected, Op, Pool, Reshape, Softmax, SoftmaxParams,
};
use std::path::{Path, PathBuf};

use crate::cases::{finish, requant_le, t_i8, window, Case, Rng};

/// The committed benchmark directory, `tests/bench/`.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench")
}

/// Every benchmark model.
pub fn all() -> Result<Vec<Case>> {
    Ok(vec![kws_dscnn()?, ic_resnet8()?])
}

/// Weight scale of every output channel (per-channel in form, equal in value).
const W_SCALE: f32 = 0.005;

/// Weights, bias and requantization of one convolution or fully connected layer.
struct Weights {
    filter: Vec<u8>,
    bias: Vec<u8>,
    multiplier: Vec<u8>,
    shift: Vec<u8>,
    /// Output scale chosen so that the output spreads over the int8 range.
    out_scale: f32,
}

/// Random weights for `out_c` channels of `k` products each (`filter_len` weights in all).
fn weights(rng: &mut Rng, filter_len: usize, out_c: usize, k: usize, in_scale: f32) -> Weights {
    let filter = rng.i8s(filter_len, -127, 127);
    let bias = rng.i32s_le(out_c, -1000, 1000);
    // Products of two uniform int8 values have a standard deviation near 73 * 73; a sum of k of them
    // grows with sqrt(k). Aim at about 40 output steps per standard deviation.
    let out_scale = in_scale * W_SCALE * 73.0 * 73.0 * (k as f32).sqrt() / 40.0;
    let (multiplier, shift) = requant_le(in_scale, &vec![W_SCALE; out_c], out_scale);
    Weights {
        filter,
        bias,
        multiplier,
        shift,
        out_scale,
    }
}

#[allow(clippy::too_many_arguments)]
fn conv<'a>(
    b: &ModelBuilder<'a>,
    input: u16,
    output: u16,
    (kh, kw): (u16, u16),
    window: Window,
    activation: Activation,
    w: &'a Weights,
    out_zp: i32,
) -> Conv<'a> {
    let (act_min, act_max) = activation.quantized_range(w.out_scale, out_zp);
    Conv {
        input: b.operand(input),
        output: b.operand(output),
        kernel_h: kh,
        kernel_w: kw,
        window,
        depth_multiplier: 1,
        activation,
        act_min,
        act_max,
        filter: &w.filter,
        bias: &w.bias,
        multiplier: &w.multiplier,
        shift: &w.shift,
    }
}

fn fully_connected<'a>(
    b: &ModelBuilder<'a>,
    input: u16,
    output: u16,
    w: &'a Weights,
) -> FullyConnected<'a> {
    FullyConnected {
        input: b.operand(input),
        output: b.operand(output),
        activation: Activation::None,
        act_min: -128,
        act_max: 127,
        filter: &w.filter,
        bias: &w.bias,
        multiplier: &w.multiplier,
        shift: &w.shift,
    }
}

/// Softmax with beta chosen so that the logits (about 40 steps per standard deviation) spread over a
/// few units: random weights would otherwise give one-hot outputs.
fn softmax(b: &ModelBuilder<'_>, input: u16, output: u16, in_scale: f32) -> Op<'static> {
    let beta = 0.05 / in_scale;
    Op::Softmax(Softmax {
        input: b.operand(input),
        output: b.operand(output),
        beta,
        quant: Some(SoftmaxParams::prepare(beta, in_scale)),
    })
}

fn average_pool(b: &ModelBuilder<'_>, input: u16, output: u16, h: u16, w: u16) -> Op<'static> {
    Op::AveragePool2d(Pool {
        input: b.operand(input),
        output: b.operand(output),
        filter_h: h,
        filter_w: w,
        window: window(1, 1, 0, 0),
        activation: Activation::None,
        act_min: -128,
        act_max: 127,
    })
}

/// MLPerf Tiny KWS DS-CNN shapes: input 49x10x1 (zero point 83); conv 10x4 stride 2 SAME (pad top 4,
/// left 1) -> 25x5x64; 4 x (depthwise 3x3 + pointwise 1x1 64->64), fused ReLU; average pool 25x5;
/// fully connected 64->12; softmax.
pub fn kws_dscnn() -> Result<Case> {
    let mut rng = Rng::new(101);
    let in_scale = 0.5f32;
    // ReLU outputs use zero point -128 (their range starts at 0).
    let relu_zp = -128;
    let c1 = weights(&mut rng, 64 * 10 * 4, 64, 40, in_scale);
    let mut blocks = Vec::new();
    let mut scale = c1.out_scale;
    for _ in 0..4 {
        let dw = weights(&mut rng, 3 * 3 * 64, 64, 9, scale);
        let pw = weights(&mut rng, 64 * 64, 64, 64, dw.out_scale);
        scale = pw.out_scale;
        blocks.push((dw, pw));
    }
    // The pool keeps its input's quantization.
    let fc = weights(&mut rng, 12 * 64, 12, 64, scale);

    let mut b = ModelBuilder::new();
    let x = t_i8(&mut b, "input", &[1, 49, 10, 1], in_scale, 83);
    let a = t_i8(&mut b, "conv1", &[1, 25, 5, 64], c1.out_scale, relu_zp);
    b.push(Op::Conv2d(conv(
        &b,
        x,
        a,
        (10, 4),
        window(2, 1, 4, 1),
        Activation::Relu,
        &c1,
        relu_zp,
    )));
    let mut prev = a;
    for (i, (dw, pw)) in blocks.iter().enumerate() {
        let d = t_i8(
            &mut b,
            &format!("dw{}", i + 1),
            &[1, 25, 5, 64],
            dw.out_scale,
            relu_zp,
        );
        b.push(Op::DepthwiseConv2d(conv(
            &b,
            prev,
            d,
            (3, 3),
            window(1, 1, 1, 1),
            Activation::Relu,
            dw,
            relu_zp,
        )));
        let p = t_i8(
            &mut b,
            &format!("pw{}", i + 1),
            &[1, 25, 5, 64],
            pw.out_scale,
            relu_zp,
        );
        b.push(Op::Conv2d(conv(
            &b,
            d,
            p,
            (1, 1),
            window(1, 1, 0, 0),
            Activation::Relu,
            pw,
            relu_zp,
        )));
        prev = p;
    }
    let pool = t_i8(&mut b, "avgpool", &[1, 1, 1, 64], scale, relu_zp);
    b.push(average_pool(&b, prev, pool, 25, 5));
    let flat = t_i8(&mut b, "reshape", &[1, 64], scale, relu_zp);
    b.push(Op::Reshape(Reshape {
        input: b.operand(pool),
        output: b.operand(flat),
    }));
    let logits = t_i8(&mut b, "fc", &[1, 12], fc.out_scale, 0);
    b.push(Op::FullyConnected(fully_connected(&b, flat, logits, &fc)));
    let y = t_i8(&mut b, "softmax", &[1, 12], 1.0 / 256.0, -128);
    b.push(softmax(&b, logits, y, fc.out_scale));
    b.set_inputs(&[x]);
    b.set_outputs(&[y]);
    finish(
        "kws_dscnn",
        "Benchmark: the layer shapes of MLPerf Tiny's keyword-spotting DS-CNN (kws_ref_model), with\n\
         seeded random int8 weights and input",
        b,
        &mut rng,
    )
}

/// MLPerf Tiny IC ResNet-8 shapes: input 32x32x3; conv 3x3 3->16; stage 1: two 3x3 16->16 convs and a
/// residual add; stages 2 and 3: 3x3 stride-2 conv, 3x3 conv, 1x1 stride-2 shortcut conv, add (16->32
/// on 16x16, 32->64 on 8x8); average pool 8x8; fully connected 64->10; softmax. ReLU after the first
/// conv of each block, the stem conv and each add.
pub fn ic_resnet8() -> Result<Case> {
    let mut rng = Rng::new(102);
    let in_scale = 1.0 / 128.0;
    let relu_zp = -128;
    let lin_zp = 0;
    let stem = weights(&mut rng, 16 * 3 * 3 * 3, 16, 27, in_scale);
    let s1a = weights(&mut rng, 16 * 9 * 16, 16, 144, stem.out_scale);
    let s1b = weights(&mut rng, 16 * 9 * 16, 16, 144, s1a.out_scale);
    let add1_scale = s1b.out_scale.max(stem.out_scale);
    let s2a = weights(&mut rng, 32 * 9 * 16, 32, 144, add1_scale);
    let s2b = weights(&mut rng, 32 * 9 * 32, 32, 288, s2a.out_scale);
    let s2s = weights(&mut rng, 32 * 16, 32, 16, add1_scale);
    let add2_scale = s2b.out_scale.max(s2s.out_scale);
    let s3a = weights(&mut rng, 64 * 9 * 32, 64, 288, add2_scale);
    let s3b = weights(&mut rng, 64 * 9 * 64, 64, 576, s3a.out_scale);
    let s3s = weights(&mut rng, 64 * 32, 64, 32, add2_scale);
    let add3_scale = s3b.out_scale.max(s3s.out_scale);
    let fc = weights(&mut rng, 10 * 64, 10, 64, add3_scale);

    let mut b = ModelBuilder::new();
    let x = t_i8(&mut b, "input", &[1, 32, 32, 3], in_scale, 0);
    let same = window(1, 1, 1, 1);
    // TF SAME with stride 2 on an even size pads only after: no padding before.
    let s2 = window(2, 1, 0, 0);
    let t = |b: &mut ModelBuilder<'_>, name: &str, hw: usize, c: usize, w: &Weights, zp: i32| {
        t_i8(b, name, &[1, hw, hw, c], w.out_scale, zp)
    };
    let add = |b: &mut ModelBuilder<'_>, a: u16, c: u16, name: &str, hw: usize, ch: usize| {
        let (sa, za) = (b.def(a).scale, b.def(a).zero_point);
        let (sc, zc) = (b.def(c).scale, b.def(c).zero_point);
        let so = sa.max(sc);
        let y = t_i8(b, name, &[1, hw, hw, ch], so, relu_zp);
        let (lo, hi) = Activation::Relu.quantized_range(so, relu_zp);
        let op = Op::Add(Binary {
            a: b.operand(a),
            b: b.operand(c),
            output: b.operand(y),
            activation: Activation::Relu,
            quant: Some(AddParams::prepare(sa, za, sc, zc, so, relu_zp, lo, hi)),
        });
        b.push(op);
        y
    };

    let a0 = t(&mut b, "conv1", 32, 16, &stem, relu_zp);
    b.push(Op::Conv2d(conv(
        &b,
        x,
        a0,
        (3, 3),
        same,
        Activation::Relu,
        &stem,
        relu_zp,
    )));
    // Stage 1.
    let a = t(&mut b, "s1_conv_a", 32, 16, &s1a, relu_zp);
    b.push(Op::Conv2d(conv(
        &b,
        a0,
        a,
        (3, 3),
        same,
        Activation::Relu,
        &s1a,
        relu_zp,
    )));
    let c = t(&mut b, "s1_conv_b", 32, 16, &s1b, lin_zp);
    b.push(Op::Conv2d(conv(
        &b,
        a,
        c,
        (3, 3),
        same,
        Activation::None,
        &s1b,
        lin_zp,
    )));
    let y1 = add(&mut b, c, a0, "s1_add", 32, 16);
    // Stages 2 and 3.
    let mut stage_in = y1;
    for (stage, hw, ch, wa, wb, ws) in [(2, 16, 32, &s2a, &s2b, &s2s), (3, 8, 64, &s3a, &s3b, &s3s)]
    {
        let a = t(&mut b, &format!("s{stage}_conv_a"), hw, ch, wa, relu_zp);
        b.push(Op::Conv2d(conv(
            &b,
            stage_in,
            a,
            (3, 3),
            s2,
            Activation::Relu,
            wa,
            relu_zp,
        )));
        let c = t(&mut b, &format!("s{stage}_conv_b"), hw, ch, wb, lin_zp);
        b.push(Op::Conv2d(conv(
            &b,
            a,
            c,
            (3, 3),
            same,
            Activation::None,
            wb,
            lin_zp,
        )));
        let s = t(&mut b, &format!("s{stage}_shortcut"), hw, ch, ws, lin_zp);
        b.push(Op::Conv2d(conv(
            &b,
            stage_in,
            s,
            (1, 1),
            window(2, 1, 0, 0),
            Activation::None,
            ws,
            lin_zp,
        )));
        stage_in = add(&mut b, c, s, &format!("s{stage}_add"), hw, ch);
    }
    let (ps, pz) = (b.def(stage_in).scale, b.def(stage_in).zero_point);
    let pool = t_i8(&mut b, "avgpool", &[1, 1, 1, 64], ps, pz);
    b.push(average_pool(&b, stage_in, pool, 8, 8));
    let flat = t_i8(&mut b, "reshape", &[1, 64], ps, pz);
    b.push(Op::Reshape(Reshape {
        input: b.operand(pool),
        output: b.operand(flat),
    }));
    let logits = t_i8(&mut b, "fc", &[1, 10], fc.out_scale, 0);
    b.push(Op::FullyConnected(fully_connected(&b, flat, logits, &fc)));
    let y = t_i8(&mut b, "softmax", &[1, 10], 1.0 / 256.0, -128);
    b.push(softmax(&b, logits, y, fc.out_scale));
    b.set_inputs(&[x]);
    b.set_outputs(&[y]);
    finish(
        "ic_resnet8",
        "Benchmark: the layer shapes of MLPerf Tiny's image-classification ResNet-8\n\
         (pretrainedResnet_quant), with seeded random int8 weights and input",
        b,
        &mut rng,
    )
}
