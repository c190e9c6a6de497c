//! ONNX export of the IR: a float graph as a float ONNX model ([`float_onnx`]), and what post-training
//! quantization (or quantization-aware training) decided as an ONNX Q/DQ model ([`qdq_onnx`]).
//!
//! Both are opset 17 with a symbolic batch, graph inputs and outputs in the source model's layout.
//! Every rank-4 IR value (NHWC) is an NCHW tensor in the file, convolution weights are OIHW again,
//! depthwise convolutions are grouped Convs and fused clamps are a Relu or Clip after their operator.
//! The IR flattens a spatial tensor in HWC order; the file flattens in ONNX's CHW order and the Gemm
//! that reads the result gets its columns permuted (the importer's own rule, undone on import). Where
//! only moving data would give the IR's element order (e.g. a reshape of a spatial tensor to anything
//! but `[n, c*h*w]`), a Transpose is written: onnxruntime runs it, Ferrite's importer refuses it.
//!
//! The Q/DQ model is what [`crate::import::onnx_qdq`] reads back (`ferrite convert`): int8 weights
//! with per-channel scales on axis 0 (symmetric, zero points 0) and int32 biases at `input scale *
//! weight scale`, each behind a DequantizeLinear; every int8 activation (graph inputs included) as
//! QuantizeLinear -> DequantizeLinear with its own scale and zero point; graph outputs keep their names
//! and end with DequantizeLinear (the tensor quantized is `<name>_QuantizeLinear_Input`, as
//! onnxruntime's quantizer names it). Nodes kept in float have float weights and no Q/DQ on their
//! output unless an int8 node reads it. A node without weights kept in float next to int8 neighbours
//! cannot be told apart from an int8 one in Q/DQ form: the converter makes it int8.
//!
//! onnxruntime runs both files. Its fused int8 kernels on x86 without VNNI saturate with full-range
//! int8 weights (as with its own `quantize_static` models): compare with graph optimizations off.

use std::collections::HashSet;

use anyhow::{bail, ensure, Context, Result};
use prost::Message;

use crate::import::onnx::proto::{
    attribute_type as at, data_type as dt, AttributeProto, Dimension, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, TypeProtoTensor,
    ValueInfoProto,
};
use crate::ir::{Clamp, Graph, Node, Param, SourceLayout, ValueId, Window2d};
use crate::quantize::params;
use crate::quantize::ptq::Decided;

/// The opset of the default domain the exported models use, unless an operator is newer (Mish
/// from opset 18, Gelu from 20: the model then takes the newest such operator's opset).
pub const OPSET: i64 = 17;

/// The ONNX IR version that goes with `opset`: 8 up to opset 18, 9 for 19 and 20.
fn ir_version(opset: i64) -> i64 {
    if opset <= 18 {
        8
    } else {
        9
    }
}

/// The IR graph as a float ONNX model (opset 17), inputs and outputs in the source model's layout.
pub fn float_onnx(graph: &Graph) -> Result<Vec<u8>> {
    Exporter::new(graph, None, vec![false; graph.values.len()]).run()
}

/// PTQ/QAT decisions as an ONNX Q/DQ model: int8 weights (per-channel scales, axis 0), int32 biases,
/// every int8 activation as QuantizeLinear -> DequantizeLinear with its scale and zero point.
pub fn qdq_onnx(decided: &Decided) -> Result<Vec<u8>> {
    let g = &decided.graph;
    ensure!(
        decided.float_node.len() == g.nodes.len()
            && decided.weights.len() == g.nodes.len()
            && decided.params.len() == g.values.len(),
        "the decisions are for a different graph ({} nodes and {} values; {} float flags, {} weight entries, {} parameters)",
        g.nodes.len(),
        g.values.len(),
        decided.float_node.len(),
        decided.weights.len(),
        decided.params.len()
    );
    let float = crate::lower::float_values(g, &decided.float_node);
    let consumers = g.consumers();
    let mut qdq = vec![false; g.values.len()];
    for v in 0..g.values.len() {
        if g.is_const(v) {
            continue;
        }
        let int8_reader = consumers[v].iter().any(|&c| !decided.float_node[c]);
        let produced = g.nodes.iter().any(|n| n.output == v);
        // Int8 readers need it, and so does an int8 node's output (the lowering quantizes it).
        let needs = int8_reader || (!float[v] && produced);
        if !needs {
            continue;
        }
        let p = decided.params[v].with_context(|| {
            format!(
                "value `{}` is int8 but has no quantization parameters",
                g.values[v].name
            )
        })?;
        ensure!(
            p.scale.is_finite() && p.scale > 0.0 && (-128..=127).contains(&p.zero_point),
            "value `{}`: scale {} and zero point {} are not valid int8 parameters",
            g.values[v].name,
            p.scale,
            p.zero_point
        );
        qdq[v] = true;
    }
    Exporter::new(g, Some(decided), qdq).run()
}

