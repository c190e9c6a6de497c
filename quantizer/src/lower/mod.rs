//! Lowering: an IR graph whose quantization is decided (by post-training quantization, or read from a
//! pre-quantized ONNX Q/DQ or TFLite model) becomes the runtime's operators, one per node, written by
//! the model builder.
//!
//! This module places the tensors, inserts Quantize/Dequantize where int8 and f32 values meet, and
//! hands each node to its operator's file (`crate::ops`), which builds the runtime operator and
//! prepares its parameters.

mod quantize;
pub(crate) mod weights;

use anyhow::{bail, Context, Result};
use ferrite_runtime::format::{Activation, DType, Operand, Shape, Window};
use ferrite_runtime::ops::{ConcatInput, Op as RtOp};

use crate::builder::{Built, ModelBuilder, TensorDef};
use crate::ir::{Clamp, Graph, Node, Op, SourceLayout, ValueId, Window2d};
use crate::quantize::params::QParams;
use weights::NodeData;

pub(crate) use quantize::convert;

/// What a node lowers to: a runtime operator, or a Concatenation, whose input list the builder
/// encodes once the tensors are placed.
pub(crate) enum Lowered<'a> {
    Op(RtOp<'a>),
    Concatenation {
        inputs: Vec<ConcatInput>,
        output: Operand,
        axis: u8,
    },
}

/// The quantization of a graph's values and weights, indexed as the graph's values and nodes.
#[derive(Clone, Copy, Debug)]
pub struct Quantization<'q> {
    /// Per value: computed in f32 (the runtime's float kernels) rather than int8. A node runs in
    /// the type of its output.
    pub float: &'q [bool],
    /// Per value: int8 scale and zero point (also of f32 values that are converted to int8).
    pub params: &'q [Option<QParams>],
    /// Per node: int8 weights and their scales (one per output channel, or one).
    pub weights: &'q [Option<(Vec<i8>, Vec<f32>)>],
    /// Per node (may be shorter): the int32 bias used as is; otherwise the bias is quantized from
    /// the float one with the input and weight scales.
    pub biases: &'q [Option<Vec<i32>>],
}

/// How the int8 requantization factors of Conv2d, DepthwiseConv2d, FullyConnected and Mean are
/// written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requantization {
    /// TFLite's `QuantizeMultiplier` of `input_scale * weight_scale / output_scale` (in f64): the
    /// runtime computes what TFLite computes.
    TfLite,
    /// ONNX Q/DQ semantics as onnxruntime computes them: the factor in f32 as
    /// `(input_scale * weight_scale) / output_scale`, written in the form with one rounding
    /// ([`crate::quantize::params::single_rounding_multiplier`]).
    Onnx,
}

/// What the lowering records and how it rounds, beyond the graph and its quantization.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// SHA-256 of the source model file, recorded in the output's metadata.
    pub source_sha256: [u8; 32],
    /// Every node's output becomes a model output, for per-layer comparisons.
    pub expose_all: bool,
    pub requantization: Requantization,
    /// Store a Conv2d's or FullyConnected's int8 filter sparsely (CONV_2D_SPARSE,
    /// FULLY_CONNECTED_SPARSE) where that takes fewer bytes.
    pub sparse_weights: bool,
}

/// Per value, whether it is f32 when the nodes in `float_node` run in float: a node's output has
/// the node's type, and a graph input is f32 when every node that reads it runs in float.
pub fn float_values(graph: &Graph, float_node: &[bool]) -> Vec<bool> {
    let consumers = graph.consumers();
    (0..graph.values.len())
        .map(|v| match graph.nodes.iter().position(|n| n.output == v) {
            Some(i) => float_node[i],
            None => !consumers[v].is_empty() && consumers[v].iter().all(|&c| float_node[c]),
        })
        .collect()
}

