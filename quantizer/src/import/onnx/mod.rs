//! ONNX import: decodes a float ONNX model (opsets 11 to 25) and builds the NHWC IR.
//!
//! ONNX is NCHW. Rank-4 values become NHWC in the IR: convolution weights are reordered to OHWI (or
//! `[1, kh, kw, c]` for depthwise), axes and paddings are remapped, constants combined with rank-4
//! values are transposed. A flatten of a spatial tensor keeps the IR's HWC element order and permutes
//! the columns of the Gemm/MatMul that reads it. Only the batch dimension may be symbolic (it becomes 1).
//! With it fixed, shape arithmetic (Shape of an activation, then Gather, Cast, Squeeze, Unsqueeze,
//! Concat... of constants, as in PyTorch's `x.view(x.size(0), -1)`) folds to constants at import.

pub mod build;
mod moves;
mod norms;
pub mod proto;
pub(crate) mod tensor;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use prost::Message;

use crate::ir::{Clamp, Graph, Op, Param, SourceLayout, UnaryFn, ValueId, Window2d};
use ferrite_runtime::kernels::resize::BilinearMode;
use ferrite_runtime::ops::PadMode;
use moves::Moved;
use proto::{attribute_type as at, AttributeProto, ModelProto, NodeProto};
use tensor::Const;

/// The operators the importer understands.
pub const SUPPORTED: &[&str] = &[
    "Abs",
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Celu",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Cos",
    "DepthToSpace",
    "Div",
    "Dropout",
    "Elu",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Gather",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GroupNormalization",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "LayerNormalization",
    "LeakyRelu",
    "LogSoftmax",
    "MatMul",
    "Max",
    "MaxPool",
    "Min",
    "Mish",
    "Mul",
    "Neg",
    "Pad",
    "PRelu",
    "Pow",
    "ReduceMax",
    "ReduceMean",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Resize",
    "Selu",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "Transpose",
    "Unsqueeze",
];

/// Operators that only move elements: followed element by element (see [`moves`]) where the IR
/// has no operator for one step alone.
const MOVES: &[&str] = &[
    "Expand",
    "Flatten",
    "Identity",
    "Reshape",
    "Squeeze",
    "Tile",
    "Transpose",
    "Unsqueeze",
];

/// Normalizations over sets of values (`norms.rs`): one may read a followed value as it is.
const NORMALIZATIONS: &[&str] = &[
    "GroupNormalization",
    "InstanceNormalization",
    "LayerNormalization",
];

/// Operators whose first input is spatial (channels, then one or two spatial axes): a rank-3 graph
/// input they read is a 1-D signal `[n, c, l]`.
const SPATIAL: &[&str] = &[
    "AveragePool",
    "BatchNormalization",
    "Conv",
    "ConvTranspose",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GroupNormalization",
    "InstanceNormalization",
    "MaxPool",
];

/// Operators that keep their first input's layout, element by element.
const ELEMENTWISE: &[&str] = &[
    "Abs",
    "Add",
    "Celu",
    "Clip",
    "Cos",
    "Div",
    "Dropout",
    "Elu",
    "Erf",
    "Exp",
    "Gelu",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "Max",
    "Min",
    "Mish",
    "Mul",
    "Neg",
    "Pad",
    "PRelu",
    "Pow",
    "Relu",
    "Selu",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Softplus",
    "Softsign",
    "Sqrt",
    "Sub",
    "Tanh",
    "ThresholdedRelu",
];

/// Opsets of the default domain the importer reads (22 added bfloat16 to many operators, 23 to 25
/// other element types and, to QuantizeLinear and DequantizeLinear, precision and output-type
/// attributes, which the Q/DQ importer checks; nothing this importer reads changed meaning).
pub const OPSETS: std::ops::RangeInclusive<i64> = 11..=25;

/// Reads and imports an ONNX file, its external data read from beside it (errors name the file).
pub fn load(path: &Path) -> Result<Graph> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    (|| import_model(&decode_file(&bytes, path)?))().with_context(|| format!("{}", path.display()))
}

/// The bytes of ONNX file `path` with the tensors it stores outside read into it, when it has any
/// (what the Q/DQ importer, which reads bytes, then converts); `None` when it has none or does not
/// decode.
pub fn inline_external(bytes: &[u8], path: &Path) -> Result<Option<Vec<u8>>> {
    let Ok(mut model) = ModelProto::decode(bytes) else {
        return Ok(None);
    };
    Ok(read_all_external(&mut model, path)?.then(|| model.encode_to_vec()))
}

/// Decodes the bytes of ONNX file `path`, reading the tensors stored outside it (PyTorch's
/// exporter writes weights to `<model>.onnx.data`) from the files they name beside it.
pub fn decode_file(bytes: &[u8], path: &Path) -> Result<ModelProto> {
    let mut model = decode(bytes)?;
    read_all_external(&mut model, path)?;
    Ok(model)
}

/// Reads every tensor of `model` (initializers, Constant values) stored outside file `path` into
/// it; returns whether there was one.
fn read_all_external(model: &mut ModelProto, path: &Path) -> Result<bool> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let Some(g) = model.graph.as_mut() else {
        return Ok(false);
    };
    let constants = g.node.iter_mut().flat_map(|n| n.attribute.iter_mut());
    let tensors = g
        .initializer
        .iter_mut()
        .chain(constants.filter_map(|a| a.t.as_mut()));
    let mut any = false;
    for t in tensors.filter(|t| t.data_location == 1) {
        let name = t.name.clone();
        tensor::read_external(t, dir).with_context(|| format!("initializer `{name}`"))?;
        any = true;
    }
    Ok(any)
}

/// Decodes ONNX bytes and imports the graph (before optimization passes).
pub fn import(bytes: &[u8]) -> Result<Graph> {
    import_model(&decode(bytes)?)
}

/// Decodes ONNX bytes: an error for an empty, truncated or corrupt file, or a model without nodes.
pub fn decode(bytes: &[u8]) -> Result<ModelProto> {
    ensure!(
        !bytes.is_empty(),
        "not a valid ONNX file: the file is empty"
    );
    ensure!(
        !super::is_tflite(bytes),
        "a TFLite model, not an ONNX one: float models are imported from ONNX (convert this one with \
         `python -m tf2onnx.convert --tflite`); int8 .tflite files are converted as they are with \
         `ferrite convert`"
    );
    let model = ModelProto::decode(bytes)
        .map_err(|e| anyhow!("not a valid ONNX file (truncated or corrupt): {e}"))?;
    ensure!(
        model.graph.as_ref().is_some_and(|g| !g.node.is_empty()),
        "not a valid ONNX file: no graph nodes"
    );
    Ok(model)
}

/// Imports a decoded model (before optimization passes).
pub(crate) fn import_model(model: &ModelProto) -> Result<Graph> {
    let graph = model
        .graph
        .as_ref()
        .context("not a valid ONNX file: the model has no graph")?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .context("not a valid ONNX file: no opset for the default domain")?;
    ensure!(
        OPSETS.contains(&opset),
        "opset {opset} is not supported (supported: {} to {})",
        OPSETS.start(),
        OPSETS.end()
    );
    ensure!(
        !graph.node.is_empty(),
        "not a valid ONNX file: the graph has no nodes"
    );
    // Rank-4 inputs read only by Transpose(0, 3, 1, 2) are NHWC already.
    let transposed: HashSet<&str> = graph
        .input
        .iter()
        .filter(|i| {
            let readers: Vec<&NodeProto> = graph
                .node
                .iter()
                .filter(|n| n.input.contains(&i.name))
                .collect();
            !readers.is_empty()
                && readers.iter().all(|n| {
                    n.op_type == "Transpose"
                        && attr(n, "perm").is_some_and(|a| a.ints == [0, 3, 1, 2])
                })
        })
        .map(|i| i.name.as_str())
        .collect();
    // Other rank-4 inputs are read as NCHW images. Models converted from TensorFlow reshape or
    // rescale an NHWC input before turning it into NCHW; when reading it as NCHW fails or needs a
    // TRANSPOSE, it is read as NHWC too, and the reading with fewer TRANSPOSEs is kept. Either
    // reading that imports computes the ONNX graph's function (the importer refuses what it cannot
    // place). When both fail, the error reported is the one of the reading that imported more
    // nodes (the first on a tie).
    let rank4: HashSet<&str> = graph
        .input
        .iter()
        .filter(|i| input_dims(i).is_ok_and(|d| d.len() == 4))
        .map(|i| i.name.as_str())
        .collect();
    let transposes = |g: &Graph| {
        g.nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Transpose { .. }))
            .count()
    };
    // An operator the importer lacks is named before any node is imported, with the others the
    // graph holds (an LSTM should not be reported as the Transpose that feeds it).
    // Layer normalizations written out in primitive operators are imported as one (their
    // Reciprocal or ReduceMean over the channels would not import alone).
    let joins = norms::decomposed(graph);
    let joined: HashSet<usize> = joins.iter().flat_map(|j| j.nodes.iter().copied()).collect();
    let lacking: Vec<(usize, String)> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(i, _)| !joined.contains(i))
        .filter_map(|(i, n)| unsupported(n).map(|op| (i, op)))
        .collect();
    if let Some((i, op)) = lacking.first() {
        let n = &graph.node[*i];
        let label = if n.name.is_empty() {
            format!("#{i}")
        } else {
            n.name.clone()
        };
        let mut others: Vec<&str> = lacking.iter().map(|(_, o)| o.as_str()).collect();
        others.sort_unstable();
        others.dedup();
        others.retain(|o| o != op);
        let also = if others.is_empty() {
            String::new()
        } else {
            format!("; the graph also holds `{}`", others.join("`, `"))
        };
        bail!(
            "node `{label}` ({}): unsupported operator `{op}`{also} (supported: {})",
            n.op_type,
            SUPPORTED.join(", ")
        );
    }
    let mut reached = 0;
    let first = match import_graph(graph, opset, &transposed, &joins, &mut reached) {
        Ok(g) if rank4 == transposed || transposes(&g) == 0 => return Ok(g),
        Ok(g) => Ok(g),
        Err(e) => Err(e),
    };
    if rank4 == transposed {
        return first;
    }
    let mut nhwc_reached = 0;
    match (
        first,
        import_graph(graph, opset, &rank4, &joins, &mut nhwc_reached),
    ) {
        (Ok(g), Ok(h)) if transposes(&h) < transposes(&g) => Ok(h),
        (Ok(g), _) => Ok(g),
        (Err(_), Ok(h)) => Ok(h),
        (Err(e), Err(f)) => Err(if nhwc_reached > reached { f } else { e }),
    }
}

/// Imports `graph` with the rank-4 inputs `nhwc_inputs` read as NHWC, the others as NCHW; `reached`
/// counts the nodes imported.
fn import_graph(
    graph: &proto::GraphProto,
    opset: i64,
    nhwc_inputs: &HashSet<&str>,
    joins: &[norms::Decomposed],
    reached: &mut usize,
) -> Result<Graph> {
    let read = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .chain(graph.output.iter().map(|o| &o.name))
        .cloned()
        .collect();
    let mut im = Importer {
        opset,
        g: Graph::default(),
        vals: HashMap::new(),
        consts: HashMap::new(),
        moved: HashMap::new(),
        read,
    };
    for t in &graph.initializer {
        let c = Const::from_proto(t).with_context(|| format!("initializer `{}`", t.name))?;
        im.consts.insert(t.name.clone(), c);
    }
    for input in &graph.input {
        if im.consts.contains_key(&input.name) {
            continue;
        }
        let dims = input_dims(input).with_context(|| format!("graph input `{}`", input.name))?;
        // A rank-3 input that reaches a convolution, pool or normalization is a 1-D signal.
        let layout = match dims.len() {
            4 if !nhwc_inputs.contains(input.name.as_str()) => SourceLayout::Nchw,
            3 if im.reaches_spatial(&graph.node, &input.name, &dims) => SourceLayout::Ncl,
            _ => SourceLayout::Same,
        };
        let shape = match layout {
            SourceLayout::Nchw => to_nhwc(&dims),
            SourceLayout::Ncl => vec![dims[0], 1, dims[2], dims[1]],
            _ => dims,
        };
        let v = im.g.add_value(&input.name, shape);
        im.g.values[v].source = layout;
        im.vals.insert(input.name.clone(), v);
        im.g.inputs.push(v);
    }
    ensure!(
        !im.g.inputs.is_empty(),
        "the graph has no (non-constant) inputs"
    );
    for (i, node) in graph.node.iter().enumerate() {
        let label = if node.name.is_empty() {
            format!("#{i}")
        } else {
            node.name.clone()
        };
        let join = joins.iter().find(|j| j.nodes.contains(&i));
        match join {
            Some(j) if j.last == i => im
                .decomposed_layer_norm(node, &label, j)
                .with_context(|| format!("node `{label}` ({})", node.op_type))?,
            Some(_) => {}
            None => im
                .node(node, &label)
                .with_context(|| format!("node `{label}` ({})", node.op_type))?,
        }
        *reached = i + 1;
    }
    for out in &graph.output {
        let v = match im.vals.get(&out.name) {
            Some(&v) => v,
            None if im.moved.contains_key(&out.name) => im
                .place(&out.name)
                .with_context(|| format!("graph output `{}`", out.name))?,
            None => match im.consts.get(&out.name) {
                Some(c) => {
                    let d = c.f32()?;
                    im.g.add_const(&out.name, c.dims.clone(), d)
                }
                None => bail!("graph output `{}` is never computed", out.name),
            },
        };
        im.g.outputs.push(v);
    }
    im.g.check()?;
    Ok(im.g)
}

fn input_dims(v: &proto::ValueInfoProto) -> Result<Vec<usize>> {
    let t = v
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .context("not a tensor")?;
    ensure!(
        t.elem_type == proto::data_type::FLOAT,
        "element type {} (only float32 inputs are supported)",
        t.elem_type
    );
    let shape = t
        .shape
        .as_ref()
        .context("no shape (a static shape is required)")?;
    ensure!(
        !shape.dim.is_empty(),
        "a scalar input (batch-first tensors required)"
    );
    let dims: Vec<usize> = shape
        .dim
        .iter()
        .enumerate()
        .map(|(axis, d)| match (d.dim_value, &d.dim_param) {
            // The batch: one sample per inference, whatever size the file gives it (a model
            // exported with its example batch of 8 runs one sample at a time, as on the device).
            _ if axis == 0 => Ok(1),
            (Some(v), _) if v > 0 => Ok(v as usize),
            (_, Some(p)) if !p.is_empty() => bail!(
                "dynamic dimension `{p}` at axis {axis} (only the batch dimension may be symbolic; export with a fixed input size)"
            ),
            _ => bail!(
                "unknown size at axis {axis} (only the batch dimension may be dynamic; export with a fixed input size)"
            ),
        })
        .collect::<Result<_>>()?;
    let elements = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    ensure!(
        elements.is_some_and(|e| e <= 1 << 28),
        "shape {dims:?} is too large"
    );
    Ok(dims)
}

/// NCHW dims to NHWC.
fn to_nhwc(d: &[usize]) -> Vec<usize> {
    vec![d[0], d[2], d[3], d[1]]
}

/// NCHW axis to NHWC axis.
fn axis_nhwc(a: usize) -> usize {
    [0, 3, 1, 2][a]
}

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

pub(crate) fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name)
        .filter(|a| a.r#type == at::INT)
        .map_or(default, |a| a.i)
}

fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name)
        .filter(|a| a.r#type == at::FLOAT)
        .map_or(default, |a| a.f)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name)
        .filter(|a| a.r#type == at::INTS)
        .map(|a| a.ints.clone())
}

fn attr_s(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name)
        .filter(|a| a.r#type == at::STRING)
        .map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// The input index ONNX's nearest-mode Resize reads for output index `y` (`in_size` to `out_size`).
/// `scale` is the node's (given, or `out_size / in_size` from sizes).
fn onnx_nearest(
    y: usize,
    in_size: usize,
    out_size: usize,
    scale: f64,
    transform: &str,
    rounding: &str,
) -> Result<usize> {
    let (y, i, o) = (y as f64, in_size as f64, out_size as f64);
    let x = match transform {
        "half_pixel" => (y + 0.5) / scale - 0.5,
        "pytorch_half_pixel" if out_size > 1 => (y + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => 0.0,
        "align_corners" if out_size > 1 => y * (i - 1.0) / (o - 1.0),
        "align_corners" => 0.0,
        "asymmetric" => y / scale,
        "tf_half_pixel_for_nn" => (y + 0.5) / scale,
        other => bail!("coordinate_transformation_mode `{other}` is not supported"),
    };
    let r = match rounding {
        "round_prefer_floor" if x.fract() == 0.5 => x.floor(),
        "round_prefer_ceil" if x.fract() == 0.5 => x.ceil(),
        "round_prefer_floor" | "round_prefer_ceil" => x.round(),
        "floor" => x.floor(),
        "ceil" => x.ceil(),
        other => bail!("nearest_mode `{other}` is not supported"),
    };
    Ok(r.clamp(0.0, i - 1.0) as usize)
}

/// Normalizes a possibly negative axis for `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    ensure!(
        (0..rank as i64).contains(&a),
        "axis {axis} out of range for rank {rank}"
    );
    Ok(a as usize)
}

/// The operator of node `n` as `domain:op` or `op`, when the importer does not support it.
fn unsupported(n: &NodeProto) -> Option<String> {
    if (n.domain.is_empty() || n.domain == "ai.onnx") && SUPPORTED.contains(&n.op_type.as_str()) {
        return None;
    }
    Some(if n.domain.is_empty() {
        n.op_type.clone()
    } else {
        format!("{}:{}", n.domain, n.op_type)
    })
}

/// Transpose's `perm` for an input of rank `rank` (reversed axes when absent).
fn transpose_perm(n: &NodeProto, rank: usize) -> Result<Vec<usize>> {
    match attr_ints(n, "perm") {
        Some(p) => p.iter().map(|&a| norm_axis(a, rank)).collect(),
        None => Ok((0..rank).rev().collect()),
    }
}

/// Flatten's `axis` in `[-rank, rank]` as the number of leading dimensions it joins into the first
/// (a negative one counts from the back: -1 leaves the last dimension alone).
fn flatten_axis(axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    ensure!(
        (0..=rank as i64).contains(&a),
        "Flatten axis {axis} out of range for rank {rank}"
    );
    Ok(a as usize)
}

/// Whether the IR's element order of a value with this source layout and IR shape equals the source's.
fn same_order(layout: SourceLayout, ir_shape: &[usize]) -> bool {
    match layout {
        SourceLayout::Same => true,
        SourceLayout::Nchw | SourceLayout::Ncl => {
            let (h, w, c) = (ir_shape[1], ir_shape[2], ir_shape[3]);
            c == 1 || h * w == 1
        }
        SourceLayout::FlatChw { c, h, w } => c == 1 || h * w == 1,
    }
}

struct Importer {
    opset: i64,
    g: Graph,
    /// ONNX value name -> IR activation.
    vals: HashMap<String, ValueId>,
    /// ONNX value name -> constant (ONNX layout).
    consts: HashMap<String, Const>,
    /// ONNX value name -> an activation moved by operators the IR has no operator for, placed
    /// where it is read ([`Importer::place`]).
    moved: HashMap<String, Moved>,
    /// Names some node or the graph's outputs read.
    read: HashSet<String>,
}

