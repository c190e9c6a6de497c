//! TFLite int8 model -> IR graph with the model's own quantization: every operator checked and mapped
//! to one IR node, each tensor's scale and zero point, the weights' int8 values and per-channel scales
//! and the int32 biases recorded as they are, for the shared lowering ([`crate::lower`]) to prepare
//! every parameter as TFLite Micro's Prepare computes it.
//!
//! Values keep the file's shapes, and a QUANTIZE or DEQUANTIZE becomes an `Identity` node between
//! values of different types or quantization, which the lowering writes as the runtime's Quantize or
//! Dequantize.

use anyhow::{anyhow, bail, Context, Result};
use ferrite_runtime::format::{Activation, DType, Shape};
use ferrite_runtime::kernels::resize::BilinearMode;
use ferrite_runtime::ops::PadMode;

use super::flatbuf::Table;
use super::schema::{op, tensor_type, Model, Operator};
use crate::builder::TensorDef;
use crate::ir::{
    Clamp, ConstArith, ConstOperand, Graph, Node, Op, Param, UnaryFn, ValueId, Window2d,
};
use crate::lower::Precision;
use crate::quantize::params::QParams;

/// The operators the importer reads.
pub const SUPPORTED: &[&str] = &[
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "HARD_SWISH",
    "LEAKY_RELU",
    "LOGISTIC",
    "MAXIMUM",
    "MAX_POOL_2D",
    "MEAN",
    "MINIMUM",
    "MIRROR_PAD",
    "MUL",
    "PAD",
    "PRELU",
    "QUANTIZE",
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR",
    "SLICE",
    "SOFTMAX",
    "SPLIT",
    "SPLIT_V",
    "SQUEEZE",
    "STRIDED_SLICE",
    "SUB",
    "TANH",
    "TRANSPOSE",
    "TRANSPOSE_CONV",
];

/// A TFLite model in the IR, with the quantization it fixes (indexed as [`crate::lower::Quantization`]).
pub struct Imported {
    pub graph: Graph,
    /// Per value: its type, int8, int16 (16x8 models) or float32.
    pub precision: Vec<Precision>,
    /// Per value: the int8 scale and zero point.
    pub params: Vec<Option<QParams>>,
    /// Per value: the int16 scale (zero point 0).
    pub int16_scales: Vec<Option<f32>>,
    /// Per node: int8 weights and their scales.
    pub weights: Vec<Option<(Vec<i8>, Vec<f32>)>>,
    /// Per node: the bias, int32 values (int64 for an int16x8 layer); empty when the operator has
    /// none.
    pub biases: Vec<Option<Vec<i64>>>,
}

/// Reads a `.tflite` file's bytes into the IR.
pub fn import(bytes: &[u8]) -> Result<Imported> {
    let model = Model::parse(bytes)?;
    let mut cx = Importer::new(&model)?;
    let needed = needed_operators(&model)?;
    for i in (0..model.operators.len()).filter(|&i| needed[i]) {
        let code = model.code(i)?;
        let name = if code.builtin == op::CUSTOM {
            format!("CUSTOM ({})", code.custom)
        } else {
            op::name(code.builtin)
        };
        cx.operator(i, code.builtin)
            .with_context(|| format!("operator {i} ({name})"))?;
    }
    cx.finish()
}

/// Which operators the graph's outputs depend on, walking the operators (in execution order) back
/// from the outputs. RESHAPE's second operand does not count: the importer takes the new shape
/// from the output tensor, so the int32 operators that compute it at run time (SHAPE,
/// STRIDED_SLICE and PACK, which the converter writes for a Keras reshape of a model with a
/// dynamic batch) are skipped, as are operators whose outputs nothing reads.
fn needed_operators(model: &Model<'_>) -> Result<Vec<bool>> {
    let mut tensor = vec![false; model.tensors.len()];
    let mark = |t: i32, tensor: &mut Vec<bool>| {
        if let Some(n) = usize::try_from(t).ok().and_then(|t| tensor.get_mut(t)) {
            *n = true;
        }
    };
    for &t in &model.outputs {
        mark(t, &mut tensor);
    }
    let mut needed = vec![false; model.operators.len()];
    for i in (0..model.operators.len()).rev() {
        let o = &model.operators[i];
        let reads = |t: &i32| usize::try_from(*t).is_ok_and(|t| tensor.get(t) == Some(&true));
        if !o.outputs.iter().any(reads) {
            continue;
        }
        needed[i] = true;
        let reshape = model.code(i)?.builtin == op::RESHAPE;
        for (k, &t) in o.inputs.iter().enumerate() {
            if !(reshape && k == 1) {
                mark(t, &mut tensor);
            }
        }
    }
    Ok(needed)
}

/// A constant operand of one int8 value: the value, its scale and zero point.
type ConstValue = (i8, f32, i32);

/// An operator's weights: int8 data, per-channel (or one) scales and dimensions.
type Weights = (Vec<i8>, Vec<f32>, Vec<usize>);

struct Importer<'m, 'a> {
    model: &'m Model<'a>,
    /// Per IR value: the tensor it comes from, as the runtime will store it.
    defs: Vec<TensorDef>,
    /// TFLite tensor index -> IR value.
    map: Vec<Option<ValueId>>,
    graph: Graph,
    weights: Vec<Option<(Vec<i8>, Vec<f32>)>>,
    biases: Vec<Option<Vec<i64>>>,
    /// The operator being read: its index and name, which name its IR node.
    current: (usize, String),
}

fn fused(code: i8) -> Result<Activation> {
    Ok(match code {
        0 => Activation::None,
        1 => Activation::Relu,
        2 => Activation::ReluN1To1,
        3 => Activation::Relu6,
        4 => bail!("fused TANH activation is not supported"),
        5 => bail!("fused SIGN_BIT activation is not supported"),
        c => bail!("unknown fused activation {c}"),
    })
}

/// The IR clamp of a fused activation.
fn clamp(activation: Activation) -> Clamp {
    let (min, max) = activation.range();
    Clamp::new(min, max)
}

/// TFLite's `ComputePaddingHeightWidth` for one dimension: the output size, the leading padding and
/// the trailing one (the odd extra row or column of SAME padding goes after the input).
fn padding(
    same: bool,
    input: usize,
    filter: usize,
    stride: usize,
    dilation: usize,
) -> (usize, usize, usize) {
    let effective = (filter - 1) * dilation + 1;
    let out = if same {
        input.div_ceil(stride)
    } else {
        (input + stride).saturating_sub(effective) / stride
    };
    let total = ((out.max(1) - 1) * stride + effective).saturating_sub(input);
    (out, total / 2, total - total / 2)
}

/// An operator that copies or blends its input's elements (PAD, the resizes, DEPTH_TO_SPACE): its
/// output has the input's type and, for int8 and int16, the input's quantization.
fn keeps_input_quantization(xd: &TensorDef, yd: &TensorDef) -> Result<()> {
    if xd.dtype != yd.dtype {
        bail!("input and output differ in type");
    }
    if xd.dtype != DType::F32 && (xd.scale != yd.scale || xd.zero_point != yd.zero_point) {
        bail!("input and output quantization differ; the operator keeps the input's");
    }
    Ok(())
}

/// A resize's operands, their NHWC dims and its corner and half-pixel flags.
struct Resize {
    input: ValueId,
    output: ValueId,
    input_dims: Vec<u16>,
    output_dims: Vec<u16>,
    align_corners: bool,
    half_pixel_centers: bool,
}

/// The input index TFLite's nearest-neighbour resize reads for output index `v` (its float
/// arithmetic: `GetNearestNeighbor` of the reference kernels).
fn tflite_nearest(
    v: usize,
    in_size: usize,
    out_size: usize,
    align_corners: bool,
    half_pixel: bool,
) -> usize {
    let scale = if align_corners && out_size > 1 {
        (in_size as f32 - 1.0) / (out_size as f32 - 1.0)
    } else {
        in_size as f32 / out_size as f32
    };
    let offset = if half_pixel { 0.5f32 } else { 0.0 };
    let x = (v as f32 + offset) * scale;
    let picked = if align_corners { x.round() } else { x.floor() } as i64;
    picked.clamp(0, in_size as i64 - 1) as usize
}