/// One node being lowered: its tensors (inputs already in the node's type), quantization and data.
pub(crate) struct NodeCx<'c, 'a> {
    pub graph: &'c Graph,
    pub node: &'c Node,
    pub b: &'c ModelBuilder<'a>,
    /// Input tensors, in the node's type (for a conversion node, in their own).
    pub ins: &'c [u16],
    pub out: u16,
    /// The node runs in f32.
    pub float: bool,
    /// The output's quantization (scale 1, zero point 0 when there is none).
    pub out_q: QParams,
    /// Weights, bias and requantization factors of a weighted node.
    pub data: &'a NodeData,
    pub requantization: Requantization,
}

impl<'a> NodeCx<'_, 'a> {
    /// Operand of input `k`.
    pub fn input(&self, k: usize) -> Operand {
        self.b.operand(self.ins[k])
    }

    pub fn output(&self) -> Operand {
        self.b.operand(self.out)
    }

    /// Quantization of input `k`'s tensor.
    pub fn in_q(&self, k: usize) -> QParams {
        let d = self.b.def(self.ins[k]);
        QParams {
            scale: d.scale,
            zero_point: d.zero_point,
        }
    }

    /// Shape of the node's input `k` in the graph.
    pub fn input_shape(&self, k: usize) -> &[usize] {
        &self.graph.values[self.node.inputs[k]].shape
    }

    /// The int8 clamp of `clamp` on the output.
    pub fn act_range(&self, clamp: Clamp) -> (i32, i32) {
        act_range(clamp, self.out_q)
    }

    /// The fused activation recorded for the node: any clamp for int8 (its `act_min..=act_max` does
    /// the work), one of the four f32 kernel activations for a node kept in float.
    pub fn activation(&self, clamp: Clamp) -> Result<Activation> {
        if !self.float {
            return Ok(clamp.activation().unwrap_or_default());
        }
        clamp.activation().with_context(|| {
            format!(
                "node `{}`: the clamp {clamp} has no f32 kernel; do not ignore it",
                self.node.name
            )
        })
    }
}

/// The int8 clamp of a real clamp for values quantized with `p`.
pub(crate) fn act_range(clamp: Clamp, p: QParams) -> (i32, i32) {
    ferrite_runtime::format::quantized_clamp(clamp.min, clamp.max, p.scale, p.zero_point)
}

/// The runtime's window of an IR window (its leading padding; the trailing one follows from the
/// shapes).
pub(crate) fn window(w: &Window2d) -> Result<Window> {
    let u = |x: usize| u16::try_from(x).context("window parameter above 65535");
    Ok(Window {
        stride_h: u(w.stride[0])?,
        stride_w: u(w.stride[1])?,
        dilation_h: u(w.dilation[0])?,
        dilation_w: u(w.dilation[1])?,
        pad_top: u(w.pads[0])?,
        pad_left: u(w.pads[1])?,
    })
}

