//! Operators, one module each: its wire struct (what the file stores), its load-time checks
//! (`validate`), its execution (`run`, calling the plain kernel functions of `kernels/`) and its
//! operands. The table below lists every operator once; the `Op` enum, the file's tags, the names,
//! the Cargo features, decoding and dispatch are generated from it, and every `match` over `Op` is
//! exhaustive, so an operator missing a piece does not compile.
//!
//! Adding an operator: a row at the end of the table (tags are append-only, see `runtime/FORMAT.md`),
//! its module here (with `decode_fields!` for its wire struct), its feature in `Cargo.toml`, its
//! kernel in `kernels/`.
// Without every operator, some modules' functions are unused (their arms are compiled out).
#![cfg_attr(not(feature = "all-ops"), allow(unused))]

use core::marker::PhantomData;
use serde::de::{self, Deserializer, EnumAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::format::{Activation, Decode, Operand, Reader};
use crate::in_place::{each_band, overlaps, side, Banding, Rows};
use crate::interpreter::Views;
use crate::kernels::Nhwc;
use crate::validate::Check;
use crate::Error;

pub mod add;
pub mod average_pool_2d;
pub mod concatenation;
pub mod conv_2d;
pub mod conv_2d_sparse;
pub mod depth_to_space;
pub mod depthwise_conv_2d;
pub mod dequantize;
pub mod fully_connected;
pub mod fully_connected_sparse;
pub mod leaky_relu;
pub mod log_softmax;
pub mod logistic;
pub mod lookup;
pub mod max_pool_2d;
pub mod maximum;
pub mod mean;
pub mod minimum;
pub mod mirror_pad;
pub mod mul;
pub mod normalize;
pub mod pad;
pub mod prelu;
pub mod quantize;
pub mod relu;
pub mod reshape;
pub mod resize_bilinear;
pub mod resize_nearest_neighbor;
pub mod slice;
pub mod softmax;
pub mod sub;
pub mod tanh;
pub mod transpose;

pub use add::AddParams;
pub use average_pool_2d::Pool;
pub use concatenation::{ConcatInput, Concatenation};
pub use conv_2d::Conv;
pub use conv_2d_sparse::SparseConv;
pub use depth_to_space::DepthToSpace;
pub use dequantize::Dequantize;
pub use fully_connected::FullyConnected;
pub use fully_connected_sparse::SparseFullyConnected;
pub use leaky_relu::{LeakyRelu, LeakyReluParams};
pub use log_softmax::{LogSoftmax, LogSoftmaxParams};
pub use logistic::LogisticParams;
pub use lookup::Lookup;
pub use maximum::ExtremumParams;
pub use mean::MeanParams;
pub use mirror_pad::{MirrorPad, PadMode};
pub use mul::MulParams;
pub use normalize::Normalize;
pub use pad::Pad;
pub use prelu::{PRelu, PReluParams};
pub use quantize::{Quantize, RequantizeParams};
pub use relu::{Relu, ReluParams};
pub use reshape::Reshape;
pub use resize_bilinear::ResizeBilinear;
pub use resize_nearest_neighbor::ResizeNearestNeighbor;
pub use slice::Slice;
pub use softmax::{Softmax, SoftmaxParams};
pub use tanh::TanhParams;
pub use transpose::Transpose;

#[cfg(all(test, feature = "in-place"))]
mod in_place_tests;
#[cfg(all(test, feature = "int16"))]
mod int16_elementwise_tests;
#[cfg(test)]
mod testutil;

/// An element-wise binary operator with broadcasting (Add, Sub, Mul); `quant` is present for int8 and
/// int16, absent for f32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binary<P> {
    /// First input.
    pub a: Operand,
    /// Second input, broadcast against the first.
    pub b: Operand,
    /// Output, the broadcast shape of the two inputs.
    pub output: Operand,
    /// Fused activation, applied by the f32 kernel (int8 and int16 clamp with `quant`'s bounds).
    pub activation: Activation,
    /// Precomputed integer parameters; `None` for f32.
    pub quant: Option<P>,
}

/// An element-wise unary operator (Mean, Logistic, Tanh); `quant` is present for int8, absent for f32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unary<P> {
    /// Input (rank-4 NHWC for Mean).
    pub input: Operand,
    /// Output: `N x C` for Mean, the input's element count for Logistic and Tanh.
    pub output: Operand,
    /// Precomputed int8 parameters; `None` for f32.
    pub quant: Option<P>,
}

