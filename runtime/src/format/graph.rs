//! The payload's types: tensor table, operators with every precomputed parameter, inputs, outputs, metadata.
//!
//! Operators carry their operands' placement (offset, shape, type, zero point) so that `invoke` never
//! looks anything up; loading checks each copy against the tensor table.

use core::marker::PhantomData;
use serde::de::{self, Deserializer, EnumAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::Seq;
use crate::kernels::activation::{LogisticParams, ReluParams, TanhParams};
use crate::kernels::elementwise::{AddParams, MulParams};
use crate::kernels::mean::MeanParams;
use crate::kernels::requantize::RequantizeParams;
use crate::kernels::softmax::SoftmaxParams;
use crate::kernels::{Activation, Nhwc, Window};

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DType {
    I8,
    I16,
    I32,
    F32,
}

impl DType {
    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 => 2,
            DType::I32 | DType::F32 => 4,
        }
    }
}

/// Maximum tensor rank.
pub const MAX_RANK: usize = 4;

/// A tensor shape of rank 1 to 4 (NHWC for rank 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    pub rank: u8,
    /// The first `rank` entries are the dimensions; the rest are 0.
    pub dims: [u16; MAX_RANK],
}

impl Shape {
    /// A shape from its dimensions (at most 4, each at most 65535); `None` otherwise.
    pub fn new(dims: &[usize]) -> Option<Shape> {
        if dims.len() > MAX_RANK {
            return None;
        }
        let mut out = [0u16; MAX_RANK];
        for (o, &d) in out.iter_mut().zip(dims) {
            *o = u16::try_from(d).ok()?;
        }
        Some(Shape {
            rank: dims.len() as u8,
            dims: out,
        })
    }

    /// The dimensions.
    pub fn dims(&self) -> &[u16] {
        &self.dims[..(self.rank as usize).min(MAX_RANK)]
    }

    /// Number of elements, `None` on overflow.
    pub fn elements(&self) -> Option<usize> {
        self.dims()
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
    }

    /// The shape as NHWC, padding missing leading dimensions with 1.
    pub fn nhwc(&self) -> Nhwc {
        let mut d = [1usize; MAX_RANK];
        let rank = self.dims().len();
        for (i, &v) in self.dims().iter().enumerate() {
            d[MAX_RANK - rank + i] = v as usize;
        }
        Nhwc::new(d[0], d[1], d[2], d[3])
    }

    /// The last dimension (1 for rank 0).
    pub fn last(&self) -> usize {
        self.dims().last().map_or(1, |&d| d as usize)
    }
}

/// `N` consecutive `u16` fields, decoded in one loop (serde's derive decodes each field on its own:
/// the same bytes, more code).
struct U16s<const N: usize>([u16; N]);

impl<'de, const N: usize> Deserialize<'de> for U16s<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for Fields<N> {
            type Value = U16s<N>;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("u16 fields")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<U16s<N>, A::Error> {
                let mut out = [0u16; N];
                for (i, x) in out.iter_mut().enumerate() {
                    *x = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(U16s(out))
            }
        }
        deserializer.deserialize_tuple(N, Fields::<N>)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let U16s([stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left]) =
            U16s::deserialize(deserializer)?;
        Ok(Window {
            stride_h,
            stride_w,
            dilation_h,
            dilation_w,
            pad_top,
            pad_left,
        })
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Shape;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a shape")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let missing = || de::Error::invalid_length(0, &Fields);
                let rank = seq.next_element()?.ok_or_else(missing)?;
                let U16s(dims) = seq.next_element()?.ok_or_else(missing)?;
                Ok(Shape { rank, dims })
            }
        }
        deserializer.deserialize_tuple(2, Fields)
    }
}

/// An activation tensor: its type, shape, quantization and place in the arena.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tensor<'a> {
    /// Name in the source model (may be empty).
    pub name: &'a str,
    pub dtype: DType,
    pub shape: Shape,
    /// Real value = `scale * (q - zero_point)`; scale 0 for f32 tensors.
    pub scale: f32,
    pub zero_point: i32,
    /// Byte offset in the arena.
    pub offset: u32,
    /// First and last operator step at which the tensor is live (graph inputs from step 0, graph
    /// outputs to the last step).
    pub first: u16,
    pub last: u16,
    /// The tensor shares the arena bytes of its producer's input (an in-place Reshape).
    pub in_place: bool,
}

