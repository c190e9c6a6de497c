//! Test helpers: one-operator models written through the format's own writer, and the reason
//! validation gives for refusing one.

use super::Op;
use crate::format::{write, Graph, Metadata, SeqBuf, Tensor};
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

/// Why validation refuses the operator of a one-operator model.
pub(crate) fn refusal(bytes: &[u8]) -> &'static str {
    match Model::from_bytes(bytes) {
        Err(Error::InvalidOperator { op: 0, reason }) => reason,
        other => panic!("expected InvalidOperator at 0, got {:?}", other.err()),
    }
}