impl<'m, 'a> Importer<'m, 'a> {
    fn new(model: &'m Model<'a>) -> Result<Self> {
        let has_int8 = model
            .tensors
            .iter()
            .any(|t| t.dtype == tensor_type::INT8 || t.dtype == tensor_type::INT16);
        let float_inputs = !model.inputs.is_empty()
            && model.inputs.iter().all(|&t| {
                usize::try_from(t)
                    .ok()
                    .and_then(|t| model.tensors.get(t))
                    .is_some_and(|t| t.dtype == tensor_type::FLOAT32)
            });
        let quantizes = (0..model.operators.len())
            .any(|i| model.code(i).is_ok_and(|c| c.builtin == op::QUANTIZE));
        if !has_int8 || (float_inputs && !quantizes) {
            bail!("this is a float model (float32 inputs, no QUANTIZE, so no int8 layers); `ferrite convert` takes models already quantized to int8; quantize float models with `ferrite quantize`");
        }
        Ok(Self {
            model,
            defs: Vec::new(),
            map: vec![None; model.tensors.len()],
            graph: Graph::default(),
            weights: Vec::new(),
            biases: Vec::new(),
            current: (0, String::new()),
        })
    }

    fn tensor_index(&self, t: i32) -> Result<usize> {
        usize::try_from(t)
            .ok()
            .filter(|&t| t < self.model.tensors.len())
            .ok_or_else(|| {
                anyhow!(
                    "refers to tensor {t}, but the model has {}",
                    self.model.tensors.len()
                )
            })
    }

    /// Per-tensor `(scale, zero_point)` of an int8 tensor (int16: zero point 0), checked.
    fn quant(&self, t: usize) -> Result<(f32, i32)> {
        let tensor = &self.model.tensors[t];
        let q = tensor
            .quantization
            .as_ref()
            .filter(|q| !q.scale.is_empty())
            .with_context(|| format!("int8 tensor {t} ({}) has no quantization", tensor.name))?;
        if q.scale.len() != 1 || q.zero_point.len() > 1 {
            bail!(
                "activation tensor {t} ({}) has {} scales; activations must be quantized per tensor",
                tensor.name,
                q.scale.len()
            );
        }
        let scale = q.scale[0];
        if !(scale.is_finite() && scale > 0.0) {
            bail!(
                "tensor {t} ({}) has scale {scale}; it must be positive and finite",
                tensor.name
            );
        }
        let zp = q.zero_point.first().copied().unwrap_or(0);
        if tensor.dtype == tensor_type::INT16 && zp != 0 {
            bail!(
                "int16 tensor {t} ({}) has zero point {zp}; int16 activations must be symmetric (zero point 0)",
                tensor.name
            );
        }
        if !(-128..=127).contains(&zp) {
            bail!(
                "int8 tensor {t} ({}) has zero point {zp}, outside -128..=127",
                tensor.name
            );
        }
        Ok((scale, zp as i32))
    }

    /// The IR value of an activation tensor (created on first use).
    fn act(&mut self, t: i32) -> Result<ValueId> {
        let t = self.tensor_index(t)?;
        if let Some(i) = self.map[t] {
            return Ok(i);
        }
        let tensor = &self.model.tensors[t];
        if !self.model.data(t).is_empty() {
            bail!(
                "tensor {t} ({}) is a constant where an activation is expected; constant operands are not supported here",
                tensor.name
            );
        }
        if tensor.is_variable || tensor.sparse {
            bail!(
                "tensor {t} ({}) is a variable or sparse tensor, which is not supported",
                tensor.name
            );
        }
        let (dtype, scale, zero_point) = match tensor.dtype {
            tensor_type::INT8 => {
                let (s, z) = self.quant(t)?;
                (DType::I8, s, z)
            }
            tensor_type::INT16 => (DType::I16, self.quant(t)?.0, 0),
            tensor_type::FLOAT32 => (DType::F32, 0.0, 0),
            other => bail!(
                "tensor {t} ({}) has type {}; activations must be int8 or int16 (or float32 around QUANTIZE/DEQUANTIZE)",
                tensor.name,
                tensor_type::name(other)
            ),
        };
        let dims: Vec<usize> = tensor
            .shape
            .iter()
            .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
            .collect::<Option<_>>()
            .with_context(|| {
                format!(
                    "tensor {t} ({}) has shape {:?}; dimensions must be positive (static shapes only)",
                    tensor.name, tensor.shape
                )
            })?;
        if dims.is_empty() {
            bail!(
                "tensor {t} ({}) is a scalar; tensors of rank 1 to 4 are supported",
                tensor.name
            );
        }
        let shape = Shape::new(&dims).with_context(|| {
            format!(
                "tensor {t} ({}) has shape {:?}; at most 4 dimensions of at most 65535 are supported",
                tensor.name, tensor.shape
            )
        })?;
        u16::try_from(self.defs.len()).context("more than 65535 tensors")?;
        self.defs.push(TensorDef {
            name: tensor.name.clone(),
            dtype,
            shape,
            scale,
            zero_point,
        });
        let v = self.graph.add_value(tensor.name.clone(), dims);
        self.map[t] = Some(v);
        Ok(v)
    }

    fn def(&self, v: ValueId) -> &TensorDef {
        &self.defs[v]
    }

    /// Adds the IR node of the current operator.
    fn push(&mut self, op: Op, inputs: Vec<ValueId>, output: ValueId) {
        self.push_weighted(op, inputs, output, None, None);
    }

    /// Adds the IR node of the current operator with its int8 weights and integer bias.
    fn push_weighted(
        &mut self,
        op: Op,
        inputs: Vec<ValueId>,
        output: ValueId,
        weights: Option<(Vec<i8>, Vec<f32>)>,
        bias: Option<Vec<i64>>,
    ) {
        let (i, code) = &self.current;
        self.graph.nodes.push(Node {
            name: format!("{} ({i})", self.defs[output].name),
            source_op: code.clone(),
            op,
            inputs,
            output,
        });
        self.weights.push(weights);
        self.biases.push(bias);
    }

    /// The operator's input `k`, which must exist (not -1).
    fn input(&self, o: &Operator<'_>, k: usize) -> Result<i32> {
        match o.inputs.get(k) {
            Some(&t) if t >= 0 => Ok(t),
            _ => bail!("input {k} is missing"),
        }
    }