impl<'a, P: Decode<'a>> Decode<'a> for Binary<P> {
    fn decode(r: &mut Reader<'a>) -> Option<Self> {
        Some(Binary {
            a: r.read()?,
            b: r.read()?,
            output: r.read()?,
            activation: r.read()?,
            quant: r.read()?,
        })
    }
}

impl<'a, P: Decode<'a>> Decode<'a> for Unary<P> {
    fn decode(r: &mut Reader<'a>) -> Option<Self> {
        Some(Unary {
            input: r.read()?,
            output: r.read()?,
            quant: r.read()?,
        })
    }
}

impl<P> Binary<P> {
    /// The rows of an Add or Mul without broadcasting (N x H rows of W x C elements), as running it
    /// in place in bands sees them; `None` when it broadcasts.
    pub fn rows(&self) -> Option<Rows> {
        let o = self.output.shape.nhwc();
        if self.a.shape.nhwc() != o || self.b.shape.nhwc() != o {
            return None;
        }
        Some(Rows {
            input: o.n * o.h,
            output: o.n * o.h,
            input_bytes: o.w * o.c * self.a.dtype.size(),
            output_bytes: o.w * o.c * self.output.dtype.size(),
            stride: 1,
            pad_top: 0,
            span: 1,
        })
    }

    /// How the operator runs in place: `Ok(None)` when no input overlaps the output; otherwise the
    /// rows and the bands' direction and shift. `Err` when the overlap cannot run (both inputs
    /// overlap, or broadcasting). Whether the bands fit is checked at load ([`Rows::fits`]).
    pub(crate) fn in_place(&self) -> Result<Banding, ()> {
        let from_b = match (
            overlaps(&self.a, &self.output),
            overlaps(&self.b, &self.output),
        ) {
            (false, false) => return Ok(None),
            (true, true) => return Err(()),
            _ if !cfg!(feature = "in-place") => return Err(()),
            (_, from_b) => from_b,
        };
        let rows = self.rows().ok_or(())?;
        let source = if from_b { &self.b } else { &self.a };
        let side = side(source.offset as usize, self.output.offset as usize);
        Ok(Some((rows, side)))
    }
}

/// Runs an element-wise binary operator with the int8 or int16 kernel (parameters present, chosen
/// by the output's type) or the f32 one; in bands when its output overlaps an input.
pub(crate) fn run_binary<P>(
    b: &Binary<P>,
    arena: &mut [u8],
    mut int8: impl FnMut(&P, Nhwc, &[i8], Nhwc, &[i8], Nhwc, &mut [i8]),
    #[cfg(feature = "int16")] mut int16: impl FnMut(&P, Nhwc, &[i16], Nhwc, &[i16], Nhwc, &mut [i16]),
    #[cfg(feature = "float")] mut float: impl FnMut(
        Activation,
        Nhwc,
        &[f32],
        Nhwc,
        &[f32],
        Nhwc,
        &mut [f32],
    ),
) -> Result<(), Error> {
    use crate::interpreter::CORRUPT;
    fn cast<T: bytemuck::Pod>(x: &[u8]) -> Result<&[T], Error> {
        bytemuck::try_cast_slice(x).map_err(|_| CORRUPT)
    }
    let mut kernel = |sa: Nhwc, a: &[u8], sb: Nhwc, bb: &[u8], so: Nhwc, out: &mut [u8]| {
        match &b.quant {
            #[cfg(feature = "int16")]
            Some(p) if b.output.dtype == crate::format::DType::I16 => {
                let out = bytemuck::try_cast_slice_mut(out).map_err(|_| CORRUPT)?;
                int16(p, sa, cast(a)?, sb, cast(bb)?, so, out)
            }
            Some(p) => int8(
                p,
                sa,
                cast(a)?,
                sb,
                cast(bb)?,
                so,
                bytemuck::cast_slice_mut(out),
            ),
            #[cfg(feature = "float")]
            None => {
                let out = bytemuck::try_cast_slice_mut(out).map_err(|_| CORRUPT)?;
                float(b.activation, sa, cast(a)?, sb, cast(bb)?, so, out)
            }
            #[cfg(not(feature = "float"))]
            None => return Err(CORRUPT),
        }
        Ok(())
    };
    let Some((rows, side)) = b.in_place().map_err(|()| CORRUPT)? else {
        let v = Views::new(arena, &b.output)?;
        let (sa, sb, so) = (b.a.shape.nhwc(), b.b.shape.nhwc(), b.output.shape.nhwc());
        return kernel(sa, v.bytes(&b.a)?, sb, v.bytes(&b.b)?, so, v.out);
    };
    let o = b.output.shape.nhwc();
    let reads = [b.a.offset as usize, b.b.offset as usize];
    each_band(
        arena,
        &rows,
        side,
        reads,
        b.output.offset as usize,
        |band, out, [a, bb]| {
            let shape = Nhwc::new(1, band.output.len(), o.w, o.c);
            kernel(shape, a, shape, bb, shape, out)
        },
    )
}

