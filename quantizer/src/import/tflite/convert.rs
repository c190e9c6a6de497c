//! TFLite int8 model -> `.ferrite`: operators mapped one to one, parameters prepared as TFLite Micro's
//! Prepare computes them, weights borrowed from the file.

use anyhow::{anyhow, bail, Context, Result};
use ferrite_runtime::format::{Activation, DType, Operand, Seq, Shape, Window};
use ferrite_runtime::ops::{
    AddParams, Binary, ConcatInput, Concatenation, Conv, Dequantize, FullyConnected,
    LogisticParams, MeanParams, MulParams, Op, Pad, Pool, Quantize, Relu, ReluParams,
    RequantizeParams, Reshape, Softmax, SoftmaxParams, TanhParams, Unary,
};
use ferrite_runtime::quant::prepare::quantize_multiplier;

use super::flatbuf::Table;
use super::schema::{op, tensor_type, Model, Operator};
use crate::builder::{Built, ModelBuilder, TensorDef};

/// The operators the importer converts.
pub const SUPPORTED: &[&str] = &[
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "FULLY_CONNECTED",
    "LOGISTIC",
    "MAX_POOL_2D",
    "MEAN",
    "MUL",
    "PAD",
    "QUANTIZE",
    "RELU",
    "RELU6",
    "RELU_N1_TO_1",
    "RESHAPE",
    "SOFTMAX",
    "SQUEEZE",
    "TANH",
];

/// Converts a `.tflite` file's bytes to a planned `.ferrite` model.
pub fn convert(bytes: &[u8]) -> Result<Built> {
    let model = Model::parse(bytes)?;
    let mut cx = Converter::new(&model)?;
    for i in 0..model.operators.len() {
        let code = model.code(i)?;
        let name = if code.builtin == op::CUSTOM {
            format!("CUSTOM ({})", code.custom)
        } else {
            op::name(code.builtin)
        };
        cx.operator(i, code.builtin)
            .with_context(|| format!("operator {i} ({name})"))?;
    }
    let built = cx.finish(bytes)?;
    // Only hand out models the runtime loads.
    ferrite_runtime::Model::from_bytes(&built.bytes)
        .map_err(|e| anyhow!("the converted model fails the runtime's checks: {e}"))?;
    Ok(built)
}

/// An operator whose multiplier and shift arrays are owned until the builder borrows them.
struct Pending<'a> {
    op: Op<'a>,
    multiplier: Vec<u8>,
    shift: Vec<u8>,
}

struct Converter<'m, 'a> {
    model: &'m Model<'a>,
    defs: Vec<TensorDef>,
    /// TFLite tensor index -> Ferrite tensor index.
    map: Vec<Option<u16>>,
    ops: Vec<Pending<'a>>,
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

/// TFLite's `ComputePaddingHeightWidth` for one dimension: the output size and the leading padding
/// (the odd extra row or column of SAME padding goes after the input).
fn padding(
    same: bool,
    input: usize,
    filter: usize,
    stride: usize,
    dilation: usize,
) -> (usize, usize) {
    let effective = (filter - 1) * dilation + 1;
    let out = if same {
        input.div_ceil(stride)
    } else {
        (input + stride).saturating_sub(effective) / stride
    };
    let total = ((out.max(1) - 1) * stride + effective).saturating_sub(input);
    (out, total / 2)
}

fn le_i32s(values: impl Iterator<Item = i32>) -> Vec<u8> {
    values.flat_map(i32::to_le_bytes).collect()
}

impl<'m, 'a> Converter<'m, 'a> {
    fn new(model: &'m Model<'a>) -> Result<Self> {
        let has_int8 = model.tensors.iter().any(|t| t.dtype == tensor_type::INT8);
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
            ops: Vec::new(),
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

    /// Per-tensor `(scale, zero_point)` of an int8 tensor, checked.
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
        if !(-128..=127).contains(&zp) {
            bail!(
                "int8 tensor {t} ({}) has zero point {zp}, outside -128..=127",
                tensor.name
            );
        }
        Ok((scale, zp as i32))
    }

