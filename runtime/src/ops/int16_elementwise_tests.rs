//! int16x8 Add, Mul, Relu, LeakyRelu, Concatenation and Pad through a loaded model: each runs its
//! int16 kernel, and validation refuses int16 parameters the kernels do not take.

use super::testutil::refusal;
use super::*;
use crate::format::{DType, SeqBuf, Shape, Tensor};
use crate::kernels::int16::{activation, elementwise};
use crate::{Interpreter, Model};
use std::vec;
use std::vec::Vec;

/// A tensor of the test models: name, type, dims, scale (zero point 0, or `zp`).
struct Def(&'static str, DType, &'static [usize], f32, i32);

/// The tensors of `defs`, placed one after the other in the arena.
fn tensors(defs: &[Def]) -> (Vec<Tensor<'static>>, u32) {
    let mut offset = 0u32;
    let mut out = Vec::new();
    for &Def(name, dtype, dims, scale, zero_point) in defs {
        let shape = Shape::new(dims).unwrap();
        let t = Tensor {
            name,
            dtype,
            shape,
            scale,
            zero_point,
            offset,
            first: 0,
            last: 0,
            in_place: false,
        };
        offset += (t.byte_len().unwrap() as u32).next_multiple_of(16);
        out.push(t);
    }
    (out, offset)
}