/// The rows of an element-wise unary operator (input and output of one element count and size:
/// N x H rows of W x C elements of the output's shape), as running it in place in bands sees them.
pub fn unary_rows(input: &Operand, output: &Operand) -> Option<Rows> {
    let o = output.shape.nhwc();
    if input.shape.elements() != output.shape.elements() || input.dtype != output.dtype {
        return None;
    }
    Some(Rows {
        input: o.n * o.h,
        output: o.n * o.h,
        input_bytes: o.w * o.c * input.dtype.size(),
        output_bytes: o.w * o.c * output.dtype.size(),
        stride: 1,
        pad_top: 0,
        span: 1,
    })
}

/// How an element-wise unary operator runs in place: `Ok(None)` when its output does not overlap
/// its input, the rows and the bands' direction and shift when it does, `Err` when it cannot (shapes
/// or types differ). Whether the bands fit is checked at load ([`Rows::fits`]).
fn elementwise(input: &Operand, output: &Operand) -> Result<Banding, ()> {
    if !overlaps(input, output) {
        return Ok(None);
    }
    if !cfg!(feature = "in-place") {
        return Err(());
    }
    let rows = unary_rows(input, output).ok_or(())?;
    Ok(Some((
        rows,
        side(input.offset as usize, output.offset as usize),
    )))
}

/// Runs a unary operator with the int8 or int16 kernel (parameters present, chosen by the output's
/// type) or the f32 one; an element-wise one in bands when its output overlaps its input.
pub(crate) fn run_unary<P>(
    input: &Operand,
    output: &Operand,
    quant: Option<&P>,
    arena: &mut [u8],
    mut int8: impl FnMut(&P, &[i8], &mut [i8]),
    #[cfg(feature = "int16")] mut int16: impl FnMut(&P, &[i16], &mut [i16]),
    #[cfg(feature = "float")] mut float: impl FnMut(&[f32], &mut [f32]),
) -> Result<(), Error> {
    use crate::interpreter::CORRUPT;
    fn cast<T: bytemuck::Pod>(x: &[u8]) -> Result<&[T], Error> {
        bytemuck::try_cast_slice(x).map_err(|_| CORRUPT)
    }
    fn cast_mut<T: bytemuck::Pod>(x: &mut [u8]) -> Result<&mut [T], Error> {
        bytemuck::try_cast_slice_mut(x).map_err(|_| CORRUPT)
    }
    let mut kernel = |x: &[u8], y: &mut [u8]| {
        match quant {
            #[cfg(feature = "int16")]
            Some(p) if output.dtype == crate::format::DType::I16 => {
                int16(p, cast(x)?, cast_mut(y)?)
            }
            Some(p) => int8(p, cast(x)?, cast_mut(y)?),
            #[cfg(feature = "float")]
            None => float(cast(x)?, cast_mut(y)?),
            #[cfg(not(feature = "float"))]
            None => return Err(CORRUPT),
        }
        Ok(())
    };
    let Some((rows, side)) = elementwise(input, output).map_err(|()| CORRUPT)? else {
        let v = Views::new(arena, output)?;
        return kernel(v.bytes(input)?, v.out);
    };
    let (x, y) = (input.offset as usize, output.offset as usize);
    each_band(arena, &rows, side, [x], y, |_, w, [r]| kernel(r, w))
}

/// The tensors an operator reads and the one it writes.
pub trait Operands {
    /// Calls `f` on each input operand in order, stopping at the first error.
    fn inputs(&self, f: &mut dyn FnMut(&Operand) -> Result<(), Error>) -> Result<(), Error>;
    /// The output operand.
    fn output(&self) -> &Operand;
    /// Calls `f` on every operand held in the operator itself, with `true` for the output (host: the
    /// model builder places them). Operands inside an encoded list (a Concatenation's inputs) are not
    /// visited: they are encoded after placement.
    #[cfg(any(feature = "host", test))]
    fn operands_mut(&mut self, f: &mut dyn FnMut(&mut Operand, bool));
}