/// Builds the `.ferrite` model of `graph` quantized as `q`.
pub fn lower(graph: &Graph, q: &Quantization<'_>, options: Options) -> Result<Built> {
    let Options {
        source_sha256,
        expose_all,
        requantization,
        sparse_weights,
    } = options;
    let qp = q.params;
    // Constant data first, so the builder can borrow it.
    let data: Vec<NodeData> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| weights::node_data(n, i, q, requantization, sparse_weights))
        .collect::<Result<_>>()?;

    let mut b = ModelBuilder::new();
    // Tensor of each IR value in its native type, and converted copies made on demand.
    let mut native: Vec<Option<u16>> = vec![None; graph.values.len()];
    let mut converted: Vec<Option<u16>> = vec![None; graph.values.len()];
    let shape_of = |v: ValueId| -> Result<Shape> {
        Shape::new(&graph.values[v].shape).with_context(|| {
            format!(
                "value `{}`: shape {:?} (rank at most 4, dims at most 65535)",
                graph.values[v].name, graph.values[v].shape
            )
        })
    };
    let int8_def = |v: ValueId, suffix: &str| -> Result<TensorDef> {
        let p = qp[v]
            .with_context(|| format!("value `{}` was not calibrated", graph.values[v].name))?;
        Ok(TensorDef {
            name: format!("{}{suffix}", graph.values[v].name),
            dtype: DType::I8,
            shape: shape_of(v)?,
            scale: p.scale,
            zero_point: p.zero_point,
        })
    };
    let f32_def = |v: ValueId, suffix: &str| -> Result<TensorDef> {
        Ok(TensorDef {
            name: format!("{}{suffix}", graph.values[v].name),
            dtype: DType::F32,
            shape: shape_of(v)?,
            scale: 0.0,
            zero_point: 0,
        })
    };
    let def = |v: ValueId, suffix: &str| -> Result<TensorDef> {
        if q.float[v] {
            f32_def(v, suffix)
        } else {
            int8_def(v, suffix)
        }
    };
    for &v in &graph.inputs {
        native[v] = Some(b.tensor(def(v, "")?));
    }
    for (i, n) in graph.nodes.iter().enumerate() {
        let float = q.float[n.output];
        // A conversion node reads its input as it is; other nodes read theirs in their own type.
        let conversion = matches!(n.op, Op::Identity);
        let mut ins = Vec::with_capacity(n.inputs.len());
        for &v in &n.inputs {
            if graph.is_const(v) {
                bail!(
                    "node `{}` ({}): constant operands are not supported by the runtime yet",
                    n.name,
                    n.op.name()
                );
            }
            let t = native[v].with_context(|| {
                format!(
                    "value `{}` used before it is computed",
                    graph.values[v].name
                )
            })?;
            let t_float = b.def(t).dtype == DType::F32;
            if conversion || t_float == float {
                ins.push(t);
                continue;
            }
            let c = match converted[v] {
                Some(c) => c,
                None => {
                    let c = b.tensor(if float {
                        f32_def(v, "/f32")?
                    } else {
                        int8_def(v, "/int8")?
                    });
                    let op = quantize::convert(&b, t, c);
                    b.push(op);
                    converted[v] = Some(c);
                    c
                }
            };
            ins.push(c);
        }
        let out = b.tensor(def(n.output, "")?);
        native[n.output] = Some(out);
        let cx = NodeCx {
            graph,
            node: n,
            b: &b,
            ins: &ins,
            out,
            float,
            out_q: qp[n.output].unwrap_or(QParams {
                scale: 1.0,
                zero_point: 0,
            }),
            data: &data[i],
            requantization,
        };
        match n.op.lower(&cx)? {
            Lowered::Op(op) => b.push(op),
            Lowered::Concatenation {
                inputs,
                output,
                axis,
            } => b.concatenation(inputs, output, axis),
        }
    }
    let inputs: Vec<u16> = graph.inputs.iter().map(|&v| native[v].unwrap()).collect();
    // `expose_all`: every node's output, in node order, for per-layer comparisons.
    let exposed: Vec<ValueId> = if expose_all {
        graph.nodes.iter().map(|n| n.output).collect()
    } else {
        graph.outputs.clone()
    };
    let outputs: Vec<u16> = exposed
        .iter()
        .map(|&v| native[v].context("graph output is not computed"))
        .collect::<Result<_>>()?;
    b.set_inputs(&inputs);
    b.set_outputs(&outputs);
    b.source_sha256 = source_sha256;
    if graph
        .inputs
        .iter()
        .any(|&v| graph.values[v].source == SourceLayout::Nchw)
    {
        b.source_layout = "NCHW".into();
    }
    let built = b.finish()?;
    // Only hand out models the runtime loads (e.g. a requantization multiplier out of its range).
    ferrite_runtime::Model::from_bytes(&built.bytes)
        .map_err(|e| anyhow::anyhow!("the lowered model fails the runtime's checks: {e}"))?;
    Ok(built)
}
