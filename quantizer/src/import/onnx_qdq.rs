//! ONNX Q/DQ models (NNCF, `onnxruntime.quantization.quantize_static(quant_format=QDQ)`): converted
//! to `.ferrite` with the model's own scales and zero points, no recalibration.
//!
//! The Q/DQ graph is rewritten into a float graph: `DequantizeLinear` of an initializer becomes a
//! float constant with the dequantized values, and a `QuantizeLinear -> DequantizeLinear` pair on an
//! activation becomes the identity, while the pair's `(scale, zero point)` is recorded for the value
//! it quantizes (uint8 zero points shifted by 128: `q_u8 - 128` is the same real number in int8). The
//! float graph goes through the usual importer and passes; each weight is then re-read as int8 with the
//! model's per-channel scales (exactly, or the conversion fails), int32 biases are kept as they are,
//! and the shared lowering ([`crate::lower`]) writes the model.
//!
//! Requantization follows ONNX's semantics (the exact product rounded once), as onnxruntime computes
//! it with an f32 scale, rather than TFLite's: the factors of Conv, Gemm/MatMul and the spatial mean
//! are written in the runtime's single-rounding form (`params::single_rounding_multiplier`), and the
//! mean rescales and rounds also when its input and output quantization are the same. With TFLite's
//! normalized multipliers about 2^(shift - 1) of every layer's results were rounded twice and came
//! out one step off, which compounded to 2 LSB at the outputs of deeper models. A global average pool
//! is lowered as that mean (it may requantize). Two roundings still follow TFLite where onnxruntime
//! rounds ties to even: a non-global average pool over an even number of elements (the runtime's
//! pool rounds ties away from zero) and the host-side quantization of a float graph input
//! (`Interpreter::set_input_f32`); matching them would need a new runtime rounding mode (a format
//! change).
//!
//! A node whose output has no Q/DQ (e.g. a final Gemm NNCF leaves in float), or whose weights are not
//! quantized, stays in float (the runtime's f32 kernels, with Quantize/Dequantize at the boundaries),
//! as `ferrite quantize --ignore` would keep it.

use std::collections::HashMap;

use anyhow::{anyhow, bail, ensure, Context, Result};
use prost::Message;

use super::onnx::proto::{data_type as dt, ModelProto, NodeProto, TensorProto};
use super::onnx::tensor::{Const, Data};
use crate::builder::{ArenaLayout, Built};
use crate::ir::{passes, Graph, Op, ValueId};
use crate::lower::{self, Precision, Quantization, Requantization};
use crate::ops::OutputQuant;
use crate::quantize::params::QParams;

