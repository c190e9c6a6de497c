//! Post-training quantization of an optimized IR graph, one stage per module: calibration on the float
//! reference executor (`calibration`), int8 parameters (`parameters`), bias correction
//! (`bias_correction`), and the report (`report`); then every node is lowered to one runtime operator.
//!
//! Nodes in the ignored scope stay in f32 (the runtime's float kernels), with Quantize/Dequantize
//! inserted where int8 and f32 values meet.

use anyhow::{bail, ensure, Context, Result};
use ferrite_runtime::format::{
    Binary, ConcatInput, Concatenation, Conv, DType, Dequantize, FullyConnected, Op as RtOp, Pad,
    Pool, Quantize, Reshape, Seq, Shape, Softmax, Unary,
};
use ferrite_runtime::kernels::activation::{LogisticParams, ReluParams, TanhParams};
use ferrite_runtime::kernels::elementwise::{AddParams, MulParams};
use ferrite_runtime::kernels::mean::MeanParams;
use ferrite_runtime::kernels::requantize::RequantizeParams;
use ferrite_runtime::kernels::softmax::SoftmaxParams;
use ferrite_runtime::kernels::{Activation, Window};
use ferrite_runtime::quant::prepare::quantize_multiplier;
use serde::Serialize;

use super::observer::RangeEstimator;
use super::params::{self, QParams};
use crate::builder::{Built, ModelBuilder, TensorDef};
use crate::ir::float_exec::Tensor;
use crate::ir::{Clamp, Graph, Node, Op, SourceLayout, ValueId};
use bias_correction::correct_biases;
use calibration::{calibrate, Calibration};
use parameters::{activation_params, quantize_weights};
use report::{layer_sqnr, SQNR_SAMPLES};
pub use report::{LayerReport, Report, ValueReport};

mod bias_correction;
mod calibration;
mod parameters;
mod report;

/// Activation quantization scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Preset {
    /// Zero points fixed: 0 for signed ranges, -128 for non-negative ones (one-sided ranges keep the
    /// full resolution).
    Performance,
    /// Asymmetric activations: any zero point.
    Mixed,
}

/// How biases are corrected for the error that weight quantization shifts into each channel's mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BiasCorrection {
    Off,
    /// Each layer on float inputs: float weights vs quantized weights.
    Fast,
    /// Layer by layer on the already-quantized network's activations.
    Full,
}

/// Post-training quantization settings.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub preset: Preset,
    pub estimator: RangeEstimator,
    /// One weight scale per tensor instead of per output channel.
    pub per_tensor: bool,
    pub bias_correction: BiasCorrection,
    /// Node names, ONNX op types or runtime op names kept in float.
    pub ignore: Vec<String>,
    /// SHA-256 of the source model file, recorded in the output's metadata.
    #[serde(skip)]
    pub source_sha256: [u8; 32],
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preset: Preset::Mixed,
            estimator: RangeEstimator::MeanMinMax,
            per_tensor: false,
            bias_correction: BiasCorrection::Full,
            ignore: Vec::new(),
            source_sha256: [0; 32],
        }
    }
}

/// A quantized model.
pub struct Quantized {
    pub built: Built,
    pub report: Report,
}

fn ignored(node: &Node, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        node.name == *p
            || node.source_op.eq_ignore_ascii_case(p)
            || node.op.name().eq_ignore_ascii_case(p)
    })
}