    fn options(&self, o: &Operator<'a>, expected: u8, what: &str) -> Result<Option<Table<'a>>> {
        if o.options.is_some() && o.options_type != expected {
            bail!(
                "builtin options of type {} where {what} ({expected}) is expected",
                o.options_type
            );
        }
        Ok(o.options)
    }

    fn single_output(&mut self, o: &Operator<'_>) -> Result<ValueId> {
        if o.outputs.len() != 1 {
            bail!("has {} outputs, expected 1", o.outputs.len());
        }
        self.act(o.outputs[0])
    }

    fn operator(&mut self, i: usize, code: i32) -> Result<()> {
        let o = self.model.operators[i].clone();
        self.current = (i, op::name(code));
        match code {
            op::CONV_2D | op::DEPTHWISE_CONV_2D => self.conv(&o, code == op::DEPTHWISE_CONV_2D),
            op::FULLY_CONNECTED => self.fully_connected(&o),
            op::ADD | op::MUL | op::SUB => self.binary(&o, code),
            op::MAXIMUM | op::MINIMUM => self.extremum(&o, code == op::MAXIMUM),
            op::AVERAGE_POOL_2D | op::MAX_POOL_2D => self.pool(&o, code == op::MAX_POOL_2D),
            op::MEAN => self.mean(&o),
            op::SOFTMAX => self.softmax(&o),
            op::LOGISTIC | op::TANH => self.sigmoid(&o, code == op::TANH),
            op::RELU => self.relu(&o, Activation::Relu),
            op::RELU6 => self.relu(&o, Activation::Relu6),
            op::RELU_N1_TO_1 => self.relu(&o, Activation::ReluN1To1),
            op::LEAKY_RELU => self.leaky_relu(&o),
            op::HARD_SWISH => self.hard_swish(&o),
            op::PRELU => self.prelu(&o),
            op::RESIZE_NEAREST_NEIGHBOR => self.resize_nearest(&o),
            op::RESIZE_BILINEAR => self.resize_bilinear(&o),
            op::DEPTH_TO_SPACE => self.depth_to_space(&o),
            op::TRANSPOSE => self.transpose(&o),
            op::TRANSPOSE_CONV => self.transpose_conv(&o),
            op::RESHAPE | op::SQUEEZE => self.reshape(&o),
            op::CONCATENATION => self.concatenation(&o),
            op::SLICE => self.slice(&o),
            op::STRIDED_SLICE => self.strided_slice(&o),
            op::SPLIT | op::SPLIT_V => self.split(&o, code == op::SPLIT_V),
            op::PAD => self.pad(&o, false),
            op::MIRROR_PAD => self.pad(&o, true),
            op::QUANTIZE => self.quantize(&o),
            op::DEQUANTIZE => self.dequantize(&o),
            _ => bail!(
                "is not supported; supported operators: {}",
                SUPPORTED.join(", ")
            ),
        }
    }

    /// The integer type of an operator with int8 and int16x8 kernels: input and output both int8 or
    /// both int16.
    fn int_type(&self, x: ValueId, y: ValueId) -> Result<DType> {
        let (dx, dy) = (self.def(x), self.def(y));
        match (dx.dtype, dy.dtype) {
            (DType::I8, DType::I8) => Ok(DType::I8),
            (DType::I16, DType::I16) => Ok(DType::I16),
            (a, b) => bail!(
                "input tensor {} is {a} and output tensor {} is {b}; this operator needs both int8 or both int16 (float models: `ferrite quantize`)",
                dx.name,
                dy.name
            ),
        }
    }

    fn require_i8(&self, t: ValueId, role: &str) -> Result<()> {
        let d = self.def(t);
        if d.dtype != DType::I8 {
            bail!(
                "{role} tensor {} is {}; this operator is supported for int8 only (float models: `ferrite quantize`)",
                d.name,
                d.dtype
            );
        }
        Ok(())
    }

    /// Weight tensor `t`: int8 data, its per-channel scales (checked against `channels` along `axis`).
    fn weights(&self, t: i32, shape_rank: usize, channels: usize, axis: i32) -> Result<Weights> {
        let t = self.tensor_index(t)?;
        let tensor = &self.model.tensors[t];
        if tensor.dtype != tensor_type::INT8 {
            bail!(
                "weights {} have type {}; only int8 weights are supported (float models: `ferrite quantize`)",
                tensor.name,
                tensor_type::name(tensor.dtype)
            );
        }
        let data = self.model.data(t);
        let dims: Vec<usize> = tensor.shape.iter().map(|&d| d.max(0) as usize).collect();
        let elems = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(0);
        if dims.len() != shape_rank || data.len() != elems || elems == 0 {
            bail!(
                "weights {} have shape {:?} and {} bytes of data; expected a constant of rank {shape_rank}",
                tensor.name,
                tensor.shape,
                data.len()
            );
        }
        let q = tensor
            .quantization
            .as_ref()
            .filter(|q| !q.scale.is_empty())
            .with_context(|| format!("weights {} have no quantization", tensor.name))?;
        if q.scale.len() != 1 && (q.scale.len() != channels || q.quantized_dimension != axis) {
            bail!(
                "weights {} have {} scales along dimension {}; expected 1 or {channels} along dimension {axis}",
                tensor.name,
                q.scale.len(),
                q.quantized_dimension
            );
        }
        if q.zero_point.iter().any(|&z| z != 0) {
            bail!(
                "weights {} have a non-zero zero point; int8 weights must be symmetric",
                tensor.name
            );
        }
        if let Some(s) = q.scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            bail!(
                "weights {} have scale {s}; scales must be positive and finite",
                tensor.name
            );
        }
        Ok((
            data.iter().map(|&b| b as i8).collect(),
            q.scale.clone(),
            dims,
        ))
    }

    /// Optional bias, one per output channel (none when the operator has no bias): int32 for an
    /// int8 layer, int64 for an int16x8 one (`dtype` its activations' type).
    fn bias(&self, o: &Operator<'_>, k: usize, channels: usize, dtype: DType) -> Result<Vec<i64>> {
        let Some(&t) = o.inputs.get(k).filter(|&&t| t >= 0) else {
            return Ok(Vec::new());
        };
        let t = self.tensor_index(t)?;
        let tensor = &self.model.tensors[t];
        let (expected, width, what) = if dtype == DType::I16 {
            (tensor_type::INT64, 8, "int16x8 layers need an int64 bias")
        } else {
            (tensor_type::INT32, 4, "int8 layers need an int32 bias")
        };
        if tensor.dtype != expected {
            bail!(
                "bias {} has type {}; {what}",
                tensor.name,
                tensor_type::name(tensor.dtype)
            );
        }
        let data = self.model.data(t);
        if data.len() != width * channels {
            bail!(
                "bias {} has {} bytes; expected a constant of {channels} {} values",
                tensor.name,
                data.len(),
                tensor_type::name(expected).to_lowercase()
            );
        }
        Ok(data
            .chunks_exact(width)
            .map(|c| {
                if width == 8 {
                    i64::from_le_bytes(c.try_into().expect("8 bytes"))
                } else {
                    i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64
                }
            })
            .collect())
    }

    fn conv(&mut self, o: &Operator<'a>, depthwise: bool) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let dtype = self.int_type(x, y)?;
        let opts = if depthwise {
            self.options(o, 2, "DepthwiseConv2DOptions")?
        } else {
            self.options(o, 1, "Conv2DOptions")?
        };
        let opts = opts.context("missing convolution options")?;
        let padding = opts.i8(0, "padding", 0)?;
        let stride_w = opts.i32(1, "stride_w", 0)?;
        let stride_h = opts.i32(2, "stride_h", 0)?;
        let (act_code, dil_w, dil_h) = if depthwise {
            (
                opts.i8(4, "fused_activation_function", 0)?,
                opts.i32(5, "dilation_w_factor", 1)?,
                opts.i32(6, "dilation_h_factor", 1)?,
            )
        } else {
            (
                opts.i8(3, "fused_activation_function", 0)?,
                opts.i32(4, "dilation_w_factor", 1)?,
                opts.i32(5, "dilation_h_factor", 1)?,
            )
        };
        let activation = fused(act_code)?;
        let check = |v: i32, what: &str| -> Result<u16> {
            u16::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .with_context(|| format!("{what} {v} must be in 1..=65535"))
        };
        let (sh, sw, dh, dw) = (
            check(stride_h, "stride_h")?,
            check(stride_w, "stride_w")?,
            check(dil_h, "dilation_h_factor")?,
            check(dil_w, "dilation_w_factor")?,
        );
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if xd.shape.rank != 4 || yd.shape.rank != 4 {
            bail!("input and output must be rank-4 NHWC");
        }
        let (xi, yo) = (xd.shape.nhwc(), yd.shape.nhwc());
        let out_c = yo.c;
        let (filter, wscales, fdims) = if depthwise {
            self.weights(self.input(o, 1)?, 4, out_c, 3)?
        } else {
            self.weights(self.input(o, 1)?, 4, out_c, 0)?
        };
        let (kh, kw) = (fdims[1], fdims[2]);
        let depth_multiplier = if depthwise {
            if fdims[0] != 1 || fdims[3] != out_c || xi.c == 0 || out_c % xi.c != 0 {
                bail!("depthwise filter shape {fdims:?} does not fit input channels {} and output channels {out_c}", xi.c);
            }
            out_c / xi.c
        } else {
            if fdims[0] != out_c || fdims[3] != xi.c {
                bail!(
                    "filter shape {fdims:?} does not fit input channels {} and output channels {out_c} (grouped convolution is not supported)",
                    xi.c
                );
            }
            1
        };
        let same = match padding {
            0 => true,
            1 => false,
            p => bail!("unknown padding {p}"),
        };
        let (oh, pad_top, pad_bottom) = padding_of(same, xi.h, kh, sh, dh);
        let (ow, pad_left, pad_right) = padding_of(same, xi.w, kw, sw, dw);
        if (oh, ow) != (yo.h, yo.w) || yo.n != xi.n {
            bail!(
                "output shape {:?} differs from the {}x{} that the padding, strides and dilation give",
                yd.shape.dims(),
                oh,
                ow
            );
        }
        let bias = self.bias(o, 2, out_c, dtype)?;
        let window = Window2d {
            kernel: [kh, kw],
            stride: [sh as usize, sw as usize],
            dilation: [dh as usize, dw as usize],
            pads: [pad_top, pad_left, pad_bottom, pad_right],
        };
        let (filter, bias_param) = (
            filter_param(&filter, &wscales, &fdims, depthwise),
            bias_param(&bias, xd.scale, &wscales, out_c),
        );
        let clamp = clamp(activation);
        let op = if depthwise {
            Op::DepthwiseConv2d {
                window,
                depth_multiplier,
                filter: filter.1,
                bias: bias_param,
                clamp,
            }
        } else {
            Op::Conv2d {
                window,
                filter: filter.1,
                bias: bias_param,
                clamp,
            }
        };
        self.push_weighted(op, vec![x], y, Some((filter.0, wscales)), Some(bias));
        Ok(())
    }

