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

use crate::builder::{ArenaLayout, Built, ModelBuilder, TensorDef};
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

/// The element type a value is computed in. A node runs in the type of its output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// int8 activations, int8 weights, int32 biases.
    #[default]
    Int8,
    /// int16 activations (zero point 0), int8 weights, int64 biases: TFLite's 16x8.
    Int16,
    /// f32 (the runtime's float kernels).
    Float,
}

impl Quantization<'_> {
    /// Whether value `v` is a wide output.
    pub fn is_wide(&self, v: ValueId) -> bool {
        self.wide.get(v).copied().unwrap_or(false)
    }
}

impl Precision {
    /// `Float` for a node kept in float, `Int8` otherwise.
    pub fn int8_or_float(float: bool) -> Precision {
        if float {
            Precision::Float
        } else {
            Precision::Int8
        }
    }

    /// The runtime's element type of such a value.
    pub fn dtype(self) -> DType {
        match self {
            Precision::Int8 => DType::I8,
            Precision::Int16 => DType::I16,
            Precision::Float => DType::F32,
        }
    }

    /// The integer range of the type (int8's for f32, whose clamps are not integer).
    pub fn int_range(self) -> (i32, i32) {
        match self {
            Precision::Int16 => (i16::MIN as i32, i16::MAX as i32),
            _ => (-128, 127),
        }
    }

    /// The name reports use: `int8`, `int16`, `float`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::Int16 => "int16",
            Precision::Float => "float",
        }
    }
}

/// The quantization of a graph's values and weights, indexed as the graph's values and nodes.
#[derive(Clone, Copy, Debug)]
pub struct Quantization<'q> {
    /// Per value: the type it is computed in.
    pub precision: &'q [Precision],
    /// Per value: int8 scale and zero point (also of values of another type that are converted to
    /// int8).
    pub params: &'q [Option<QParams>],
    /// Per value (may be shorter): the int16 scale (zero point 0) of an int16 value, or of a value
    /// converted to int16.
    pub int16_scales: &'q [Option<f32>],
    /// Per value (may be shorter): a wide output, int16 (`precision` says so) written by an int8
    /// Conv2d, DepthwiseConv2d or FullyConnected that reads int8, and read as it is by the int8
    /// function table (LOOKUP) after it.
    pub wide: &'q [bool],
    /// Per node: int8 weights and their scales (one per output channel, or one).
    pub weights: &'q [Option<(Vec<i8>, Vec<f32>)>],
    /// Per node (may be shorter): the integer bias used as is (int32 values for an int8 node,
    /// int64 for an int16x8 one); otherwise the bias is quantized from the float one with the input
    /// and weight scales.
    pub biases: &'q [Option<Vec<i64>>],
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
    /// Whether operators may run in place over their dying input.
    pub arena: ArenaLayout,
    /// int8 Tanh and Logistic run by table (LOOKUP: one load an element, where TFLite Micro's
    /// fixed-point kernels take about 450 instructions on the Cortex-M4F). Set (a TFLite import),
    /// the table holds those kernels' results, bit for bit; unset, the correctly rounded function,
    /// as ONNX's DequantizeLinear, Tanh or Sigmoid and QuantizeLinear compute it.
    pub tflite_functions: bool,
}

/// Per value, its type when node `i` runs in `node[i]`: a node's output has the node's type, and a
/// graph input has its readers' type when they all agree, int8 otherwise.
pub fn value_precisions(graph: &Graph, node: &[Precision]) -> Vec<Precision> {
    let consumers = graph.consumers();
    (0..graph.values.len())
        .map(|v| match graph.nodes.iter().position(|n| n.output == v) {
            Some(i) => node[i],
            None => match consumers[v].split_first() {
                Some((&first, rest)) if rest.iter().all(|&c| node[c] == node[first]) => node[first],
                _ => Precision::Int8,
            },
        })
        .collect()
}

