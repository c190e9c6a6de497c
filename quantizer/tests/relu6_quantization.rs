//! A standalone int8 ReLU6 whose output quantization differs from its input's loads and runs as TFLite
//! Micro runs it: a clamp to `[zp_in, round(6 / s_in) + zp_in]` in the input's domain.

use ferrite_quantizer::builder::{ModelBuilder, TensorDef};
use ferrite_runtime::format::{Activation, DType, Shape};
use ferrite_runtime::ops::{Op, Relu, ReluParams};
use ferrite_runtime::{Interpreter, Model};

#[test]
fn relu6_with_other_output_quantization_clamps_in_the_input_domain() {
    let (s_in, zp_in, s_out, zp_out) = (0.1f32, 8, 0.025f32, -128);
    let mut b = ModelBuilder::new();
    let shape = Shape::new(&[1, 256]).unwrap();
    let x = b.tensor(TensorDef {
        name: "x".into(),
        dtype: DType::I8,
        shape,
        scale: s_in,
        zero_point: zp_in,
    });
    let y = b.tensor(TensorDef {
        name: "y".into(),
        dtype: DType::I8,
        shape,
        scale: s_out,
        zero_point: zp_out,
    });
    let p = ReluParams::prepare(s_in, zp_in, s_out, zp_out, Activation::Relu6);
    b.push(Op::Relu(Relu {
        input: b.operand(x),
        output: b.operand(y),
        quant: Some(p),
        activation: Activation::Relu6,
    }));
    b.set_inputs(&[x]);
    b.set_outputs(&[y]);
    let built = b.finish().unwrap();
    let model = Model::from_bytes(&built.bytes).expect("loads");
    let mut arena = vec![0u8; model.arena_size()];
    let mut it = Interpreter::new(&model, &mut arena).unwrap();
    for (i, v) in it.input_i8_mut(0).unwrap().iter_mut().enumerate() {
        *v = (i as i32 - 128) as i8;
    }
    it.invoke().unwrap();
    let six = zp_in + 60; // round(6 / 0.1) + zp_in
    for (i, &o) in it.output_i8(0).unwrap().iter().enumerate() {
        assert_eq!(
            o as i32,
            (i as i32 - 128).clamp(zp_in, six),
            "input {}",
            i as i32 - 128
        );
    }
}