/// Whether a decoded model holds QuantizeLinear or DequantizeLinear nodes.
pub fn is_qdq(bytes: &[u8]) -> bool {
    ModelProto::decode(bytes).is_ok_and(|m| {
        m.graph.is_some_and(|g| {
            g.node
                .iter()
                .any(|n| n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear")
        })
    })
}

/// A dequantized initializer: its integers, per-axis scales and zero points.
#[derive(Clone, Debug)]
struct QConst {
    data_type: i32,
    q: Vec<i64>,
    scales: Vec<f32>,
    zero_points: Vec<i64>,
}

fn label(n: &NodeProto, i: usize) -> String {
    if n.name.is_empty() {
        format!("#{i}")
    } else {
        n.name.clone()
    }
}

/// Scale and zero point inputs of a Q or DQ node (initializers), with the zero point's type.
fn scale_zp(
    n: &NodeProto,
    inits: &HashMap<&str, &TensorProto>,
) -> Result<(Vec<f32>, Vec<i64>, i32)> {
    let get = |i: usize| -> Result<Option<Const>> {
        match n.input.get(i).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(name) => {
                let t = inits.get(name.as_str()).with_context(|| {
                    format!("input {i} (`{name}`) must be an initializer (a constant scale or zero point)")
                })?;
                Ok(Some(Const::from_proto(t)?))
            }
        }
    };
    // Opset 21's blocked quantization and opset 23's arithmetic precision and output types: only
    // their defaults (per tensor or per axis, float32), or a QuantizeLinear output type naming the
    // integer type.
    let attr = |a: &str| super::onnx::attr_i(n, a, 0);
    ensure!(
        attr("block_size") == 0,
        "blocked quantization (block_size {}) is not supported",
        attr("block_size")
    );
    ensure!(
        [0, dt::FLOAT as i64].contains(&attr("precision")),
        "precision {} (only float32 arithmetic is supported)",
        attr("precision")
    );
    let output_dtype = attr("output_dtype");
    let quantize = n.op_type == "QuantizeLinear";
    ensure!(
        output_dtype == 0
            || (!quantize && output_dtype == dt::FLOAT as i64)
            || (quantize && [dt::INT8 as i64, dt::UINT8 as i64].contains(&output_dtype)),
        "output_dtype {output_dtype} (int8 or uint8 integers, float32 values)"
    );
    let scale = get(1)?.context("no scale input")?.f32()?;
    // Without a zero point the integers are uint8, unless a QuantizeLinear names its type.
    let unnamed = if quantize && output_dtype != 0 {
        output_dtype as i32
    } else {
        dt::UINT8
    };
    let zp_type = n
        .input
        .get(2)
        .and_then(|z| inits.get(z.as_str()))
        .map_or(unnamed, |t| t.data_type);
    let zp = match get(2)? {
        Some(c) => c.i64()?,
        None => vec![0; scale.len()],
    };
    ensure!(
        !scale.is_empty() && zp.len() == scale.len(),
        "{} scales and {} zero points",
        scale.len(),
        zp.len()
    );
    ensure!(
        scale.iter().all(|s| s.is_finite() && *s > 0.0),
        "a scale is not a positive finite number"
    );
    Ok((scale, zp, zp_type))
}

/// Activation parameters in int8 (uint8 zero points shifted by 128).
fn act_params(scale: &[f32], zp: &[i64], zp_type: i32) -> Result<QParams> {
    ensure!(
        scale.len() == 1,
        "per-axis quantization of an activation is not supported (one scale per tensor)"
    );
    let zero_point = match zp_type {
        dt::INT8 => zp[0] as i32,
        dt::UINT8 => zp[0] as i32 - 128,
        other => bail!("activations of element type {other} (int8 and uint8 are supported)"),
    };
    Ok(QParams {
        scale: scale[0],
        zero_point,
    })
}

/// The rewritten float model with what the Q/DQ nodes said.
struct Rewritten {
    model: ModelProto,
    /// ONNX activation name -> its int8 parameters.
    acts: HashMap<String, QParams>,
    /// ONNX node name -> (weight, bias) read by it through DequantizeLinear.
    node_consts: HashMap<String, (Option<QConst>, Option<QConst>)>,
}

