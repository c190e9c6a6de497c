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
use crate::interpreter::Views;
use crate::kernels::Nhwc;
use crate::validate::Check;
use crate::Error;

pub mod add;
pub mod average_pool_2d;
pub mod concatenation;
pub mod conv_2d;
pub mod conv_2d_sparse;
pub mod depthwise_conv_2d;
pub mod dequantize;
pub mod fully_connected;
pub mod fully_connected_sparse;
pub mod leaky_relu;
pub mod logistic;
pub mod max_pool_2d;
pub mod mean;
pub mod mul;
pub mod pad;
pub mod prelu;
pub mod quantize;
pub mod relu;
pub mod reshape;
pub mod resize_nearest_neighbor;
pub mod softmax;
pub mod tanh;

pub use add::AddParams;
pub use average_pool_2d::Pool;
pub use concatenation::{ConcatInput, Concatenation};
pub use conv_2d::Conv;
pub use conv_2d_sparse::SparseConv;
pub use dequantize::Dequantize;
pub use fully_connected::FullyConnected;
pub use fully_connected_sparse::SparseFullyConnected;
pub use leaky_relu::{LeakyRelu, LeakyReluParams};
pub use logistic::LogisticParams;
pub use mean::MeanParams;
pub use mul::MulParams;
pub use pad::Pad;
pub use prelu::{PRelu, PReluParams};
pub use quantize::{Quantize, RequantizeParams};
pub use relu::{Relu, ReluParams};
pub use reshape::Reshape;
pub use resize_nearest_neighbor::ResizeNearestNeighbor;
pub use softmax::{Softmax, SoftmaxParams};
pub use tanh::TanhParams;

#[cfg(all(test, feature = "int16"))]
mod int16_elementwise_tests;
#[cfg(test)]
mod testutil;

/// An element-wise binary operator with broadcasting (Add, Mul); `quant` is present for int8 and
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

/// Runs an element-wise binary operator with the int8 or int16 kernel (parameters present, chosen
/// by the output's type) or the f32 one.
pub(crate) fn run_binary<P>(
    b: &Binary<P>,
    arena: &mut [u8],
    int8: impl FnOnce(&P, Nhwc, &[i8], Nhwc, &[i8], Nhwc, &mut [i8]),
    #[cfg(feature = "int16")] int16: impl FnOnce(&P, Nhwc, &[i16], Nhwc, &[i16], Nhwc, &mut [i16]),
    #[cfg(feature = "float")] float: impl FnOnce(
        Activation,
        Nhwc,
        &[f32],
        Nhwc,
        &[f32],
        Nhwc,
        &mut [f32],
    ),
) -> Result<(), Error> {
    let mut v = Views::new(arena, &b.output)?;
    let (sa, sb, so) = (b.a.shape.nhwc(), b.b.shape.nhwc(), b.output.shape.nhwc());
    match &b.quant {
        #[cfg(feature = "int16")]
        Some(p) if b.output.dtype == crate::format::DType::I16 => {
            int16(p, sa, v.i16(&b.a)?, sb, v.i16(&b.b)?, so, v.out_i16()?)
        }
        Some(p) => int8(p, sa, v.i8(&b.a)?, sb, v.i8(&b.b)?, so, v.out_i8()),
        #[cfg(feature = "float")]
        None => float(
            b.activation,
            sa,
            v.f32(&b.a)?,
            sb,
            v.f32(&b.b)?,
            so,
            v.out_f32()?,
        ),
        #[cfg(not(feature = "float"))]
        None => return Err(crate::interpreter::CORRUPT),
    }
    Ok(())
}

/// Runs an element-wise unary operator with the int8 or int16 kernel (parameters present, chosen by
/// the output's type) or the f32 one.
pub(crate) fn run_unary<P>(
    input: &Operand,
    output: &Operand,
    quant: Option<&P>,
    arena: &mut [u8],
    int8: impl FnOnce(&P, &[i8], &mut [i8]),
    #[cfg(feature = "int16")] int16: impl FnOnce(&P, &[i16], &mut [i16]),
    #[cfg(feature = "float")] float: impl FnOnce(&[f32], &mut [f32]),
) -> Result<(), Error> {
    let mut v = Views::new(arena, output)?;
    match quant {
        #[cfg(feature = "int16")]
        Some(p) if output.dtype == crate::format::DType::I16 => {
            int16(p, v.i16(input)?, v.out_i16()?)
        }
        Some(p) => int8(p, v.i8(input)?, v.out_i8()),
        #[cfg(feature = "float")]
        None => float(v.f32(input)?, v.out_f32()?),
        #[cfg(not(feature = "float"))]
        None => return Err(crate::interpreter::CORRUPT),
    }
    Ok(())
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
                match tag {
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
}

/// Why the operator whose encoding starts `encoded` cannot be decoded by this runtime, when its tag
/// is the reason: a kind built out ([`Error::OperatorNotBuilt`]) or one newer than this runtime
/// ([`Error::UnknownOperator`]).
pub(crate) fn undecodable(step: u16, encoded: &[u8]) -> Option<Error> {
    let (tag, _) = postcard::take_from_bytes::<u32>(encoded).ok()?;
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