    /// The Ferrite tensor of an activation tensor (created on first use).
    fn act(&mut self, t: i32) -> Result<u16> {
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
            tensor_type::FLOAT32 => (DType::F32, 0.0, 0),
            other => bail!(
                "tensor {t} ({}) has type {}; activations must be int8 (or float32 around QUANTIZE/DEQUANTIZE)",
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
        self.defs.push(TensorDef {
            name: tensor.name.clone(),
            dtype,
            shape,
            scale,
            zero_point,
        });
        let i = u16::try_from(self.defs.len() - 1).context("more than 65535 tensors")?;
        self.map[t] = Some(i);
        Ok(i)
    }

    fn operand(&self, i: u16) -> Operand {
        let d = &self.defs[i as usize];
        Operand {
            tensor: i,
            offset: 0,
            shape: d.shape,
            dtype: d.dtype,
            zero_point: d.zero_point,
        }
    }

    fn def(&self, i: u16) -> &TensorDef {
        &self.defs[i as usize]
    }

    fn push(&mut self, op: Op<'a>) {
        self.ops.push(Pending {
            op,
            multiplier: Vec::new(),
            shift: Vec::new(),
        });
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

    fn single_output(&mut self, o: &Operator<'_>) -> Result<u16> {
        if o.outputs.len() != 1 {
            bail!("has {} outputs, expected 1", o.outputs.len());
        }
        self.act(o.outputs[0])
    }

    fn operator(&mut self, i: usize, code: i32) -> Result<()> {
        let o = self.model.operators[i].clone();
        match code {
            op::CONV_2D | op::DEPTHWISE_CONV_2D => self.conv(&o, code == op::DEPTHWISE_CONV_2D),
            op::FULLY_CONNECTED => self.fully_connected(&o),
            op::ADD | op::MUL => self.binary(&o, code == op::MUL),
            op::AVERAGE_POOL_2D | op::MAX_POOL_2D => self.pool(&o, code == op::MAX_POOL_2D),
            op::MEAN => self.mean(&o),
            op::SOFTMAX => self.softmax(&o),
            op::LOGISTIC | op::TANH => self.sigmoid(&o, code == op::TANH),
            op::RELU => self.relu(&o, Activation::Relu),
            op::RELU6 => self.relu(&o, Activation::Relu6),
            op::RELU_N1_TO_1 => self.relu(&o, Activation::ReluN1To1),
            op::RESHAPE | op::SQUEEZE => self.reshape(&o),
            op::CONCATENATION => self.concatenation(&o),
            op::PAD => self.pad(&o),
            op::QUANTIZE => self.quantize(&o),
            op::DEQUANTIZE => self.dequantize(&o),
            _ => bail!(
                "is not supported; supported operators: {}",
                SUPPORTED.join(", ")
            ),
        }
    }

    fn require_i8(&self, t: u16, role: &str) -> Result<()> {
        let d = self.def(t);
        if d.dtype != DType::I8 {
            bail!(
                "{role} tensor {} is {:?}; this operator is supported for int8 only (float models: `ferrite quantize`)",
                d.name,
                d.dtype
            );
        }
        Ok(())
    }

    /// Weight tensor `t`: int8 data, its per-channel scales (checked against `channels` along `axis`).
    fn weights(
        &self,
        t: i32,
        shape_rank: usize,
        channels: usize,
        axis: i32,
    ) -> Result<(&'a [u8], Vec<f32>, Vec<usize>)> {
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
        Ok((data, q.scale.clone(), dims))
    }

    /// Optional bias: int32, one per output channel.
    fn bias(&self, o: &Operator<'_>, k: usize, channels: usize) -> Result<&'a [u8]> {
        let Some(&t) = o.inputs.get(k).filter(|&&t| t >= 0) else {
            return Ok(&[]);
        };
        let t = self.tensor_index(t)?;
        let tensor = &self.model.tensors[t];
        if tensor.dtype != tensor_type::INT32 {
            bail!(
                "bias {} has type {}; int8 layers need an int32 bias",
                tensor.name,
                tensor_type::name(tensor.dtype)
            );
        }
        let data = self.model.data(t);
        if data.len() != 4 * channels {
            bail!(
                "bias {} has {} bytes; expected a constant of {channels} int32 values",
                tensor.name,
                data.len()
            );
        }
        Ok(data)
    }

    /// Per-channel (or single) multiplier and shift of `input_scale * w[c] / output_scale`, in double as
    /// TFLite Micro's `PopulateConvolutionQuantizationParams` and `GetQuantizedConvolutionMultipler`.
    fn multipliers(in_scale: f32, w: &[f32], out_scale: f32) -> (Vec<u8>, Vec<u8>) {
        let r: Vec<_> = w
            .iter()
            .map(|&s| quantize_multiplier(in_scale as f64 * s as f64 / out_scale as f64))
            .collect();
        (
            le_i32s(r.iter().map(|q| q.multiplier)),
            le_i32s(r.iter().map(|q| q.shift)),
        )
    }

    fn conv(&mut self, o: &Operator<'a>, depthwise: bool) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.require_i8(x, "input")?;
        self.require_i8(y, "output")?;
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
        let (oh, pad_top) = padding_of(same, xi.h, kh, sh, dh);
        let (ow, pad_left) = padding_of(same, xi.w, kw, sw, dw);
        if (oh, ow) != (yo.h, yo.w) || yo.n != xi.n {
            bail!(
                "output shape {:?} differs from the {}x{} that the padding, strides and dilation give",
                yd.shape.dims(),
                oh,
                ow
            );
        }
        let bias = self.bias(o, 2, out_c)?;
        let (multiplier, shift) = Self::multipliers(xd.scale, &wscales, yd.scale);
        let (act_min, act_max) = activation.quantized_range(yd.scale, yd.zero_point);
        let conv = Conv {
            input: self.operand(x),
            output: self.operand(y),
            kernel_h: kh as u16,
            kernel_w: kw as u16,
            window: Window {
                stride_h: sh,
                stride_w: sw,
                dilation_h: dh,
                dilation_w: dw,
                pad_top: pad_top as u16,
                pad_left: pad_left as u16,
            },
            depth_multiplier: depth_multiplier as u16,
            activation,
            act_min,
            act_max,
            filter,
            bias,
            multiplier: &[],
            shift: &[],
        };
        self.ops.push(Pending {
            op: if depthwise {
                Op::DepthwiseConv2d(conv)
            } else {
                Op::Conv2d(conv)
            },
            multiplier,
            shift,
        });
        Ok(())
    }

    fn fully_connected(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.require_i8(x, "input")?;
        self.require_i8(y, "output")?;
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
        let bias = self.bias(o, 2, out)?;
        let (multiplier, shift) = Self::multipliers(xd.scale, &wscales, yd.scale);
        let (act_min, act_max) = activation.quantized_range(yd.scale, yd.zero_point);
        self.ops.push(Pending {
            op: Op::FullyConnected(FullyConnected {
                input: self.operand(x),
                output: self.operand(y),
                activation,
                act_min,
                act_max,
                filter,
                bias,
                multiplier: &[],
                shift: &[],
            }),
            multiplier,
            shift,
        });
        Ok(())
    }

    fn binary(&mut self, o: &Operator<'a>, mul: bool) -> Result<()> {
        let a = self.act(self.input(o, 0)?)?;
        let b = self.act(self.input(o, 1)?)?;
        let y = self.single_output(o)?;
        for (t, r) in [(a, "first input"), (b, "second input"), (y, "output")] {
            self.require_i8(t, r)?;
        }
        let opts = if mul {
            self.options(o, 21, "MulOptions")?
        } else {
            self.options(o, 11, "AddOptions")?
        };
        let activation = fused(match &opts {
            Some(t) => t.i8(0, "fused_activation_function", 0)?,
            None => 0,
        })?;
        let (ad, bd, yd) = (
            self.def(a).clone(),
            self.def(b).clone(),
            self.def(y).clone(),
        );
        let (lo, hi) = activation.quantized_range(yd.scale, yd.zero_point);
        let (oa, ob, oy) = (self.operand(a), self.operand(b), self.operand(y));
        let op = if mul {
            Op::Mul(Binary {
                a: oa,
                b: ob,
                output: oy,
                activation,
                quant: Some(MulParams::prepare(
                    ad.scale,
                    ad.zero_point,
                    bd.scale,
                    bd.zero_point,
                    yd.scale,
                    yd.zero_point,
                    lo,
                    hi,
                )),
            })
        } else {
            Op::Add(Binary {
                a: oa,
                b: ob,
                output: oy,
                activation,
                quant: Some(AddParams::prepare(
                    ad.scale,
                    ad.zero_point,
                    bd.scale,
                    bd.zero_point,
                    yd.scale,
                    yd.zero_point,
                    lo,
                    hi,
                )),
            })
        };
        self.push(op);
        Ok(())
    }

    fn pool(&mut self, o: &Operator<'a>, max: bool) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.require_i8(x, "input")?;
        self.require_i8(y, "output")?;
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
        let (oh, pad_top) = padding_of(same, xi.h, fh as usize, sh, 1);
        let (ow, pad_left) = padding_of(same, xi.w, fw as usize, sw, 1);
        if (oh, ow, xi.n, xi.c) != (yo.h, yo.w, yo.n, yo.c) {
            bail!(
                "output shape {:?} differs from the {oh}x{ow} the padding and strides give",
                yd.shape.dims()
            );
        }
        let (act_min, act_max) = activation.quantized_range(yd.scale, yd.zero_point);
        let p = Pool {
            input: self.operand(x),
            output: self.operand(y),
            filter_h: fh,
            filter_w: fw,
            window: Window {
                stride_h: sh,
                stride_w: sw,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: pad_top as u16,
                pad_left: pad_left as u16,
            },
            activation,
            act_min,
            act_max,
        };
        self.push(if max {
            Op::MaxPool2d(p)
        } else {
            Op::AveragePool2d(p)
        });
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
        self.require_i8(x, "input")?;
        self.require_i8(y, "output")?;
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
        let p = MeanParams::prepare(
            xd.scale,
            xd.zero_point,
            yd.scale,
            yd.zero_point,
            xi.h * xi.w,
        );
        let u = Unary {
            input: self.operand(x),
            output: self.operand(y),
            quant: Some(p),
        };
        self.push(Op::Mean(u));
        Ok(())
    }

    fn softmax(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.require_i8(x, "input")?;
        self.require_i8(y, "output")?;
        let beta = match self.options(o, 9, "SoftmaxOptions")? {
            Some(t) => t.f32(0, "beta", 0.0)?,
            None => 0.0,
        };
        if !(beta.is_finite() && beta > 0.0) {
            bail!("beta {beta} must be positive and finite");
        }
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if yd.scale != 1.0 / 256.0 || yd.zero_point != -128 {
            bail!(
                "int8 SOFTMAX output must have scale 1/256 and zero point -128, found ({}, {})",
                yd.scale,
                yd.zero_point
            );
        }
        if xd.shape != yd.shape {
            bail!("input and output shapes differ");
        }
        let s = Softmax {
            input: self.operand(x),
            output: self.operand(y),
            beta,
            quant: Some(SoftmaxParams::prepare(beta, xd.scale)),
        };
        self.push(Op::Softmax(s));
        Ok(())
    }

    fn sigmoid(&mut self, o: &Operator<'a>, tanh: bool) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.require_i8(x, "input")?;
        self.require_i8(y, "output")?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        let (scale, zp, label) = if tanh {
            (1.0 / 128.0, 0, "1/128 and zero point 0")
        } else {
            (1.0 / 256.0, -128, "1/256 and zero point -128")
        };
        if yd.scale != scale || yd.zero_point != zp {
            bail!(
                "int8 {} output must have scale {label}, found ({}, {})",
                if tanh { "TANH" } else { "LOGISTIC" },
                yd.scale,
                yd.zero_point
            );
        }
        if xd.shape.elements() != yd.shape.elements() {
            bail!("input and output sizes differ");
        }
        let (input, output) = (self.operand(x), self.operand(y));
        self.push(if tanh {
            Op::Tanh(Unary {
                input,
                output,
                quant: Some(TanhParams::prepare(xd.scale, xd.zero_point)),
            })
        } else {
            Op::Logistic(Unary {
                input,
                output,
                quant: Some(LogisticParams::prepare(xd.scale, xd.zero_point)),
            })
        });
        Ok(())
    }

    fn relu(&mut self, o: &Operator<'a>, activation: Activation) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.require_i8(x, "input")?;
        self.require_i8(y, "output")?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if xd.shape.elements() != yd.shape.elements() {
            bail!("input and output sizes differ");
        }
        let p = ReluParams::prepare(xd.scale, xd.zero_point, yd.scale, yd.zero_point, activation);
        self.push(Op::Relu(Relu {
            input: self.operand(x),
            output: self.operand(y),
            quant: Some(p),
            activation,
        }));
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
        let r = Reshape {
            input: self.operand(x),
            output: self.operand(y),
        };
        self.push(Op::Reshape(r));
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
        let mut parts = Vec::new();
        for &t in &o.inputs {
            let x = self.act(t)?;
            let xd = self.def(x).clone();
            if xd.dtype != yd.dtype {
                bail!("inputs and output differ in type");
            }
            let requant = (xd.dtype == DType::I8
                && (xd.scale != yd.scale || xd.zero_point != yd.zero_point))
                .then(|| {
                    RequantizeParams::prepare(xd.scale, xd.zero_point, yd.scale, yd.zero_point)
                });
            parts.push(ConcatInput {
                input: self.operand(x),
                requant,
            });
        }
        let c = Concatenation {
            inputs: Seq::from(parts),
            output: self.operand(y),
            axis: axis as u8,
        };
        self.push(Op::Concatenation(c));
        Ok(())
    }

    fn pad(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if xd.dtype != yd.dtype {
            bail!("input and output differ in type");
        }
        if xd.dtype == DType::I8 && (xd.scale != yd.scale || xd.zero_point != yd.zero_point) {
            bail!("input and output quantization differ; TFLite PAD keeps the input's");
        }
        let pads = self.const_ints(self.input(o, 1)?)?;
        let rank = xd.shape.rank as usize;
        if pads.len() != 2 * rank || yd.shape.rank as usize != rank {
            bail!("paddings must be a [{rank}, 2] constant");
        }
        let mut before = [0u16; 4];
        for d in 0..rank {
            let (pre, post) = (pads[2 * d], pads[2 * d + 1]);
            let (i, out) = (xd.shape.dims()[d] as i64, yd.shape.dims()[d] as i64);
            if pre < 0
                || post < 0
                || i.checked_add(pre).and_then(|v| v.checked_add(post)) != Some(out)
            {
                bail!("paddings ({pre}, {post}) of dimension {d} do not turn {i} into {out}");
            }
            before[4 - rank + d] = pre as u16;
        }
        let p = Pad {
            input: self.operand(x),
            output: self.operand(y),
            before,
        };
        self.push(Op::Pad(p));
        Ok(())
    }

    fn quantize(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.require_i8(y, "output")?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if xd.shape.elements() != yd.shape.elements() {
            bail!("input and output sizes differ");
        }
        let requant = match xd.dtype {
            DType::F32 => None,
            DType::I8 => Some(RequantizeParams::prepare(
                xd.scale,
                xd.zero_point,
                yd.scale,
                yd.zero_point,
            )),
            other => bail!("QUANTIZE from {other:?} is not supported"),
        };
        let q = Quantize {
            input: self.operand(x),
            output: self.operand(y),
            scale: yd.scale,
            requant,
        };
        self.push(Op::Quantize(q));
        Ok(())
    }

    fn dequantize(&mut self, o: &Operator<'a>) -> Result<()> {
        let x = self.act(self.input(o, 0)?)?;
        let y = self.single_output(o)?;
        self.require_i8(x, "input")?;
        let (xd, yd) = (self.def(x).clone(), self.def(y).clone());
        if yd.dtype != DType::F32 || xd.shape.elements() != yd.shape.elements() {
            bail!("DEQUANTIZE must turn int8 into float32 of the same size");
        }
        let d = Dequantize {
            input: self.operand(x),
            output: self.operand(y),
            scale: xd.scale,
        };
        self.push(Op::Dequantize(d));
        Ok(())
    }

    fn finish(mut self, bytes: &[u8]) -> Result<Built> {
        let inputs: Vec<u16> = self
            .model
            .inputs
            .iter()
            .map(|&t| self.act(t).context("graph input"))
            .collect::<Result<_>>()?;
        let outputs: Vec<u16> = self
            .model
            .outputs
            .iter()
            .map(|&t| self.act(t).context("graph output"))
            .collect::<Result<_>>()?;
        let mut b = ModelBuilder::new();
        for d in &self.defs {
            b.tensor(d.clone());
        }
        for p in &self.ops {
            let mut op = p.op.clone();
            match &mut op {
                Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
                    c.multiplier = &p.multiplier;
                    c.shift = &p.shift;
                }
                Op::FullyConnected(f) => {
                    f.multiplier = &p.multiplier;
                    f.shift = &p.shift;
                }
                _ => {}
            }
            b.push(op);
        }
        b.set_inputs(&inputs);
        b.set_outputs(&outputs);
        b.source_sha256 = crate::sha256::digest(bytes);
        b.source_layout = "NHWC".into();
        b.finish()
    }
}

/// Output size and leading padding of one spatial dimension (TFLite `ComputePaddingHeightWidth`).
fn padding_of(
    same: bool,
    input: usize,
    filter: usize,
    stride: u16,
    dilation: u16,
) -> (usize, usize) {
    padding(same, input, filter, stride as usize, dilation as usize)
}