fn rewrite(model: &ModelProto) -> Result<Rewritten> {
    let mut model = model.clone();
    let graph = model.graph.as_mut().context("the model has no graph")?;
    let inits: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let producer: HashMap<&str, (usize, &NodeProto)> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), (i, n))))
        .collect();
    let mut acts: HashMap<String, QParams> = HashMap::new();
    let mut consts: HashMap<String, QConst> = HashMap::new();
    let mut new_inits: Vec<TensorProto> = Vec::new();
    // DQ output name -> the activation it stands for.
    let mut rename: HashMap<String, String> = HashMap::new();
    let mut drop = vec![false; graph.node.len()];
    for (i, n) in graph.node.iter().enumerate() {
        let ctx = || format!("node `{}` ({})", label(n, i), n.op_type);
        match n.op_type.as_str() {
            "DequantizeLinear" => {
                drop[i] = true;
                let x = n
                    .input
                    .first()
                    .with_context(|| format!("{}: no input", ctx()))?;
                let out = n
                    .output
                    .first()
                    .with_context(|| format!("{}: no output", ctx()))?;
                let (scale, zp, zp_type) = scale_zp(n, &inits).with_context(ctx)?;
                if let Some(t) = inits.get(x.as_str()) {
                    let c = Const::from_proto(t).with_context(ctx)?;
                    let Data::I64(q) = c.data else {
                        bail!("{}: dequantizes a float initializer", ctx());
                    };
                    let axis = super::onnx::attr_i(n, "axis", 1);
                    let rank = c.dims.len();
                    let (per, channels) = if scale.len() == 1 {
                        (q.len(), 1)
                    } else {
                        let a = super::onnx::norm_axis(axis, rank).with_context(ctx)?;
                        ensure!(
                            c.dims[a] == scale.len(),
                            "{}: {} scales for axis {a} of size {}",
                            ctx(),
                            scale.len(),
                            c.dims[a]
                        );
                        (c.dims[a + 1..].iter().product::<usize>(), scale.len())
                    };
                    let f: Vec<f32> = q
                        .iter()
                        .enumerate()
                        .map(|(k, &v)| {
                            let ch = if channels == 1 {
                                0
                            } else {
                                (k / per) % channels
                            };
                            (v - zp[ch]) as f32 * scale[ch]
                        })
                        .collect();
                    new_inits.push(TensorProto {
                        dims: t.dims.clone(),
                        data_type: dt::FLOAT,
                        float_data: f,
                        name: out.clone(),
                        ..Default::default()
                    });
                    consts.insert(
                        out.clone(),
                        QConst {
                            data_type: t.data_type,
                            q,
                            scales: scale,
                            zero_points: zp,
                        },
                    );
                    continue;
                }
                let Some(&(qi, qn)) = producer.get(x.as_str()) else {
                    bail!(
                        "{}: dequantizes `{x}`, which no QuantizeLinear computes (a quantized graph input is not supported)",
                        ctx()
                    );
                };
                ensure!(
                    qn.op_type == "QuantizeLinear",
                    "{}: dequantizes the output of `{}` ({}), not of a QuantizeLinear",
                    ctx(),
                    label(qn, qi),
                    qn.op_type
                );
                let (qs, qz, qt) = scale_zp(qn, &inits)
                    .with_context(|| format!("node `{}` (QuantizeLinear)", label(qn, qi)))?;
                // Without a zero point of its own the integers are of its QuantizeLinear's type.
                let has_zp = n.input.get(2).is_some_and(|z| !z.is_empty());
                let zp_type = if has_zp { zp_type } else { qt };
                ensure!(
                    qs == scale && qz == zp && qt == zp_type,
                    "{}: its scale and zero point differ from those of QuantizeLinear `{}`",
                    ctx(),
                    label(qn, qi)
                );
                let p = act_params(&scale, &zp, zp_type).with_context(ctx)?;
                let a = qn.input.first().context("QuantizeLinear without input")?;
                if let Some(old) = acts.insert(a.clone(), p) {
                    ensure!(
                        old == p,
                        "{}: `{a}` is quantized twice with different parameters ({old}; {p})",
                        ctx()
                    );
                }
                rename.insert(out.clone(), a.clone());
            }
            "QuantizeLinear" => {
                drop[i] = true;
                let out = n
                    .output
                    .first()
                    .with_context(|| format!("{}: no output", ctx()))?;
                for (j, m) in graph.node.iter().enumerate() {
                    if m.input.contains(out) && m.op_type != "DequantizeLinear" {
                        bail!(
                            "{}: its int8 output is read by `{}` ({}); only QuantizeLinear -> DequantizeLinear pairs are supported",
                            ctx(),
                            label(m, j),
                            m.op_type
                        );
                    }
                }
                ensure!(
                    !graph.output.iter().any(|o| &o.name == out),
                    "{}: a quantized graph output is not supported (end the graph with DequantizeLinear)",
                    ctx()
                );
                if inits.contains_key(n.input.first().map_or("", |s| s.as_str())) {
                    bail!(
                        "{}: quantizes a constant at run time; store the weights quantized (DequantizeLinear of an int8 initializer)",
                        ctx()
                    );
                }
            }
            _ => {}
        }
    }
    let mut node_consts = HashMap::new();
    let mut nodes = Vec::new();
    for (i, mut n) in std::mem::take(&mut graph.node).into_iter().enumerate() {
        if drop[i] {
            continue;
        }
        for x in &mut n.input {
            if let Some(a) = rename.get(x) {
                *x = a.clone();
            }
        }
        if matches!(n.op_type.as_str(), "Conv" | "Gemm" | "MatMul") {
            let w = n.input.get(1).and_then(|x| consts.get(x)).cloned();
            let b = n.input.get(2).and_then(|x| consts.get(x)).cloned();
            if let Some(w) = &w {
                ensure!(
                    w.data_type == dt::INT8,
                    "node `{}` ({}): weights of element type {} (int8 is required)",
                    label(&n, i),
                    n.op_type,
                    w.data_type
                );
                ensure!(
                    w.zero_points.iter().all(|&z| z == 0),
                    "node `{}` ({}): weights with a non-zero zero point (symmetric int8 weights are required)",
                    label(&n, i),
                    n.op_type
                );
            }
            node_consts.insert(label(&n, i), (w, b));
        }
        nodes.push(n);
    }
    graph.node = nodes;
    for o in &mut graph.output {
        if let Some(a) = rename.get(&o.name) {
            o.name = a.clone();
        }
    }
    graph.initializer.extend(new_inits);
    Ok(Rewritten {
        model,
        acts,
        node_consts,
    })
}