/// How the file orders a value's elements relative to the IR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The IR's shape and order.
    Same,
    /// IR `[n, h, w, c]` is `[n, c, h, w]` in the file.
    Nchw,
    /// IR `[n, h*w*c]` (HWC order) is `[n, c*h*w]` in CHW order in the file.
    Flat { c: usize, h: usize, w: usize },
}

/// Whether the file's element order of a value with this layout and IR shape is the IR's.
pub(crate) fn ir_order(l: Layout, shape: &[usize]) -> bool {
    match l {
        Layout::Same => true,
        Layout::Nchw => shape[3] == 1 || shape[1] * shape[2] == 1,
        Layout::Flat { c, h, w } => c == 1 || h * w == 1,
    }
}

pub(crate) fn a_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: at::INT,
        ..Default::default()
    }
}

pub(crate) fn a_str(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: s.as_bytes().to_vec(),
        r#type: at::STRING,
        ..Default::default()
    }
}

pub(crate) fn a_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: at::FLOAT,
        ..Default::default()
    }
}

pub(crate) fn a_ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.iter().map(|&x| x as i64).collect(),
        r#type: at::INTS,
        ..Default::default()
    }
}

/// A float tensor's type with a symbolic batch.
fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i == 0 {
                Dimension {
                    dim_value: None,
                    dim_param: Some("batch".into()),
                }
            } else {
                Dimension {
                    dim_value: Some(d as i64),
                    dim_param: None,
                }
            }
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: dt::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// `kernel_shape`, `strides` and `pads` (and `dilations` for a convolution) of a window.
pub(crate) fn window_attrs(w: &Window2d, dilations: bool) -> Vec<AttributeProto> {
    let mut a = vec![
        a_ints("kernel_shape", &w.kernel),
        a_ints("strides", &w.stride),
        a_ints("pads", &w.pads),
    ];
    if dilations {
        a.push(a_ints("dilations", &w.dilation));
    }
    a
}

/// NHWC data of shape `s` (rank 4) in NCHW order.
fn nhwc_to_nchw(data: &[f32], s: &[usize]) -> Vec<f32> {
    let (n, h, w, c) = (s[0], s[1], s[2], s[3]);
    let mut out = vec![0.0; data.len()];
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    out[((b * c + ch) * h + y) * w + x] = data[((b * h + y) * w + x) * c + ch];
                }
            }
        }
    }
    out
}

/// For each element of the CHW order of `[c, h, w]`, its index in HWC order.
pub(crate) fn chw_from_hwc(c: usize, h: usize, w: usize) -> Vec<usize> {
    let mut p = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                p.push((y * w + x) * c + ch);
            }
        }
    }
    p
}

pub(crate) struct Exporter<'g> {
    pub(crate) g: &'g Graph,
    /// The quantization decisions (Q/DQ export), or none (float export).
    decided: Option<&'g Decided>,
    /// Per value: written as QuantizeLinear -> DequantizeLinear.
    qdq: Vec<bool>,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    /// Tensor names taken (or reserved for the graph's inputs and outputs).
    used: HashSet<String>,
    node_names: HashSet<String>,
    /// Per IR value: the tensor its readers read (after Q/DQ), and its layout.
    t: Vec<Option<(String, Layout)>>,
    /// The opset of the default domain: [`OPSET`], or the newest an operator of the graph needs.
    opset: i64,
}

impl<'g> Exporter<'g> {
    fn new(g: &'g Graph, decided: Option<&'g Decided>, qdq: Vec<bool>) -> Self {
        Exporter {
            g,
            decided,
            qdq,
            nodes: Vec::new(),
            inits: Vec::new(),
            used: HashSet::new(),
            node_names: HashSet::new(),
            t: vec![None; g.values.len()],
            opset: g
                .nodes
                .iter()
                .map(|n| n.op.onnx_opset())
                .fold(OPSET, i64::max),
        }
    }

    /// The opset the file is written in.
    pub(crate) fn opset(&self) -> i64 {
        self.opset
    }