/// Implements [`Operands`] for wire structs whose operands are plain fields.
macro_rules! operand_fields {
    ($ty:ty: $($input:ident),+ => $output:ident) => {
        impl $crate::ops::Operands for $ty {
            fn inputs(
                &self,
                f: &mut dyn FnMut(&$crate::format::Operand) -> Result<(), $crate::Error>,
            ) -> Result<(), $crate::Error> {
                $(f(&self.$input)?;)+
                Ok(())
            }
            fn output(&self) -> &$crate::format::Operand {
                &self.$output
            }
            #[cfg(any(feature = "host", test))]
            fn operands_mut(&mut self, f: &mut dyn FnMut(&mut $crate::format::Operand, bool)) {
                $(f(&mut self.$input, false);)+
                f(&mut self.$output, true);
            }
        }
    };
}
pub(crate) use operand_fields;

operand_fields!(Binary<AddParams>: a, b => output);
operand_fields!(Binary<MulParams>: a, b => output);
operand_fields!(Binary<ExtremumParams>: a, b => output);
operand_fields!(Unary<MeanParams>: input => output);
operand_fields!(Unary<LogisticParams>: input => output);
operand_fields!(Unary<TanhParams>: input => output);

/// What the table says of each operator kind, by tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorInfo {
    /// The name, as TFLite spells it.
    pub name: &'static str,
    /// The runtime's Cargo feature that builds it in: the name in lower case, `_` as `-`.
    pub feature: &'static str,
    /// Whether this build has that feature.
    pub built: bool,
}

/// The operator table: `tag variant(wire struct) module "NAME" "feature";`, in tag order.
macro_rules! operators {
    ($($(#[$doc:meta])* $tag:literal $variant:ident($payload:ty) $module:ident $name:literal $feature:literal;)*) => {
        /// One operator with all its parameters. Operand dtypes select the int8 or f32 kernel.
        ///
        /// The variants' order is the file's tags ([`OPERATORS`]).
        #[derive(Clone, Debug, Serialize)]
        pub enum Op<'a> {
            $($(#[$doc])* $variant($payload),)*
        }

        /// Each operator kind, indexed by its tag in the file.
        pub const OPERATORS: [OperatorInfo; [$($tag),*].len()] = [
            $(OperatorInfo { name: $name, feature: $feature, built: cfg!(feature = $feature) },)*
        ];

        // Tags are the table's positions: contiguous from 0, in order.
        const _: () = {
            let mut next = 0;
            $(assert!($tag == next); next += 1;)*
            let _ = next;
        };

        const VARIANTS: &[&str] = &[$(stringify!($variant)),*];

        impl Op<'_> {
            /// The operator's tag in the file: its index in [`OPERATORS`].
            pub fn tag(&self) -> usize {
                match self {
                    $(Op::$variant(_) => $tag,)*
                }
            }

            /// Calls `f` on each input operand in order, stopping at the first error (an operator
            /// built out has none: it never decodes).
            pub fn inputs(
                &self,
                mut f: impl FnMut(&Operand) -> Result<(), Error>,
            ) -> Result<(), Error> {
                match self {
                    $(Op::$variant(x) => {
                        #[cfg(feature = $feature)]
                        return Operands::inputs(x, &mut f);
                        #[cfg(not(feature = $feature))]
                        return { let _ = (x, &mut f); Ok(()) };
                    })*
                }
            }

            /// The output operand.
            pub fn output(&self) -> &Operand {
                match self {
                    $(Op::$variant(x) => Operands::output(x),)*
                }
            }

            /// Calls `f` on every operand held in the operator itself, with `true` for the output
            /// (see [`Operands::operands_mut`]).
            #[cfg(any(feature = "host", test))]
            pub fn operands_mut(&mut self, mut f: impl FnMut(&mut Operand, bool)) {
                match self {
                    $(Op::$variant(x) => Operands::operands_mut(x, &mut f),)*
                }
            }

            /// The operator-specific load-time checks (operands were checked against the tensor table).
            pub(crate) fn validate(&self, check: &Check<'_, '_, '_>) -> Result<(), Error> {
                match self {
                    $(Op::$variant(x) => {
                        #[cfg(feature = $feature)]
                        return $module::validate(x, check);
                        #[cfg(not(feature = $feature))]
                        return { let _ = x; Err(check.not_built(self)) };
                    })*
                }
            }

            /// Runs the operator on the arena. Not inlined: the kernels' stack buffers stay out of
            /// the caller's frame, whichever operators are built.
            #[inline(never)]
            pub(crate) fn run(&self, arena: &mut [u8]) -> Result<(), Error> {
                match self {
                    $(Op::$variant(x) => {
                        #[cfg(feature = $feature)]
                        return $module::run(x, arena);
                        #[cfg(not(feature = $feature))]
                        return { let _ = (x, arena); Err(crate::interpreter::CORRUPT) };
                    })*
                }
            }
        }

        /// An operator's tag as a varint, then its wire struct; only the kinds this runtime was
        /// built with (another tag does not decode). What `invoke` runs for each operator.
        impl<'a> Decode<'a> for Op<'a> {
            #[inline(never)]
            fn decode(r: &mut Reader<'a>) -> Option<Self> {
                let tag: u32 = r.read()?;
                // The convolutions' own arms below are never reached.
                #[allow(unreachable_patterns)]
                match tag {
                    0 | 1 => decode_conv(r, tag),
                    $(
                        #[cfg(feature = $feature)]
                        $tag => r.read().map(Op::$variant),
                    )*
                    _ => None,
                }
            }
        }

        // Decodes an operator as serde's derive would (`Op`'s `Deserialize`, for host tools; the
        // runtime reads operators with `Decode`), but only the kinds this runtime was built with.
        #[inline(never)]
        fn decode<'de: 'a, 'a, A: EnumAccess<'de>>(data: A) -> Result<Op<'a>, A::Error> {
            #[allow(unused_imports)]
            use serde::de::VariantAccess;
            let (tag, v): (u32, _) = data.variant()?;
            match tag {
                $(
                    #[cfg(feature = $feature)]
                    $tag => v.newtype_variant().map(Op::$variant),
                )*
                _ => {
                    let _ = v;
                    Err(de::Error::invalid_value(de::Unexpected::Unsigned(tag.into()), &OpVisitor(PhantomData)))
                }
            }
        }
    };
}