/// Per value, whether it is f32 when the nodes in `float_node` run in float (the others in int8):
/// [`value_precisions`] for graphs without int16 values.
pub fn float_values(graph: &Graph, float_node: &[bool]) -> Vec<bool> {
    let node: Vec<Precision> = float_node
        .iter()
        .map(|&f| Precision::int8_or_float(f))
        .collect();
    value_precisions(graph, &node)
        .into_iter()
        .map(|p| p == Precision::Float)
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
    /// The type the node runs in.
    pub precision: Precision,
    /// The node runs in f32 (`precision` is `Float`).
    pub float: bool,
    /// The output's quantization in its type (scale 1, zero point 0 when there is none).
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

    /// The integer clamp of `clamp` on the output, in the output's type.
    pub fn act_range(&self, clamp: Clamp) -> (i32, i32) {
        let p = self.out_q;
        ferrite_runtime::format::quantized_clamp_in(
            clamp.min,
            clamp.max,
            p.scale,
            p.zero_point,
            self.precision.int_range(),
        )
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

/// The metadata's `source_layout`: one word for every graph input and output (the first input's
/// layout, `NCHW` or `NCL`, or `NHWC`) when all those whose layout matters agree or `outputs` is
/// `None`, otherwise one word per input, then per output of `outputs`, separated by commas
/// ([`SourceLayout::word`]). The layout of a tensor that is neither 4-D nor flattened from one does
/// not matter.
fn source_layout(graph: &Graph, outputs: Option<&[ValueId]>) -> String {
    let has = |l: SourceLayout| graph.inputs.iter().any(|&v| graph.values[v].source == l);
    let one = if has(SourceLayout::Nchw) {
        SourceLayout::Nchw
    } else if has(SourceLayout::Ncl) {
        SourceLayout::Ncl
    } else {
        SourceLayout::Same
    };
    let Some(outputs) = outputs else {
        return one.word();
    };
    let io: Vec<&crate::ir::Value> = graph
        .inputs
        .iter()
        .chain(outputs)
        .map(|&v| &graph.values[v])
        .collect();
    let matters = |v: &crate::ir::Value| {
        v.shape.len() == 4 || matches!(v.source, SourceLayout::FlatChw { .. })
    };
    if io.iter().all(|v| !matters(v) || v.source == one) {
        return one.word();
    }
    let words: Vec<String> = io.iter().map(|v| v.source.word()).collect();
    words.join(",")
}

/// Builds the `.ferrite` model of `graph` quantized as `q`.
pub fn lower(graph: &Graph, q: &Quantization<'_>, options: Options) -> Result<Built> {
    let Options {
        source_sha256,
        expose_all,
        requantization,
        sparse_weights,
        arena,
        tflite_functions,
    } = options;
    let qp = q.params;
    // Constant data first, so the builder can borrow it.
    let data: Vec<NodeData> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| weights::node_data(n, i, q, requantization, sparse_weights, tflite_functions))
        .collect::<Result<_>>()?;

    let mut b = ModelBuilder::new();
    b.arena = arena;
    // Tensor of each IR value in its native type, and converted copies made on demand.
    let mut native: Vec<Option<u16>> = vec![None; graph.values.len()];
    let mut converted: Vec<Vec<u16>> = vec![Vec::new(); graph.values.len()];
    let shape_of = |v: ValueId| -> Result<Shape> {
        Shape::new(&graph.values[v].shape).with_context(|| {
            format!(
                "value `{}`: shape {:?} (rank at most 4, dims at most 65535)",
                graph.values[v].name, graph.values[v].shape
            )
        })
    };
    let int16_def =
        |v: ValueId, suffix: &str| -> Result<TensorDef> {
            let scale =
                q.int16_scales.get(v).copied().flatten().with_context(|| {
                    format!("value `{}` has no int16 scale", graph.values[v].name)
                })?;
            Ok(TensorDef {
                name: format!("{}{suffix}", graph.values[v].name),
                dtype: DType::I16,
                shape: shape_of(v)?,
                scale,
                zero_point: 0,
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
    let def_in = |v: ValueId, p: Precision, suffix: &str| -> Result<TensorDef> {
        match p {
            Precision::Int8 => int8_def(v, suffix),
            Precision::Int16 => int16_def(v, suffix),
            Precision::Float => f32_def(v, suffix),
        }
    };
    let def = |v: ValueId, suffix: &str| def_in(v, q.precision[v], suffix);
    for &v in &graph.inputs {
        native[v] = Some(b.tensor(def(v, "")?));
    }
    for (i, n) in graph.nodes.iter().enumerate() {
        let precision = q.precision[n.output];
        // A layer with a wide output reads int8; a function reads its wide input as it is.
        let wide_output = q.is_wide(n.output);
        let reads = if wide_output {
            Precision::Int8
        } else {
            precision
        };
        if precision == Precision::Int16 && !wide_output && !n.op.has_int16() {
            bail!(
                "node `{}` ({}): the runtime has no int16x8 kernel for this operator",
                n.name,
                n.op.name()
            );
        }
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
            if conversion || q.is_wide(v) || b.def(t).dtype == reads.dtype() {
                ins.push(t);
                continue;
            }
            let copies = &mut converted[v];
            let c = match copies.iter().find(|&&c| b.def(c).dtype == reads.dtype()) {
                Some(&c) => c,
                None => {
                    let c = b.tensor(def_in(v, reads, &format!("/{}", reads.name()))?);
                    let op = quantize::convert(&b, t, c);
                    b.push(op);
                    copies.push(c);
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
            precision,
            float: precision == Precision::Float,
            out_q: {
                let d = b.def(out);
                QParams {
                    scale: if d.dtype == DType::F32 { 1.0 } else { d.scale },
                    zero_point: d.zero_point,
                }
            },
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
    // Every node's output exposed is read by the interpreter alone (per-layer comparisons).
    b.source_layout = source_layout(graph, (!expose_all).then_some(&exposed[..]));
    let built = b.finish()?;
    // Only hand out models the runtime loads (e.g. a requantization multiplier out of its range).
    ferrite_runtime::Model::from_bytes(&built.bytes)
        .map_err(|e| anyhow::anyhow!("the lowered model fails the runtime's checks: {e}"))?;
    Ok(built)
}