/// Converts a Q/DQ ONNX model's bytes to a `.ferrite` model planned with `arena`.
pub fn convert(bytes: &[u8], source_sha256: [u8; 32], arena: ArenaLayout) -> Result<Built> {
    let model = ModelProto::decode(bytes).map_err(|e| anyhow!("not a valid ONNX file: {e}"))?;
    let rw = rewrite(&model)?;
    let mut graph: Graph = super::onnx::import_model(&rw.model)?;
    // A Transpose that only relabels the layout imports as an Identity, which the passes remove
    // with its output's name: the value it copies, if read by nothing else, takes its
    // quantization.
    let mut acts = rw.acts.clone();
    // A graph output stays float as the model gives it; an operator whose int8 output
    // quantization is fixed (Softmax) takes only that one.
    let takes = |g: &Graph, v: ValueId, q: QParams| {
        let readers = g.nodes.iter().filter(|r| r.inputs.contains(&v)).count();
        let fixed = g
            .nodes
            .iter()
            .find(|p| p.output == v)
            .map(|p| p.op.output_quant());
        readers == 1
            && !g.outputs.contains(&v)
            && !matches!(fixed, Some(OutputQuant::Fixed(f)) if f != q)
    };
    for n in graph
        .nodes
        .iter()
        .rev()
        .filter(|n| matches!(n.op, Op::Identity))
    {
        let (x, y) = (n.inputs[0], n.output);
        let (xn, yn) = (&graph.values[x].name, &graph.values[y].name);
        if let (false, Some(&q)) = (acts.contains_key(xn), acts.get(yn)) {
            if takes(&graph, x, q) {
                acts.insert(xn.clone(), q);
            }
        }
    }
    passes::optimize_keeping(&mut graph, &|name| acts.contains_key(name))?;
    let n_values = graph.values.len();
    let mut qp: Vec<Option<QParams>> = vec![None; n_values];
    for (v, val) in graph.values.iter().enumerate() {
        if val.data.is_none() {
            qp[v] = acts.get(&val.name).copied();
        }
    }
    // A value whose only reader is a reshape or transpose quantized after it (a layout change
    // written between an operator and its Q/DQ pair) holds the same values: the same quantization.
    for n in graph.nodes.iter().rev() {
        if !matches!(n.op, Op::Reshape { .. } | Op::Transpose { .. }) {
            continue;
        }
        let (x, y) = (n.inputs[0], n.output);
        if let (None, Some(q)) = (qp[x], qp[y]) {
            if takes(&graph, x, q) {
                qp[x] = Some(q);
            }
        }
    }
    let mut float_node = vec![false; graph.nodes.len()];
    let mut weights: Vec<Option<(Vec<i8>, Vec<f32>)>> = vec![None; graph.nodes.len()];
    let mut biases: Vec<Option<Vec<i64>>> = vec![None; graph.nodes.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        let ins_known = n
            .inputs
            .iter()
            .all(|&v| graph.is_const(v) || qp[v].is_some());
        let pass_through = matches!(
            n.op,
            Op::MaxPool2d { .. }
                | Op::Reshape { .. }
                | Op::Pad { .. }
                | Op::MirrorPad { .. }
                | Op::Transpose { .. }
                | Op::DepthToSpace { .. }
                | Op::ResizeNearest { .. }
        );
        if qp[n.output].is_none() && pass_through && ins_known {
            qp[n.output] = qp[n.inputs[0]];
        }
        // A global average pool is lowered as a mean, which may requantize; other pools keep their
        // input's quantization.
        let requantizes = match &n.op {
            Op::AveragePool2d { window, .. } => {
                crate::ops::global_pool(window, &graph.values[n.inputs[0]].shape)
            }
            _ => false,
        };
        if pass_through || (matches!(n.op, Op::AveragePool2d { .. }) && !requantizes) {
            if let (Some(a), Some(b)) = (qp[n.inputs[0]], qp[n.output]) {
                ensure!(
                    a == b,
                    "node `{}` ({}): input and output quantization differ ({a}; {b}); this operator keeps its input's",
                    n.name,
                    n.op.name()
                );
            }
        }
        let (filter, bias, channel_last) = match &n.op {
            Op::Conv2d { filter, bias, .. } | Op::FullyConnected { filter, bias, .. } => {
                (Some(filter), Some(bias), false)
            }
            Op::DepthwiseConv2d { filter, bias, .. } => (Some(filter), Some(bias), true),
            _ => (None, None, false),
        };
        let mut float = !ins_known || qp[n.output].is_none();
        if let (Some(filter), Some(bias)) = (filter, bias) {
            match rw.node_consts.get(&n.name) {
                Some((Some(w), b)) if !float => {
                    let channels = if channel_last {
                        *filter.shape.last().unwrap()
                    } else {
                        filter.shape[0]
                    };
                    ensure!(
                        w.scales.len() == 1 || w.scales.len() == channels,
                        "node `{}` ({}): {} weight scales for {channels} output channels (per-tensor or per-output-channel scales are supported)",
                        n.name,
                        n.op.name(),
                        w.scales.len()
                    );
                    let per = filter.data.len() / channels;
                    let mut q = Vec::with_capacity(filter.data.len());
                    for (k, &x) in filter.data.iter().enumerate() {
                        let c = if w.scales.len() == 1 {
                            0
                        } else if channel_last {
                            k % channels
                        } else {
                            k / per
                        };
                        let s = w.scales[c];
                        let r = (x / s).round();
                        ensure!(
                            (-128.0..=127.0).contains(&r) && (r * s - x).abs() <= s * 1e-3,
                            "node `{}` ({}): weight {x} is not an int8 multiple of its scale {s} (was it changed by a folded operator?)",
                            n.name,
                            n.op.name()
                        );
                        q.push(r as i8);
                    }
                    if let Some(b) = b {
                        // The int32 bias as is, if the graph's bias is still that one (no folding).
                        let unchanged = b.q.len() == bias.data.len()
                            && b.zero_points.iter().all(|&z| z == 0)
                            && b.q
                                .iter()
                                .zip(&bias.data)
                                .enumerate()
                                .all(|(c, (&qb, &fb))| {
                                    let s = b.scales[if b.scales.len() == 1 { 0 } else { c }];
                                    qb as f32 * s == fb
                                });
                        if b.data_type == dt::INT32 && unchanged {
                            biases[i] = Some(b.q.clone());
                        }
                    }
                    weights[i] = Some((q, w.scales.clone()));
                }
                _ => float = true,
            }
        }
        float_node[i] = float;
        if float {
            weights[i] = None;
            biases[i] = None;
        }
    }
    let node: Vec<Precision> = float_node
        .iter()
        .map(|&f| Precision::int8_or_float(f))
        .collect();
    let precision = lower::value_precisions(&graph, &node);
    lower::lower(
        &graph,
        &Quantization {
            precision: &precision,
            params: &qp,
            int16_scales: &[],
            wide: &[],
            weights: &weights,
            biases: &biases,
        },
        lower::Options {
            source_sha256,
            expose_all: false,
            requantization: Requantization::Onnx,
            sparse_weights: false,
            arena,
            tflite_functions: false,
        },
    )
}