    /// `base`, or `base/1`, `base/2`... if taken.
    fn fresh(used: &mut HashSet<String>, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 0;
        while used.contains(&name) {
            k += 1;
            name = format!("{base}/{k}");
        }
        used.insert(name.clone());
        name
    }

    /// Appends a node named after `base`; returns its (new) output tensor.
    pub(crate) fn op(
        &mut self,
        op_type: &str,
        base: &str,
        inputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) -> String {
        let name = Self::fresh(&mut self.node_names, base);
        let out = Self::fresh(&mut self.used, &name);
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![out.clone()],
            name,
            op_type: op_type.into(),
            attribute,
            domain: String::new(),
        });
        out
    }

    fn init(&mut self, base: &str, dims: &[usize], data_type: i32, raw_data: Vec<u8>) -> String {
        let name = Self::fresh(&mut self.used, base);
        self.inits.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            name: name.clone(),
            raw_data,
            ..Default::default()
        });
        name
    }

    pub(crate) fn init_f32(&mut self, base: &str, dims: &[usize], data: &[f32]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init(base, dims, dt::FLOAT, raw)
    }

    pub(crate) fn init_i64(&mut self, base: &str, data: &[i64]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init(base, &[data.len()], dt::INT64, raw)
    }

    pub(crate) fn reshape(&mut self, x: String, dims: &[i64], base: &str) -> String {
        let s = self.init_i64(&format!("{base}/shape"), dims);
        self.op("Reshape", base, vec![x, s], vec![])
    }

    fn transpose(&mut self, x: String, perm: &[usize], base: &str) -> String {
        self.op("Transpose", base, vec![x], vec![a_ints("perm", perm)])
    }

    /// Tensor `x` (layout `l`, IR shape `s`) with the IR's shape and element order.
    pub(crate) fn in_ir_order(&mut self, x: String, l: Layout, s: &[usize], base: &str) -> String {
        match l {
            Layout::Same => x,
            Layout::Nchw if ir_order(l, s) => {
                self.reshape(x, &[0, s[1] as i64, s[2] as i64, s[3] as i64], base)
            }
            Layout::Nchw => self.transpose(x, &[0, 2, 3, 1], base),
            Layout::Flat { .. } if ir_order(l, s) => x,
            Layout::Flat { c, h, w } => {
                let x = self.reshape(x, &[0, c as i64, h as i64, w as i64], base);
                let x = self.transpose(x, &[0, 2, 3, 1], base);
                self.reshape(x, &[0, (h * w * c) as i64], base)
            }
        }
    }

    /// A tensor with the IR's shape and order as the layout rank-4 values have (NCHW).
    pub(crate) fn ir_to_nchw(&mut self, x: String, s: &[usize], base: &str) -> (String, Layout) {
        if s.len() != 4 {
            return (x, Layout::Same);
        }
        if ir_order(Layout::Nchw, s) {
            let d = [0, s[3] as i64, s[1] as i64, s[2] as i64];
            (self.reshape(x, &d, base), Layout::Nchw)
        } else {
            (self.transpose(x, &[0, 3, 1, 2], base), Layout::Nchw)
        }
    }

    /// The tensor and layout of an activation already written.
    pub(crate) fn act(&self, v: ValueId) -> Result<(String, Layout)> {
        self.t[v]
            .clone()
            .with_context(|| format!("`{}` is read before it is computed", self.g.values[v].name))
    }

    pub(crate) fn nchw(&self, v: ValueId) -> Result<String> {
        let (x, l) = self.act(v)?;
        ensure!(
            l == Layout::Nchw,
            "input `{}` is not a 4-D tensor",
            self.g.values[v].name
        );
        Ok(x)
    }

    /// Constant value `v` as an initializer in layout `l`.
    fn constant(&mut self, v: ValueId, l: Layout) -> Result<String> {
        let val = &self.g.values[v];
        let data = val.data.as_ref().context("not a constant")?;
        let s = &val.shape;
        let base = val.name.clone();
        Ok(match l {
            Layout::Nchw => {
                ensure!(s.len() == 4, "constant `{}` of shape {s:?}", val.name);
                let d = nhwc_to_nchw(data, s);
                self.init_f32(&base, &[s[0], s[3], s[1], s[2]], &d)
            }
            Layout::Flat { c, h, w } if s.len() == 2 && s[1] == c * h * w && s[1] > 1 => {
                let p = chw_from_hwc(c, h, w);
                let per = s[1];
                let d: Vec<f32> = (0..data.len())
                    .map(|k| data[k / per * per + p[k % per]])
                    .collect();
                self.init_f32(&base, s, &d)
            }
            _ => self.init_f32(&base, s, data),
        })
    }

    /// The operands of an element-wise or concatenating node in one layout (activations' own when
    /// they agree, else the IR's order), constants converted to it.
    pub(crate) fn operands(&mut self, n: &Node, flat_ok: bool) -> Result<(Vec<String>, Layout)> {
        let acts: Vec<(String, Layout, ValueId)> = n
            .inputs
            .iter()
            .filter(|&&v| !self.g.is_const(v))
            .map(|&v| self.act(v).map(|(t, l)| (t, l, v)))
            .collect::<Result<_>>()?;
        ensure!(!acts.is_empty(), "every operand is a constant");
        let first = acts[0].1;
        let agree =
            acts.iter().all(|a| a.1 == first) && (flat_ok || !matches!(first, Layout::Flat { .. }));
        let layout = if agree { first } else { Layout::Same };
        let mut out = Vec::with_capacity(n.inputs.len());
        for &v in &n.inputs {
            if self.g.is_const(v) {
                out.push(self.constant(v, layout)?);
                continue;
            }
            let (t, l) = self.act(v)?;
            if l == layout {
                out.push(t);
            } else {
                ensure!(
                    l != Layout::Nchw,
                    "operands in different layouts (a 4-D and a {}-D tensor)",
                    self.g.values[v].shape.len()
                );
                let s = self.g.values[v].shape.clone();
                out.push(self.in_ir_order(t, l, &s, &format!("{}/to_hwc", n.name)));
            }
        }
        Ok((out, layout))
    }

    /// A Relu or Clip after `x` for a fused clamp (nothing for none).
    pub(crate) fn clamp(&mut self, x: String, clamp: Clamp, base: &str) -> String {
        if clamp.is_none() {
            return x;
        }
        if clamp == Clamp::RELU {
            return self.op("Relu", &format!("{base}/relu"), vec![x], vec![]);
        }
        let mut inputs = vec![x];
        let finite = |v: f32| v.is_finite();
        inputs.push(if finite(clamp.min) {
            self.init_f32(&format!("{base}/clip_min"), &[], &[clamp.min])
        } else {
            String::new()
        });
        if finite(clamp.max) {
            let m = self.init_f32(&format!("{base}/clip_max"), &[], &[clamp.max]);
            inputs.push(m);
        }
        self.op("Clip", &format!("{base}/clip"), inputs, vec![])
    }

    /// The int8 weights and scales of node `i` when it runs in int8.
    fn int8_weights(&self, i: usize) -> Result<Option<&'g (Vec<i8>, Vec<f32>)>> {
        let Some(d) = self.decided else {
            return Ok(None);
        };
        if d.float_node[i] {
            return Ok(None);
        }
        d.weights[i]
            .as_ref()
            .map(Some)
            .context("the node runs in int8 but has no int8 weights")
    }

    /// The weight input of node `i`: `filter` reordered to `dims` (`perm[k]`: the filter index of
    /// element `k`), as floats or as int8 behind a DequantizeLinear (scales on axis 0).
    pub(crate) fn weight(
        &mut self,
        i: usize,
        name: &str,
        filter: &Param,
        dims: &[usize],
        perm: &[usize],
    ) -> Result<String> {
        let base = format!("{name}/weight");
        let Some((w, scales)) = self.int8_weights(i)? else {
            let d: Vec<f32> = perm.iter().map(|&j| filter.data[j]).collect();
            return Ok(self.init_f32(&base, dims, &d));
        };
        ensure!(
            w.len() == filter.data.len(),
            "{} int8 weights for a filter of {}",
            w.len(),
            filter.data.len()
        );
        let channels = dims[0];
        ensure!(
            scales.len() == 1 || scales.len() == channels,
            "{} weight scales for {channels} output channels",
            scales.len()
        );
        let q: Vec<u8> = perm.iter().map(|&j| w[j] as u8).collect();
        let qn = self.init(&format!("{base}_quantized"), dims, dt::INT8, q);
        let sdims: &[usize] = if scales.len() == 1 { &[] } else { &[channels] };
        let sn = self.init_f32(&format!("{base}_scale"), sdims, scales);
        let zn = self.init(
            &format!("{base}_zero_point"),
            sdims,
            dt::INT8,
            vec![0; scales.len()],
        );
        let attrs = if scales.len() == 1 {
            vec![]
        } else {
            vec![a_int("axis", 0)]
        };
        Ok(self.op("DequantizeLinear", &base, vec![qn, sn, zn], attrs))
    }

    /// The bias input of node `i` (reading `x`): floats, or int32 at scales `input scale * weight
    /// scale` behind a DequantizeLinear, quantized as the lowering quantizes it.
    pub(crate) fn bias(
        &mut self,
        i: usize,
        name: &str,
        bias: &Param,
        x: ValueId,
    ) -> Result<String> {
        let base = format!("{name}/bias");
        let Some((_, scales)) = self.int8_weights(i)? else {
            return Ok(self.init_f32(&base, &[bias.data.len()], &bias.data));
        };
        let d = self.decided.unwrap();
        let s_in = d.params[x]
            .with_context(|| format!("input `{}` has no int8 parameters", self.g.values[x].name))?
            .scale;
        let q = params::bias(&bias.data, s_in, scales);
        let s: Vec<f32> = scales.iter().map(|&w| s_in * w).collect();
        let channels = bias.data.len();
        let sdims: &[usize] = if s.len() == 1 { &[] } else { &[channels] };
        let qn = self.init(
            &format!("{base}_quantized"),
            &[channels],
            dt::INT32,
            q.iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
        let sn = self.init_f32(&format!("{base}_scale"), sdims, &s);
        let zn = self.init(
            &format!("{base}_zero_point"),
            sdims,
            dt::INT32,
            vec![0; 4 * s.len()],
        );
        let attrs = if s.len() == 1 {
            vec![]
        } else {
            vec![a_int("axis", 0)]
        };
        Ok(self.op("DequantizeLinear", &base, vec![qn, sn, zn], attrs))
    }

    /// Writes node `n` (index `i`); returns the tensor holding its output and the output's layout.
    fn node(&mut self, i: usize, n: &Node) -> Result<(String, Layout)> {
        let g = self.g;
        let out_shape = &g.values[n.output].shape;
        let (t, l) = n.op.export(self, i, n)?;
        // Rank-4 values are NCHW, flattened spatial ones that keep the IR's order are plain.
        debug_assert!(out_shape.len() != 4 || l == Layout::Nchw);
        let l = if matches!(l, Layout::Flat { .. }) && ir_order(l, out_shape) {
            Layout::Same
        } else {
            l
        };
        Ok((t, l))
    }

    /// QuantizeLinear -> DequantizeLinear after tensor `x` of value `v` when it is int8; returns what
    /// readers read.
    fn quantize(&mut self, v: ValueId, x: String) -> String {
        if !self.qdq[v] {
            return x;
        }
        let p = self.decided.unwrap().params[v].unwrap();
        let s = self.init_f32(&format!("{x}_scale"), &[], &[p.scale]);
        let z = self.init(
            &format!("{x}_zero_point"),
            &[],
            dt::INT8,
            vec![p.zero_point as i8 as u8],
        );
        let q = self.op(
            "QuantizeLinear",
            &format!("{x}_QuantizeLinear"),
            vec![x.clone(), s.clone(), z.clone()],
            vec![],
        );
        self.op(
            "DequantizeLinear",
            &format!("{x}_DequantizeLinear"),
            vec![q, s, z],
            vec![],
        )
    }

    /// Renames tensor `from` to `to` everywhere.
    fn rename(&mut self, from: &str, to: &str) {
        for n in &mut self.nodes {
            for s in n.input.iter_mut().chain(n.output.iter_mut()) {
                if s == from {
                    *s = to.to_string();
                }
            }
        }
    }

    fn run(mut self) -> Result<Vec<u8>> {
        let g = self.g;
        let mut seen = HashSet::new();
        for &v in g.inputs.iter().chain(&g.outputs) {
            let name = &g.values[v].name;
            ensure!(
                seen.insert(v),
                "`{name}` is a graph input or output twice (or both); not exported"
            );
            ensure!(
                !g.is_const(v),
                "graph input or output `{name}` is a constant"
            );
            ensure!(
                self.used.insert(name.clone()),
                "two graph inputs or outputs are named `{name}`"
            );
        }
        let mut inputs = Vec::new();
        for &v in &g.inputs {
            let val = &g.values[v];
            let s = &val.shape;
            let (dims, l) = match val.source {
                SourceLayout::Nchw | SourceLayout::Ncl => (val.source.source_dims(s), Layout::Nchw),
                SourceLayout::FlatChw { c, h, w } => (s.clone(), Layout::Flat { c, h, w }),
                SourceLayout::Same => (s.clone(), Layout::Same),
            };
            inputs.push(value_info(&val.name, &dims));
            let mut x = self.quantize(v, val.name.clone());
            if val.source == SourceLayout::Ncl {
                // The signal [n, c, l] as the image [n, c, 1, l].
                let image = [0, s[3] as i64, 1, s[2] as i64];
                x = self.reshape(x, &image, &format!("{}/image", val.name));
            }
            self.t[v] = Some(if s.len() == 4 && l == Layout::Same {
                (
                    self.transpose(x, &[0, 3, 1, 2], &format!("{}/nchw", val.name)),
                    Layout::Nchw,
                )
            } else {
                (x, l)
            });
        }
        for (i, n) in g.nodes.iter().enumerate() {
            let (t, l) = self
                .node(i, n)
                .with_context(|| format!("node `{}` ({})", n.name, n.op.name()))?;
            // The tensor takes the value's name (the last node written computes it).
            let v = n.output;
            let vname = &g.values[v].name;
            let name = if !g.outputs.contains(&v) {
                Self::fresh(&mut self.used, vname)
            } else if self.qdq[v] {
                Self::fresh(&mut self.used, &format!("{vname}_QuantizeLinear_Input"))
            } else {
                vname.clone()
            };
            let last = self.nodes.last_mut().context("nothing written")?;
            ensure!(
                last.output[0] == t,
                "internal: `{t}` is not the last output"
            );
            last.output[0] = name.clone();
            let x = self.quantize(v, name);
            self.t[v] = Some((x, l));
        }
        let mut outputs = Vec::new();
        for &v in &g.outputs {
            let val = &g.values[v];
            let (x, l) = self.act(v)?;
            let before = x.clone();
            let s = &val.shape;
            let x = match (val.source, l) {
                (SourceLayout::Nchw, Layout::Nchw) | (SourceLayout::Same, Layout::Same) => x,
                (SourceLayout::Nchw, _) => bail!("output `{}` is not 4-D", val.name),
                (SourceLayout::Ncl, l) => {
                    let base = format!("{}/source", val.name);
                    let (c, len) = (s[3] as i64, s[2] as i64);
                    if l == Layout::Nchw {
                        self.reshape(x, &[0, c, len], &base)
                    } else {
                        let x = self.in_ir_order(x, l, s, &base);
                        let x = self.reshape(x, &[0, len, c], &base);
                        self.transpose(x, &[0, 2, 1], &base)
                    }
                }
                (SourceLayout::Same, l) => {
                    self.in_ir_order(x, l, s, &format!("{}/source", val.name))
                }
                (SourceLayout::FlatChw { c, h, w }, l) => {
                    if l == (Layout::Flat { c, h, w })
                        || (l == Layout::Same && (c == 1 || h * w == 1))
                    {
                        x
                    } else {
                        let base = format!("{}/source", val.name);
                        let x = self.in_ir_order(x, l, s, &base);
                        let x = self.reshape(x, &[0, h as i64, w as i64, c as i64], &base);
                        let x = self.transpose(x, &[0, 3, 1, 2], &base);
                        self.op("Flatten", &base, vec![x], vec![a_int("axis", 1)])
                    }
                }
            };
            // Layout glue after the last DequantizeLinear gets its own pair (the same parameters:
            // the values do not change), so that the output stays int8 for a Q/DQ reader.
            let x = if x != before { self.quantize(v, x) } else { x };
            if x != val.name {
                if self.nodes.iter().any(|n| n.output.contains(&val.name)) {
                    let inner = Self::fresh(&mut self.used, &format!("{}/inner", val.name));
                    self.rename(&val.name, &inner);
                }
                self.rename(&x, &val.name);
            }
            outputs.push(value_info(&val.name, &crate::ir::io::source_dims(g, v)));
        }
        let model = ModelProto {
            ir_version: ir_version(self.opset),
            producer_name: "ferrite".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(GraphProto {
                node: self.nodes,
                name: "ferrite".into(),
                initializer: self.inits,
                input: inputs,
                output: outputs,
                value_info: Vec::new(),
            }),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
            }],
        };
        Ok(model.encode_to_vec())
    }
}

#[cfg(test)]
mod tests;