    /// TRANSPOSE_CONV (int8) as the ONNX importer runs ConvTranspose: a stride-1 CONV_2D whose
    /// output channels are the `sh x sw` phases of each output pixel (the kernel taps of a phase,
    /// reversed, zeros beyond the kernel), DEPTH_TO_SPACE and SLICE. The convolution's sums, bias and
    /// per-channel requantization are the ones TFLite's scatter computes for each output.
    fn transpose_conv(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 2)?)?;
        let y = self.single_output(o)?;
        if self.int_type(x, y)? != DType::I8 {
            bail!("int16x8 transposed convolutions are not supported");
        }
        // TransposeConvOptions: padding, stride_w, stride_h, fused_activation_function.
        let opts = self
            .options(o, 49, "TransposeConvOptions")?
            .context("missing transposed convolution options")?;
        let same = match opts.i8(0, "padding", 0)? {
            0 => true,
            1 => false,
            p => bail!("unknown padding {p}"),
        };
        let stride = |id, what| -> Result<usize> {
            let v = opts.i32(id, what, 0)?;
            usize::try_from(v)
                .ok()
                .filter(|&v| (1..=255).contains(&v))
                .with_context(|| format!("{what} {v} must be in 1..=255"))
        };
        let s = [stride(2, "stride_h")?, stride(1, "stride_w")?];
        let clamp = clamp(fused(opts.i8(3, "fused_activation_function", 0)?)?);
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if xd.shape.rank != 4 || yd.shape.rank != 4 {
            bail!("input and output must be rank-4 NHWC");
        }
        let (xi, yo) = (xd.shape.nhwc(), yd.shape.nhwc());
        let (m, c) = (yo.c, xi.c);
        let (filter, wscales, fdims) = self.weights(self.input(o, 1)?, 4, m, 0)?;
        if fdims[0] != m || fdims[3] != c || yo.n != xi.n {
            bail!("filter shape {fdims:?} does not fit input channels {c} and output channels {m}");
        }
        let k = [fdims[1], fdims[2]];
        // TFLite places input pixel `i` at output `i * s - pad`, the pad a forward convolution from
        // the output's size to the input's would have.
        let (mut lead, mut right) = ([0; 2], [0; 2]);
        for a in 0..2 {
            let (input, out) = ([xi.h, xi.w][a], [yo.h, yo.w][a]);
            let (forward, before, _) = padding(same, out, k[a], s[a], 1);
            if forward != input {
                bail!(
                    "output {:?} does not give input {:?} as a forward convolution (padding {}, strides {s:?})",
                    yd.shape.dims(),
                    xd.shape.dims(),
                    if same { "SAME" } else { "VALID" }
                );
            }
            lead[a] = before;
            right[a] = ((out - 1 + before) / s[a] + 1).saturating_sub(input);
        }
        let phases = s[0] * s[1];
        let ([jh, jw], list) = crate::import::transposed_taps(k, s);
        let mut phased = vec![0i8; phases * m * jh * jw * c];
        for (ph, [mh, mw], [th, tw]) in list {
            for oc in 0..m {
                let to = (((ph * m + oc) * jh + mh) * jw + mw) * c;
                let from = ((oc * k[0] + th) * k[1] + tw) * c;
                phased[to..to + c].copy_from_slice(&filter[from..from + c]);
            }
        }
        let repeat = |v: &[f32]| -> Vec<f32> {
            if v.len() == 1 {
                v.to_vec()
            } else {
                (0..phases).flat_map(|_| v.iter().copied()).collect()
            }
        };
        let scales = repeat(&wscales);
        let bias = self.bias(o, 3, m, DType::I8)?;
        let bias: Vec<i64> = if bias.is_empty() {
            bias
        } else {
            (0..phases).flat_map(|_| bias.iter().copied()).collect()
        };
        let dims = vec![phases * m, jh, jw, c];
        let (phased, filter_param) = filter_param(&phased, &scales, &dims, false);
        let conv = Op::Conv2d {
            window: Window2d {
                kernel: [jh, jw],
                stride: [1, 1],
                dilation: [1, 1],
                pads: [jh - 1, jw - 1, right[0], right[1]],
            },
            filter: filter_param,
            bias: bias_param(&bias, xd.scale, &scales, phases * m),
            clamp,
        };
        let (ph, pw) = (xi.h + right[0], xi.w + right[1]);
        let phase_out = self.intermediate(y, "phases", &[xi.n, ph, pw, phases * m])?;
        self.push_weighted(conv, vec![x], phase_out, Some((phased, scales)), Some(bias));
        let whole = [ph * s[0], pw * s[1]] == [yo.h, yo.w] && lead == [0, 0];
        let placed = if whole {
            y
        } else {
            self.intermediate(y, "placed", &[xi.n, ph * s[0], pw * s[1], m])?
        };
        let place = Op::DepthToSpace {
            block: s,
            crd: false,
        };
        self.push(place, vec![phase_out], placed);
        if !whole {
            let crop = Op::Slice {
                begin: vec![0, lead[0], lead[1], 0],
                size: vec![yo.n, yo.h, yo.w, m],
            };
            self.push(crop, vec![placed], y);
        }
        Ok(())
    }

    /// A new value between the IR nodes of one operator, typed and quantized as `like` (the
    /// operator's output), named after it.
    fn intermediate(&mut self, like: ValueId, suffix: &str, dims: &[usize]) -> Result<ValueId> {
        let def = self.def(like).clone();
        let shape = Shape::new(dims)
            .with_context(|| format!("intermediate shape {dims:?} beyond the runtime's limits"))?;
        u16::try_from(self.defs.len()).context("more than 65535 tensors")?;
        let name = format!("{}/{suffix}", def.name);
        self.defs.push(TensorDef {
            name: name.clone(),
            shape,
            ..def
        });
        Ok(self.graph.add_value(name, dims.to_vec()))
    }

    fn fully_connected(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let dtype = self.int_type(x, y)?;
        let opts = self.options(o, 8, "FullyConnectedOptions")?;
        let (act_code, format) = match &opts {
            Some(t) => (
                t.i8(0, "fused_activation_function", 0)?,
                t.i8(1, "weights_format", 0)?,
            ),
            None => (0, 0),
        };
        if format != 0 {
            bail!("shuffled weights format {format} is not supported");
        }
        let activation = fused(act_code)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        let out = yd.shape.last();
        let (filter, wscales, fdims) = self.weights(self.input(o, 1)?, 2, out, 0)?;
        let in_elems = xd.shape.elements().unwrap_or(0);
        if fdims[0] != out
            || in_elems % fdims[1] != 0
            || yd.shape.elements() != Some(in_elems / fdims[1] * out)
        {
            bail!(
                "weights {fdims:?} do not fit input {:?} and output {:?}",
                xd.shape.dims(),
                yd.shape.dims()
            );
        }
        let bias = self.bias(o, 2, out, dtype)?;
        let (filter, bias_param) = (
            filter_param(&filter, &wscales, &fdims, false),
            bias_param(&bias, xd.scale, &wscales, out),
        );
        let op = Op::FullyConnected {
            filter: filter.1,
            bias: bias_param,
            clamp: clamp(activation),
        };
        self.push_weighted(op, vec![x], y, Some((filter.0, wscales)), Some(bias));
        Ok(())
    }

    /// A constant operand of one int8 value: the value and its quantization; `None` for an
    /// activation.
    fn constant_value(&self, t: i32) -> Result<Option<ConstValue>> {
        let i = self.tensor_index(t)?;
        let data = self.model.data(i);
        if data.is_empty() {
            return Ok(None);
        }
        let tensor = &self.model.tensors[i];
        if tensor.dtype != tensor_type::INT8 || data.len() != 1 {
            bail!(
                "tensor {i} ({}) is a constant operand of {} bytes of type {}; a constant operand \
                 must be one int8 value (of an int8 model)",
                tensor.name,
                data.len(),
                tensor_type::name(tensor.dtype)
            );
        }
        let (scale, zero_point) = self.quant(i)?;
        Ok(Some((data[0] as i8, scale, zero_point)))
    }

    /// An int8 operator of an activation and a constant value (operand `first` or the other) as a
    /// table of TFLite Micro's results ([`crate::ir::ConstOperand`]).
    fn with_constant(
        &mut self,
        o: &Operator<'a>,
        arith: ConstArith,
        (value, scale, zero_point): ConstValue,
        first: bool,
        clamp: Clamp,
    ) -> Result<()> {
        let x = self.act(self.input(o, if first { 1 } else { 0 })?)?;
        let y = self.single_output(o)?;
        self.require_i8(x, "input")?;
        self.require_i8(y, "output")?;
        if self.def(x).shape != self.def(y).shape {
            bail!(
                "input {:?} and output {:?} differ in shape",
                self.def(x).shape.dims(),
                self.def(y).shape.dims()
            );
        }
        let extremum = matches!(arith, ConstArith::Maximum | ConstArith::Minimum);
        let (xd, yd) = (self.def(x), self.def(y));
        let same = |s: f32, z: i32| s == yd.scale && z == yd.zero_point;
        if extremum && !(same(xd.scale, xd.zero_point) && same(scale, zero_point)) {
            bail!(
                "the input (scale {}, zero point {}), the constant (scale {scale}, zero point \
                 {zero_point}) and the output (scale {}, zero point {}) must share one \
                 quantization: TFLite Micro compares their raw values",
                xd.scale,
                xd.zero_point,
                yd.scale,
                yd.zero_point
            );
        }
        let k = ConstOperand {
            op: arith,
            value,
            scale,
            zero_point,
            first,
            clamp,
        };
        self.push(
            Op::Lookup {
                f: UnaryFn::WithConstant(k),
            },
            vec![x],
            y,
        );
        Ok(())
    }

    /// Which operand of a binary operator is a constant value, if one is (both: an error).
    fn constant_operand(&self, o: &Operator<'a>) -> Result<Option<(ConstValue, bool)>> {
        match (
            self.constant_value(self.input(o, 0)?)?,
            self.constant_value(self.input(o, 1)?)?,
        ) {
            (None, None) => Ok(None),
            (Some(c), None) => Ok(Some((c, true))),
            (None, Some(c)) => Ok(Some((c, false))),
            (Some(_), Some(_)) => bail!("both operands are constants"),
        }
    }

    /// ADD, SUB or MUL (`code`), with its fused activation.
    fn binary(&mut self, o: &Operator<'a>, code: i32) -> Result<()> {
        let constant = self.constant_operand(o)?;
        let opts = match code {
            op::MUL => self.options(o, 21, "MulOptions")?,
            op::SUB => self.options(o, 28, "SubOptions")?,
            _ => self.options(o, 11, "AddOptions")?,
        };
        let activation = fused(match &opts {
            Some(t) => t.i8(0, "fused_activation_function", 0)?,
            None => 0,
        })?;
        let clamp = clamp(activation);
        if let Some((c, first)) = constant {
            let arith = match code {
                op::MUL => ConstArith::Mul,
                op::SUB => ConstArith::Sub,
                _ => ConstArith::Add,
            };
            return self.with_constant(o, arith, c, first, clamp);
        }
        let a = self.act(self.input(o, 0)?)?;
        let b = self.act(self.input(o, 1)?)?;
        let y = self.single_output(o)?;
        self.int_type(a, y)?;
        self.int_type(b, y)?;
        let op = match code {
            op::MUL => Op::Mul { clamp },
            op::SUB => Op::Sub { clamp },
            _ => Op::Add { clamp },
        };
        self.push(op, vec![a, b], y);
        Ok(())
    }

    /// MAXIMUM or MINIMUM of two activations (TFLite gives both the output's quantization; one
    /// quantized otherwise is requantized by the lowering), or of an activation and a constant
    /// value.
    fn extremum(&mut self, o: &Operator<'a>, max: bool) -> Result<()> {
        if let Some((c, first)) = self.constant_operand(o)? {
            let arith = if max {
                ConstArith::Maximum
            } else {
                ConstArith::Minimum
            };
            return self.with_constant(o, arith, c, first, Clamp::NONE);
        }
        let a = self.act(self.input(o, 0)?)?;
        let b = self.act(self.input(o, 1)?)?;
        let y = self.single_output(o)?;
        self.int_type(a, y)?;
        self.int_type(b, y)?;
        let op = if max { Op::Maximum } else { Op::Minimum };
        self.push(op, vec![a, b], y);
        Ok(())
    }

    fn pool(&mut self, o: &Operator<'a>, max: bool) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.int_type(x, y)?;
        let opts = self
            .options(o, 5, "Pool2DOptions")?
            .context("missing Pool2DOptions")?;
        let same = match opts.i8(0, "padding", 0)? {
            0 => true,
            1 => false,
            p => bail!("unknown padding {p}"),
        };
        let get = |id, what: &str| -> Result<u16> {
            let v = opts.i32(id, what, 0)?;
            u16::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .with_context(|| format!("{what} {v} must be in 1..=65535"))
        };
        let (sw, sh, fw, fh) = (
            get(1, "stride_w")?,
            get(2, "stride_h")?,
            get(3, "filter_width")?,
            get(4, "filter_height")?,
        );
        let activation = fused(opts.i8(5, "fused_activation_function", 0)?)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if xd.shape.rank != 4 || yd.shape.rank != 4 {
            bail!("input and output must be rank-4 NHWC");
        }
        if xd.scale != yd.scale || xd.zero_point != yd.zero_point {
            bail!(
                "input ({}, {}) and output ({}, {}) quantization differ; TFLite pooling keeps the input's",
                xd.scale,
                xd.zero_point,
                yd.scale,
                yd.zero_point
            );
        }
        let (xi, yo) = (xd.shape.nhwc(), yd.shape.nhwc());
        let (oh, pad_top, pad_bottom) = padding_of(same, xi.h, fh as usize, sh, 1);
        let (ow, pad_left, pad_right) = padding_of(same, xi.w, fw as usize, sw, 1);
        if (oh, ow, xi.n, xi.c) != (yo.h, yo.w, yo.n, yo.c) {
            bail!(
                "output shape {:?} differs from the {oh}x{ow} the padding and strides give",
                yd.shape.dims()
            );
        }
        let window = Window2d {
            kernel: [fh as usize, fw as usize],
            stride: [sh as usize, sw as usize],
            dilation: [1, 1],
            pads: [pad_top, pad_left, pad_bottom, pad_right],
        };
        let clamp = clamp(activation);
        let op = if max {
            Op::MaxPool2d { window, clamp }
        } else {
            Op::AveragePool2d { window, clamp }
        };
        self.push(op, vec![x], y);
        Ok(())
    }

    /// Constant int32/int64 tensor values.
    fn const_ints(&self, t: i32) -> Result<Vec<i64>> {
        let t = self.tensor_index(t)?;
        let tensor = &self.model.tensors[t];
        let data = self.model.data(t);
        let values: Vec<i64> = match tensor.dtype {
            tensor_type::INT32 => data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
            tensor_type::INT64 => data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            other => bail!(
                "tensor {} has type {}; expected constant int32 or int64 values",
                tensor.name,
                tensor_type::name(other)
            ),
        };
        let expected = tensor
            .shape
            .iter()
            .try_fold(1i64, |a, &d| a.checked_mul(d as i64));
        if data.is_empty() || Some(values.len() as i64) != expected {
            bail!(
                "tensor {} must be a constant with as many values as its shape {:?} holds",
                tensor.name,
                tensor.shape
            );
        }
        Ok(values)
    }

    fn mean(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.int_type(x, y)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if xd.shape.rank != 4 {
            bail!(
                "MEAN is supported over H and W of a rank-4 input; the input has rank {}",
                xd.shape.rank
            );
        }
        let mut axes: Vec<i64> = self
            .const_ints(self.input(o, 1)?)?
            .into_iter()
            .map(|a| if a < 0 { a + 4 } else { a })
            .collect();
        axes.sort_unstable();
        axes.dedup();
        if axes != [1, 2] {
            bail!("MEAN over axes {axes:?} is not supported; only over H and W (axes 1 and 2) of NHWC");
        }
        let xi = xd.shape.nhwc();
        if yd.shape.elements() != Some(xi.n * xi.c) || yd.shape.last() != xi.c {
            bail!(
                "output shape {:?} is not N x C (or N x 1 x 1 x C)",
                yd.shape.dims()
            );
        }
        let keep_dims = yd.shape.rank == 4;
        self.push(Op::Mean { keep_dims }, vec![x], y);
        Ok(())
    }

    fn softmax(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let dtype = self.int_type(x, y)?;
        let beta = match self.options(o, 9, "SoftmaxOptions")? {
            Some(t) => t.f32(0, "beta", 0.0)?,
            None => 0.0,
        };
        if !(beta.is_finite() && beta > 0.0) {
            bail!("beta {beta} must be positive and finite");
        }
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        let (scale, zero_point) = match dtype {
            DType::I16 => (1.0 / 32768.0, 0),
            _ => (1.0 / 256.0, -128),
        };
        if yd.scale != scale || yd.zero_point != zero_point {
            bail!(
                "{dtype} SOFTMAX output must have scale 1/{} and zero point {zero_point}, found ({}, {})",
                1.0 / scale,
                yd.scale,
                yd.zero_point
            );
        }
        if xd.shape != yd.shape {
            bail!("input and output shapes differ");
        }
        self.push(Op::Softmax { beta }, vec![x], y);
        Ok(())
    }

    fn sigmoid(&mut self, o: &Operator<'a>, tanh: bool) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let dtype = self.int_type(x, y)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        let name = if tanh { "TANH" } else { "LOGISTIC" };
        let (scale, zp) = match (dtype, tanh) {
            (DType::I16, _) => (1.0 / 32768.0, 0),
            (_, true) => (1.0 / 128.0, 0),
            (_, false) => (1.0 / 256.0, -128),
        };
        if yd.scale != scale || yd.zero_point != zp {
            bail!(
                "{dtype} {name} output must have scale 1/{} and zero point {zp}, found ({}, {})",
                1.0 / scale,
                yd.scale,
                yd.zero_point
            );
        }
        if xd.shape.elements() != yd.shape.elements() {
            bail!("input and output sizes differ");
        }
        self.push(if tanh { Op::Tanh } else { Op::Logistic }, vec![x], y);
        Ok(())
    }

    fn relu(&mut self, o: &Operator<'a>, activation: Activation) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.int_type(x, y)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if xd.shape.elements() != yd.shape.elements() {
            bail!("input and output sizes differ");
        }
        let clamp = clamp(activation);
        self.push(Op::Relu { clamp }, vec![x], y);
        Ok(())
    }

    fn leaky_relu(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.int_type(x, y)?;
        let alpha = match self.options(o, 75, "LeakyReluOptions")? {
            Some(t) => t.f32(0, "alpha", 0.0)?,
            None => 0.0,
        };
        if !(alpha.is_finite() && alpha >= 0.0) {
            bail!("alpha {alpha} must be at least 0 and finite");
        }
        if self.def(x).shape.elements() != self.def(y).shape.elements() {
            bail!("input and output sizes differ");
        }
        self.push(Op::LeakyRelu { alpha }, vec![x], y);
        Ok(())
    }

    /// int8 HARD_SWISH: a table of TFLite Micro's integer results (`Op::table` for a TFLite import).
    fn hard_swish(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.require_i8(x, "input")?;
        self.require_i8(y, "output")?;
        if self.def(x).shape.elements() != self.def(y).shape.elements() {
            bail!("input and output sizes differ");
        }
        // TFLite Micro's Prepare refuses an output multiplier of 1 or more.
        let (xs, ys) = (self.def(x).scale, self.def(y).scale);
        let m = (1.0f32 / 128.0) * xs / ys;
        if ferrite_runtime::quant::prepare::quantize_multiplier(m as f64).shift > 0 {
            bail!(
                "output scale {ys} is below the input scale {xs} / 128 (TFLite Micro refuses it)"
            );
        }
        self.push(
            Op::Lookup {
                f: crate::ir::UnaryFn::HardSwish,
            },
            vec![x],
            y,
        );
        Ok(())
    }

    /// PRELU with a constant int8 alpha of one value or one per channel (the last axis), kept with
    /// its quantization for the lowering; the IR's slope is its dequantized values.
    fn prelu(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.require_i8(x, "input")?;
        self.require_i8(y, "output")?;
        if self.def(x).shape != self.def(y).shape {
            bail!("input and output shapes differ");
        }
        let channels = self.def(x).shape.last();
        let t = self.tensor_index(self.input(o, 1)?)?;
        let tensor = &self.model.tensors[t];
        let data = self.model.data(t);
        if tensor.dtype != tensor_type::INT8 || data.is_empty() {
            bail!(
                "alpha {} must be a constant int8 tensor (it is {}{})",
                tensor.name,
                tensor_type::name(tensor.dtype),
                if data.is_empty() {
                    ", computed at run time"
                } else {
                    ""
                }
            );
        }
        let dims: Vec<usize> = tensor.shape.iter().map(|&d| d.max(0) as usize).collect();
        let (last, lead) = dims.split_last().map_or((1, &[][..]), |(l, r)| (*l, r));
        let elems = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if lead.iter().any(|&d| d != 1)
            || (last != 1 && last != channels)
            || Some(data.len()) != elems
        {
            bail!(
                "alpha {} has shape {:?}; one value, or one per channel ({channels}) of the last axis, is supported",
                tensor.name,
                tensor.shape
            );
        }
        let (scale, zero_point) = match &tensor.quantization {
            Some(q) if q.scale.len() == 1 && q.zero_point.len() <= 1 => {
                (q.scale[0], q.zero_point.first().copied().unwrap_or(0))
            }
            _ => bail!(
                "alpha {} needs one scale and zero point (per-tensor quantization)",
                tensor.name
            ),
        };
        if !(scale.is_finite() && scale > 0.0 && (-128..=127).contains(&zero_point)) {
            bail!(
                "alpha {} has scale {scale} and zero point {zero_point}; a positive finite scale and a zero point in -128..=127 are required",
                tensor.name
            );
        }
        let q: Vec<i8> = data.iter().map(|&b| b as i8).collect();
        let slope = q
            .iter()
            .map(|&v| scale * (v as i32 - zero_point as i32) as f32)
            .collect();
        let op = Op::PRelu {
            slope: Param::new(vec![q.len()], slope),
        };
        self.push_weighted(op, vec![x], y, Some((q, vec![scale])), None);
        Ok(())
    }

    fn reshape(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if xd.shape.elements() != yd.shape.elements() || xd.dtype != yd.dtype {
            bail!(
                "input {:?} and output {:?} differ in size or type",
                xd.shape.dims(),
                yd.shape.dims()
            );
        }
        if xd.scale != yd.scale || xd.zero_point != yd.zero_point {
            bail!("input and output quantization differ; a reshape cannot requantize");
        }
        let shape = yd.shape.dims().iter().map(|&d| d as usize).collect();
        self.push(Op::Reshape { shape }, vec![x], y);
        Ok(())
    }

    /// The IR's Slice of `x` from `begin` with `size` elements per axis into `y`, then a reshape to
    /// `y`'s dims where they drop axes of one element (STRIDED_SLICE's `shrink_axis_mask`). A
    /// slice copies elements: `y` keeps `x`'s quantization.
    fn push_slice(
        &mut self,
        x: ValueId,
        begin: Vec<usize>,
        size: Vec<usize>,
        y: ValueId,
    ) -> Result<()> {
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        keeps_input_quantization(&xd, &yd)?;
        let dims: Vec<usize> = xd.shape.dims().iter().map(|&d| d as usize).collect();
        if size.contains(&0) {
            bail!("slices to an empty tensor");
        }
        if begin[0] != 0 || size[0] != dims[0] {
            bail!("slices the batch (axis 0)");
        }
        let out: Vec<usize> = yd.shape.dims().iter().map(|&d| d as usize).collect();
        let kept: Vec<usize> = size.iter().copied().filter(|&s| s != 1).collect();
        let out_kept: Vec<usize> = out.iter().copied().filter(|&s| s != 1).collect();
        if kept != out_kept {
            bail!("slice of size {size:?} does not give the output's dims {out:?}");
        }
        if size == out {
            self.push(Op::Slice { begin, size }, vec![x], y);
        } else {
            let boxed = self.intermediate(y, "box", &size)?;
            self.push(Op::Slice { begin, size }, vec![x], boxed);
            self.push(Op::Reshape { shape: out }, vec![boxed], y);
        }
        Ok(())
    }

    /// SLICE: constant begin and size (-1: to the end of the axis).
    fn slice(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let dims: Vec<i64> = self.def(x).shape.dims().iter().map(|&d| d as i64).collect();
        let (begin, size) = (
            self.const_ints(self.input(o, 1)?)?,
            self.const_ints(self.input(o, 2)?)?,
        );
        if begin.len() != dims.len() || size.len() != dims.len() {
            bail!(
                "begin {begin:?} and size {size:?} for an input of rank {}",
                dims.len()
            );
        }
        let mut b = Vec::new();
        let mut n = Vec::new();
        for a in 0..dims.len() {
            let inside = |v: i64| (0..=dims[a]).contains(&v);
            let len = if size[a] == -1 {
                dims[a] - begin[a].clamp(0, dims[a])
            } else {
                size[a]
            };
            if !inside(begin[a]) || !inside(len) || begin[a] + len > dims[a] {
                bail!("begin {begin:?} and size {size:?} outside the input's dims {dims:?}");
            }
            b.push(begin[a] as usize);
            n.push(len as usize);
        }
        self.push_slice(x, b, n, y)
    }

    /// STRIDED_SLICE with strides of 1: constant begin and end (negative counting from the end,
    /// clamped to the axis), `begin_mask` and `end_mask` (the whole axis), `shrink_axis_mask` (one
    /// element, the axis dropped). Other strides, `ellipsis_mask`, `new_axis_mask` and `offset` are
    /// refused by name.
    fn strided_slice(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let dims: Vec<i64> = self.def(x).shape.dims().iter().map(|&d| d as i64).collect();
        let begin = self.const_ints(self.input(o, 1)?)?;
        let end = self.const_ints(self.input(o, 2)?)?;
        let strides = match o.inputs.get(3) {
            Some(&t) if t >= 0 => self.const_ints(t)?,
            _ => vec![1; dims.len()],
        };
        let rank = dims.len();
        if begin.len() != rank || end.len() != rank || strides.len() != rank {
            bail!(
                "begin {begin:?}, end {end:?} and strides {strides:?} for an input of rank {rank}"
            );
        }
        if strides.iter().any(|&s| s != 1) {
            bail!("strides {strides:?} (only strides of 1 are supported)");
        }
        let opts = self.options(o, 32, "StridedSliceOptions")?;
        let field = |id, what: &str| -> Result<i32> {
            match &opts {
                Some(t) => t.i32(id, what, 0),
                None => Ok(0),
            }
        };
        let (begin_mask, end_mask) = (field(0, "begin_mask")?, field(1, "end_mask")?);
        let (ellipsis, new_axis, shrink) = (
            field(2, "ellipsis_mask")?,
            field(3, "new_axis_mask")?,
            field(4, "shrink_axis_mask")?,
        );
        let offset = match &opts {
            Some(t) => t.bool(5, "offset")?,
            None => false,
        };
        if ellipsis != 0 || new_axis != 0 || offset {
            bail!("ellipsis_mask, new_axis_mask and offset are not supported");
        }
        let mut b = Vec::new();
        let mut n = Vec::new();
        for a in 0..rank {
            let bit = |mask: i32| mask >> a & 1 != 0;
            let at = |v: i64| if v < 0 { v + dims[a] } else { v }.clamp(0, dims[a]);
            let start = if bit(begin_mask) { 0 } else { at(begin[a]) };
            let stop = if bit(shrink) {
                start + 1
            } else if bit(end_mask) {
                dims[a]
            } else {
                at(end[a])
            };
            if stop <= start || stop > dims[a] {
                bail!("begin {begin:?} and end {end:?} select nothing of axis {a} of {dims:?}");
            }
            b.push(start as usize);
            n.push((stop - start) as usize);
        }
        self.push_slice(x, b, n, y)
    }

    /// SPLIT (a constant axis first, then the input; equal parts) and SPLIT_V (the input, constant
    /// sizes, one of them possibly -1, then the axis): one Slice per output.
    fn split(&mut self, o: &Operator<'a>, sized: bool) -> Result<()> {
        let (x, axis) = if sized {
            (self.input(o, 0)?, self.const_ints(self.input(o, 2)?)?)
        } else {
            (self.input(o, 1)?, self.const_ints(self.input(o, 0)?)?)
        };
        let x = self.act(x)?;
        let dims: Vec<i64> = self.def(x).shape.dims().iter().map(|&d| d as i64).collect();
        let rank = dims.len() as i64;
        let axis = match axis[..] {
            [a] if (-rank..rank).contains(&a) => (if a < 0 { a + rank } else { a }) as usize,
            _ => bail!("axis {axis:?} for an input of rank {rank}"),
        };
        let parts = o.outputs.len() as i64;
        let mut sizes = if sized {
            self.const_ints(self.input(o, 1)?)?
        } else {
            if parts == 0 || dims[axis] % parts != 0 {
                bail!("{parts} equal parts of axis {axis} of {dims:?}");
            }
            vec![dims[axis] / parts; parts as usize]
        };
        // Each size within the axis (or -1) before any sum, so that no sum overflows.
        let valid = sizes
            .iter()
            .all(|&v| v == -1 || (1..=dims[axis]).contains(&v));
        if let Some(i) = sizes.iter().position(|&v| v == -1).filter(|_| valid) {
            let rest: i64 = sizes.iter().filter(|&&v| v != -1).sum();
            sizes[i] = dims[axis] - rest;
        }
        if !valid
            || sizes.len() as i64 != parts
            || sizes.iter().any(|&v| v <= 0)
            || sizes.iter().sum::<i64>() != dims[axis]
        {
            bail!("sizes {sizes:?} for {parts} outputs of axis {axis} of {dims:?}");
        }
        let mut start = 0;
        for (&t, &len) in o.outputs.iter().zip(&sizes) {
            let y = self.act(t)?;
            let mut begin = vec![0; dims.len()];
            let mut size: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
            begin[axis] = start as usize;
            size[axis] = len as usize;
            self.push_slice(x, begin, size, y)?;
            start += len;
        }
        Ok(())
    }

    fn concatenation(&mut self, o: &Operator<'a>) -> Result<()> {
        let y = self.single_output(o)?;
        let yd = self.def(y).clone();
        let (axis, act) = match self.options(o, 10, "ConcatenationOptions")? {
            Some(t) => (
                t.i32(0, "axis", 0)?,
                t.i8(1, "fused_activation_function", 0)?,
            ),
            None => (0, 0),
        };
        if act != 0 {
            bail!("a fused activation on CONCATENATION is not supported");
        }
        let rank = yd.shape.rank as i32;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            bail!("axis {axis} is outside the output's rank {rank}");
        }
        if o.inputs.is_empty() {
            bail!("has no inputs");
        }
        let mut inputs = Vec::new();
        for &t in &o.inputs {
            let x = self.act(t)?;
            let xd = self.def(x);
            if xd.dtype != yd.dtype {
                bail!("inputs and output differ in type");
            }
            // TFLite Micro copies int16 inputs without rescaling (the converter gives them the
            // output's scale); one with another scale would be copied wrongly.
            if xd.dtype == DType::I16 && xd.scale != yd.scale {
                bail!(
                    "int16 input {} has scale {} and the output {}; int16 CONCATENATION needs equal scales",
                    xd.name,
                    xd.scale,
                    yd.scale
                );
            }
            inputs.push(x);
        }
        let axis = axis as usize;
        self.push(Op::Concatenation { axis }, inputs, y);
        Ok(())
    }

    /// PAD, or with `mirror` MIRROR_PAD (REFLECT or SYMMETRIC).
    fn pad(&mut self, o: &Operator<'a>, mirror: bool) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        keeps_input_quantization(&xd, &yd)?;
        let pads = self.const_ints(self.input(o, 1)?)?;
        let rank = xd.shape.rank as usize;
        if pads.len() != 2 * rank || yd.shape.rank as usize != rank {
            bail!("paddings must be a [{rank}, 2] constant");
        }
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for d in 0..rank {
            let (pre, post) = (pads[2 * d], pads[2 * d + 1]);
            let (i, out) = (xd.shape.dims()[d] as i64, yd.shape.dims()[d] as i64);
            if pre < 0
                || post < 0
                || i.checked_add(pre).and_then(|v| v.checked_add(post)) != Some(out)
            {
                bail!("paddings ({pre}, {post}) of dimension {d} do not turn {i} into {out}");
            }
            before.push(pre as usize);
            after.push(post as usize);
        }
        let op = if mirror {
            let mode = match self.options(o, 77, "MirrorPadOptions")? {
                Some(t) => t.i8(0, "mode", 0)?,
                None => 0,
            };
            let mode = match mode {
                0 => PadMode::Reflect,
                1 => PadMode::Symmetric,
                m => bail!("mirror pad mode {m} (0 REFLECT or 1 SYMMETRIC)"),
            };
            Op::MirrorPad {
                before,
                after,
                mode,
            }
        } else {
            Op::Pad { before, after }
        };
        self.push(op, vec![x], y);
        Ok(())
    }

    /// RESIZE_NEAREST_NEIGHBOR, when TFLite's float index arithmetic (with the model's corner and
    /// half-pixel flags) picks the rows the runtime's `floor(y * in / out)` does: always for whole
    /// upsampling factors; anything else is refused by name.
    fn resize_nearest(&mut self, o: &Operator<'a>) -> Result<()> {
        // ResizeNearestNeighborOptions: align_corners, half_pixel_centers.
        let r = self.resize(o, 74, "ResizeNearestNeighborOptions", 0)?;
        let (x, y, i, out) = (r.input, r.output, r.input_dims, r.output_dims);
        let (align_corners, half_pixel) = (r.align_corners, r.half_pixel_centers);
        for d in [1, 2] {
            let (isz, osz) = (i[d] as usize, out[d] as usize);
            for v in 0..osz {
                let source = tflite_nearest(v, isz, osz, align_corners, half_pixel);
                if source != v * isz / osz {
                    bail!(
                        "from {isz} to {osz} (align_corners {align_corners}, half_pixel_centers {half_pixel}) reads row {source} for output {v}; the runtime reads floor({v} * {isz} / {osz}) (whole upsampling factors are supported)"
                    );
                }
            }
        }
        let size = [out[1] as usize, out[2] as usize];
        self.push(Op::ResizeNearest { size }, vec![x], y);
        Ok(())
    }

    /// RESIZE_BILINEAR with its corner and half-pixel flags: the runtime's kernel is TFLite's.
    fn resize_bilinear(&mut self, o: &Operator<'a>) -> Result<()> {
        // ResizeBilinearOptions: new_height and new_width (deprecated), align_corners,
        // half_pixel_centers.
        let r = self.resize(o, 15, "ResizeBilinearOptions", 2)?;
        if r.align_corners && r.half_pixel_centers {
            bail!("align_corners and half_pixel_centers together");
        }
        let mode = BilinearMode {
            align_corners: r.align_corners,
            half_pixel_centers: r.half_pixel_centers,
        };
        let size = [r.output_dims[1] as usize, r.output_dims[2] as usize];
        self.push(Op::ResizeBilinear { size, mode }, vec![r.input], r.output);
        Ok(())
    }

    /// A resize's operands and flags, from options of type `options` whose `align_corners` is
    /// field `first` and `half_pixel_centers` the next: NHWC input and output of the same batch,
    /// channels and quantization.
    fn resize(
        &mut self,
        o: &Operator<'a>,
        options: u8,
        what: &str,
        first: usize,
    ) -> Result<Resize> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        keeps_input_quantization(&xd, &yd)?;
        let (i, out) = (xd.shape.dims(), yd.shape.dims());
        if xd.shape.rank != 4 || yd.shape.rank != 4 || i[0] != out[0] || i[3] != out[3] {
            bail!("input and output must be NHWC of the same batch and channels");
        }
        let (align_corners, half_pixel_centers) = match self.options(o, options, what)? {
            Some(t) => (
                t.bool(first, "align_corners")?,
                t.bool(first + 1, "half_pixel_centers")?,
            ),
            None => (false, false),
        };
        Ok(Resize {
            input: x,
            output: y,
            input_dims: i.to_vec(),
            output_dims: out.to_vec(),
            align_corners,
            half_pixel_centers,
        })
    }

    /// DEPTH_TO_SPACE by square blocks, in TFLite's channel order.
    fn depth_to_space(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        keeps_input_quantization(&xd, &yd)?;
        let block = match self.options(o, 94, "DepthToSpaceOptions")? {
            Some(t) => t.i32(0, "block_size", 0)?,
            None => 0,
        };
        let b = usize::try_from(block)
            .ok()
            .filter(|b| (1..=255).contains(b))
            .with_context(|| format!("block_size {block} (1 to 255)"))?;
        let dims = |d: &[u16]| d.iter().map(|&v| v as usize).collect::<Vec<_>>();
        let (i, out) = (dims(xd.shape.dims()), dims(yd.shape.dims()));
        if xd.shape.rank != 4
            || yd.shape.rank != 4
            || i[3] % (b * b) != 0
            || out != [i[0], i[1] * b, i[2] * b, i[3] / (b * b)]
        {
            bail!("output {out:?} is not input {i:?} in blocks of {b}x{b}");
        }
        let op = Op::DepthToSpace {
            block: [b, b],
            crd: false,
        };
        self.push(op, vec![x], y);
        Ok(())
    }

    /// TRANSPOSE by a constant permutation that keeps the batch first.
    fn transpose(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        keeps_input_quantization(&xd, &yd)?;
        let perm = self.const_ints(self.input(o, 1)?)?;
        let dims = |d: &[u16]| d.iter().map(|&v| v as usize).collect::<Vec<_>>();
        let (i, out) = (dims(xd.shape.dims()), dims(yd.shape.dims()));
        let perm: Vec<usize> = perm
            .iter()
            .map(|&p| usize::try_from(p).ok().filter(|&p| p < i.len()))
            .collect::<Option<_>>()
            .with_context(|| format!("perm {perm:?} for rank {}", i.len()))?;
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..i.len()).collect::<Vec<_>>()
            || perm.iter().map(|&p| i[p]).collect::<Vec<_>>() != out
        {
            bail!("output {out:?} is not input {i:?} transposed by {perm:?}");
        }
        if perm.first() != Some(&0) {
            bail!("perm {perm:?} moves the batch dimension (it must stay first)");
        }
        self.push(Op::Transpose { perm }, vec![x], y);
        Ok(())
    }

    fn quantize(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if !matches!(yd.dtype, DType::I8 | DType::I16) {
            bail!(
                "QUANTIZE to {} is not supported (int8 or int16 only)",
                yd.dtype
            );
        }
        if xd.shape.elements() != yd.shape.elements() {
            bail!("input and output sizes differ");
        }
        if !matches!(xd.dtype, DType::F32 | DType::I8 | DType::I16) {
            bail!("QUANTIZE from {} is not supported", xd.dtype);
        }
        self.push(Op::Identity, vec![x], y);
        Ok(())
    }

    fn dequantize(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        let integer = matches!(xd.dtype, DType::I8 | DType::I16);
        if !integer || yd.dtype != DType::F32 || xd.shape.elements() != yd.shape.elements() {
            bail!("DEQUANTIZE must turn int8 or int16 into float32 of the same size");
        }
        self.push(Op::Identity, vec![x], y);
        Ok(())
    }

    fn finish(mut self) -> Result<Imported> {
        let inputs: Vec<ValueId> = self
            .model
            .inputs
            .iter()
            .map(|&t| self.act(t).context("graph input"))
            .collect::<Result<_>>()?;
        let outputs: Vec<ValueId> = self
            .model
            .outputs
            .iter()
            .map(|&t| self.act(t).context("graph output"))
            .collect::<Result<_>>()?;
        self.graph.inputs = inputs;
        self.graph.outputs = outputs;
        let precision = self
            .defs
            .iter()
            .map(|d| match d.dtype {
                DType::I16 => Precision::Int16,
                DType::F32 => Precision::Float,
                _ => Precision::Int8,
            })
            .collect();
        let params = self
            .defs
            .iter()
            .map(|d| {
                (d.dtype == DType::I8).then_some(QParams {
                    scale: d.scale,
                    zero_point: d.zero_point,
                })
            })
            .collect();
        let int16_scales = self
            .defs
            .iter()
            .map(|d| (d.dtype == DType::I16).then_some(d.scale))
            .collect();
        Ok(Imported {
            graph: self.graph,
            precision,
            params,
            int16_scales,
            weights: self.weights,
            biases: self.biases,
        })
    }
}