impl Tensor<'_> {
    /// The operand an operator carries for this tensor.
    pub fn operand(&self, index: u16) -> Operand {
        Operand {
            tensor: index,
            offset: self.offset,
            shape: self.shape,
            dtype: self.dtype,
            zero_point: self.zero_point,
        }
    }

    /// Bytes the tensor occupies, `None` on overflow.
    pub fn byte_len(&self) -> Option<usize> {
        self.shape.elements()?.checked_mul(self.dtype.size())
    }
}

/// An operator's view of a tensor: a copy of its table entry's placement, checked at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Operand {
    pub tensor: u16,
    pub offset: u32,
    pub shape: Shape,
    pub dtype: DType,
    pub zero_point: i32,
}

/// Conv2D and DepthwiseConv2D.
///
/// int8: filter int8 (`[out_c, kh, kw, in_c]`, depthwise `[1, kh, kw, out_c]`), bias int32 per output
/// channel (or empty), `multiplier`/`shift` int32 per output channel or one per tensor, all little-endian.
/// f32: filter and bias little-endian f32, no multipliers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv<'a> {
    pub input: Operand,
    pub output: Operand,
    pub kernel_h: u16,
    pub kernel_w: u16,
    pub window: Window,
    /// Output channels per input channel (depthwise only; 1 for Conv2D).
    pub depth_multiplier: u16,
    pub activation: Activation,
    /// The fused activation as a clamp in the output's integer domain (int8).
    pub act_min: i32,
    pub act_max: i32,
    pub filter: &'a [u8],
    pub bias: &'a [u8],
    pub multiplier: &'a [u8],
    pub shift: &'a [u8],
}

/// FullyConnected: `output[b, o] = sum_i input[b, i] * filter[o, i] + bias[o]`, the input flattened to
/// `[batches, in_features]` with `in_features = filter.len() / out_features`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FullyConnected<'a> {
    pub input: Operand,
    pub output: Operand,
    pub activation: Activation,
    pub act_min: i32,
    pub act_max: i32,
    pub filter: &'a [u8],
    pub bias: &'a [u8],
    pub multiplier: &'a [u8],
    pub shift: &'a [u8],
}

/// An element-wise binary operator with broadcasting; `quant` is present for int8, absent for f32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binary<P> {
    pub a: Operand,
    pub b: Operand,
    pub output: Operand,
    pub activation: Activation,
    pub quant: Option<P>,
}

/// An element-wise unary operator; `quant` is present for int8, absent for f32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unary<P> {
    pub input: Operand,
    pub output: Operand,
    pub quant: Option<P>,
}

/// AveragePool2D and MaxPool2D (input and output share quantization).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub input: Operand,
    pub output: Operand,
    pub filter_h: u16,
    pub filter_w: u16,
    pub window: Window,
    pub activation: Activation,
    pub act_min: i32,
    pub act_max: i32,
}

/// Softmax over the last axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Softmax {
    pub input: Operand,
    pub output: Operand,
    pub beta: f32,
    pub quant: Option<SoftmaxParams>,
}

/// Reshape: same bytes, new shape; no copy when the output is planned in place.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reshape {
    pub input: Operand,
    pub output: Operand,
}

/// One input of a Concatenation, with its requantization when its scale differs from the output's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConcatInput {
    pub input: Operand,
    pub requant: Option<RequantizeParams>,
}

/// Concatenation along `axis` (an index into the output's dimensions).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Concatenation<'a> {
    #[serde(borrow)]
    pub inputs: Seq<'a, ConcatInput>,
    pub output: Operand,
    pub axis: u8,
}

/// Pad with the output's zero point (int8) or 0.0 (f32); `before` is the leading padding per NHWC dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pad {
    pub input: Operand,
    pub output: Operand,
    pub before: [u16; MAX_RANK],
}

/// Quantize: f32 -> int8 with the output's `scale`, or int8 -> int8 requantization (`requant`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quantize {
    pub input: Operand,
    pub output: Operand,
    pub scale: f32,
    pub requant: Option<RequantizeParams>,
}

/// Dequantize: int8 -> f32 with the input's `scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dequantize {
    pub input: Operand,
    pub output: Operand,
    pub scale: f32,
}

