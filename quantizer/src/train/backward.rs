//! The backward pass of every IR operator: the derivative of [`crate::ir::float_exec::eval`], one
//! node at a time.
//!
//! Training walks a graph's nodes in reverse with the activations
//! [`crate::ir::float_exec::run_observed`] kept, calling [`backward`] on each node. A fused clamp lets
//! the gradient through only where the output lies strictly inside it (an infinite bound never
//! blocks). The weighted and windowed operators' kernels are in `kernels.rs`; their batch is split
//! into pieces that depend on the batch size only, so gradients are the same whatever the number of
//! rayon threads.

use std::borrow::Cow;

use anyhow::{ensure, Result};

use crate::ir::float_exec::View;
use crate::ir::{Clamp, Op};

pub(crate) mod kernels;

#[cfg(test)]
mod tests;

/// Gradients of one operator application.
#[derive(Clone, Debug)]
pub struct OpGrads {
    /// d loss / d input for each input of the node; `None` where `need_input[i]` was false.
    pub inputs: Vec<Option<Vec<f32>>>,
    /// d loss / d parameter, in `Op::params_mut` order (Conv/Depthwise/FC: filter then bias;
    /// BatchNorm: scale then shift); empty for operators without parameters.
    pub params: Vec<Vec<f32>>,
}

impl OpGrads {
    /// The gradients of an operator without parameters.
    pub(crate) fn inputs(inputs: Vec<Option<Vec<f32>>>) -> OpGrads {
        OpGrads {
            inputs,
            params: Vec::new(),
        }
    }

    /// The gradient of a one-input operator without parameters.
    pub(crate) fn input(dx: Option<Vec<f32>>) -> OpGrads {
        OpGrads::inputs(vec![dx])
    }

    /// The gradients of a weighted operator (input, filter, bias).
    pub(crate) fn weighted(g: kernels::WeightGrads) -> OpGrads {
        OpGrads {
            inputs: vec![g.dx],
            params: vec![g.d_filter, g.d_bias],
        }
    }
}

/// What an operator's backward function reads: the forward pass and the output's gradient.
pub(crate) struct Grad<'a> {
    /// The forward inputs (batch first).
    pub inputs: &'a [View<'a>],
    /// The forward output, fused clamp included.
    pub output: &'a [f32],
    /// d loss / d output, zero where a fused clamp held the output at a bound.
    pub dy: &'a [f32],
    pub out_shape: &'a [usize],
    /// Which inputs' gradients are wanted.
    pub need: &'a [bool],
}

/// The backward pass of `op`. `inputs` are the forward inputs (batch first), `output` the forward output
/// (as `float_exec::eval` returned it, fused clamp included), `d_output` d loss / d output (same length as
/// `output`). Computes the input gradients where `need_input[i]` and always the parameter gradients.
pub fn backward(
    op: &Op,
    inputs: &[View<'_>],
    output: &[f32],
    d_output: &[f32],
    need_input: &[bool],
) -> Result<OpGrads> {
    ensure!(
        need_input.len() == inputs.len(),
        "{} need_input flags for {} inputs",
        need_input.len(),
        inputs.len()
    );
    for (i, v) in inputs.iter().enumerate() {
        ensure!(
            v.data.len() == v.shape.iter().product::<usize>(),
            "input {i}: {} values for shape {:?}",
            v.data.len(),
            v.shape
        );
    }
    let shapes: Vec<&[usize]> = inputs.iter().map(|v| v.shape).collect();
    let out_shape = op.output_shape(&shapes)?;
    let out_len: usize = out_shape.iter().product();
    ensure!(
        output.len() == out_len && d_output.len() == out_len,
        "output of {} and d_output of {} values for output shape {out_shape:?}",
        output.len(),
        d_output.len()
    );
    let dy = match op.clamp() {
        Some(clamp) => pass_inside(clamp, output, d_output),
        None => Cow::Borrowed(d_output),
    };
    op.backward(&Grad {
        inputs,
        output,
        dy: &dy,
        out_shape: &out_shape,
        need: need_input,
    })
}

/// `d_output` where `clamp.min < output < clamp.max` (infinite bounds never block), zero elsewhere.
fn pass_inside<'a>(clamp: Clamp, output: &[f32], d_output: &'a [f32]) -> Cow<'a, [f32]> {
    let (open_below, open_above) = (clamp.min == f32::NEG_INFINITY, clamp.max == f32::INFINITY);
    if open_below && open_above {
        return Cow::Borrowed(d_output);
    }
    let inside = |y: f32| (open_below || clamp.min < y) && (open_above || y < clamp.max);
    Cow::Owned(
        output
            .iter()
            .zip(d_output)
            .map(|(&y, &d)| if inside(y) { d } else { 0.0 })
            .collect(),
    )
}