impl Importer {
    fn input<'n>(&self, n: &'n NodeProto, i: usize) -> Option<&'n str> {
        n.input.get(i).map(|s| s.as_str()).filter(|s| !s.is_empty())
    }

    /// Input `i` as an activation.
    fn act(&self, n: &NodeProto, i: usize) -> Result<ValueId> {
        let name = self
            .input(n, i)
            .with_context(|| format!("input {i} is missing"))?;
        match self.vals.get(name) {
            Some(&v) => Ok(v),
            None if self.consts.contains_key(name) => {
                bail!("input {i} (`{name}`) is a constant where an activation is expected")
            }
            None => bail!("input {i} (`{name}`) is not defined before this node"),
        }
    }

    /// Input `i` as a constant whose float values are all finite (weights, biases, normalization
    /// parameters, operands): a NaN or infinity there gives a model that computes garbage.
    fn konst(&self, n: &NodeProto, i: usize) -> Result<&Const> {
        let c = self.konst_any(n, i)?;
        if let tensor::Data::F32(v) = &c.data {
            if let Some(at) = v.iter().position(|x| !x.is_finite()) {
                bail!(
                    "input {i} (`{}`) holds {} at index {at}; every weight and constant must be finite",
                    self.input(n, i).unwrap_or_default(),
                    v[at]
                );
            }
        }
        Ok(c)
    }

    /// Input `i` as a constant, any value (Clip bounds may be infinite).
    fn konst_any(&self, n: &NodeProto, i: usize) -> Result<&Const> {
        let name = self
            .input(n, i)
            .with_context(|| format!("input {i} is missing"))?;
        match self.consts.get(name) {
            Some(c) => Ok(c),
            None if self.vals.contains_key(name) => bail!(
                "input {i} (`{name}`) is computed at run time; only constant weights and parameters are supported"
            ),
            None => bail!("input {i} (`{name}`) is not defined before this node"),
        }
    }

    fn opt_const(&self, n: &NodeProto, i: usize) -> Result<Option<&Const>> {
        self.input(n, i).map(|_| self.konst(n, i)).transpose()
    }

    fn opt_const_any(&self, n: &NodeProto, i: usize) -> Result<Option<&Const>> {
        self.input(n, i).map(|_| self.konst_any(n, i)).transpose()
    }

    fn shape(&self, v: ValueId) -> &[usize] {
        &self.g.values[v].shape
    }

    /// Whether graph input `name` (dims `dims`, rank 3) reaches the spatial input of a convolution,
    /// pool or normalization through elementwise operators, or through a reshape to the image
    /// `[n, c, 1, l]` or `[n, c, l, 1]` into a 2-D one.
    fn reaches_spatial(&self, nodes: &[NodeProto], name: &str, dims: &[usize]) -> bool {
        let images = [
            [dims[0], dims[1], 1, dims[2]],
            [dims[0], dims[1], dims[2], 1],
        ];
        let konst = |n: &NodeProto, i: usize| -> Option<Vec<i64>> {
            let name = n.input.get(i)?;
            match self.consts.get(name) {
                Some(c) => c.i64().ok(),
                None => nodes
                    .iter()
                    .find(|p| p.op_type == "Constant" && p.output.first() == Some(name))
                    .and_then(|p| Const::from_constant_node(p).ok()?.i64().ok()),
            }
        };
        let to_image = |n: &NodeProto| match n.op_type.as_str() {
            "Unsqueeze" => attr_ints(n, "axes")
                .or_else(|| konst(n, 1))
                .is_some_and(|a| a.len() == 1 && [2, -2, 3, -1].contains(&a[0])),
            "Reshape" => konst(n, 1).is_some_and(|s| {
                resolve_reshape(dims, &s, attr_i(n, "allowzero", 0) != 0)
                    .is_ok_and(|d| images.iter().any(|i| d == i))
            }),
            _ => false,
        };
        let mut seen: HashSet<&str> = HashSet::from([name]);
        let mut todo = vec![name];
        while let Some(v) = todo.pop() {
            for n in nodes
                .iter()
                .filter(|n| n.input.first().is_some_and(|i| i == v))
            {
                let op = n.op_type.as_str();
                if SPATIAL.contains(&op) {
                    return true;
                }
                if ELEMENTWISE.contains(&op) || to_image(n) {
                    for out in n.output.iter().take(1) {
                        if seen.insert(out) {
                            todo.push(out);
                        }
                    }
                }
            }
        }
        false
    }

    fn layout(&self, v: ValueId) -> SourceLayout {
        self.g.values[v].source
    }

    /// The source (ONNX) dims of activation `v`.
    fn onnx_dims(&self, v: ValueId) -> Vec<usize> {
        self.layout(v).source_dims(self.shape(v))
    }

    /// Input `i` of a convolution, pool or normalization: an NCHW image or an NCL signal (a rank-3
    /// tensor whose IR order is already NCL's, e.g. `[n, l]` unsqueezed to `[n, 1, l]`, becomes one).
    fn spatial(&mut self, n: &NodeProto, i: usize) -> Result<ValueId> {
        let x = self.act(n, i)?;
        let s = self.shape(x).to_vec();
        match self.layout(x) {
            SourceLayout::Nchw | SourceLayout::Ncl => Ok(x),
            SourceLayout::Same if s.len() == 3 => {
                let ncl = vec![s[0], 1, s[2], s[1]];
                ensure!(
                    same_order(SourceLayout::Ncl, &ncl),
                    "input {:?} was computed in a [n, l, c] order; reading it as a 1-D signal [n, c, l] would move data",
                    s
                );
                let name = format!("{}/ncl", self.g.values[x].name);
                let v = self.g.add_node(
                    format!("{name}/reshape"),
                    &n.op_type,
                    Op::Reshape { shape: ncl },
                    vec![x],
                    name,
                )?;
                self.g.values[v].source = SourceLayout::Ncl;
                Ok(v)
            }
            _ => bail!(
                "input {:?} is not an NCHW image or an NCL signal (2-D or 1-D operators only)",
                self.onnx_dims(x)
            ),
        }
    }

    /// Adds a node, records its output under the ONNX name with `layout`.
    fn emit(
        &mut self,
        n: &NodeProto,
        label: &str,
        op: Op,
        inputs: Vec<ValueId>,
        layout: SourceLayout,
    ) -> Result<ValueId> {
        let out_name = n.output.first().context("the node has no output")?;
        let v = self.g.add_node(label, &n.op_type, op, inputs, out_name)?;
        self.g.values[v].source = layout;
        self.vals.insert(out_name.clone(), v);
        Ok(v)
    }

    fn node(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        if let Some(op) = unsupported(n) {
            bail!(
                "unsupported operator `{op}` (supported: {})",
                SUPPORTED.join(", ")
            );
        }
        if n.op_type == "Constant" {
            return self.constant(n);
        }
        if n.op_type == "Shape" {
            return self.shape_of(n);
        }
        if self.fold_const_node(n)? {
            return Ok(());
        }
        if MOVES.contains(&n.op_type.as_str()) {
            return self.data_move(n, label);
        }
        if NORMALIZATIONS.contains(&n.op_type.as_str()) {
            return self.normalization(n, label);
        }
        self.place_inputs(n)?;
        match n.op_type.as_str() {
            "Conv" => self.conv(n, label),
            "ConvTranspose" => self.conv_transpose(n, label),
            "DepthToSpace" => self.depth_to_space(n, label),
            "Gemm" => self.gemm(n, label),
            "MatMul" => self.matmul(n, label),
            "Add" => self.binary(n, label, Op::Add { clamp: Clamp::NONE }),
            "Sum" => self.sum(n, label),
            "Max" | "Min" => self.extremum(n, label),
            "Mul" => self.binary(n, label, Op::Mul { clamp: Clamp::NONE }),
            "Sub" => self.subtract(n, label),
            "Div" => self.by_constant(n, label),
            "Relu" => self.unary(n, label, Op::Relu { clamp: Clamp::RELU }),
            "LeakyRelu" => {
                let alpha = attr_f(n, "alpha", 0.01);
                ensure!(
                    alpha.is_finite() && alpha >= 0.0,
                    "LeakyRelu alpha {alpha} is not supported (it must be at least 0)"
                );
                self.unary(n, label, Op::LeakyRelu { alpha })
            }
            "PRelu" => self.prelu(n, label),
            "Pow" => self.pow(n, label),
            "Sigmoid" => self.unary(n, label, Op::Logistic),
            "Elu" | "Celu" | "Selu" | "Softplus" | "Softsign" | "Exp" | "Erf" | "Gelu" | "Mish"
            | "Abs" | "Neg" | "Sign" | "Sqrt" | "Sin" | "Cos" | "Shrink" | "ThresholdedRelu" => {
                let f = unary_fn(n)?;
                self.unary(n, label, Op::Lookup { f })
            }
            "Tanh" => self.unary(n, label, Op::Tanh),
            "Dropout" => self.dropout(n, label),
            "Clip" => self.clip(n, label),
            "MaxPool" | "AveragePool" => self.pool(n, label),
            "GlobalAveragePool" => self.global_average_pool(n, label),
            "GlobalMaxPool" => self.global_max_pool(n, label),
            "HardSigmoid" => self.hard_sigmoid(n, label),
            "HardSwish" => self.unary(n, label, Op::Lookup { f: UnaryFn::HardSwish }),
            "ReduceMean" | "ReduceSum" | "ReduceMax" => self.reduce(n, label),
            "Resize" => self.resize(n, label),
            "Concat" => self.concat(n, label),
            "Pad" => self.pad(n, label),
            "BatchNormalization" => self.batchnorm(n, label),
            "Softmax" | "LogSoftmax" => self.softmax(n, label),
            "Slice" => self.slice(n, label),
            "Split" => self.split(n, label),
            "Cast" if attr_i(n, "to", 0) == i64::from(proto::data_type::FLOAT) => {
                self.unary(n, label, Op::Identity)
            }
            "Gather" if self.consts.contains_key(self.input(n, 1).unwrap_or_default()) => {
                self.gather(n, label)
            }
            "Cast" | "Gather" => bail!(
                "{} of a value computed at run time is not supported (only of constants and shapes, which fold at import)",
                n.op_type
            ),
            other => bail!("unsupported operator `{other}`"),
        }
    }

    /// An operator that only moves elements. On an activation the IR places, the IR's reshape or
    /// layout glue computes it where it can. Otherwise (Tile, Expand, a result of rank above 4, an
    /// order the glue cannot keep) its elements are followed, and the result is placed where it is
    /// read ([`Self::place`]).
    fn data_move(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let name = self.input(n, 0).context("input 0 is missing")?;
        let out = n.output.first().context("the node has no output")?.clone();
        if let Some(m) = self.moved.get(name) {
            let next = self.follow(n, label, m.clone())?;
            self.moved.insert(out, next);
            return Ok(());
        }
        let x = self.act(n, 0)?;
        let followed = Moved::start(x, &self.onnx_dims(x)).and_then(|m| self.follow(n, label, m));
        let direct = |im: &mut Self| match n.op_type.as_str() {
            "Identity" => im.unary(n, label, Op::Identity),
            "Flatten" => im.flatten(n, label),
            "Reshape" => im.reshape(n, label),
            "Squeeze" => im.squeeze(n, label),
            "Unsqueeze" => im.unsqueeze(n, label),
            "Transpose" => im.transpose(n, label),
            other => bail!("unsupported operator `{other}`"),
        };
        match followed {
            Err(_) if !matches!(n.op_type.as_str(), "Tile" | "Expand") => direct(self),
            Err(e) => Err(e),
            Ok(m) if m.dims.len() > 4 || matches!(n.op_type.as_str(), "Tile" | "Expand") => {
                self.moved.insert(out, m);
                Ok(())
            }
            Ok(mut m) => {
                if let Err(e) = direct(self) {
                    m.why = Some(format!("{e:#}"));
                    self.moved.insert(out, m);
                }
                Ok(())
            }
        }
    }

    /// `m` moved by node `n` (one of [`MOVES`]).
    fn follow(&self, n: &NodeProto, label: &str, m: Moved) -> Result<Moved> {
        let rank_in = m.dims.len();
        let mut m = match n.op_type.as_str() {
            "Identity" => m,
            "Reshape" => {
                let shape = self.konst(n, 1)?.i64()?;
                let d = resolve_reshape(&m.dims, &shape, attr_i(n, "allowzero", 0) != 0)?;
                m.reshape(d)?
            }
            "Flatten" => {
                let axis = flatten_axis(attr_i(n, "axis", 1), m.dims.len())?;
                let d = vec![
                    m.dims[..axis].iter().product(),
                    m.dims[axis..].iter().product(),
                ];
                m.reshape(d)?
            }
            "Squeeze" => {
                let d = squeeze_dims(&m.dims, &self.squeeze_axes(n)?)?;
                m.reshape(d)?
            }
            "Unsqueeze" => {
                let d = unsqueeze_dims(&m.dims, &self.squeeze_axes(n)?)?;
                m.reshape(d)?
            }
            "Transpose" => {
                let perm = transpose_perm(n, m.dims.len())?;
                m.transpose(&perm)?
            }
            "Tile" => {
                let repeats = self.konst(n, 1)?.i64()?;
                m.tile(&repeats)?
            }
            "Expand" => {
                let shape = self.konst(n, 1)?.i64()?;
                m.expand(&shape)?
            }
            other => bail!("`{other}` does not only move elements"),
        };
        // Samples are run one at a time: the batch must stay the first axis, alone.
        let batch = self.shape(m.src)[0];
        let keeps_batch = match n.op_type.as_str() {
            "Unsqueeze" => {
                let rank = m.dims.len() as i64;
                !self.squeeze_axes(n)?.iter().any(|&a| a == 0 || a == -rank)
            }
            "Squeeze" => !self
                .squeeze_axes(n)?
                .iter()
                .any(|&a| a == 0 || a == -(rank_in as i64)),
            "Flatten" => flatten_axis(attr_i(n, "axis", 1), rank_in)? != 0,
            "Transpose" => transpose_perm(n, rank_in)?.first() == Some(&0),
            "Tile" => self.konst(n, 1)?.i64()?.first() == Some(&1),
            "Expand" => m.dims.len() == rank_in,
            _ => true,
        };
        ensure!(
            keeps_batch && m.dims.len() >= 2 && m.dims[0] == batch,
            "{} to {:?} moves the batch dimension (samples are run one at a time: it must stay first)",
            n.op_type,
            m.dims
        );
        m.path.push(format!("{} `{label}`", n.op_type));
        let input = self.input(n, 0).unwrap_or_default().to_string();
        m.last = Some(Box::new((n.clone(), label.to_string(), input)));
        Ok(m)
    }

    /// Places every followed input of node `n` (see [`Self::place`]).
    fn place_inputs(&mut self, n: &NodeProto) -> Result<()> {
        for name in &n.input {
            if self.moved.contains_key(name) {
                self.place(name)?;
            }
        }
        Ok(())
    }

    /// The followed value `name` placed from its source: a reshape that keeps the IR's element
    /// order, nearest upsampling by whole factors or depth to space (one node), else a transpose
    /// of at most three axes besides the batch (with reshapes around it), else the chain before
    /// its last node placed first and that node then; refused when none of these computes it.
    fn place(&mut self, name: &str) -> Result<ValueId> {
        let m = self
            .moved
            .remove(name)
            .with_context(|| format!("`{name}` is not a moved value"))?;
        let (src_layout, src_ir) = (self.layout(m.src), self.shape(m.src).to_vec());
        let src_at = moves::onnx_to_ir(src_layout, &src_ir);
        let d = &m.dims;
        let mut layouts = vec![(SourceLayout::Same, d.clone())];
        if d.len() == 4 {
            layouts.insert(0, (SourceLayout::Nchw, to_nhwc(d)));
        }
        if d.len() == 3 && src_layout == SourceLayout::Ncl {
            // A signal stays one (a 1-D convolution may read it).
            layouts.insert(0, (SourceLayout::Ncl, vec![d[0], 1, d[2], d[1]]));
        }
        // For each layout of the result, for each of its elements in the IR's order, the source's
        // element in its IR order.
        let maps: Vec<(SourceLayout, Vec<usize>, Vec<u32>)> = layouts
            .into_iter()
            .map(|(layout, ir)| {
                let mut map = vec![0u32; m.from.len()];
                for (&to, &from) in moves::onnx_to_ir(layout, &ir).iter().zip(m.from.iter()) {
                    map[to as usize] = src_at[from as usize];
                }
                (layout, ir, map)
            })
            .collect();
        // The cheapest placement: the same order, then one operator, then a transpose.
        let keeps_order = |map: &[u32]| {
            map.len() == src_at.len() && map.iter().enumerate().all(|(i, &v)| v as usize == i)
        };
        let same = maps
            .iter()
            .find(|(_, _, map)| keeps_order(map))
            .map(|(l, ir, _)| {
                let op = if *ir == src_ir {
                    Op::Identity
                } else {
                    Op::Reshape { shape: ir.clone() }
                };
                (*l, vec![op])
            });
        let one_op = || {
            maps.iter().find_map(|(l, ir, map)| {
                let both_nchw = *l == SourceLayout::Nchw && src_layout == SourceLayout::Nchw;
                let op = moves::recognize(&src_ir, ir, map).filter(|_| both_nchw)?;
                Some((*l, vec![op]))
            })
        };
        let transposed = || {
            maps.iter().find_map(|(l, ir, map)| {
                let (src, perm) = moves::transpose_of(map)?;
                let fits = src.len() <= 3 && src.iter().all(|&d| d <= usize::from(u16::MAX));
                if src_ir[0] != 1 || !fits {
                    return None;
                }
                // The batch in front, then the source's axes reordered.
                let dims: Vec<usize> = std::iter::once(1).chain(src).collect();
                let perm: Vec<usize> = std::iter::once(0)
                    .chain(perm.iter().map(|p| p + 1))
                    .collect();
                let out: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
                let mut ops = Vec::new();
                if dims != src_ir {
                    ops.push(Op::Reshape { shape: dims });
                }
                ops.push(Op::Transpose { perm });
                if out != *ir {
                    ops.push(Op::Reshape { shape: ir.clone() });
                }
                Some((*l, ops))
            })
        };
        if let Some((layout, ops)) = same.or_else(one_op).or_else(transposed) {
            let label = m.last.as_deref().map_or(name, |(_, l, _)| l).to_string();
            let (count, mut v) = (ops.len(), m.src);
            for (i, op) in ops.into_iter().enumerate() {
                let (node, out, l) = if i + 1 == count {
                    (label.clone(), name.to_string(), layout)
                } else {
                    (
                        format!("{label}/{i}"),
                        format!("{name}/{i}"),
                        SourceLayout::Same,
                    )
                };
                // Named as the ONNX operator each computes (what `--ignore` matches).
                let source_op = match op {
                    Op::ResizeNearest { .. } => "Resize",
                    Op::DepthToSpace { .. } => "DepthToSpace",
                    Op::Transpose { .. } => "Transpose",
                    Op::Identity => "Identity",
                    _ => "Reshape",
                };
                v = self.g.add_node(node, source_op, op, vec![v], out)?;
                self.g.values[v].source = l;
            }
            self.vals.insert(name.to_string(), v);
            return Ok(v);
        }
        // The chain before its last node placed first (unless already placed), then that node
        // from it; chains of more than 64 nodes are not split.
        if let Some((node, label, input)) = m.last.as_deref() {
            let prefix = self.moved.contains_key(input) || self.vals.contains_key(input);
            if (2..=64).contains(&m.path.len()) && prefix {
                let split = (|| {
                    if !self.vals.contains_key(input) {
                        self.place(input)?;
                    }
                    self.data_move(node, label)?;
                    match self.vals.get(name) {
                        Some(&v) => Ok(v),
                        None => self.place(name),
                    }
                })();
                if split.is_ok() {
                    return split;
                }
            }
        }
        let src_dims = src_layout.source_dims(&src_ir);
        let why = m
            .why
            .map(|w| format!(" (the IR's layout glue refused the first step: {w})"))
            .unwrap_or_default();
        bail!(
            "`{name}` is {src_dims:?} moved to {:?} by {}: the elements move in a way no supported operator computes (a reshape that keeps the element order, nearest upsampling by whole factors, depth to space, a transpose of at most three axes besides the batch){why}",
            m.dims,
            m.path.join(", ")
        )
    }

    /// `Shape`: the dims of its input (an activation, batch fixed at 1, or a constant), from `start`
    /// to `end` (opset 15; negative counts from the end, clamped to the rank), as an int64 constant.
    /// Reshape targets computed from it (`x.view(x.size(0), -1)`: Shape, Gather, Unsqueeze, Concat)
    /// then fold to constants.
    fn shape_of(&mut self, n: &NodeProto) -> Result<()> {
        let name = self.input(n, 0).context("input 0 is missing")?;
        let dims = match (self.vals.get(name), self.consts.get(name)) {
            (Some(&v), _) => self.onnx_dims(v),
            (None, Some(c)) => c.dims.clone(),
            (None, None) => match self.moved.get(name) {
                Some(m) => m.dims.clone(),
                None => bail!("input 0 (`{name}`) is not defined before this node"),
            },
        };
        let rank = dims.len() as i64;
        let clamp = |a: i64| (if a < 0 { a + rank } else { a }).clamp(0, rank) as usize;
        let (start, end) = (clamp(attr_i(n, "start", 0)), clamp(attr_i(n, "end", rank)));
        let values: Vec<i64> = dims[start..end.max(start)]
            .iter()
            .map(|&d| d as i64)
            .collect();
        self.consts.insert(
            n.output.first().context("no output")?.clone(),
            Const {
                dims: vec![values.len()],
                data: tensor::Data::I64(values),
            },
        );
        Ok(())
    }

    /// A `Constant` node: its value becomes a constant, no IR node.
    fn constant(&mut self, n: &NodeProto) -> Result<()> {
        let c = Const::from_constant_node(n)?;
        self.consts
            .insert(n.output.first().context("no output")?.clone(), c);
        Ok(())
    }

    /// `Pow` by a constant exponent, the same in every element: an integer power from 2 to 8 (a
    /// table), a square root (0.5) or the identity (1).
    fn pow(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let c = self.konst(n, 1)?;
        let rank = self.onnx_dims(x).len();
        ensure!(
            c.dims.iter().product::<usize>() == 1 && c.dims.len() <= rank,
            "Pow by an exponent of shape {:?} (one exponent, of rank at most the input's {rank}, is supported)",
            c.dims
        );
        let exponent = c.f32()?[0];
        let f = match exponent {
            1.0 => return self.unary(n, label, Op::Identity),
            0.5 => UnaryFn::Sqrt,
            e if (2.0..=8.0).contains(&e) && e.fract() == 0.0 => {
                UnaryFn::Pow { exponent: e as i32 }
            }
            other => {
                bail!("Pow by {other} (integer exponents from 2 to 8, 0.5 and 1 are supported)")
            }
        };
        self.unary(n, label, Op::Lookup { f })
    }

    /// `Dropout` in inference mode: the identity (a mask output that nothing reads is left out).
    fn dropout(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        if let Some(t) = self.opt_const(n, 2)? {
            ensure!(
                t.f32()?.iter().all(|&v| v == 0.0),
                "Dropout in training mode"
            );
        }
        ensure!(
            n.output.get(1).is_none_or(|s| !self.read.contains(s)),
            "Dropout's mask output is read by the graph (not supported)"
        );
        self.unary(n, label, Op::Identity)
    }

    /// `GlobalAveragePool`: the spatial mean of an NCHW tensor, dimensions kept.
    fn global_average_pool(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.spatial(n, 0)?;
        let layout = self.layout(x);
        self.emit(n, label, Op::Mean { keep_dims: true }, vec![x], layout)
            .map(drop)
    }

    /// `GlobalMaxPool`: a max pool whose window is the whole image.
    fn global_max_pool(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.spatial(n, 0)?;
        let layout = self.layout(x);
        let s = self.shape(x);
        let window = Window2d {
            kernel: [s[1], s[2]],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
        };
        let op = Op::MaxPool2d {
            window,
            clamp: Clamp::NONE,
        };
        self.emit(n, label, op, vec![x], layout).map(drop)
    }

    /// `HardSigmoid` (`clamp(alpha * x + beta, 0, 1)`) as a Mul and an Add by scalar constants, the
    /// Add clamped (they fold into the producer or become a 1x1 depthwise convolution).
    fn hard_sigmoid(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let (alpha, beta) = (attr_f(n, "alpha", 0.2), attr_f(n, "beta", 0.5));
        ensure!(
            alpha.is_finite() && beta.is_finite(),
            "HardSigmoid with a non-finite alpha or beta"
        );
        let x = self.act(n, 0)?;
        let l = self.layout(x);
        let out = n.output.first().context("the node has no output")?.clone();
        let scalar = |v: f32| Const {
            dims: vec![1],
            data: tensor::Data::F32(vec![v]),
        };
        let k_alpha = self.const_like(&scalar(alpha), x, &format!("{out}/alpha"))?;
        let k_beta = self.const_like(&scalar(beta), x, &format!("{out}/beta"))?;
        let no_clamp = Op::Mul { clamp: Clamp::NONE };
        let scaled = self.g.add_node(
            format!("{label}/scale"),
            &n.op_type,
            no_clamp,
            vec![x, k_alpha],
            format!("{out}/scaled"),
        )?;
        self.g.values[scaled].source = l;
        let clamp = Clamp::new(0.0, 1.0);
        self.emit(n, label, Op::Add { clamp }, vec![scaled, k_beta], l)
            .map(drop)
    }

    /// `Resize` to a size given by constant scales or sizes, over H and W only.
    ///
    /// Nearest mode is the runtime's nearest-neighbour resize, which reads input row
    /// `floor(y * in / out)`: the coordinate mode and rounding are checked to pick those same rows
    /// (they do for whole upsampling factors). Linear mode is the runtime's bilinear resize, whose
    /// coordinates are ONNX's `half_pixel` (also `pytorch_half_pixel` to sizes above 1),
    /// `align_corners` and `asymmetric` at the scale `out / in`. Anything else is refused by name.
    fn resize(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        ensure!(
            self.layout(x) == SourceLayout::Nchw,
            "input is not a 4-D NCHW tensor"
        );
        let mode = attr_s(n, "mode").unwrap_or_else(|| "nearest".into());
        ensure!(
            mode == "nearest" || mode == "linear",
            "{} mode `{mode}` is not supported (nearest and linear)",
            n.op_type
        );
        let d = self.onnx_dims(x);
        // Inputs: X, roi, scales, sizes.
        let (scales, sizes) = (self.opt_const_any(n, 2)?, self.opt_const_any(n, 3)?);
        for a in ["axes", "keep_aspect_ratio_policy"] {
            let stretch =
                a == "keep_aspect_ratio_policy" && attr_s(n, a).is_none_or(|p| p == "stretch");
            ensure!(
                attr(n, a).is_none() || stretch,
                "{} with `{a}` is not supported",
                n.op_type
            );
        }
        // Output sizes, and the scales the coordinate transform divides by.
        let (out, factors): (Vec<usize>, Vec<f64>) = match (sizes, scales) {
            (Some(s), _) => {
                let out: Vec<usize> = s.i64()?.iter().map(|&v| v.max(0) as usize).collect();
                let f = out
                    .iter()
                    .zip(&d)
                    .map(|(&o, &i)| o as f64 / i.max(1) as f64)
                    .collect();
                (out, f)
            }
            (None, Some(s)) if !s.dims.contains(&0) => {
                let f = s.f32()?;
                ensure!(
                    f.len() == 4,
                    "{} scales: {} values for a rank-4 input",
                    n.op_type,
                    f.len()
                );
                let out = d
                    .iter()
                    .zip(&f)
                    .map(|(&i, &s)| (i as f64 * s as f64).floor().max(0.0) as usize)
                    .collect();
                (out, f.iter().map(|&s| s as f64).collect())
            }
            _ => bail!("{}: constant scales or sizes are required", n.op_type),
        };
        ensure!(
            out.len() == 4 && out[0] == d[0] && out[1] == d[1],
            "{} to {out:?} from {d:?}: only height and width may change",
            n.op_type
        );
        let side = 1..=usize::from(u16::MAX);
        ensure!(
            side.contains(&out[2]) && side.contains(&out[3]),
            "{} to {out:?}: height and width must be 1 to 65535",
            n.op_type
        );
        let transform =
            attr_s(n, "coordinate_transformation_mode").unwrap_or_else(|| "half_pixel".into());
        if mode == "linear" {
            return self.resize_linear(n, label, x, &d, &out, &factors, &transform);
        }
        let rounding = attr_s(n, "nearest_mode").unwrap_or_else(|| "round_prefer_floor".into());
        for axis in [2, 3] {
            let (i, o) = (d[axis], out[axis]);
            for y in 0..o {
                let source = onnx_nearest(y, i, o, factors[axis], &transform, &rounding)
                    .with_context(|| {
                        format!(
                            "{} coordinate_transformation_mode `{transform}`, nearest_mode `{rounding}`",
                            n.op_type
                        )
                    })?;
                ensure!(
                    source == y * i / o,
                    "{} from {i} to {o} with coordinate_transformation_mode `{transform}` and nearest_mode `{rounding}` reads row {source} for output {y}; the runtime reads floor({y} * {i} / {o}) (whole upsampling factors are supported)",
                    n.op_type
                );
            }
        }
        let op = Op::ResizeNearest {
            size: [out[2], out[3]],
        };
        self.emit(n, label, op, vec![x], SourceLayout::Nchw)
            .map(drop)
    }

    /// `Resize` in linear mode from NCHW `d` to `out` (see [`Self::resize`]).
    #[allow(clippy::too_many_arguments)]
    fn resize_linear(
        &mut self,
        n: &NodeProto,
        label: &str,
        x: ValueId,
        d: &[usize],
        out: &[usize],
        factors: &[f64],
        transform: &str,
    ) -> Result<()> {
        ensure!(
            attr_i(n, "antialias", 0) == 0,
            "{} with antialias is not supported",
            n.op_type
        );
        for axis in [2, 3] {
            let exact = out[axis] as f64 / d[axis] as f64;
            ensure!(
                (factors[axis] - exact).abs() <= 1e-6 * exact,
                "{} by scale {} from {} to {}: the runtime scales by out / in",
                n.op_type,
                factors[axis],
                d[axis],
                out[axis]
            );
        }
        let half = |half_pixel_centers| BilinearMode {
            align_corners: false,
            half_pixel_centers,
        };
        let mode = match transform {
            "half_pixel" => half(true),
            "pytorch_half_pixel" if out[2] > 1 && out[3] > 1 => half(true),
            "asymmetric" => half(false),
            "align_corners" => BilinearMode {
                align_corners: true,
                half_pixel_centers: false,
            },
            other => bail!(
                "{} linear with coordinate_transformation_mode `{other}` is not supported (half_pixel, pytorch_half_pixel to sizes above 1, align_corners, asymmetric)",
                n.op_type
            ),
        };
        let op = Op::ResizeBilinear {
            size: [out[2], out[3]],
            mode,
        };
        self.emit(n, label, op, vec![x], SourceLayout::Nchw)
            .map(drop)
    }

    /// `Flatten` keeping the batch (axis 1).
    fn flatten(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let d = self.onnx_dims(x);
        let axis = flatten_axis(attr_i(n, "axis", 1), d.len())?;
        ensure!(
            axis == 1,
            "Flatten with axis {axis} (only axis 1, keeping the batch, is supported)"
        );
        self.reshape_to(n, label, x, vec![d[0], d[1..].iter().product()])
    }

    /// `Reshape` to a constant shape.
    fn reshape(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let shape = self.konst(n, 1)?.i64()?;
        let d = self.onnx_dims(x);
        let allow_zero = attr_i(n, "allowzero", 0) != 0;
        let out = resolve_reshape(&d, &shape, allow_zero)?;
        self.reshape_to(n, label, x, out)
    }

    /// The axes of `Squeeze` and `Unsqueeze`: an attribute (before opset 13) or a constant input.
    fn squeeze_axes(&self, n: &NodeProto) -> Result<Vec<i64>> {
        Ok(match attr_ints(n, "axes") {
            Some(a) => a,
            None => match self.opt_const(n, 1)? {
                Some(c) => c.i64()?,
                None => Vec::new(),
            },
        })
    }

    /// `Squeeze`: the listed axes removed (all dimensions of size 1 when none are listed).
    fn squeeze(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let axes = self.squeeze_axes(n)?;
        let out = squeeze_dims(&self.onnx_dims(x), &axes)?;
        self.reshape_to(n, label, x, out)
    }

    /// `Unsqueeze`: dimensions of size 1 inserted at the listed axes.
    fn unsqueeze(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let axes = self.squeeze_axes(n)?;
        let d = self.onnx_dims(x);
        let rank = (d.len() + axes.len()) as i64;
        ensure!(
            axes.iter().all(|&a| a != 0 && a != -rank),
            "Unsqueeze at axis 0 puts a dimension before the batch (only axes after it are supported)"
        );
        let out = unsqueeze_dims(&d, &axes)?;
        self.reshape_to(n, label, x, out)
    }

    /// Evaluates shape glue on constants at import (Identity, Reshape, Flatten, Squeeze, Unsqueeze, Add,
    /// Mul, Concat, Gather, Cast, Slice, Transpose of constants). Returns whether the node was folded.
    fn fold_const_node(&mut self, n: &NodeProto) -> Result<bool> {
        let names: Vec<&str> = n
            .input
            .iter()
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() || !names.iter().all(|s| self.consts.contains_key(*s)) {
            return Ok(false);
        }
        let c = |i: usize| -> Result<&Const> {
            names
                .get(i)
                .map(|s| &self.consts[*s])
                .with_context(|| format!("input {i} is missing"))
        };
        let out = match n.op_type.as_str() {
            "Identity" => c(0)?.clone(),
            "Reshape" => {
                let d =
                    resolve_reshape(&c(0)?.dims, &c(1)?.i64()?, attr_i(n, "allowzero", 0) != 0)?;
                c(0)?.reshaped(d)
            }
            "Flatten" => {
                let d = &c(0)?.dims;
                let axis = flatten_axis(attr_i(n, "axis", 1), d.len())?;
                c(0)?.reshaped(vec![d[..axis].iter().product(), d[axis..].iter().product()])
            }
            "Unsqueeze" => {
                let axes = attr_ints(n, "axes").map_or_else(|| c(1)?.i64(), Ok)?;
                c(0)?.reshaped(unsqueeze_dims(&c(0)?.dims, &axes)?)
            }
            "Squeeze" => {
                let axes = match attr_ints(n, "axes") {
                    Some(a) => a,
                    None if names.len() > 1 => c(1)?.i64()?,
                    None => Vec::new(),
                };
                c(0)?.reshaped(squeeze_dims(&c(0)?.dims, &axes)?)
            }
            "Add" | "Mul" | "Sub" | "Div"
                if matches!(
                    (&c(0)?.data, &c(1)?.data),
                    (tensor::Data::I64(_), tensor::Data::I64(_))
                ) =>
            {
                // Shape arithmetic stays integer; Div truncates, as onnxruntime's does.
                let f: fn(i64, i64) -> Option<i64> = match n.op_type.as_str() {
                    "Add" => i64::checked_add,
                    "Mul" => i64::checked_mul,
                    "Sub" => i64::checked_sub,
                    _ => i64::checked_div,
                };
                tensor::broadcast_i64(c(0)?, c(1)?, f)?
            }
            "Add" | "Mul" | "Sub" | "Div" => {
                let f: fn(f32, f32) -> f32 = match n.op_type.as_str() {
                    "Add" => |a, b| a + b,
                    "Mul" => |a, b| a * b,
                    "Sub" => |a, b| a - b,
                    _ => |a, b| a / b,
                };
                tensor::broadcast_f32(c(0)?, c(1)?, f)?
            }
            "Concat" => {
                let parts: Vec<&Const> = (0..names.len()).map(c).collect::<Result<_>>()?;
                let axis = norm_axis(attr_i(n, "axis", 0), parts[0].dims.len())?;
                tensor::concat(&parts, axis)?
            }
            "Gather" => {
                let axis = norm_axis(attr_i(n, "axis", 0), c(0)?.dims.len())?;
                tensor::gather(c(0)?, c(1)?, axis)?
            }
            "Cast" => tensor::cast(c(0)?, attr_i(n, "to", 0))?,
            "Transpose" => {
                // A weight transposed before a MatMul (older PyTorch exports of Linear).
                let perm = transpose_perm(n, c(0)?.dims.len())?;
                tensor::transpose(c(0)?, &perm)?
            }
            "Slice" => {
                // A piece of a shape (`x.shape[2:]`), or pads reversed (a step of -1).
                let list = |i: usize| names.get(i).map(|s| self.consts[*s].i64()).transpose();
                let starts = list(1)?.context("Slice without starts")?;
                let ends = list(2)?.context("Slice without ends")?;
                let axes = list(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
                let steps = list(4)?.unwrap_or_else(|| vec![1; starts.len()]);
                tensor::slice(c(0)?, &starts, &ends, &axes, &steps)?
            }
            "ConstantOfShape" => constant_of_shape(n, c(0)?)?,
            "Max" | "Min" if names.len() == 2 => {
                let max = n.op_type == "Max";
                match (&c(0)?.data, &c(1)?.data) {
                    (tensor::Data::I64(_), tensor::Data::I64(_)) => {
                        let f: fn(i64, i64) -> Option<i64> = if max {
                            |a, b| Some(a.max(b))
                        } else {
                            |a, b| Some(a.min(b))
                        };
                        tensor::broadcast_i64(c(0)?, c(1)?, f)?
                    }
                    _ => {
                        let f: fn(f32, f32) -> f32 = if max { f32::max } else { f32::min };
                        tensor::broadcast_f32(c(0)?, c(1)?, f)?
                    }
                }
            }
            "Sum" => {
                let mut sum = c(0)?.clone();
                for i in 1..names.len() {
                    sum = tensor::broadcast_f32(&sum, c(i)?, |a, b| a + b)?;
                }
                sum
            }
            _ => return Ok(false),
        };
        out.check()?;
        self.consts
            .insert(n.output.first().context("no output")?.clone(), out);
        Ok(true)
    }

    /// `Sum` of one or more operands: the identity, one `Add`, or a chain of them (the partial sums
    /// named after the output).
    fn sum(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let operands: Vec<String> = n.input.iter().filter(|s| !s.is_empty()).cloned().collect();
        let add = Op::Add { clamp: Clamp::NONE };
        match operands.len() {
            0 => bail!("Sum without operands"),
            1 => return self.unary(n, label, Op::Identity),
            2 => return self.binary(n, label, add),
            _ => {}
        }
        self.pairwise(n, label, &operands, "sum", |im, step, l| {
            let step = NodeProto {
                op_type: "Add".into(),
                ..step.clone()
            };
            im.binary(&step, l, add.clone())
        })
    }

    /// A variadic operator of `operands` (more than two) as a chain of two-operand steps, each
    /// `step` on a copy of `n` with two inputs and a partial output `{out}/{what}{k}`, the last the
    /// node's output.
    fn pairwise(
        &mut self,
        n: &NodeProto,
        label: &str,
        operands: &[String],
        what: &str,
        step: impl Fn(&mut Self, &NodeProto, &str) -> Result<()>,
    ) -> Result<()> {
        let out = n.output.first().context("the node has no output")?;
        let mut acc = operands[0].clone();
        for (k, operand) in operands.iter().enumerate().skip(1) {
            let partial = if k + 1 == operands.len() {
                out.clone()
            } else {
                format!("{out}/{what}{k}")
            };
            let s = NodeProto {
                input: vec![acc, operand.clone()],
                output: vec![partial.clone()],
                ..n.clone()
            };
            step(self, &s, &format!("{label}/{k}"))?;
            acc = partial;
        }
        Ok(())
    }

    /// Max and Min of an activation and a constant of one value: a clamp. Of two activations: the
    /// IR's Maximum or Minimum; of an activation and a constant tensor, `a + relu(b - a)` and
    /// `a - relu(a - b)`; of more operands, pairwise.
    fn extremum(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let mut operands: Vec<String> = n.input.iter().filter(|s| !s.is_empty()).cloned().collect();
        // Both are commutative: activations first, so that no step is of constants alone.
        operands.sort_by_key(|o| !self.vals.contains_key(o));
        let max = n.op_type == "Max";
        match operands.len() {
            0 => bail!("{} without operands", n.op_type),
            1 => return self.unary(n, label, Op::Identity),
            2 => {}
            _ => {
                let what = n.op_type.to_lowercase();
                return self.pairwise(n, label, &operands, &what, |im, step, l| {
                    im.extremum(step, l)
                });
            }
        }
        // An activation and one constant value: the activation clamped.
        let (a, b) = (&operands[0], &operands[1]);
        // One value, in a constant that broadcasts into the activation's shape.
        let scalar = |name: &str, x: &str| -> Option<f32> {
            let k = self.consts.get(name)?;
            let xd = self.onnx_dims(*self.vals.get(x)?);
            let fits = k.dims.len() <= xd.len()
                && k.dims
                    .iter()
                    .rev()
                    .zip(xd.iter().rev())
                    .all(|(&a, &b)| a == 1 || a == b);
            let v = k.f32().ok()?;
            let first = *v.first()?;
            (fits && v.iter().all(|&e| e == first)).then_some(first)
        };
        let clamped = match self.vals.contains_key(a) {
            true => scalar(b, a).map(|c| (a.clone(), c)),
            false => None,
        };
        if let Some((x, c)) = clamped {
            ensure!(c.is_finite(), "{} with {c}", n.op_type);
            let clamp = if max {
                Clamp {
                    min: c,
                    max: f32::INFINITY,
                }
            } else {
                Clamp {
                    min: f32::NEG_INFINITY,
                    max: c,
                }
            };
            let node = NodeProto {
                input: vec![x],
                ..n.clone()
            };
            return self.unary(&node, label, Op::Relu { clamp });
        }
        ensure!(
            self.vals.contains_key(a) || self.vals.contains_key(b),
            "{} of constants only",
            n.op_type
        );
        // Two activations: the IR's operator.
        if self.vals.contains_key(b) {
            let op = if max { Op::Maximum } else { Op::Minimum };
            let node = NodeProto {
                input: vec![a.clone(), b.clone()],
                ..n.clone()
            };
            return self.binary(&node, label, op);
        }
        // An activation and a constant tensor (the runtime's operators take no constant operand):
        // `max(a, b) = a + relu(b - a)`, `min(a, b) = a - relu(a - b)`, whose constant terms fold
        // into per-channel affine layers.
        let out = n.output.first().context("the node has no output")?.clone();
        let (diff, excess) = (format!("{out}/difference"), format!("{out}/excess"));
        let node = |op: &str, inputs: Vec<String>, output: &str| NodeProto {
            input: inputs,
            output: vec![output.to_string()],
            op_type: op.into(),
            ..n.clone()
        };
        let d = if max {
            node("Sub", vec![b.clone(), a.clone()], &diff)
        } else {
            node("Sub", vec![a.clone(), b.clone()], &diff)
        };
        self.subtract(&d, &format!("{label}/difference"))?;
        let r = node("Relu", vec![diff], &excess);
        self.unary(
            &r,
            &format!("{label}/excess"),
            Op::Relu { clamp: Clamp::RELU },
        )?;
        if max {
            let y = node("Add", vec![a.clone(), excess], &out);
            self.binary(&y, label, Op::Add { clamp: Clamp::NONE })
        } else {
            self.subtract(&node("Sub", vec![a.clone(), excess], &out), label)
        }
    }

    fn unary(&mut self, n: &NodeProto, label: &str, op: Op) -> Result<()> {
        let x = self.act(n, 0)?;
        let l = self.layout(x);
        self.emit(n, label, op, vec![x], l).map(drop)
    }

    /// `PRelu(x, slope)` with a constant slope of one value or one per channel: shaped `[C, 1, 1]`
    /// (or `[1, C, 1, 1]`) for an NCHW input, `[C]` when the channels are last, any shape of one
    /// element for a shared slope.
    fn prelu(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let c = self.konst(n, 1)?;
        let (given, slope) = (c.dims.clone(), c.f32()?);
        let src = self.onnx_dims(x);
        let channels = self.shape(x).last().copied().unwrap_or(1);
        let axis = match self.layout(x) {
            SourceLayout::Nchw | SourceLayout::Ncl => Some(1),
            SourceLayout::Same => src.len().checked_sub(1),
            SourceLayout::FlatChw { .. } => None,
        };
        let mut dims = vec![1usize; src.len().saturating_sub(given.len())];
        dims.extend(&given);
        let shared = slope.len() == 1 && dims.iter().all(|&d| d == 1);
        let per_channel = axis.is_some_and(|a| {
            let want = |i| if i == a { channels } else { 1 };
            dims.iter().enumerate().all(|(i, &d)| d == want(i))
        });
        ensure!(
            dims.len() == src.len() && (shared || per_channel),
            "PRelu slope of shape {given:?} for an input of shape {src:?}: one slope, or one per \
             channel ([C, 1, 1] for an NCHW input, [C] for channels last), is supported"
        );
        let slope = Param::new(vec![slope.len()], slope);
        self.unary(n, label, Op::PRelu { slope })
    }

    fn clip(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let scalar = |c: Option<&Const>, attr_name: &str, default: f32| -> Result<f32> {
            match c {
                Some(c) => {
                    let v = c.f32()?;
                    ensure!(
                        v.len() == 1,
                        "Clip bound with {} values (a scalar is required)",
                        v.len()
                    );
                    Ok(v[0])
                }
                None => Ok(attr_f(n, attr_name, default)),
            }
        };
        let min = scalar(self.opt_const_any(n, 1)?, "min", f32::NEG_INFINITY)?;
        let max = scalar(self.opt_const_any(n, 2)?, "max", f32::INFINITY)?;
        ensure!(min <= max, "Clip with min {min} above max {max}");
        self.unary(
            n,
            label,
            Op::Relu {
                clamp: Clamp::new(min, max),
            },
        )
    }

    /// Window attributes of Conv and pooling for an NHWC input `x` and kernel size `kernel`.
    fn window(
        &self,
        n: &NodeProto,
        x: &[usize],
        kernel: [usize; 2],
        ceil: bool,
    ) -> Result<Window2d> {
        let two = |name: &str, default: usize| -> Result<[usize; 2]> {
            match attr_ints(n, name) {
                None => Ok([default; 2]),
                Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => {
                    Ok([v[0] as usize, v[1] as usize])
                }
                Some(v) => bail!("{name} {v:?} (two positive values expected)"),
            }
        };
        let stride = two("strides", 1)?;
        let dilation = two("dilations", 1)?;
        let mut pads = match attr_ints(n, "pads") {
            None => [0; 4],
            Some(p) if p.len() == 4 && p.iter().all(|&x| x >= 0) => {
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            Some(p) => bail!("pads {p:?} (four non-negative values expected)"),
        };
        // The runtime stores windows as u16; larger values are also where the arithmetic could overflow.
        let limit = u16::MAX as usize;
        ensure!(
            kernel
                .iter()
                .chain(&stride)
                .chain(&dilation)
                .chain(&pads)
                .all(|&v| v <= limit),
            "kernel, strides, dilations or pads above {limit}"
        );
        let auto = attr_s(n, "auto_pad").unwrap_or_default();
        let size = [x[1], x[2]];
        match auto.as_str() {
            "" | "NOTSET" => {}
            "VALID" => pads = [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                for a in 0..2 {
                    let out = size[a].div_ceil(stride[a]);
                    let eff = (kernel[a] - 1) * dilation[a] + 1;
                    let total = ((out - 1) * stride[a] + eff).saturating_sub(size[a]);
                    let small = total / 2;
                    let (b, e) = if auto == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    pads[a] = b;
                    pads[a + 2] = e;
                }
            }
            other => bail!("auto_pad `{other}`"),
        }
        if ceil {
            for a in 0..2 {
                let eff = (kernel[a] - 1) * dilation[a] + 1;
                let padded = size[a] + pads[a] + pads[a + 2];
                ensure!(padded >= eff, "the window is larger than the padded input");
                let mut out = (padded - eff).div_ceil(stride[a]) + 1;
                // The last window must start inside the input or its leading padding.
                if out > 1 && (out - 1) * stride[a] >= size[a] + pads[a] {
                    out -= 1;
                }
                let need = (out - 1) * stride[a] + eff;
                if need > padded {
                    pads[a + 2] += need - padded;
                }
            }
        }
        Ok(Window2d {
            kernel,
            stride,
            dilation,
            pads,
        })
    }

    /// A convolution's bias, input 2 (zeros when absent), of one value per output channel.
    fn conv_bias(&self, n: &NodeProto, m: usize) -> Result<Vec<f32>> {
        let bias = match self.opt_const(n, 2)? {
            Some(b) => b.f32()?,
            None => vec![0.0; m],
        };
        ensure!(
            bias.len() == m,
            "bias of {} values for {m} output channels",
            bias.len()
        );
        Ok(bias)
    }

    fn conv(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.spatial(n, 0)?;
        let layout = self.layout(x);
        let signal = layout == SourceLayout::Ncl;
        let n = &if signal { lift_1d(n)? } else { n.clone() };
        let w = self.konst(n, 1)?;
        let rank = if signal { 3 } else { 4 };
        ensure!(
            w.dims.len() == rank,
            "weight of rank {} for a rank-{} input (1-D and 2-D convolutions are supported)",
            w.dims.len(),
            rank
        );
        ensure!(
            w.dims.iter().all(|&d| d > 0),
            "weight of shape {:?}",
            w.dims
        );
        let (m, cg) = (w.dims[0], w.dims[1]);
        let (kh, kw) = if signal {
            (1, w.dims[2])
        } else {
            (w.dims[2], w.dims[3])
        };
        if let Some(k) = attr_ints(n, "kernel_shape") {
            ensure!(
                k == [kh as i64, kw as i64],
                "kernel_shape {k:?} differs from the weight's"
            );
        }
        let wd = w.f32()?;
        let bias = self.conv_bias(n, m)?;
        let xs = self.shape(x).to_vec();
        let c = xs[3];
        let group = attr_i(n, "group", 1);
        let window = self.window(n, &xs, [kh, kw], false)?;
        let groups = usize::try_from(group)
            .ok()
            .filter(|&g| g >= 1 && c.is_multiple_of(g) && m.is_multiple_of(g) && cg * g == c)
            .with_context(|| {
                format!("group {group}: weight for {cg} input channels of each group, input has {c}, output {m}")
            })?;
        let op = if groups == 1 || groups < c {
            // A grouped convolution is one convolution whose filter is zero outside its groups:
            // output channel `o` reads the `cg` input channels of group `o / (m / groups)`.
            let per_group = m / groups;
            let mut f = vec![0.0f32; m * kh * kw * c];
            for o in 0..m {
                let first = (o / per_group) * cg;
                for i in 0..cg {
                    for y in 0..kh {
                        for xx in 0..kw {
                            f[((o * kh + y) * kw + xx) * c + first + i] =
                                wd[((o * cg + i) * kh + y) * kw + xx];
                        }
                    }
                }
            }
            Op::Conv2d {
                window,
                filter: Param::new(vec![m, kh, kw, c], f),
                bias: Param::new(vec![m], bias),
                clamp: Clamp::NONE,
            }
        } else {
            // groups == c: one input channel a group.
            let mut f = vec![0.0f32; wd.len()];
            for o in 0..m {
                for y in 0..kh {
                    for xx in 0..kw {
                        f[(y * kw + xx) * m + o] = wd[(o * kh + y) * kw + xx];
                    }
                }
            }
            Op::DepthwiseConv2d {
                window,
                depth_multiplier: m / c,
                filter: Param::new(vec![1, kh, kw, m], f),
                bias: Param::new(vec![m], bias),
                clamp: Clamp::NONE,
            }
        };
        self.emit(n, label, op, vec![x], layout).map(drop)
    }

    /// `ConvTranspose` as a convolution whose output channels are the `sh x sw` phases of each
    /// output pixel, a DepthToSpace that places them, and a Slice that drops the padding.
    ///
    /// Along one axis, output `o` sums `x[i] * w[t]` over `o + pad = i * s + t`. Writing
    /// `o + pad = q * s + r` (`r < s`), the taps with `t = r + j * s` read `x[q - j]`: for phase `r`
    /// that is a stride-1 convolution over `x` with the `ceil(k / s)` taps `w[r + j * s]` reversed
    /// (zero where `r + j * s >= k`), evaluated at `q`.
    fn conv_transpose(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.spatial(n, 0)?;
        let layout = self.layout(x);
        let signal = layout == SourceLayout::Ncl;
        let n = &if signal { lift_1d(n)? } else { n.clone() };
        let w = self.konst(n, 1)?;
        let rank = if signal { 3 } else { 4 };
        ensure!(
            w.dims.len() == rank && w.dims.iter().all(|&d| d > 0),
            "weight of shape {:?} for a rank-{rank} input (1-D and 2-D transposed convolutions are supported)",
            w.dims
        );
        let xs = self.shape(x).to_vec();
        let (c, cg) = (xs[3], w.dims[1]);
        ensure!(
            w.dims[0] == c,
            "weight for {} input channels, input has {c}",
            w.dims[0]
        );
        let k = if signal {
            [1, w.dims[2]]
        } else {
            [w.dims[2], w.dims[3]]
        };
        let group = attr_i(n, "group", 1);
        let groups = usize::try_from(group)
            .ok()
            .filter(|&g| g >= 1 && c.is_multiple_of(g))
            .with_context(|| format!("group {group} for {c} input channels"))?;
        let m = cg * groups;
        let wd = w.f32()?;
        let bias = self.conv_bias(n, m)?;
        let two = |name: &str, default: i64| -> Result<[i64; 2]> {
            match attr_ints(n, name) {
                None => Ok([default; 2]),
                Some(v) if v.len() == 2 => Ok([v[0], v[1]]),
                Some(v) => bail!("{name} {v:?} (two values expected)"),
            }
        };
        if let Some(ks) = attr_ints(n, "kernel_shape") {
            ensure!(
                ks == [k[0] as i64, k[1] as i64],
                "kernel_shape {ks:?} differs from the weight's"
            );
        }
        ensure!(
            two("dilations", 1)? == [1, 1],
            "dilations {:?} (only 1 is supported for ConvTranspose)",
            two("dilations", 1)?
        );
        let strides = two("strides", 1)?;
        let extra = two("output_padding", 0)?;
        let mut pads = match attr_ints(n, "pads") {
            None => [0; 4],
            Some(p) if p.len() == 4 => [p[0], p[1], p[2], p[3]],
            Some(p) => bail!("pads {p:?} (four values expected)"),
        };
        let natural = |a: usize| strides[a] * (xs[a + 1] as i64 - 1) + extra[a] + k[a] as i64;
        let auto = attr_s(n, "auto_pad").unwrap_or_default();
        let wanted = match attr_ints(n, "output_shape") {
            Some(v) if v.len() == 2 => Some([v[0], v[1]]),
            Some(v) if v.len() == 4 => Some([v[2], v[3]]),
            Some(v) => bail!("output_shape {v:?} (two spatial values expected)"),
            None if auto.starts_with("SAME") => {
                Some([xs[1] as i64 * strides[0], xs[2] as i64 * strides[1]])
            }
            None => None,
        };
        if let Some(out) = wanted {
            for a in 0..2 {
                let total = natural(a) - out[a];
                // Floor division, as ONNX defines it for a negative total.
                let half = total.div_euclid(2);
                (pads[a], pads[a + 2]) = if auto == "SAME_UPPER" {
                    (half, total - half)
                } else {
                    (total - half, half)
                };
            }
        } else if auto == "VALID" {
            pads = [0; 4];
        }
        let limit = u16::MAX as i64;
        ensure!(
            strides.iter().all(|&v| (1..=limit).contains(&v))
                && extra.iter().zip(&strides).all(|(&e, &s)| (0..s).contains(&e))
                && pads.iter().all(|&p| (-limit..=limit).contains(&p)),
            "strides {strides:?}, output_padding {extra:?} and pads {pads:?} (strides of 1 to {limit}, output padding below the stride, pads within {limit})"
        );
        // Per spatial axis: the output size and the convolution's padding. Negative pads (an
        // output_shape beyond the natural size) add phase positions before the input, `before` of
        // them, whose outputs no input reaches (the bias).
        let mut out = [0usize; 2];
        let (mut before, mut right, mut lead) = ([0usize; 2], [0usize; 2], [0usize; 2]);
        let s = strides.map(|v| v as usize);
        for a in 0..2 {
            let o = natural(a) - pads[a] - pads[a + 2];
            ensure!(o >= 1, "an empty output along spatial axis {a}");
            out[a] = o as usize;
            let first = pads[a].div_euclid(strides[a]);
            before[a] = (-first).max(0) as usize;
            // The crop's start in the placed phases, and the last phase position an output needs.
            lead[a] = (pads[a] + before[a] as i64 * strides[a]) as usize;
            let last = (out[a] - 1 + lead[a]) / s[a];
            right[a] = (last + 1).saturating_sub(xs[a + 1] + before[a]);
        }
        let phases = s[0] * s[1];
        let ([jh, jw], list) = crate::import::transposed_taps(k, s);
        let (in_group, mut f) = (c / groups, vec![0.0f32; phases * m * jh * jw * c]);
        for (ph, [mh, mw], [th, tw]) in list {
            for o in 0..m {
                // Output channel `o` reads the input channels of its group.
                let (first, ol) = ((o / cg) * in_group, o % cg);
                for ci in first..first + in_group {
                    f[(((ph * m + o) * jh + mh) * jw + mw) * c + ci] =
                        wd[((ci * cg + ol) * k[0] + th) * k[1] + tw];
                }
            }
        }
        let b: Vec<f32> = (0..phases).flat_map(|_| bias.iter().copied()).collect();
        let out_name = n.output.first().context("the node has no output")?.clone();
        let conv = self.g.add_node(
            format!("{label}/phases"),
            &n.op_type,
            Op::Conv2d {
                window: Window2d {
                    kernel: [jh, jw],
                    stride: [1, 1],
                    dilation: [1, 1],
                    pads: [jh - 1 + before[0], jw - 1 + before[1], right[0], right[1]],
                },
                filter: Param::new(vec![phases * m, jh, jw, c], f),
                bias: Param::new(vec![phases * m], b),
                clamp: Clamp::NONE,
            },
            vec![x],
            format!("{out_name}/phases"),
        )?;
        self.g.values[conv].source = layout;
        let placed_name = format!("{out_name}/placed");
        let whole = {
            let cs = self.shape(conv);
            [cs[1] * s[0], cs[2] * s[1]] == out && lead == [0, 0]
        };
        let placed = self.g.add_node(
            format!("{label}/place"),
            &n.op_type,
            Op::DepthToSpace {
                block: s,
                crd: false,
            },
            vec![conv],
            if whole { out_name.clone() } else { placed_name },
        )?;
        self.g.values[placed].source = layout;
        if whole {
            self.vals.insert(out_name, placed);
            return Ok(());
        }
        let ps = self.shape(placed).to_vec();
        let v = self.g.add_node(
            format!("{label}/crop"),
            &n.op_type,
            Op::Slice {
                begin: vec![0, lead[0], lead[1], 0],
                size: vec![ps[0], out[0], out[1], ps[3]],
            },
            vec![placed],
            out_name.clone(),
        )?;
        self.g.values[v].source = layout;
        self.vals.insert(out_name, v);
        Ok(())
    }

    /// `DepthToSpace` of an NCHW image, DCR or CRD.
    fn depth_to_space(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        ensure!(
            self.layout(x) == SourceLayout::Nchw,
            "input {:?} is not an NCHW image",
            self.onnx_dims(x)
        );
        let b = attr_i(n, "blocksize", 0);
        let b = usize::try_from(b)
            .ok()
            .filter(|&b| (1..=255).contains(&b))
            .with_context(|| format!("blocksize {b} (1 to 255)"))?;
        let crd = match attr_s(n, "mode").as_deref() {
            None | Some("DCR") => false,
            Some("CRD") => true,
            Some(other) => bail!("mode {other:?} (DCR or CRD)"),
        };
        let op = Op::DepthToSpace { block: [b, b], crd };
        self.emit(n, label, op, vec![x], SourceLayout::Nchw)
            .map(drop)
    }

    /// A FullyConnected from `x` with ONNX-ordered `filter` `[out, in]`; columns are permuted when `x`
    /// is a flattened spatial tensor in the IR's HWC order.
    #[allow(clippy::too_many_arguments)]
    fn fully_connected(
        &mut self,
        n: &NodeProto,
        label: &str,
        x: ValueId,
        out: usize,
        inp: usize,
        mut filter: Vec<f32>,
        bias: Vec<f32>,
    ) -> Result<()> {
        let xs = self.shape(x).to_vec();
        ensure!(
            xs.len() >= 2 && *xs.last().unwrap() == inp,
            "input {:?} does not fit weight [{out}, {inp}]",
            self.onnx_dims(x)
        );
        let layout = match self.layout(x) {
            SourceLayout::FlatChw { c, h, w } if !same_order(self.layout(x), &xs) => {
                ensure!(
                    xs.len() == 2 && c * h * w == inp,
                    "a flattened spatial tensor of shape {xs:?}"
                );
                let src = filter.clone();
                for o in 0..out {
                    for ci in 0..c {
                        for y in 0..h {
                            for xx in 0..w {
                                filter[o * inp + (y * w + xx) * c + ci] =
                                    src[o * inp + (ci * h + y) * w + xx];
                            }
                        }
                    }
                }
                SourceLayout::Same
            }
            SourceLayout::Nchw => bail!("a 4-D input (flatten it first)"),
            SourceLayout::Ncl => bail!(
                "a 1-D signal [n, c, l] (a product over its last axis, l, is not supported; flatten it or transpose it to [n, l, c] first)"
            ),
            _ => SourceLayout::Same,
        };
        let op = Op::FullyConnected {
            filter: Param::new(vec![out, inp], filter),
            bias: Param::new(vec![out], bias),
            clamp: Clamp::NONE,
        };
        self.emit(n, label, op, vec![x], layout).map(drop)
    }

    fn gemm(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        ensure!(attr_i(n, "transA", 0) == 0, "transA = 1 is not supported");
        let x = self.act(n, 0)?;
        ensure!(
            self.shape(x).len() == 2,
            "input of rank {} (Gemm takes rank 2)",
            self.shape(x).len()
        );
        let b = self.konst(n, 1)?;
        ensure!(
            b.dims.len() == 2 && b.dims.iter().all(|&d| d > 0),
            "weight of shape {:?}",
            b.dims
        );
        let (alpha, beta) = (attr_f(n, "alpha", 1.0), attr_f(n, "beta", 1.0));
        let trans_b = attr_i(n, "transB", 0) != 0;
        let bd = b.f32()?;
        let (out, inp) = if trans_b {
            (b.dims[0], b.dims[1])
        } else {
            (b.dims[1], b.dims[0])
        };
        let mut filter = vec![0.0f32; bd.len()];
        for o in 0..out {
            for i in 0..inp {
                filter[o * inp + i] = alpha
                    * if trans_b {
                        bd[o * inp + i]
                    } else {
                        bd[i * out + o]
                    };
            }
        }
        let bias = match self.opt_const(n, 2)? {
            None => vec![0.0; out],
            Some(c) => {
                let v = c.f32()?;
                ensure!(
                    c.dims.iter().rev().skip(1).all(|&d| d == 1)
                        && (v.len() == out || v.len() == 1),
                    "bias of shape {:?} for {out} outputs (per-output or scalar bias required)",
                    c.dims
                );
                (0..out)
                    .map(|o| beta * v[if v.len() == 1 { 0 } else { o }])
                    .collect()
            }
        };
        self.fully_connected(n, label, x, out, inp, filter, bias)
    }

    fn matmul(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let b = self.konst(n, 1)?;
        ensure!(
            b.dims.len() == 2,
            "right operand of rank {} (a constant matrix is required)",
            b.dims.len()
        );
        ensure!(
            b.dims.iter().all(|&d| d > 0),
            "weight of shape {:?}",
            b.dims
        );
        let (inp, out) = (b.dims[0], b.dims[1]);
        let bd = b.f32()?;
        let mut filter = vec![0.0f32; bd.len()];
        for o in 0..out {
            for i in 0..inp {
                filter[o * inp + i] = bd[i * out + o];
            }
        }
        self.fully_connected(n, label, x, out, inp, filter, vec![0.0; out])
    }

    /// A constant operand in the IR layout of activation `like` (ONNX broadcasting to its rank first).
    fn const_like(&mut self, c: &Const, like: ValueId, name: &str) -> Result<ValueId> {
        let rank = self.onnx_dims(like).len();
        ensure!(
            c.dims.len() <= rank,
            "constant of rank {} for a rank-{rank} operand",
            c.dims.len()
        );
        let mut dims = vec![1usize; rank - c.dims.len()];
        dims.extend(&c.dims);
        if self.layout(like) == SourceLayout::Ncl {
            // [n, c, l] as the image [n, c, 1, l].
            dims.insert(2, 1);
        }
        let data = c.f32()?;
        let (shape, data) = match self.layout(like) {
            SourceLayout::Nchw | SourceLayout::Ncl => {
                let (n, ch, h, w) = (dims[0], dims[1], dims[2], dims[3]);
                let mut out = vec![0.0f32; data.len()];
                for s in 0..n {
                    for ci in 0..ch {
                        for y in 0..h {
                            for x in 0..w {
                                out[((s * h + y) * w + x) * ch + ci] =
                                    data[((s * ch + ci) * h + y) * w + x];
                            }
                        }
                    }
                }
                (vec![n, h, w, ch], out)
            }
            SourceLayout::FlatChw { c: ch, h, w } if *dims.last().unwrap() > 1 => {
                ensure!(
                    dims.len() == 2 && dims[0] == 1 && dims[1] == ch * h * w,
                    "constant of shape {:?} with a flattened spatial tensor",
                    c.dims
                );
                let mut out = vec![0.0f32; data.len()];
                for ci in 0..ch {
                    for y in 0..h {
                        for x in 0..w {
                            out[(y * w + x) * ch + ci] = data[(ci * h + y) * w + x];
                        }
                    }
                }
                (dims, out)
            }
            _ => (dims, data),
        };
        Ok(self.g.add_const(name, shape, data))
    }

    /// `Sub(x, c)` as `Add(x, -c)` and `Div(x, c)` as `Mul(x, 1 / c)`, for a constant `c`.
    fn by_constant(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let sub = n.op_type == "Sub";
        let x = self.input(n, 0).unwrap_or("").to_string();
        let x = *self.vals.get(&x).with_context(|| {
            format!(
                "{}: the first operand must be computed at run time (a constant one is not supported)",
                n.op_type
            )
        })?;
        let c = self.konst(n, 1)?;
        let data: Vec<f32> = c
            .f32()?
            .into_iter()
            .map(|v| if sub { -v } else { 1.0 / v })
            .collect();
        ensure!(
            data.iter().all(|v| v.is_finite()),
            "Div by a constant with a zero (or non-finite) element"
        );
        let c = Const {
            dims: c.dims.clone(),
            data: tensor::Data::F32(data),
        };
        let name = format!(
            "{}/{}",
            self.input(n, 1).unwrap_or(""),
            if sub { "neg" } else { "recip" }
        );
        let k = self.const_like(&c, x, &name)?;
        let op = if sub {
            Op::Add { clamp: Clamp::NONE }
        } else {
            Op::Mul { clamp: Clamp::NONE }
        };
        let layout = self.layout(x);
        self.emit(n, label, op, vec![x, k], layout).map(drop)
    }

    /// `Sub` of two activations as the IR's. With a constant operand: `Sub(x, c)` as `Add(x, -c)`,
    /// and `Sub(c, x)` as `Add(c, x * -1)`, which fold into one per-channel affine layer (the
    /// runtime's operators take no constant operand).
    fn subtract(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let b_name = self.input(n, 1).unwrap_or("").to_string();
        let Some(&b) = self.vals.get(&b_name) else {
            return self.by_constant(n, label);
        };
        if self.vals.contains_key(self.input(n, 0).unwrap_or("")) {
            return self.binary(n, label, Op::Sub { clamp: Clamp::NONE });
        }
        let out = n.output.first().context("the node has no output")?.clone();
        let minus_one = Const {
            dims: vec![1],
            data: tensor::Data::F32(vec![-1.0]),
        };
        let k = self.const_like(&minus_one, b, &format!("{out}/minus_one"))?;
        let negated = format!("{out}/negated");
        let v = self.g.add_node(
            format!("{label}/negate"),
            &n.op_type,
            Op::Mul { clamp: Clamp::NONE },
            vec![b, k],
            negated.clone(),
        )?;
        self.g.values[v].source = self.layout(b);
        self.vals.insert(negated.clone(), v);
        let mut sum = n.clone();
        sum.input = vec![self.input(n, 0).unwrap_or("").to_string(), negated];
        self.binary(&sum, label, Op::Add { clamp: Clamp::NONE })
    }

    fn binary(&mut self, n: &NodeProto, label: &str, op: Op) -> Result<()> {
        let name = |i: usize| self.input(n, i).unwrap_or("").to_string();
        let (a, b) = match (
            self.vals.get(&name(0)).copied(),
            self.vals.get(&name(1)).copied(),
        ) {
            (Some(a), Some(b)) => {
                let (la, lb) = (self.layout(a), self.layout(b));
                ensure!(
                    self.shape(a).len() == self.shape(b).len(),
                    "operands of shapes {:?} and {:?} (equal ranks required)",
                    self.onnx_dims(a),
                    self.onnx_dims(b)
                );
                if la == lb {
                    (a, b)
                } else {
                    // Two layouts of the same elements: no broadcasting between them, and the
                    // second read in the first's shape.
                    ensure!(
                        same_order(la, self.shape(a))
                            && same_order(lb, self.shape(b))
                            && self.onnx_dims(a) == self.onnx_dims(b),
                        "operands of shapes {:?} and {:?} in different layouts (only equal shapes in the same element order are supported)",
                        self.onnx_dims(a),
                        self.onnx_dims(b)
                    );
                    let shape = self.shape(a).to_vec();
                    let b = if shape == self.shape(b) {
                        b
                    } else {
                        let name = format!("{}/as_operand", self.g.values[b].name);
                        let v = self.g.add_node(
                            format!("{name}/reshape"),
                            &n.op_type,
                            Op::Reshape { shape },
                            vec![b],
                            name,
                        )?;
                        self.g.values[v].source = la;
                        v
                    };
                    (a, b)
                }
            }
            (Some(a), None) => {
                let c = self.konst(n, 1)?.clone();
                (a, self.const_like(&c, a, &name(1))?)
            }
            (None, Some(b)) => {
                let c = self.konst(n, 0)?.clone();
                (self.const_like(&c, b, &name(0))?, b)
            }
            (None, None) => {
                self.konst(n, 0)?;
                self.konst(n, 1)?;
                bail!("both operands are constants")
            }
        };
        let layout = if self.g.is_const(a) {
            self.layout(b)
        } else {
            self.layout(a)
        };
        self.emit(n, label, op, vec![a, b], layout).map(drop)
    }

    fn pool(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.spatial(n, 0)?;
        let layout = self.layout(x);
        let n = &if layout == SourceLayout::Ncl {
            lift_1d(n)?
        } else {
            n.clone()
        };
        ensure!(
            n.output.get(1).is_none_or(|s| s.is_empty()),
            "the Indices output is not supported"
        );
        let k = attr_ints(n, "kernel_shape").context("kernel_shape is missing")?;
        ensure!(
            k.len() == 2 && k.iter().all(|&v| v >= 1),
            "kernel_shape {k:?} (1-D or 2-D pooling expected)"
        );
        let xs = self.shape(x).to_vec();
        let ceil = attr_i(n, "ceil_mode", 0) != 0;
        let window = self.window(n, &xs, [k[0] as usize, k[1] as usize], ceil)?;
        ensure!(
            window.dilation == [1, 1],
            "pooling with dilations is not supported"
        );
        if n.op_type == "MaxPool" {
            ensure!(attr_i(n, "storage_order", 0) == 0, "storage_order 1");
            return self
                .emit(
                    n,
                    label,
                    Op::MaxPool2d {
                        window,
                        clamp: Clamp::NONE,
                    },
                    vec![x],
                    layout,
                )
                .map(drop);
        }
        let mut input = x;
        let mut window = window;
        if attr_i(n, "count_include_pad", 0) != 0 && window.pads != [0; 4] {
            // Padding counts as zeros: pad explicitly, then average without padding (the ceil-mode
            // overhang beyond the explicit pads stays excluded, as in ONNX Runtime).
            let p = attr_ints(n, "pads").map(|p| p.iter().map(|&v| v as usize).collect::<Vec<_>>());
            let explicit = match attr_s(n, "auto_pad").as_deref() {
                None | Some("") | Some("NOTSET") => p.unwrap_or(vec![0; 4]),
                _ => window.pads.to_vec(),
            };
            let pad = Op::Pad {
                before: vec![0, explicit[0], explicit[1], 0],
                after: vec![0, explicit[2], explicit[3], 0],
            };
            let out_name = format!("{label}/pad");
            input = self.g.add_node(
                format!("{label}/pad"),
                "AveragePool",
                pad,
                vec![x],
                out_name,
            )?;
            self.g.values[input].source = layout;
            for (p, e) in window.pads.iter_mut().zip(&explicit) {
                *p -= e;
            }
        }
        self.emit(
            n,
            label,
            Op::AveragePool2d {
                window,
                clamp: Clamp::NONE,
            },
            vec![input],
            layout,
        )
        .map(drop)
    }

    /// `ReduceMean`, `ReduceSum` and `ReduceMax` over spatial axes: H and W of an NCHW image (or
    /// one of them), L of an NCL signal, or the middle axis of a `[n, l, c]` sequence (channels
    /// last). The mean over every spatial axis is the runtime's MEAN; other means and every maximum
    /// are a pool whose window spans the reduced axes; a sum is the mean times the count.
    fn reduce(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let d = self.onnx_dims(x);
        let axes = match attr_ints(n, "axes") {
            Some(a) => a,
            None => match self.opt_const(n, 1)? {
                Some(c) => c.i64()?,
                None => Vec::new(),
            },
        };
        let mut axes: Vec<usize> = axes
            .iter()
            .map(|&a| norm_axis(a, d.len()))
            .collect::<Result<_>>()?;
        axes.sort();
        axes.dedup();
        let layout = self.layout(x);
        let keep = attr_i(n, "keepdims", 1) != 0;
        let op_type = n.op_type.as_str();
        // The reduced IR axes among H (1) and W (2), and the tensor as an NHWC image.
        let (reduce_h, reduce_w) = match layout {
            SourceLayout::Nchw if !axes.is_empty() && axes.iter().all(|a| [2, 3].contains(a)) => {
                (axes.contains(&2), axes.contains(&3))
            }
            SourceLayout::Ncl if axes == [2] => (false, true),
            SourceLayout::Same if d.len() == 3 && axes == [1] => (false, true),
            _ => bail!(
                "{op_type} over axes {axes:?} of {d:?} (only spatial axes are supported: of an NCHW image [2, 3], [2] or [3], of an NCL signal [2], of an [n, l, c] sequence [1])"
            ),
        };
        let image = if layout == SourceLayout::Same {
            // [n, l, c] is the IR's NHWC image [n, 1, l, c] in the same order.
            let name = format!("{}/image", self.g.values[x].name);
            let shape = vec![d[0], 1, d[1], d[2]];
            self.g.add_node(
                format!("{label}/image"),
                op_type,
                Op::Reshape { shape },
                vec![x],
                name,
            )?
        } else {
            x
        };
        let s = self.shape(image).to_vec();
        let whole = (reduce_h || s[1] == 1) && (reduce_w || s[2] == 1);
        let window = Window2d {
            kernel: [
                if reduce_h { s[1] } else { 1 },
                if reduce_w { s[2] } else { 1 },
            ],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
        };
        if op_type == "ReduceMean" && whole {
            // The runtime's MEAN, which also drops the reduced axes.
            let keep_dims = keep && layout != SourceLayout::Same;
            let out = if keep_dims {
                layout
            } else {
                SourceLayout::Same
            };
            let op = Op::Mean { keep_dims };
            if keep && layout == SourceLayout::Same {
                let name = format!("{label}/mean");
                let m = self
                    .g
                    .add_node(name.clone(), op_type, op, vec![image], name)?;
                let shape = vec![d[0], 1, d[2]];
                return self
                    .emit(n, label, Op::Reshape { shape }, vec![m], layout)
                    .map(drop);
            }
            return self.emit(n, label, op, vec![image], out).map(drop);
        }
        let clamp = Clamp::NONE;
        let reduced = match op_type {
            "ReduceMax" => Op::MaxPool2d { window, clamp },
            _ if whole => Op::Mean { keep_dims: true },
            _ => Op::AveragePool2d { window, clamp },
        };
        let name = format!("{label}/reduced");
        let mut v = self
            .g
            .add_node(name.clone(), op_type, reduced, vec![image], name)?;
        if op_type == "ReduceSum" {
            let count = window.kernel[0] * window.kernel[1];
            let k = Const {
                dims: vec![1],
                data: tensor::Data::F32(vec![count as f32]),
            };
            let k = self.const_like(&k, image, &format!("{label}/count"))?;
            let name = format!("{label}/sum");
            let op = Op::Mul { clamp: Clamp::NONE };
            v = self
                .g
                .add_node(name.clone(), op_type, op, vec![v, k], name)?;
        }
        // The reduced tensor in the source's view: dimensions kept, or the reduced ones dropped.
        let out: Vec<usize> = if layout == SourceLayout::Same {
            self.g.values[v].source = SourceLayout::Same;
            if keep {
                vec![d[0], 1, d[2]]
            } else {
                vec![d[0], d[2]]
            }
        } else {
            self.g.values[v].source = layout;
            let mut dims = self.onnx_dims(v);
            if !keep {
                dims = squeeze_dims(&dims, &axes.iter().map(|&a| a as i64).collect::<Vec<_>>())?;
            }
            dims
        };
        self.reshape_to(n, label, v, out)
    }

    /// A reshape of activation `x` to ONNX dims `out`, when the element order allows it.
    fn reshape_to(
        &mut self,
        n: &NodeProto,
        label: &str,
        x: ValueId,
        out: Vec<usize>,
    ) -> Result<()> {
        let xs = self.shape(x).to_vec();
        let layout = self.layout(x);
        if out == self.onnx_dims(x) {
            return self.emit(n, label, Op::Identity, vec![x], layout).map(drop);
        }
        ensure!(
            out.first() == Some(&xs[0]) && out.len() >= 2,
            "the result {out:?} does not keep the batch dimension first"
        );
        let (ir_shape, out_layout) = if let Some(relabel) = relabel_spatial(layout, &xs, &out) {
            // The spatial positions regrouped, the channels kept: the same elements.
            relabel
        } else if same_order(layout, &xs) {
            // A rank-4 result is an NCHW image where that keeps the element order, else a plain
            // rank-4 tensor (an NHWC image back in the order a TensorFlow model writes it).
            if out.len() == 4 && same_order(SourceLayout::Nchw, &to_nhwc(&out)) {
                (to_nhwc(&out), SourceLayout::Nchw)
            } else {
                (out, SourceLayout::Same)
            }
        } else {
            // A spatial NCHW tensor (or its flattened form) stays in HWC order: only flattening to
            // [n, c*h*w] is possible, the next Gemm/MatMul permutes its columns.
            let (c, h, w) = match layout {
                SourceLayout::Nchw | SourceLayout::Ncl => (xs[3], xs[1], xs[2]),
                SourceLayout::FlatChw { c, h, w } => (c, h, w),
                SourceLayout::Same => unreachable!(),
            };
            ensure!(
                out.len() == 2,
                "reshaping a spatial NCHW tensor to {out:?} reorders elements between NCHW and NHWC (only flattening to [n, c*h*w] is supported)"
            );
            (out, SourceLayout::FlatChw { c, h, w })
        };
        if ir_shape == xs {
            return self
                .emit(n, label, Op::Identity, vec![x], out_layout)
                .map(drop);
        }
        self.emit(
            n,
            label,
            Op::Reshape { shape: ir_shape },
            vec![x],
            out_layout,
        )
        .map(drop)
    }

    fn transpose(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let d = self.onnx_dims(x);
        let perm = transpose_perm(n, d.len())?;
        ensure!(perm.len() == d.len(), "perm {perm:?} for rank {}", d.len());
        let out: Vec<usize> = perm.iter().map(|&p| d[p]).collect();
        // Source axes of the input in IR order, and of the output (as NCHW when rank 4, else as is).
        let in_axes: Vec<usize> = match self.layout(x) {
            SourceLayout::Nchw => vec![0, 2, 3, 1],
            SourceLayout::Ncl => vec![0, 2, 1],
            SourceLayout::Same => (0..d.len()).collect(),
            SourceLayout::FlatChw { .. } => {
                bail!("transposing a flattened spatial tensor is not supported")
            }
        };
        let non_unit = |axes: &[usize]| -> Vec<usize> {
            axes.iter().copied().filter(|&a| d[a] != 1).collect()
        };
        let want = non_unit(&in_axes);
        // The output as an NCHW image, as is, or as an NCL signal (`[n, l, c]` to `[n, c, l]`
        // before a 1-D convolution): the first whose IR order is the input's.
        for layout in [SourceLayout::Nchw, SourceLayout::Same, SourceLayout::Ncl] {
            let ir_axes: &[usize] = match layout {
                SourceLayout::Nchw if out.len() == 4 => &[0, 2, 3, 1],
                SourceLayout::Ncl if out.len() == 3 => &[0, 2, 1],
                SourceLayout::Same => &[],
                _ => continue,
            };
            let out_axes: Vec<usize> = if ir_axes.is_empty() {
                perm.clone()
            } else {
                ir_axes.iter().map(|&i| perm[i]).collect()
            };
            if non_unit(&out_axes) == want {
                let shape = match layout {
                    SourceLayout::Nchw => to_nhwc(&out),
                    SourceLayout::Ncl => vec![out[0], 1, out[2], out[1]],
                    _ => out.clone(),
                };
                ensure!(
                    shape[0] == self.shape(x)[0],
                    "the transpose moves the batch dimension"
                );
                if shape == self.shape(x) {
                    return self.emit(n, label, Op::Identity, vec![x], layout).map(drop);
                }
                return self
                    .emit(n, label, Op::Reshape { shape }, vec![x], layout)
                    .map(drop);
            }
        }
        bail!("Transpose {perm:?} of {d:?} moves data (only layout glue that keeps the element order is supported)")
    }

    fn concat(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        ensure!(!n.input.is_empty(), "no inputs");
        let xs: Vec<ValueId> = (0..n.input.len())
            .map(|i| self.act(n, i))
            .collect::<Result<_>>()?;
        let layout = self.layout(xs[0]);
        ensure!(
            xs.iter().all(|&v| self.layout(v) == layout),
            "inputs in different layouts"
        );
        let rank = self.onnx_dims(xs[0]).len();
        let axis = norm_axis(attr_i(n, "axis", 1), rank)?;
        ensure!(axis != 0, "concatenation along the batch");
        let axis = match layout {
            SourceLayout::Nchw => axis_nhwc(axis),
            SourceLayout::Ncl => [0, 3, 2][axis],
            SourceLayout::Same => axis,
            SourceLayout::FlatChw { .. } => {
                bail!("concatenating flattened spatial tensors is not supported")
            }
        };
        self.emit(n, label, Op::Concatenation { axis }, xs, layout)
            .map(drop)
    }

    fn pad(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let mode = match attr_s(n, "mode").as_deref().unwrap_or("constant") {
            "constant" => None,
            "reflect" => Some(PadMode::Reflect),
            "edge" => Some(PadMode::Edge),
            "wrap" => Some(PadMode::Wrap),
            other => bail!("Pad mode `{other}` (constant, reflect, edge and wrap are supported)"),
        };
        let d = self.onnx_dims(x);
        let rank = d.len();
        let pads = match attr_ints(n, "pads") {
            Some(p) => p,
            None => self.konst(n, 1)?.i64()?,
        };
        if mode.is_none() {
            if let Some(v) = self.opt_const(n, 2)? {
                let v = v.f32()?;
                ensure!(
                    v.iter().all(|&x| x == 0.0),
                    "padding value {v:?} (only zero padding is supported)"
                );
            }
            ensure!(
                attr_f(n, "value", 0.0) == 0.0,
                "padding with a non-zero value"
            );
        }
        let axes: Vec<usize> = match self.opt_const(n, 3)? {
            Some(a) => a
                .i64()?
                .iter()
                .map(|&a| norm_axis(a, rank))
                .collect::<Result<_>>()?,
            None => (0..rank).collect(),
        };
        ensure!(
            pads.len() == 2 * axes.len(),
            "{} pads for {} axes",
            pads.len(),
            axes.len()
        );
        ensure!(
            pads.iter().all(|&p| p >= 0),
            "negative padding (cropping) is not supported"
        );
        let (mut before, mut after) = (vec![0usize; rank], vec![0usize; rank]);
        for (i, &a) in axes.iter().enumerate() {
            before[a] = pads[i] as usize;
            after[a] = pads[i + axes.len()] as usize;
        }
        let layout = self.layout(x);
        match layout {
            SourceLayout::Nchw => {
                before = to_nhwc(&before);
                after = to_nhwc(&after);
            }
            SourceLayout::Ncl => {
                before = vec![before[0], 0, before[2], before[1]];
                after = vec![after[0], 0, after[2], after[1]];
            }
            SourceLayout::Same => {}
            SourceLayout::FlatChw { .. } => bail!("padding a flattened spatial tensor"),
        }
        let op = match mode {
            None => Op::Pad { before, after },
            Some(mode) => Op::MirrorPad {
                before,
                after,
                mode,
            },
        };
        self.emit(n, label, op, vec![x], layout).map(drop)
    }

    fn batchnorm(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        ensure!(attr_i(n, "training_mode", 0) == 0, "training_mode = 1");
        ensure!(
            n.output.iter().skip(1).all(|s| s.is_empty()),
            "running mean/variance outputs (training mode)"
        );
        let x = match self.act(n, 0)? {
            x if self.shape(x).len() == 2 => x,
            _ => self.spatial(n, 0)?,
        };
        let layout = self.layout(x);
        let get = |i: usize| -> Result<Vec<f32>> { self.konst(n, i)?.f32() };
        let (gamma, beta, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
        let c = *self.shape(x).last().unwrap();
        ensure!(
            [&gamma, &beta, &mean, &var].iter().all(|v| v.len() == c),
            "parameters for a different channel count than {c}"
        );
        let eps = attr_f(n, "epsilon", 1e-5);
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let shift: Vec<f32> = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        let op = Op::BatchNorm {
            scale: Param::new(vec![c], scale),
            shift: Param::new(vec![c], shift),
        };
        self.emit(n, label, op, vec![x], layout).map(drop)
    }

    /// The IR axis of source axis `axis` of activation `x`.
    fn ir_axis(&self, x: ValueId, axis: usize) -> Result<usize> {
        Ok(match self.layout(x) {
            SourceLayout::Nchw => axis_nhwc(axis),
            SourceLayout::Ncl => [0, 3, 2][axis],
            SourceLayout::Same => axis,
            SourceLayout::FlatChw { .. } => {
                bail!("slicing a flattened spatial tensor is not supported")
            }
        })
    }

    /// A node computing the box of `x` given as `(source axis, start, end)` per sliced axis, its
    /// output recorded as `out_name`.
    fn add_slice(
        &mut self,
        n: &NodeProto,
        label: &str,
        x: ValueId,
        ranges: &[(usize, usize, usize)],
        out_name: &str,
    ) -> Result<()> {
        let shape = self.shape(x).to_vec();
        let mut begin = vec![0; shape.len()];
        let mut size = shape.clone();
        for &(axis, start, end) in ranges {
            ensure!(axis != 0, "{} along the batch", n.op_type);
            ensure!(end > start, "{} to an empty tensor", n.op_type);
            let ir = self.ir_axis(x, axis)?;
            begin[ir] = start;
            size[ir] = end - start;
        }
        let v = self.g.add_node(
            label,
            &n.op_type,
            Op::Slice { begin, size },
            vec![x],
            out_name,
        )?;
        self.g.values[v].source = self.layout(x);
        self.vals.insert(out_name.to_string(), v);
        Ok(())
    }

    /// `Slice` with constant starts and ends along one or more axes, steps of 1.
    fn slice(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let d = self.onnx_dims(x);
        let list = |i: usize| -> Result<Option<Vec<i64>>> {
            self.opt_const(n, i)?.map(|c| c.i64()).transpose()
        };
        let starts = list(1)?.context("Slice without starts")?;
        let ends = list(2)?.context("Slice without ends")?;
        let axes = list(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = list(4)?.unwrap_or_else(|| vec![1; starts.len()]);
        ensure!(
            starts.len() == ends.len() && axes.len() == starts.len() && steps.len() == starts.len(),
            "Slice with {} starts, {} ends, {} axes and {} steps",
            starts.len(),
            ends.len(),
            axes.len(),
            steps.len()
        );
        ensure!(
            steps.iter().all(|&s| s == 1),
            "Slice with steps {steps:?} (only steps of 1 are supported)"
        );
        let mut ranges = Vec::new();
        for ((&start, &end), &axis) in starts.iter().zip(&ends).zip(&axes) {
            let axis = norm_axis(axis, d.len())?;
            // The batch is run a sample at a time: only the whole of it can be kept.
            // (Ending at 1 keeps the whole of a batch of one, as exporters with static shapes write.)
            ensure!(
                axis != 0 || (start == 0 && (end == 1 || end >= i32::MAX as i64)),
                "Slice along the batch axis from {start} to {end} (only the other axes can be sliced)"
            );
            let (s, e) = (slice_index(start, d[axis]), slice_index(end, d[axis]));
            ensure!(
                !ranges.iter().any(|&(a, _, _)| a == axis),
                "Slice lists axis {axis} twice"
            );
            if (s, e) != (0, d[axis]) {
                ranges.push((axis, s, e));
            }
        }
        let out = n.output.first().context("the node has no output")?.clone();
        if ranges.is_empty() {
            let layout = self.layout(x);
            return self.emit(n, label, Op::Identity, vec![x], layout).map(drop);
        }
        self.add_slice(n, label, x, &ranges, &out)
    }

    /// `Gather` of an activation at constant indices along one axis: one index (`x[:, :, -1]`,
    /// the axis dropped) or a run of consecutive ones, as a Slice.
    fn gather(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let d = self.onnx_dims(x);
        let axis = norm_axis(attr_i(n, "axis", 0), d.len())?;
        let indices = self.konst(n, 1)?;
        let scalar = indices.dims.is_empty();
        let at: Vec<usize> = indices
            .i64()?
            .iter()
            .map(|&i| {
                let i = if i < 0 { i + d[axis] as i64 } else { i };
                usize::try_from(i).ok().filter(|&i| i < d[axis])
            })
            .collect::<Option<_>>()
            .with_context(|| format!("Gather indices out of range for axis {axis} of {d:?}"))?;
        let run = at.windows(2).all(|w| w[1] == w[0] + 1);
        ensure!(
            axis != 0 && !at.is_empty() && run && (scalar || indices.dims.len() == 1),
            "Gather of a value computed at run time along axis {axis} at {at:?} (one index, or consecutive ones, along an axis other than the batch)"
        );
        let out = n.output.first().context("the node has no output")?.clone();
        let range = [(axis, at[0], at[at.len() - 1] + 1)];
        if !scalar {
            return self.add_slice(n, label, x, &range, &out);
        }
        let sliced = format!("{out}/slice");
        self.add_slice(n, &format!("{label}/slice"), x, &range, &sliced)?;
        let mut dims = d.clone();
        dims.remove(axis);
        let v = self.vals[&sliced];
        self.reshape_to(n, label, v, dims)
    }

    /// `Split` along one axis into the given sizes, `num_outputs` parts or as many equal parts as
    /// outputs: one Slice per output.
    fn split(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let d = self.onnx_dims(x);
        let axis = norm_axis(attr_i(n, "axis", 0), d.len())?;
        let parts = n.output.len();
        let sizes: Vec<usize> = match (self.opt_const(n, 1)?, attr_ints(n, "split")) {
            (Some(c), _) => c.i64()?.iter().map(|&v| v.max(0) as usize).collect(),
            (None, Some(v)) => v.iter().map(|&v| v.max(0) as usize).collect(),
            (None, None) => {
                // Equal parts, the last smaller when they do not divide the axis (opset 18).
                let each = d[axis].div_ceil(parts.max(1));
                (0..parts)
                    .map(|i| each.min(d[axis].saturating_sub(i * each)))
                    .collect()
            }
        };
        ensure!(
            sizes.len() == parts && sizes.iter().sum::<usize>() == d[axis],
            "Split of axis {axis} ({} elements) into {sizes:?} for {parts} outputs",
            d[axis]
        );
        let mut start = 0;
        for (i, (out, &size)) in n.output.iter().zip(&sizes).enumerate() {
            if !out.is_empty() {
                let range = [(axis, start, start + size)];
                self.add_slice(n, &format!("{label}/{i}"), x, &range, out)?;
            }
            start += size;
        }
        Ok(())
    }

    fn softmax(&mut self, n: &NodeProto, label: &str) -> Result<()> {
        let x = self.act(n, 0)?;
        let d = self.onnx_dims(x);
        let default = if self.opset >= 13 { -1 } else { 1 };
        let axis = norm_axis(attr_i(n, "axis", default), d.len())?;
        let layout = self.layout(x);
        let last = match layout {
            SourceLayout::Nchw => axis == 1 && (self.opset >= 13 || d[2] * d[3] == 1),
            SourceLayout::Ncl => axis == 1 && (self.opset >= 13 || d[2] == 1),
            SourceLayout::Same => {
                axis == d.len() - 1 || d[axis + 1..].iter().all(|&s| s == 1) && self.opset < 13
            }
            SourceLayout::FlatChw { .. } => axis == 1,
        };
        let op = if n.op_type == "LogSoftmax" {
            Op::LogSoftmax
        } else {
            Op::Softmax { beta: 1.0 }
        };
        if last {
            return self.emit(n, label, op, vec![x], layout).map(drop);
        }
        // Another single axis (opset 13 on): that axis swapped with the last, the function, and
        // the two swapped back.
        let rank = self.shape(x).len();
        let ir = match layout {
            SourceLayout::FlatChw { .. } => None,
            _ => self.ir_axis(x, axis).ok(),
        };
        let (Some(ir), true) = (ir, self.opset >= 13 && axis > 0 && rank <= 4) else {
            bail!(
                "{} over axis {axis} of {d:?} (the channel/last axis, or from opset 13 any axis but the batch)",
                n.op_type
            );
        };
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(ir, rank - 1);
        let name = n.output.first().context("the node has no output")?;
        let there = self.g.add_node(
            format!("{label}/to_last"),
            &n.op_type,
            Op::Transpose { perm: perm.clone() },
            vec![x],
            format!("{name}/to_last"),
        )?;
        let f = self.g.add_node(
            format!("{label}/last"),
            &n.op_type,
            op,
            vec![there],
            format!("{name}/last"),
        )?;
        self.emit(n, label, Op::Transpose { perm }, vec![f], layout)
            .map(drop)
    }
}

/// The IR shape and layout of a reshape of IR tensor `xs` (in `layout`, an image or a signal) to
/// source dims `out` that keeps the channels and regroups only the spatial positions: an image
/// `[n, c, h, w]` or signal `[n, c, l]` to an image `[n, c, h', w']` or a signal `[n, c, l']` of as
/// many positions. The elements keep their order (NHWC `[n, h, w, c]` and NCL's `[n, 1, l, c]` are
/// both positions, then channels).
fn relabel_spatial(
    layout: SourceLayout,
    xs: &[usize],
    out: &[usize],
) -> Option<(Vec<usize>, SourceLayout)> {
    let (n, h, w, c) = (xs[0], *xs.get(1)?, *xs.get(2)?, *xs.get(3)?);
    if !matches!(layout, SourceLayout::Nchw | SourceLayout::Ncl)
        || out.len() < 3
        || out[..2] != [n, c]
        || out[2..].iter().product::<usize>() != h * w
    {
        return None;
    }
    match *out {
        [_, _, l] => Some((vec![n, 1, l, c], SourceLayout::Ncl)),
        [_, _, oh, ow] => Some((vec![n, oh, ow, c], SourceLayout::Nchw)),
        _ => None,
    }
}

/// The function of an element-wise ONNX operator that runs by table, with its attributes.
fn unary_fn(n: &NodeProto) -> Result<UnaryFn> {
    let alpha = |default: f32| attr_f(n, "alpha", default);
    let f = match n.op_type.as_str() {
        "Elu" => UnaryFn::Elu { alpha: alpha(1.0) },
        "Celu" => UnaryFn::Celu { alpha: alpha(1.0) },
        "Selu" => UnaryFn::Selu {
            alpha: alpha(1.673_263_2),
            gamma: attr_f(n, "gamma", 1.050_701),
        },
        "Softplus" => UnaryFn::Softplus,
        "Softsign" => UnaryFn::Softsign,
        "Exp" => UnaryFn::Exp,
        "Erf" => UnaryFn::Erf,
        "Gelu" => match attr_s(n, "approximate").as_deref() {
            None | Some("none") => UnaryFn::Gelu { tanh: false },
            Some("tanh") => UnaryFn::Gelu { tanh: true },
            Some(other) => bail!("Gelu approximate `{other}` (none or tanh)"),
        },
        "Mish" => UnaryFn::Mish,
        "Abs" => UnaryFn::Abs,
        "Neg" => UnaryFn::Neg,
        "Sign" => UnaryFn::Sign,
        "Sqrt" => UnaryFn::Sqrt,
        "Sin" => UnaryFn::Sin,
        "Cos" => UnaryFn::Cos,
        "Shrink" => UnaryFn::Shrink {
            bias: attr_f(n, "bias", 0.0),
            lambd: attr_f(n, "lambd", 0.5),
        },
        "ThresholdedRelu" => UnaryFn::ThresholdedRelu { alpha: alpha(1.0) },
        other => bail!("`{other}` is not an element-wise function"),
    };
    let finite = ["alpha", "gamma", "bias", "lambd"]
        .iter()
        .all(|a| attr_f(n, a, 0.0).is_finite());
    ensure!(finite, "{} with a non-finite attribute", n.op_type);
    ensure!(
        !matches!(f, UnaryFn::Celu { alpha } if alpha == 0.0),
        "Celu alpha 0 (it divides by alpha)"
    );
    Ok(f)
}

/// An ONNX `Slice` start or end on an axis of `len` elements: negative counts from the end, then
/// clamped to the axis.
fn slice_index(v: i64, len: usize) -> usize {
    let len = len as i64;
    (if v < 0 { v + len } else { v }).clamp(0, len) as usize
}

/// A 1-D convolution or pool as the 2-D one over a signal of height 1: `kernel_shape`, `strides`,
/// `dilations` and `output_shape` get a leading 1, `output_padding` a leading 0, `pads`
/// `[begin, end]` become `[0, begin, 0, end]`.
fn lift_1d(n: &NodeProto) -> Result<NodeProto> {
    let mut lifted = n.clone();
    for a in lifted.attribute.iter_mut() {
        let name = a.name.as_str();
        let (want, height) = match name {
            "kernel_shape" | "strides" | "dilations" | "output_shape" => (1, 1),
            "output_padding" => (1, 0),
            "pads" => (2, 0),
            _ => continue,
        };
        ensure!(
            a.r#type == at::INTS && a.ints.len() == want,
            "{name} {:?} for a 1-D input ({want} value(s) expected)",
            a.ints
        );
        a.ints = if name == "pads" {
            vec![0, a.ints[0], 0, a.ints[1]]
        } else {
            vec![height, a.ints[0]]
        };
    }
    Ok(lifted)
}

/// The dimensions `d` without the listed axes (without every dimension of size 1 when none are
/// listed), as ONNX `Squeeze` gives them.
fn squeeze_dims(d: &[usize], axes: &[i64]) -> Result<Vec<usize>> {
    let axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, d.len()))
        .collect::<Result<_>>()?;
    Ok(d.iter()
        .enumerate()
        .filter(|(i, &s)| {
            if axes.is_empty() {
                s != 1
            } else {
                !axes.contains(i)
            }
        })
        .map(|(_, &s)| s)
        .collect())
}

fn unsqueeze_dims(d: &[usize], axes: &[i64]) -> Result<Vec<usize>> {
    let rank = d.len() + axes.len();
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<_>>()?;
    axes.sort();
    axes.dedup();
    ensure!(axes.len() + d.len() == rank, "repeated Unsqueeze axes");
    let mut out = d.to_vec();
    for a in axes {
        out.insert(a, 1);
    }
    Ok(out)
}

/// `ConstantOfShape`: a tensor of the shape given by `shape` (int64), every element the one value of
/// the node's `value` attribute (float 0 without it).
fn constant_of_shape(n: &NodeProto, shape: &Const) -> Result<Const> {
    /// Elements a folded constant may have: a larger one is a corrupt or hostile shape.
    const MAX_ELEMENTS: usize = 1 << 28;
    let dims = shape
        .i64()?
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| anyhow!("ConstantOfShape of a negative size {d}")))
        .collect::<Result<Vec<usize>>>()?;
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&l| l <= MAX_ELEMENTS)
        .with_context(|| {
            format!("ConstantOfShape of shape {dims:?}: more than {MAX_ELEMENTS} elements")
        })?;
    let fill = match n.attribute.iter().find(|a| a.name == "value") {
        Some(a) => Const::from_proto(
            a.t.as_ref()
                .context("ConstantOfShape with an empty value")?,
        )?,
        None => Const {
            dims: vec![1],
            data: tensor::Data::F32(vec![0.0]),
        },
    };
    let data = match &fill.data {
        tensor::Data::F32(v) if v.len() == 1 => tensor::Data::F32(vec![v[0]; len]),
        tensor::Data::I64(v) if v.len() == 1 => tensor::Data::I64(vec![v[0]; len]),
        _ => bail!("ConstantOfShape's value must hold one element"),
    };
    Ok(Const { dims, data })
}

/// ONNX Reshape's target shape: `0` copies the input dimension (unless `allow_zero`), `-1` is inferred.
fn resolve_reshape(input: &[usize], shape: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(
                *input
                    .get(i)
                    .context("shape entry 0 beyond the input's rank")?,
            ),
            s if s >= 0 => out.push(s as usize),
            _ => bail!("reshape target {shape:?}"),
        }
    }
    let known = out
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .with_context(|| format!("reshape target {shape:?} overflows"))?;
    if let Some(i) = infer {
        ensure!(
            known > 0 && total.is_multiple_of(known),
            "cannot reshape {input:?} to {shape:?}"
        );
        out[i] = total / known;
    }
    ensure!(
        out.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) == Some(total),
        "cannot reshape {input:?} to {shape:?}"
    );
    Ok(out)
}

#[cfg(test)]
mod tests;