/// One operator with all its parameters. Operand dtypes select the int8 or f32 kernel.
///
/// The variants' order is the file's tags ([`OPERATORS`]).
#[derive(Clone, Debug, Serialize)]
pub enum Op<'a> {
    #[serde(borrow)]
    Conv2d(Conv<'a>),
    #[serde(borrow)]
    DepthwiseConv2d(Conv<'a>),
    #[serde(borrow)]
    FullyConnected(FullyConnected<'a>),
    Add(Binary<AddParams>),
    Mul(Binary<MulParams>),
    AveragePool2d(Pool),
    MaxPool2d(Pool),
    /// Mean over H and W of an NHWC tensor.
    Mean(Unary<MeanParams>),
    Softmax(Softmax),
    Logistic(Unary<LogisticParams>),
    Tanh(Unary<TanhParams>),
    /// Standalone ReLU, ReLU6 or ReLU-1..1; the activation is in the int8 params or `activation`.
    Relu(Unary<ReluParams>, Activation),
    Reshape(Reshape),
    #[serde(borrow)]
    Concatenation(Concatenation<'a>),
    Pad(Pad),
    Quantize(Quantize),
    Dequantize(Dequantize),
}

/// Each operator kind, by its tag in the file (the variant's index in [`Op`]): its name as TFLite
/// spells it, the runtime's Cargo feature that builds it in, and whether this build has that feature.
pub const OPERATORS: [(&str, &str, bool); 17] = [
    ("CONV_2D", "conv-2d", cfg!(feature = "conv-2d")),
    (
        "DEPTHWISE_CONV_2D",
        "depthwise-conv-2d",
        cfg!(feature = "depthwise-conv-2d"),
    ),
    (
        "FULLY_CONNECTED",
        "fully-connected",
        cfg!(feature = "fully-connected"),
    ),
    ("ADD", "add", cfg!(feature = "add")),
    ("MUL", "mul", cfg!(feature = "mul")),
    (
        "AVERAGE_POOL_2D",
        "average-pool-2d",
        cfg!(feature = "average-pool-2d"),
    ),
    ("MAX_POOL_2D", "max-pool-2d", cfg!(feature = "max-pool-2d")),
    ("MEAN", "mean", cfg!(feature = "mean")),
    ("SOFTMAX", "softmax", cfg!(feature = "softmax")),
    ("LOGISTIC", "logistic", cfg!(feature = "logistic")),
    ("TANH", "tanh", cfg!(feature = "tanh")),
    ("RELU", "relu", cfg!(feature = "relu")),
    ("RESHAPE", "reshape", cfg!(feature = "reshape")),
    (
        "CONCATENATION",
        "concatenation",
        cfg!(feature = "concatenation"),
    ),
    ("PAD", "pad", cfg!(feature = "pad")),
    ("QUANTIZE", "quantize", cfg!(feature = "quantize")),
    ("DEQUANTIZE", "dequantize", cfg!(feature = "dequantize")),
];

impl Op<'_> {
    /// The operator's tag in the file: its index in [`OPERATORS`].
    pub fn tag(&self) -> usize {
        match self {
            Op::Conv2d(_) => 0,
            Op::DepthwiseConv2d(_) => 1,
            Op::FullyConnected(_) => 2,
            Op::Add(_) => 3,
            Op::Mul(_) => 4,
            Op::AveragePool2d(_) => 5,
            Op::MaxPool2d(_) => 6,
            Op::Mean(_) => 7,
            Op::Softmax(_) => 8,
            Op::Logistic(_) => 9,
            Op::Tanh(_) => 10,
            Op::Relu(..) => 11,
            Op::Reshape(_) => 12,
            Op::Concatenation(_) => 13,
            Op::Pad(_) => 14,
            Op::Quantize(_) => 15,
            Op::Dequantize(_) => 16,
        }
    }

    /// The operator's name, as TFLite spells it.
    pub fn name(&self) -> &'static str {
        OPERATORS[self.tag()].0
    }

    /// The runtime's Cargo feature that builds this operator in: the name in lower case, `_` as `-`.
    pub fn feature(&self) -> &'static str {
        OPERATORS[self.tag()].1
    }

    /// Whether this runtime was built with the operator's feature.
    pub fn is_built(&self) -> bool {
        OPERATORS[self.tag()].2
    }
}

/// The kind of operator whose encoding starts `encoded`, when it is one this runtime was built
/// without: `(name, feature)`. Such an operator does not decode (its parameters' decoding is left out).
pub fn built_out(encoded: &[u8]) -> Option<(&'static str, &'static str)> {
    // The tag is a varint: one byte below 128.
    match OPERATORS.get(*encoded.first()? as usize)? {
        &(name, feature, false) => Some((name, feature)),
        _ => None,
    }
}

