//! Test helpers: one-operator models written through the format's own writer, and the reason
//! validation gives for refusing one.

use super::Op;
use crate::format::{write, DType, Graph, Metadata, Operand, SeqBuf, Shape, Tensor};
use crate::{Error, Model};
use std::vec::Vec;

/// The `.ferrite` bytes of a model of the one operator `op` over `tensors`: every tensor but the last
/// is a graph input, the last is the output; `arena` bytes, the f32 flag set when `float`.
pub(crate) fn one_op_model(tensors: &[Tensor<'_>], arena: u32, float: bool, op: Op<'_>) -> Vec<u8> {
    let n = tensors.len() as u16;
    let inputs: Vec<u16> = (0..n - 1).collect();
    let (t, o) = (SeqBuf::new(tensors).unwrap(), SeqBuf::new(&[op]).unwrap());
    let (i, out) = (
        SeqBuf::new(&inputs).unwrap(),
        SeqBuf::new(&[n - 1]).unwrap(),
    );
    let graph = Graph {
        tensors: t.seq(),
        ops: o.seq(),
        inputs: i.seq(),
        outputs: out.seq(),
        metadata: Metadata {
            producer: "test",
            source_sha256: [0; 32],
            source_layout: "NHWC",
        },
        preprocessing: None,
    };
    write::to_bytes(&graph, arena, float).unwrap()
}

/// The `.ferrite` bytes of one int8 operator from a graph input of `input` dims (scale 0.5, zero
/// point 3) to an output of `output` dims (scale 0.5, `zero_point`), placed after the input; `op`
/// builds the operator from their operands.
pub(crate) fn int8_unary_model(
    input: &[usize],
    output: &[usize],
    zero_point: i32,
    op: impl FnOnce(Operand, Operand) -> Op<'static>,
) -> Vec<u8> {
    let tensor = |name, dims: &[usize], offset, zero_point| Tensor {
        name,
        dtype: DType::I8,
        shape: Shape::new(dims).unwrap(),
        scale: 0.5,
        zero_point,
        offset,
        first: 0,
        last: 0,
        in_place: false,
    };
    let at = input.iter().product::<usize>().next_multiple_of(16);
    let tensors = [
        tensor("x", input, 0, 3),
        tensor("y", output, at as u32, zero_point),
    ];
    let arena = (at + output.iter().product::<usize>()).next_multiple_of(16);
    let op = op(tensors[0].operand(0), tensors[1].operand(1));
    one_op_model(&tensors, arena as u32, false, op)
}

/// Why validation refuses the operator of a one-operator model.
pub(crate) fn refusal(bytes: &[u8]) -> &'static str {
    match Model::from_bytes(bytes) {
        Err(Error::InvalidOperator { op: 0, reason }) => reason,
        other => panic!("expected InvalidOperator at 0, got {:?}", other.err()),
    }
}

/// An int8 activation tensor of the test models: live at step 0 only.
#[cfg(feature = "in-place")]
pub(crate) fn int8_tensor<'a>(
    name: &'a str,
    dims: &[usize],
    offset: u32,
    (scale, zero_point): (f32, i32),
    in_place: bool,
) -> crate::format::Tensor<'a> {
    crate::format::Tensor {
        name,
        dtype: crate::format::DType::I8,
        shape: crate::format::Shape::new(dims).unwrap(),
        scale,
        zero_point,
        offset,
        first: 0,
        last: 0,
        in_place,
    }
}

/// Runs a model whose inputs and first output are int8 on `inputs` and returns that output.
pub(crate) fn run_int8(bytes: &[u8], inputs: &[&[i8]]) -> Vec<i8> {
    let model = Model::from_bytes(bytes).unwrap();
    let mut arena = std::vec![0u8; model.arena_size() + crate::format::ARENA_ALIGN];
    let mut it = crate::Interpreter::new(&model, &mut arena).unwrap();
    for (i, x) in inputs.iter().enumerate() {
        it.input_i8_mut(i).unwrap().copy_from_slice(x);
    }
    it.invoke().unwrap();
    it.output_i8(0).unwrap().to_vec()
}

/// `n` xorshift values in `lo..=hi` from `seed`.
#[cfg(feature = "in-place")]
pub(crate) fn values(seed: u64, n: usize, lo: i32, hi: i32) -> Vec<i32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (s % (hi - lo + 1) as u64) as i32
        })
        .collect()
}
