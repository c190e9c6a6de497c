//! The payload's types: tensor table, operators with every precomputed parameter, inputs, outputs, metadata.
//!
//! Operators carry their operands' placement (offset, shape, type, zero point) so that `invoke` never
//! looks anything up; loading checks each copy against the tensor table.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::Seq;
use crate::kernels::Nhwc;
use crate::ops::Op;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DType {
    /// Signed 8-bit integer: quantized with a scale and zero point.
    I8,
    /// Signed 16-bit integer (not yet supported for activation tensors).
    I16,
    /// Signed 32-bit integer (not yet supported for activation tensors).
    I32,
    /// 32-bit float (needs the `float` feature).
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

impl core::fmt::Display for DType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::F32 => "float32",
        })
    }
}

/// Maximum tensor rank.
pub const MAX_RANK: usize = 4;

/// A tensor shape of rank 1 to 4 (NHWC for rank 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    /// Number of dimensions, 1 to 4 in a valid model.
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

/// Activation fused into an operator's output (int8 kernels apply it as the `act_min..=act_max` clamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activation {
    /// No activation.
    #[default]
    None,
    /// Clamp to `[0, inf)`.
    Relu,
    /// Clamp to `[0, 6]`.
    Relu6,
    /// Clamp to `[-1, 1]`.
    ReluN1To1,
}

impl Activation {
    /// Real-valued range of the activation.
    pub fn range(self) -> (f32, f32) {
        match self {
            Activation::None => (f32::NEG_INFINITY, f32::INFINITY),
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Relu6 => (0.0, 6.0),
            Activation::ReluN1To1 => (-1.0, 1.0),
        }
    }

    /// The activation as an int8 clamp for an output with `(scale, zero_point)`: TFLite's
    /// `CalculateActivationRangeQuantized`.
    #[cfg(any(feature = "host", test))]
    pub fn quantized_range(self, scale: f32, zero_point: i32) -> (i32, i32) {
        let (lo, hi) = self.range();
        quantized_clamp(lo, hi, scale, zero_point)
    }

    /// Applies the activation to a real value.
    #[inline(always)]
    pub fn apply_f32(self, x: f32) -> f32 {
        let (lo, hi) = self.range();
        x.max(lo).min(hi)
    }
}

/// The real clamp `[lo, hi]` (infinite bounds allowed) as an int8 clamp for an output with
/// `(scale, zero_point)`: bounds rounded half away from zero, then saturated to `-128..=127` (TFLite's
/// `CalculateActivationRangeQuantized`); never an empty range.
#[cfg(any(feature = "host", test))]
pub fn quantized_clamp(lo: f32, hi: f32, scale: f32, zero_point: i32) -> (i32, i32) {
    quantized_clamp_in(lo, hi, scale, zero_point, (-128, 127))
}

/// [`quantized_clamp`] saturated to `qmin..=qmax` instead of int8's range (`-32768..=32767` for
/// int16 outputs).
#[cfg(any(feature = "host", test))]
pub fn quantized_clamp_in(
    lo: f32,
    hi: f32,
    scale: f32,
    zero_point: i32,
    (qmin, qmax): (i32, i32),
) -> (i32, i32) {
    // Saturating: a tiny scale puts a bound far outside the type.
    let q = |x: f32| zero_point.saturating_add((x / scale).round() as i32);
    let min = if lo.is_finite() {
        q(lo).max(qmin)
    } else {
        qmin
    };
    let max = if hi.is_finite() {
        q(hi).min(qmax)
    } else {
        qmax
    };
    (min.min(qmax), max.max(qmin))
}

/// Convolution and pooling window parameters (shapes come from the operands). Encoded by serde's
/// derive, decoded below as six `u16` in one loop (the same bytes, less code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Window {
    /// Stride along H, at least 1.
    pub stride_h: u16,
    /// Stride along W, at least 1.
    pub stride_w: u16,
    /// Dilation along H (spacing of the kernel taps), at least 1; pooling ignores it.
    pub dilation_h: u16,
    /// Dilation along W, at least 1; pooling ignores it.
    pub dilation_w: u16,
    /// Zero rows added above the input (TF SAME puts the odd row below).
    pub pad_top: u16,
    /// Zero columns added left of the input.
    pub pad_left: u16,
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
    /// Element type.
    pub dtype: DType,
    /// Shape (NHWC for rank 4).
    pub shape: Shape,
    /// Real value = `scale * (q - zero_point)`; scale 0 for f32 tensors.
    pub scale: f32,
    /// Quantized value of real 0: `-128..=127` for int8, 0 for f32.
    pub zero_point: i32,
    /// Byte offset in the arena.
    pub offset: u32,
    /// First and last operator step at which the tensor is live (graph inputs from step 0, graph
    /// outputs to the last step).
    pub first: u16,
    /// Last operator step at which the tensor is live (see `first`).
    pub last: u16,
    /// The tensor takes arena bytes of an input of its producer that dies there (a Reshape at the
    /// same offset; a convolution, Add or Mul run in bands: see [`crate::in_place`]).
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
    /// Index of the tensor in the tensor table.
    pub tensor: u16,
    /// Byte offset in the arena (a copy of the tensor's).
    pub offset: u32,
    /// Shape (a copy of the tensor's).
    pub shape: Shape,
    /// Element type (a copy of the tensor's).
    pub dtype: DType,
    /// Zero point (a copy of the tensor's), as the int8 kernels subtract or add it.
    pub zero_point: i32,
}

/// Where the model came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata<'a> {
    /// Tool and version that wrote the file, e.g. `ferrite 0.1.0`.
    pub producer: &'a str,
    /// SHA-256 of the source model file (zeros if unknown).
    pub source_sha256: [u8; 32],
    /// How the source model orders its inputs and outputs, so tools can feed and return the same
    /// data files: one word for all (`NHWC`, the runtime's order; `NCHW`; `NCL`, NCHW without the
    /// height), or one per input then per output, comma-separated (adding `CHW<c>x<h>x<w>`, a
    /// flattened `[c, h, w]` map). The runtime does not read it.
    pub source_layout: &'a str,
}

/// The whole payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Graph<'a> {
    /// The tensor table; operands and the input and output lists index it.
    #[serde(borrow)]
    pub tensors: Seq<'a, Tensor<'a>>,
    /// The operators in execution order (the index is the step).
    #[serde(borrow)]
    pub ops: Seq<'a, Op<'a>>,
    /// Tensor-table indices of the model's inputs, in order.
    #[serde(borrow)]
    pub inputs: Seq<'a, u16>,
    /// Tensor-table indices of the model's outputs, in order.
    #[serde(borrow)]
    pub outputs: Seq<'a, u16>,
    /// Where the model came from.
    #[serde(borrow)]
    pub metadata: Metadata<'a>,
    /// How the host turned its data into the model's input (a short text the runtime does not
    /// interpret, e.g. `image resize=28x28 channels=1 scale=1/255 mean=0 std=1 layout=nchw`).
    /// An optional field after `metadata`: encoded after the graph's other fields only when present
    /// (by the host writer, `format::write::to_bytes`; see `FORMAT.md`), so the graph's decoding skips
    /// it: [`crate::Model::from_bytes`] reads it.
    #[serde(skip)]
    pub preprocessing: Option<&'a str>,
}