/// Decodes an operator as serde's derive would, but only the kinds this runtime was built with, so a
/// build without some operators leaves their parameters' decoding out.
impl<'de: 'a, 'a> Deserialize<'de> for Op<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const NAMES: [&str; 17] = [
            "Conv2d",
            "DepthwiseConv2d",
            "FullyConnected",
            "Add",
            "Mul",
            "AveragePool2d",
            "MaxPool2d",
            "Mean",
            "Softmax",
            "Logistic",
            "Tanh",
            "Relu",
            "Reshape",
            "Concatenation",
            "Pad",
            "Quantize",
            "Dequantize",
        ];
        deserializer.deserialize_enum("Op", &NAMES, OpVisitor(PhantomData))
    }
}

struct OpVisitor<'a>(PhantomData<Op<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for OpVisitor<'a> {
    type Value = Op<'a>;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("an operator built into this runtime")
    }

    // Without every operator, some (without any, all) of the arms are compiled out.
    // Not inlined into each caller of the operator list's iterator: one copy.
    #[cfg_attr(not(feature = "all-ops"), allow(unused, unreachable_code))]
    #[inline(never)]
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Op<'a>, A::Error> {
        use serde::de::VariantAccess;
        let (tag, v): (u32, _) = data.variant()?;
        match tag {
            #[cfg(feature = "conv-2d")]
            0 => v.newtype_variant().map(Op::Conv2d),
            #[cfg(feature = "depthwise-conv-2d")]
            1 => v.newtype_variant().map(Op::DepthwiseConv2d),
            #[cfg(feature = "fully-connected")]
            2 => v.newtype_variant().map(Op::FullyConnected),
            #[cfg(feature = "add")]
            3 => v.newtype_variant().map(Op::Add),
            #[cfg(feature = "mul")]
            4 => v.newtype_variant().map(Op::Mul),
            #[cfg(feature = "average-pool-2d")]
            5 => v.newtype_variant().map(Op::AveragePool2d),
            #[cfg(feature = "max-pool-2d")]
            6 => v.newtype_variant().map(Op::MaxPool2d),
            #[cfg(feature = "mean")]
            7 => v.newtype_variant().map(Op::Mean),
            #[cfg(feature = "softmax")]
            8 => v.newtype_variant().map(Op::Softmax),
            #[cfg(feature = "logistic")]
            9 => v.newtype_variant().map(Op::Logistic),
            #[cfg(feature = "tanh")]
            10 => v.newtype_variant().map(Op::Tanh),
            #[cfg(feature = "relu")]
            11 => {
                // Postcard encodes a tuple variant's fields as it encodes a tuple of them.
                let relu = v.newtype_variant();
                relu.map(|(unary, activation)| Op::Relu(unary, activation))
            }
            #[cfg(feature = "reshape")]
            12 => v.newtype_variant().map(Op::Reshape),
            #[cfg(feature = "concatenation")]
            13 => v.newtype_variant().map(Op::Concatenation),
            #[cfg(feature = "pad")]
            14 => v.newtype_variant().map(Op::Pad),
            #[cfg(feature = "quantize")]
            15 => v.newtype_variant().map(Op::Quantize),
            #[cfg(feature = "dequantize")]
            16 => v.newtype_variant().map(Op::Dequantize),
            _ => Err(de::Error::invalid_value(
                de::Unexpected::Unsigned(tag.into()),
                &self,
            )),
        }
    }
}

/// Where the model came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata<'a> {
    /// Tool and version that wrote the file, e.g. `ferrite 0.1.0`.
    pub producer: &'a str,
    /// SHA-256 of the source model file (zeros if unknown).
    pub source_sha256: [u8; 32],
    /// Layout of the source model's inputs (`NCHW` or `NHWC`), so tools can feed the same data files.
    pub source_layout: &'a str,
}

/// The whole payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Graph<'a> {
    #[serde(borrow)]
    pub tensors: Seq<'a, Tensor<'a>>,
    #[serde(borrow)]
    pub ops: Seq<'a, Op<'a>>,
    #[serde(borrow)]
    pub inputs: Seq<'a, u16>,
    #[serde(borrow)]
    pub outputs: Seq<'a, u16>,
    #[serde(borrow)]
    pub metadata: Metadata<'a>,
}