/// The int8 filter and its dequantized IR parameter; scales are per output channel (the first
/// dimension, or the last for a depthwise filter) or one for the whole tensor.
fn filter_param(
    data: &[i8],
    scales: &[f32],
    dims: &[usize],
    channel_last: bool,
) -> (Vec<i8>, Param) {
    let channels = if channel_last {
        dims[dims.len() - 1]
    } else {
        dims[0]
    };
    let per = data.len() / channels;
    let real = data
        .iter()
        .enumerate()
        .map(|(k, &q)| {
            let c = if scales.len() == 1 {
                0
            } else if channel_last {
                k % channels
            } else {
                k / per
            };
            q as f32 * scales[c]
        })
        .collect();
    (data.to_vec(), Param::new(dims.to_vec(), real))
}

/// The IR parameter of an int32 bias (scale `input_scale * weight_scale[c]`); zeros when there is
/// none.
fn bias_param(bias: &[i64], input_scale: f32, scales: &[f32], channels: usize) -> Param {
    let real = (0..channels)
        .map(|c| {
            let s = scales[if scales.len() == 1 { 0 } else { c }];
            bias.get(c).map_or(0.0, |&b| b as f32 * input_scale * s)
        })
        .collect();
    Param::new(vec![channels], real)
}

/// Output size, leading and trailing padding of one spatial dimension (TFLite
/// `ComputePaddingHeightWidth`).
fn padding_of(
    same: bool,
    input: usize,
    filter: usize,
    stride: u16,
    dilation: u16,
) -> (usize, usize, usize) {
    padding(same, input, filter, stride as usize, dilation as usize)
}