/// A model of the one operator `op` over `tensors`, the last of them the output.
fn model(tensors: &[Tensor<'_>], arena: u32, op: Op<'_>) -> Vec<u8> {
    super::testutil::one_op_model(tensors, arena, false, op)
}

/// Runs a loaded model on int16 inputs; returns its int16 output.
fn run(bytes: &[u8], inputs: &[&[i16]]) -> Vec<i16> {
    let m = Model::from_bytes(bytes).unwrap();
    let mut arena = vec![0u8; m.arena_size() + 16];
    let mut it = Interpreter::new(&m, &mut arena).unwrap();
    for (k, x) in inputs.iter().enumerate() {
        it.input_i16_mut(k).unwrap().copy_from_slice(x);
    }
    it.invoke().unwrap();
    it.output_i16(0).unwrap().to_vec()
}

fn ramp(n: usize, step: i32) -> Vec<i16> {
    (0..n)
        .map(|i| ((i as i32 * step) % 65536 - 32768) as i16)
        .collect()
}

const FULL: (i32, i32) = (-32768, 32767);

fn add_model(edit: impl FnOnce(&mut Binary<AddParams>)) -> Vec<u8> {
    add_model_of(DType::I16, edit)
}

/// An Add of an int16 `[1, 2, 3, 4]` tensor and a `[1, 1, 3, 1]` one of type `b_type`.
fn add_model_of(b_type: DType, edit: impl FnOnce(&mut Binary<AddParams>)) -> Vec<u8> {
    let (t, arena) = tensors(&[
        Def("a", DType::I16, &[1, 2, 3, 4], 1e-4, 0),
        Def("b", b_type, &[1, 1, 3, 1], 3e-4, 0),
        Def("y", DType::I16, &[1, 2, 3, 4], 5e-4, 0),
    ]);
    let mut op = Binary {
        a: t[0].operand(0),
        b: t[1].operand(1),
        output: t[2].operand(2),
        activation: crate::format::Activation::Relu,
        quant: Some(AddParams::prepare_int16(
            1e-4, 0, 3e-4, 0, 5e-4, 0, 0, FULL.1,
        )),
    };
    edit(&mut op);
    model(&t, arena, Op::Add(op))
}

#[test]
fn an_int16_add_broadcasts_and_runs_the_kernel() {
    let (a, b) = (ramp(24, 2731), ramp(3, 21001));
    let got = run(&add_model(|_| {}), &[&a, &b]);
    let p = AddParams::prepare_int16(1e-4, 0, 3e-4, 0, 5e-4, 0, 0, FULL.1);
    let mut want = vec![0i16; 24];
    let (sa, sb) = (Nhwc::new(1, 2, 3, 4), Nhwc::new(1, 1, 3, 1));
    elementwise::add_s16(&p, sa, &a, sb, &b, sa, &mut want);
    assert_eq!(got, want);
    assert!(want.iter().all(|&v| v >= 0) && want.iter().any(|&v| v > 0));
}

#[test]
fn bad_int16_add_parameters_are_refused() {
    let params = "add parameters inconsistent with its operands";
    // Shifted by more than 15, an int16 input leaves 32 bits.
    let bytes = add_model(|b| b.quant.as_mut().unwrap().left_shift = 16);
    assert_eq!(refusal(&bytes), params);
    let bytes = add_model(|b| b.quant.as_mut().unwrap().input1_offset = 1);
    assert_eq!(refusal(&bytes), params);
    let bytes = add_model(|b| b.quant.as_mut().unwrap().act_max = 32768);
    assert_eq!(
        refusal(&bytes),
        "activation clamp outside -32768..=32767 or empty"
    );
    let bytes = add_model(|b| b.quant = None);
    assert_eq!(
        refusal(&bytes),
        "int16 operator without its quantization parameters"
    );
    // An int8 operand among int16 ones.
    let bytes = add_model_of(DType::I8, |_| {});
    assert_eq!(refusal(&bytes), "unsupported element types");
}

fn mul_model(act_max: i32) -> Vec<u8> {
    let (t, arena) = tensors(&[
        Def("a", DType::I16, &[1, 2, 2, 3], 2e-4, 0),
        Def("b", DType::I16, &[1, 1, 1, 3], 1e-4, 0),
        Def("y", DType::I16, &[1, 2, 2, 3], 6e-4, 0),
    ]);
    let op = Binary {
        a: t[0].operand(0),
        b: t[1].operand(1),
        output: t[2].operand(2),
        activation: crate::format::Activation::None,
        quant: Some(MulParams::prepare(
            2e-4, 0, 1e-4, 0, 6e-4, 0, FULL.0, act_max,
        )),
    };
    model(&t, arena, Op::Mul(op))
}

#[test]
fn an_int16_mul_broadcasts_and_runs_the_kernel() {
    let (a, b) = (ramp(12, 5461), vec![-32768, 12345, 32767]);
    let got = run(&mul_model(FULL.1), &[&a, &b]);
    let p = MulParams::prepare(2e-4, 0, 1e-4, 0, 6e-4, 0, FULL.0, FULL.1);
    let mut want = vec![0i16; 12];
    let (sa, sb) = (Nhwc::new(1, 2, 2, 3), Nhwc::new(1, 1, 1, 3));
    elementwise::mul_s16(&p, sa, &a, sb, &b, sa, &mut want);
    assert_eq!(got, want);
    assert_eq!(
        refusal(&mul_model(40_000)),
        "activation clamp outside -32768..=32767 or empty"
    );
}

fn relu_model(
    activation: crate::format::Activation,
    edit: impl FnOnce(&mut ReluParams),
) -> Vec<u8> {
    let (t, arena) = tensors(&[
        Def("x", DType::I16, &[1, 16], 4e-4, 0),
        Def("y", DType::I16, &[1, 16], 2e-4, 0),
    ]);
    let mut p = ReluParams::prepare_int16(4e-4, 2e-4, activation);
    edit(&mut p);
    let op = Relu {
        input: t[0].operand(0),
        output: t[1].operand(1),
        quant: Some(p),
        activation,
    };
    model(&t, arena, Op::Relu(op))
}

#[test]
fn int16_relu_and_relu6_run_the_kernel() {
    use crate::format::Activation;
    let x = ramp(16, 4099);
    for act in [Activation::Relu, Activation::Relu6, Activation::ReluN1To1] {
        let got = run(&relu_model(act, |_| {}), &[&x]);
        let mut want = vec![0i16; 16];
        activation::relu_s16(&ReluParams::prepare_int16(4e-4, 2e-4, act), &x, &mut want);
        assert_eq!(got, want);
    }
    // ReLU6 clamps in the input's domain at 6 / 4e-4 = 15000.
    let got = run(&relu_model(Activation::Relu6, |_| {}), &[&[20000; 16]]);
    assert_eq!(got, [15000; 16]);
    let params = "relu parameters inconsistent with its operands";
    assert_eq!(
        refusal(&relu_model(Activation::Relu, |p| p.input_zero_point = 1)),
        params
    );
    assert_eq!(
        refusal(&relu_model(Activation::Relu, |p| p.act_min = -32769)),
        "activation clamp outside -32768..=32767 or empty"
    );
}

#[test]
fn an_int16_leaky_relu_runs_the_kernel() {
    let (t, arena) = tensors(&[
        Def("x", DType::I16, &[1, 16], 2e-4, 0),
        Def("y", DType::I16, &[1, 16], 1.5e-4, 0),
    ]);
    let p = LeakyReluParams::prepare(2e-4, 0, 0.1, 1.5e-4, 0);
    let op = |quant| {
        Op::LeakyRelu(LeakyRelu {
            input: t[0].operand(0),
            output: t[1].operand(1),
            alpha: 0.1,
            quant,
        })
    };
    let x = ramp(16, 4099);
    let got = run(&model(&t, arena, op(Some(p))), &[&x]);
    let mut want = vec![0i16; 16];
    activation::leaky_relu_s16(&p, &x, &mut want);
    assert_eq!(got, want);
    let bad = LeakyReluParams {
        output_zero_point: 3,
        ..p
    };
    assert_eq!(
        refusal(&model(&t, arena, op(Some(bad)))),
        "leaky relu parameters inconsistent with its operands"
    );
}

#[test]
fn an_int16_concatenation_copies_and_refuses_requantization() {
    let (t, arena) = tensors(&[
        Def("a", DType::I16, &[1, 2, 2], 1e-3, 0),
        Def("b", DType::I16, &[1, 2, 3], 1e-3, 0),
        Def("y", DType::I16, &[1, 2, 5], 1e-3, 0),
    ]);
    let concat = |requant: Option<RequantizeParams>| {
        let parts = SeqBuf::new(&[
            ConcatInput {
                input: t[0].operand(0),
                requant,
            },
            ConcatInput {
                input: t[1].operand(1),
                requant: None,
            },
        ])
        .unwrap();
        let op = Op::Concatenation(Concatenation {
            inputs: parts.seq(),
            output: t[2].operand(2),
            axis: 2,
        });
        model(&t, arena, op)
    };
    let got = run(
        &concat(None),
        &[&[1, 2, 3, 4], &[-5, -6, -7, 32767, -32768, 0]],
    );
    assert_eq!(got, [1, 2, -5, -6, -7, 3, 4, 32767, -32768, 0]);
    let requant = RequantizeParams::prepare(1e-3, 0, 1e-3, 0);
    assert_eq!(
        refusal(&concat(Some(requant))),
        "invalid concatenation requantization"
    );
}

#[test]
fn an_int16_pad_fills_with_zero() {
    let (t, arena) = tensors(&[
        Def("x", DType::I16, &[1, 1, 2, 1], 1e-3, 0),
        Def("y", DType::I16, &[1, 2, 3, 2], 1e-3, 0),
    ]);
    let op = Op::Pad(Pad {
        input: t[0].operand(0),
        output: t[1].operand(1),
        before: [0, 1, 0, 1],
    });
    let got = run(&model(&t, arena, op), &[&[-32768, 32767]]);
    assert_eq!(got, [0, 0, 0, 0, 0, 0, 0, -32768, 0, 32767, 0, 0]);
}