/// Quantizes `graph` (already optimized) with calibration inputs (NHWC tensors, batch first).
pub fn quantize(graph: &Graph, calib: &[Tensor], config: &Config) -> Result<Quantized> {
    let samples = calib.first().map_or(0, |t| t.shape[0]);
    ensure!(samples > 0, "the calibration set is empty");
    let mut graph = graph.clone();
    let float_node: Vec<bool> = graph
        .nodes
        .iter()
        .map(|n| ignored(n, &config.ignore))
        .collect();
    for p in &config.ignore {
        let hit = graph
            .nodes
            .iter()
            .any(|n| ignored(n, std::slice::from_ref(p)));
        ensure!(hit, "--ignore {p}: no node has that name or operator type");
    }

    // 1. Float activations of every value, and their observed ranges.
    let Calibration { float_acts, ranges } = calibrate(&graph, calib, samples, config)?;

    // 2. int8 parameters of each value, and the weights.
    let qp = activation_params(&graph, &ranges, config.preset == Preset::Performance);
    let weights: Vec<Option<(Vec<i8>, Vec<f32>)>> = graph
        .nodes
        .iter()
        .map(|n| quantize_weights(&n.op, config.per_tensor))
        .collect();

    // 3. Bias correction.
    let bias_shift = correct_biases(
        &mut graph,
        config.bias_correction,
        &float_node,
        &qp,
        &weights,
        &float_acts,
        samples,
    )?;

    // 4. Lowering, and each layer's output compared with the float model's on the runtime itself.
    let built = lower(
        &graph,
        &float_node,
        &qp,
        &weights,
        config.source_sha256,
        false,
    )?;
    let debug = lower(
        &graph,
        &float_node,
        &qp,
        &weights,
        config.source_sha256,
        true,
    )?;
    let layers = layer_sqnr(
        &graph,
        &debug.bytes,
        calib,
        &float_acts,
        samples.min(SQNR_SAMPLES),
    )?;
    Ok(Quantized {
        built,
        report: Report {
            config: config.clone(),
            calibration_samples: samples,
            values: report::value_reports(&graph, &qp, &ranges),
            float_nodes: report::float_nodes(&graph, &float_node),
            bias_shift,
            layers,
        },
    })
}

fn le_bytes<T: Copy>(values: &[T], to: impl Fn(T) -> [u8; 4]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

/// Constant data a lowered node borrows.
#[derive(Default)]
struct NodeData {
    filter: Vec<u8>,
    bias: Vec<u8>,
    multiplier: Vec<u8>,
    shift: Vec<u8>,
}

fn act_range(clamp: Clamp, p: QParams) -> (i32, i32) {
    ferrite_runtime::kernels::quantized_clamp(clamp.min, clamp.max, p.scale, p.zero_point)
}

/// The fused activation recorded for a node: any clamp for int8 (its `act_min..=act_max` does the
/// work), one of the four f32 kernel activations for a node kept in float.
fn node_activation(clamp: Clamp, node: &Node, float: bool) -> Result<Activation> {
    if !float {
        return Ok(clamp.activation().unwrap_or_default());
    }
    clamp.activation().with_context(|| {
        format!(
            "node `{}`: the clamp {clamp} has no f32 kernel; do not ignore it",
            node.name
        )
    })
}

/// Mean parameters as onnxruntime's integer mean (QLinearGlobalAveragePool) computes it: the
/// zero-point-corrected sum rescaled by `input_scale / (output_scale * count)` in f32 and rounded
/// once, also when input and output quantization are the same (where TFLite truncates the raw sum's
/// quotient).
fn onnx_mean(input: QParams, output: QParams, count: usize) -> MeanParams {
    MeanParams {
        input_zero_point: input.zero_point,
        output_zero_point: output.zero_point,
        num_elements: count as u32,
        same_quantization: false,
        requant: params::single_rounding_multiplier(
            (input.scale / (output.scale * count as f32)) as f64,
        ),
    }
}

/// Whether a pooling window over an NHWC `input` covers the whole of H and W in one step.
pub(crate) fn global_pool(w: &crate::ir::Window2d, input: &[usize]) -> bool {
    input.len() == 4 && w.kernel == [input[1], input[2]] && w.dilation == [1, 1] && w.pads == [0; 4]
}

fn window(w: &crate::ir::Window2d) -> Result<Window> {
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

/// How the int8 requantization factors of Conv2d, DepthwiseConv2d, FullyConnected and Mean are
/// written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Requantization {
    /// TFLite's `QuantizeMultiplier` of `input_scale * weight_scale / output_scale` (in f64): the
    /// runtime computes what TFLite computes.
    TfLite,
    /// ONNX Q/DQ semantics as onnxruntime computes them: the factor in f32 as
    /// `(input_scale * weight_scale) / output_scale`, written in the form with one rounding
    /// ([`params::single_rounding_multiplier`]).
    Onnx,
}

/// What the lowering records and how it rounds, beyond the graph and its parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lowering {
    /// SHA-256 of the source model file, recorded in the output's metadata.
    pub source_sha256: [u8; 32],
    /// Every node's output becomes a model output, for per-layer comparisons.
    pub expose_all: bool,
    pub requantization: Requantization,
}