/// Conv2D (tag 0) and DepthwiseConv2D (tag 1), which share their struct: one inlined decoding
/// writes it in place in the operator (an out-of-line one is copied: about 110 instructions an
/// operator).
#[inline(always)]
fn decode_conv<'a>(r: &mut Reader<'a>, tag: u32) -> Option<Op<'a>> {
    if !OPERATORS.get(tag as usize).is_some_and(|o| o.built) {
        return None;
    }
    let conv: Conv<'a> = r.read()?;
    Some(if tag == 0 {
        Op::Conv2d(conv)
    } else {
        Op::DepthwiseConv2d(conv)
    })
}

operators! {
    /// 2-D convolution with a fused activation.
    0 Conv2d(Conv<'a>) conv_2d "CONV_2D" "conv-2d";
    /// Depthwise 2-D convolution: `depth_multiplier` filters per input channel.
    1 DepthwiseConv2d(Conv<'a>) depthwise_conv_2d "DEPTHWISE_CONV_2D" "depthwise-conv-2d";
    /// Matrix product of the flattened input with the filter, plus bias.
    2 FullyConnected(FullyConnected<'a>) fully_connected "FULLY_CONNECTED" "fully-connected";
    /// Element-wise sum with broadcasting.
    3 Add(Binary<AddParams>) add "ADD" "add";
    /// Element-wise product with broadcasting.
    4 Mul(Binary<MulParams>) mul "MUL" "mul";
    /// Mean of each window.
    5 AveragePool2d(Pool) average_pool_2d "AVERAGE_POOL_2D" "average-pool-2d";
    /// Maximum of each window.
    6 MaxPool2d(Pool) max_pool_2d "MAX_POOL_2D" "max-pool-2d";
    /// Mean over H and W of an NHWC tensor.
    7 Mean(Unary<MeanParams>) mean "MEAN" "mean";
    /// Softmax over the last axis.
    8 Softmax(Softmax) softmax "SOFTMAX" "softmax";
    /// Sigmoid, element-wise.
    9 Logistic(Unary<LogisticParams>) logistic "LOGISTIC" "logistic";
    /// Hyperbolic tangent, element-wise.
    10 Tanh(Unary<TanhParams>) tanh "TANH" "tanh";
    /// Standalone ReLU, ReLU6 or ReLU-1..1.
    11 Relu(Relu) relu "RELU" "relu";
    /// Same bytes under a new shape.
    12 Reshape(Reshape) reshape "RESHAPE" "reshape";
    /// Concatenation along one axis.
    13 Concatenation(Concatenation<'a>) concatenation "CONCATENATION" "concatenation";
    /// Padding with the output's zero point (int8), 0 (int16) or 0.0 (f32).
    14 Pad(Pad) pad "PAD" "pad";
    /// f32 -> int8, or int8 -> int8 requantization.
    15 Quantize(Quantize) quantize "QUANTIZE" "quantize";
    /// int8 -> f32.
    16 Dequantize(Dequantize) dequantize "DEQUANTIZE" "dequantize";
    /// CONV_2D with a pruned int8 filter, its zero blocks not stored.
    17 Conv2dSparse(SparseConv<'a>) conv_2d_sparse "CONV_2D_SPARSE" "conv-2d-sparse";
    /// FULLY_CONNECTED with a pruned int8 filter, its zero blocks not stored.
    18 FullyConnectedSparse(SparseFullyConnected<'a>) fully_connected_sparse "FULLY_CONNECTED_SPARSE" "fully-connected-sparse";
    /// `x` above zero, `alpha * x` below.
    19 LeakyRelu(LeakyRelu) leaky_relu "LEAKY_RELU" "leaky-relu";
    /// Each output pixel the nearest input pixel.
    20 ResizeNearestNeighbor(ResizeNearestNeighbor) resize_nearest_neighbor "RESIZE_NEAREST_NEIGHBOR" "resize-nearest-neighbor";
    /// `x` above zero, `alpha * x` below, with one constant alpha or one per channel.
    21 PRelu(PRelu<'a>) prelu "PRELU" "prelu";
    /// An int8 element-wise function by a table of 256 entries.
    22 Lookup(Lookup<'a>) lookup "LOOKUP" "lookup";
    /// Log-softmax over the last axis, int8.
    23 LogSoftmax(LogSoftmax<'a>) log_softmax "LOG_SOFTMAX" "log-softmax";
    /// A box of the input.
    24 Slice(Slice) slice "SLICE" "slice";
    /// Each pixel's channels as a block of pixels.
    25 DepthToSpace(DepthToSpace) depth_to_space "DEPTH_TO_SPACE" "depth-to-space";
    /// Each output pixel a blend of the four nearest input pixels.
    26 ResizeBilinear(ResizeBilinear) resize_bilinear "RESIZE_BILINEAR" "resize-bilinear";
    /// Padding by the input's own elements: mirrored, repeated from the border or wrapped around.
    27 MirrorPad(MirrorPad) mirror_pad "MIRROR_PAD" "mirror-pad";
    /// The input's axes in another order.
    28 Transpose(Transpose) transpose "TRANSPOSE" "transpose";
    /// Zero mean and unit variance over sets of positions and channels, then a per-channel affine.
    29 Normalize(Normalize<'a>) normalize "NORMALIZE" "normalize";
    /// Element-wise difference with broadcasting.
    30 Sub(Binary<AddParams>) sub "SUB" "sub";
    /// The larger of two elements, with broadcasting.
    31 Maximum(Binary<ExtremumParams>) maximum "MAXIMUM" "maximum";
    /// The smaller of two elements, with broadcasting.
    32 Minimum(Binary<ExtremumParams>) minimum "MINIMUM" "minimum";
}

impl Op<'_> {
    /// The operator's name, as TFLite spells it.
    pub fn name(&self) -> &'static str {
        OPERATORS[self.tag()].name
    }

    /// The runtime's Cargo feature that builds this operator in.
    pub fn feature(&self) -> &'static str {
        OPERATORS[self.tag()].feature
    }

    /// Whether this runtime was built with the operator's feature.
    pub fn is_built(&self) -> bool {
        OPERATORS[self.tag()].built
    }

    /// The inputs whose bytes the output may take when the output tensor is planned in place:
    /// Reshape's (at the same offset), the convolutions' and poolings' (run in bands, see
    /// [`crate::in_place`]), and either input of an Add, Sub or Mul without broadcasting (the one the
    /// output overlaps). A runtime built without `in-place` runs only Reshape in place.
    pub fn in_place_sources(&self) -> [Option<&Operand>; 2] {
        if !cfg!(feature = "in-place") {
            return match self {
                Op::Reshape(r) => [Some(&r.input), None],
                _ => [None, None],
            };
        }
        match self {
            Op::Reshape(r) => [Some(&r.input), None],
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => [Some(&c.input), None],
            Op::AveragePool2d(p) | Op::MaxPool2d(p) => [Some(&p.input), None],
            Op::Add(b) | Op::Sub(b) if b.rows().is_some() => [Some(&b.a), Some(&b.b)],
            Op::Mul(b) if b.rows().is_some() => [Some(&b.a), Some(&b.b)],
            Op::Logistic(Unary { input, .. })
            | Op::Tanh(Unary { input, .. })
            | Op::Relu(Relu { input, .. })
            | Op::LeakyRelu(LeakyRelu { input, .. })
            | Op::Lookup(Lookup { input, .. }) => [Some(input), None],
            _ => [None, None],
        }
    }

    /// Whether the operator may write its output exactly over its input (the same offset; see
    /// [`Conv::runs_over_input`]): some convolutions.
    pub fn runs_over_input(&self) -> bool {
        match self {
            Op::Conv2d(c) => c.runs_over_input(false),
            Op::DepthwiseConv2d(c) => c.runs_over_input(true),
            _ => false,
        }
    }

    /// Whether an output that overlaps an input leaves room for the operator's bands (any operator
    /// whose output overlaps none of its inputs passes; the plan check refuses other overlaps).
    pub(crate) fn bands_fit(&self) -> bool {
        use crate::in_place::windowed;
        if !cfg!(feature = "in-place") {
            // Only a Reshape may run in place (the loader refuses the others' in-place outputs),
            // and the plan check refuses every other overlap.
            return true;
        }
        let with = |rows: Rows| move |side| (rows, side);
        let run = match self {
            Op::DepthwiseConv2d(c)
                if c.input.offset == c.output.offset && self.runs_over_input() =>
            {
                return true;
            }
            // Exactly over the input too, with a room of 0.
            Op::Conv2d(c) if conv_2d::shifted(c) => {
                let room = c.shifted_room().unwrap_or(usize::MAX);
                return (c.input.offset - c.output.offset) as usize >= room;
            }
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
                windowed(&c.input, &c.output).map(|s| s.map(with(c.rows())))
            }
            Op::AveragePool2d(p) | Op::MaxPool2d(p) => {
                windowed(&p.input, &p.output).map(|s| s.map(with(p.rows())))
            }
            Op::Add(b) | Op::Sub(b) => b.in_place(),
            Op::Mul(b) => b.in_place(),
            Op::Logistic(Unary { input, output, .. })
            | Op::Tanh(Unary { input, output, .. })
            | Op::Relu(Relu { input, output, .. })
            | Op::LeakyRelu(LeakyRelu { input, output, .. })
            | Op::Lookup(Lookup { input, output, .. }) => elementwise(input, output),
            _ => Ok(None),
        };
        match run {
            Ok(None) => true,
            Ok(Some((rows, side))) => rows.fits(side),
            Err(()) => false,
        }
    }
}

/// Why the operator whose encoding starts `encoded` cannot be decoded by this runtime, when its tag
/// is the reason: a kind built out ([`Error::OperatorNotBuilt`]) or one newer than this runtime
/// ([`Error::UnknownOperator`]).
pub(crate) fn undecodable(step: u16, encoded: &[u8]) -> Option<Error> {
    let tag: u32 = Reader::new(encoded).read()?;
    match OPERATORS.get(tag as usize) {
        Some(info) if !info.built => Some(Error::OperatorNotBuilt {
            op: step,
            name: info.name,
            feature: info.feature,
        }),
        Some(_) => None,
        None => Some(Error::UnknownOperator {
            op: step,
            tag,
            known: OPERATORS.len() as u32,
        }),
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Op<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_enum("Op", VARIANTS, OpVisitor(PhantomData))
    }
}

struct OpVisitor<'a>(PhantomData<Op<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for OpVisitor<'a> {
    type Value = Op<'a>;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("an operator built into this runtime")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Op<'a>, A::Error> {
        decode(data)
    }
}