/// Builds the `.ferrite` model.
fn lower(
    graph: &Graph,
    float_node: &[bool],
    qp: &[Option<QParams>],
    weights: &[Option<(Vec<i8>, Vec<f32>)>],
    source_sha256: [u8; 32],
    expose_all: bool,
) -> Result<Built> {
    lower_prequantized(
        graph,
        float_node,
        qp,
        weights,
        &[],
        Lowering {
            source_sha256,
            expose_all,
            requantization: Requantization::TfLite,
        },
    )
}

/// Builds the `.ferrite` model from quantization parameters decided elsewhere (a pre-quantized
/// model): `biases[i]`, when present, is node `i`'s int32 bias used as is (otherwise the bias is
/// quantized from the float one with the input and weight scales).
pub(crate) fn lower_prequantized(
    graph: &Graph,
    float_node: &[bool],
    qp: &[Option<QParams>],
    weights: &[Option<(Vec<i8>, Vec<f32>)>],
    biases: &[Option<Vec<i32>>],
    options: Lowering,
) -> Result<Built> {
    let Lowering {
        source_sha256,
        expose_all,
        requantization,
    } = options;
    // Constant data first, so the builder can borrow it.
    let mut data: Vec<NodeData> = Vec::with_capacity(graph.nodes.len());
    for (i, n) in graph.nodes.iter().enumerate() {
        let mut d = NodeData::default();
        let (filter, bias) = match &n.op {
            Op::Conv2d { filter, bias, .. }
            | Op::DepthwiseConv2d { filter, bias, .. }
            | Op::FullyConnected { filter, bias, .. } => (filter, bias),
            _ => {
                data.push(d);
                continue;
            }
        };
        if float_node[i] {
            d.filter = le_bytes(&filter.data, f32::to_le_bytes);
            d.bias = le_bytes(&bias.data, f32::to_le_bytes);
        } else {
            let (q, scales) = weights[i].as_ref().context("weights not quantized")?;
            let s_in = qp[n.inputs[0]].context("input not calibrated")?.scale;
            let s_out = qp[n.output].context("output not calibrated")?.scale;
            d.filter = q.iter().map(|&x| x as u8).collect();
            let q_bias = match biases.get(i) {
                Some(Some(b)) => b.clone(),
                _ => params::bias(&bias.data, s_in, scales),
            };
            d.bias = le_bytes(&q_bias, i32::to_le_bytes);
            for &s in scales {
                let r = match requantization {
                    Requantization::TfLite => {
                        quantize_multiplier(s_in as f64 * s as f64 / s_out as f64)
                    }
                    Requantization::Onnx => {
                        params::single_rounding_multiplier((s_in * s / s_out) as f64)
                    }
                };
                d.multiplier.extend(r.multiplier.to_le_bytes());
                d.shift.extend(r.shift.to_le_bytes());
            }
        }
        data.push(d);
    }

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
    // Whether a value is produced (or, for graph inputs, first read) in f32.
    let consumers = graph.consumers();
    let value_is_float = |v: ValueId| -> bool {
        match graph.nodes.iter().position(|n| n.output == v) {
            Some(i) => float_node[i],
            None => !consumers[v].is_empty() && consumers[v].iter().all(|&c| float_node[c]),
        }
    };
    for &v in &graph.inputs {
        let def = if value_is_float(v) {
            f32_def(v, "")?
        } else {
            int8_def(v, "")?
        };
        native[v] = Some(b.tensor(def));
    }
    let mut ops: Vec<RtOp<'_>> = Vec::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        let float = float_node[i];
        // Inputs in the type this node runs.
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
            if t_float == float {
                ins.push(t);
                continue;
            }
            let c = match converted[v] {
                Some(c) => c,
                None => {
                    let c = if float {
                        let c = b.tensor(f32_def(v, "/f32")?);
                        let scale = b.def(t).scale;
                        ops.push(RtOp::Dequantize(Dequantize {
                            input: b.operand(t),
                            output: b.operand(c),
                            scale,
                        }));
                        c
                    } else {
                        let c = b.tensor(int8_def(v, "/int8")?);
                        let scale = b.def(c).scale;
                        ops.push(RtOp::Quantize(Quantize {
                            input: b.operand(t),
                            output: b.operand(c),
                            scale,
                            requant: None,
                        }));
                        c
                    };
                    converted[v] = Some(c);
                    c
                }
            };
            ins.push(c);
        }
        let out = b.tensor(if float {
            f32_def(n.output, "")?
        } else {
            int8_def(n.output, "")?
        });
        native[n.output] = Some(out);
        let (x, y) = (b.operand(ins[0]), b.operand(out));
        let out_q = qp[n.output].unwrap_or(QParams {
            scale: 1.0,
            zero_point: 0,
        });
        let in_q = |k: usize| -> QParams {
            let d = b.def(ins[k]);
            QParams {
                scale: d.scale,
                zero_point: d.zero_point,
            }
        };
        let d = &data[i];
        let op = match &n.op {
            Op::Conv2d {
                window: w,
                filter,
                clamp,
                ..
            }
            | Op::DepthwiseConv2d {
                window: w,
                filter,
                clamp,
                ..
            } => {
                let depthwise = matches!(n.op, Op::DepthwiseConv2d { .. });
                let (act_min, act_max) = act_range(*clamp, out_q);
                let activation = node_activation(*clamp, n, float)?;
                let kernel = [filter.shape[1], filter.shape[2]];
                let conv = Conv {
                    input: x,
                    output: y,
                    kernel_h: kernel[0] as u16,
                    kernel_w: kernel[1] as u16,
                    window: window(w)?,
                    depth_multiplier: match n.op {
                        Op::DepthwiseConv2d {
                            depth_multiplier, ..
                        } => depth_multiplier as u16,
                        _ => 1,
                    },
                    activation,
                    act_min,
                    act_max,
                    filter: &d.filter,
                    bias: &d.bias,
                    multiplier: &d.multiplier,
                    shift: &d.shift,
                };
                if depthwise {
                    RtOp::DepthwiseConv2d(conv)
                } else {
                    RtOp::Conv2d(conv)
                }
            }
            Op::FullyConnected { clamp, .. } => {
                let (act_min, act_max) = act_range(*clamp, out_q);
                let activation = node_activation(*clamp, n, float)?;
                RtOp::FullyConnected(FullyConnected {
                    input: x,
                    output: y,
                    activation,
                    act_min,
                    act_max,
                    filter: &d.filter,
                    bias: &d.bias,
                    multiplier: &d.multiplier,
                    shift: &d.shift,
                })
            }
            Op::Add { clamp } | Op::Mul { clamp } => {
                let (lo, hi) = act_range(*clamp, out_q);
                let activation = node_activation(*clamp, n, float)?;
                let z = b.operand(ins[1]);
                let (p1, p2) = (in_q(0), in_q(1));
                if matches!(n.op, Op::Add { .. }) {
                    let quant = (!float).then(|| {
                        AddParams::prepare(
                            p1.scale,
                            p1.zero_point,
                            p2.scale,
                            p2.zero_point,
                            out_q.scale,
                            out_q.zero_point,
                            lo,
                            hi,
                        )
                    });
                    RtOp::Add(Binary {
                        a: x,
                        b: z,
                        output: y,
                        activation,
                        quant,
                    })
                } else {
                    let quant = (!float).then(|| {
                        MulParams::prepare(
                            p1.scale,
                            p1.zero_point,
                            p2.scale,
                            p2.zero_point,
                            out_q.scale,
                            out_q.zero_point,
                            lo,
                            hi,
                        )
                    });
                    RtOp::Mul(Binary {
                        a: x,
                        b: z,
                        output: y,
                        activation,
                        quant,
                    })
                }
            }
            Op::AveragePool2d { window: w, clamp }
                if !float
                    && requantization == Requantization::Onnx
                    && global_pool(w, &graph.values[n.inputs[0]].shape)
                    && act_range(*clamp, out_q) == (-128, 127) =>
            {
                // A global average pool is the spatial mean; as a Mean it rounds once, as
                // onnxruntime does, and its output may be quantized differently from its input.
                let s = &graph.values[n.inputs[0]].shape;
                RtOp::Mean(Unary {
                    input: x,
                    output: y,
                    quant: Some(onnx_mean(in_q(0), out_q, s[1] * s[2])),
                })
            }
            Op::AveragePool2d { window: w, clamp } | Op::MaxPool2d { window: w, clamp } => {
                let (act_min, act_max) = act_range(*clamp, out_q);
                let activation = node_activation(*clamp, n, float)?;
                let p = Pool {
                    input: x,
                    output: y,
                    filter_h: w.kernel[0] as u16,
                    filter_w: w.kernel[1] as u16,
                    window: window(w)?,
                    activation,
                    act_min,
                    act_max,
                };
                if matches!(n.op, Op::AveragePool2d { .. }) {
                    RtOp::AveragePool2d(p)
                } else {
                    RtOp::MaxPool2d(p)
                }
            }
            Op::Mean { .. } => {
                let s = &graph.values[n.inputs[0]].shape;
                ensure!(
                    s.len() == 4,
                    "node `{}`: mean of a rank-{} tensor",
                    n.name,
                    s.len()
                );
                let p = in_q(0);
                let count = s[1] * s[2];
                let quant = (!float).then(|| match requantization {
                    Requantization::TfLite => MeanParams::prepare(
                        p.scale,
                        p.zero_point,
                        out_q.scale,
                        out_q.zero_point,
                        count,
                    ),
                    Requantization::Onnx => onnx_mean(p, out_q, count),
                });
                RtOp::Mean(Unary {
                    input: x,
                    output: y,
                    quant,
                })
            }
            Op::Softmax { beta } => {
                let quant = (!float).then(|| SoftmaxParams::prepare(*beta, in_q(0).scale));
                RtOp::Softmax(Softmax {
                    input: x,
                    output: y,
                    beta: *beta,
                    quant,
                })
            }
            Op::Logistic => {
                let p = in_q(0);
                RtOp::Logistic(Unary {
                    input: x,
                    output: y,
                    quant: (!float).then(|| LogisticParams::prepare(p.scale, p.zero_point)),
                })
            }
            Op::Tanh => {
                let p = in_q(0);
                RtOp::Tanh(Unary {
                    input: x,
                    output: y,
                    quant: (!float).then(|| TanhParams::prepare(p.scale, p.zero_point)),
                })
            }
            Op::Relu { clamp } => {
                let activation = clamp.activation();
                let quant = if float {
                    None
                } else {
                    let p = in_q(0);
                    Some(match activation {
                        Some(a) => ReluParams::prepare(
                            p.scale,
                            p.zero_point,
                            out_q.scale,
                            out_q.zero_point,
                            a,
                        ),
                        None => {
                            // Any other clamp, in the input's domain (output quantization = input's).
                            let (lo, hi) = act_range(*clamp, p);
                            ReluParams {
                                input_zero_point: p.zero_point,
                                output_zero_point: p.zero_point,
                                requant: quantize_multiplier(1.0),
                                act_min: lo,
                                act_max: hi,
                            }
                        }
                    })
                };
                let activation = node_activation(*clamp, n, float)?;
                RtOp::Relu(
                    Unary {
                        input: x,
                        output: y,
                        quant,
                    },
                    activation,
                )
            }
            Op::Reshape { .. } => RtOp::Reshape(Reshape {
                input: x,
                output: y,
            }),
            Op::Concatenation { axis } => {
                let parts: Vec<ConcatInput> = ins
                    .iter()
                    .map(|&t| {
                        let d = b.def(t);
                        let requant = (!float
                            && (d.scale != out_q.scale || d.zero_point != out_q.zero_point))
                            .then(|| {
                                RequantizeParams::prepare(
                                    d.scale,
                                    d.zero_point,
                                    out_q.scale,
                                    out_q.zero_point,
                                )
                            });
                        ConcatInput {
                            input: b.operand(t),
                            requant,
                        }
                    })
                    .collect();
                RtOp::Concatenation(Concatenation {
                    inputs: Seq::from(parts),
                    output: y,
                    axis: *axis as u8,
                })
            }
            Op::Pad { before, .. } => {
                ensure!(
                    before.len() <= 4,
                    "node `{}`: pad of rank {}",
                    n.name,
                    before.len()
                );
                let mut padded = [0u16; 4];
                for (k, &p) in before.iter().enumerate() {
                    padded[4 - before.len() + k] = p as u16;
                }
                RtOp::Pad(Pad {
                    input: x,
                    output: y,
                    before: padded,
                })
            }
            Op::BatchNorm { .. } | Op::Identity => {
                bail!(
                    "node `{}` ({}) should have been removed by the passes",
                    n.name,
                    n.op.name()
                )
            }
        };
        ops.push(op);
    }
    for op in ops {
        b.push(op);
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
    b.finish()
}
