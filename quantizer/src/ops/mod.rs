//! The IR's operators, one file each: an operator's shape rule, float evaluation, gradient, lowering
//! to the runtime, ONNX export and the properties the passes read live in `ops/<operator>.rs`.
//!
//! This file holds the [`Op`] enum and the dispatch from it to those files. Every `match` here is
//! exhaustive, so a new variant is a compile error at each place it needs code: add the variant, then
//! follow the errors (shape, eval, backward, lower, export, output quantization, channels, name).
//! The importers (`crate::import`) map source operators onto these.
//!
//! Engines that drive whole graphs stay where they were: the float executor (`ir::float_exec`), the
//! backward walk (`train`), the lowering (`lower`) and the export (`export`); each calls one function
//! of the node's operator file through [`Op`].

mod add;
mod average_pool2d;
mod batch_norm;
mod concatenation;
mod conv2d;
mod depth_to_space;
mod depthwise_conv2d;
mod fully_connected;
mod identity;
mod leaky_relu;
mod log_softmax;
mod logistic;
mod lookup;
mod max_pool2d;
mod maximum;
mod mean;
mod mirror_pad;
mod mul;
mod normalize;
mod pad;
mod prelu;
mod relu;
mod reshape;
mod resize_bilinear;
mod resize_nearest;
mod slice;
mod softmax;
mod sub;
mod tanh;
mod transpose;

use anyhow::Result;
use ferrite_runtime::kernels::resize::BilinearMode;
use ferrite_runtime::ops::{Op as RtOp, PadMode};

use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{Tensor, View};
use crate::ir::{Clamp, Node, Param, Window2d};
use crate::lower::{Lowered, NodeCx};
use crate::quantize::params::QParams;
use crate::train::backward::{Grad, OpGrads};

pub(crate) use average_pool2d::global_pool;
pub use lookup::{ConstArith, ConstOperand, UnaryFn};

/// An operator. Each maps to one runtime operator after the passes (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Convolution; `filter` is `[out_c, kh, kw, in_c]`, `bias` `[out_c]`.
    Conv2d {
        window: Window2d,
        filter: Param,
        bias: Param,
        clamp: Clamp,
    },
    /// Depthwise convolution; `filter` is `[1, kh, kw, out_c]` with `out_c = in_c * depth_multiplier`.
    DepthwiseConv2d {
        window: Window2d,
        depth_multiplier: usize,
        filter: Param,
        bias: Param,
        clamp: Clamp,
    },
    /// `out[b, o] = sum_i in[b, i] * filter[o, i] + bias[o]` over the input flattened to
    /// `[batch * rows, in]` (the last dimension is `in`); `filter` is `[out, in]`.
    FullyConnected {
        filter: Param,
        bias: Param,
        clamp: Clamp,
    },
    /// Element-wise sum with NumPy broadcasting (operands of equal rank, 1 broadcasts).
    Add {
        clamp: Clamp,
    },
    /// Element-wise product with broadcasting.
    Mul {
        clamp: Clamp,
    },
    /// Element-wise difference (first minus second) with broadcasting.
    Sub {
        clamp: Clamp,
    },
    /// The larger of two elements, with broadcasting.
    Maximum,
    /// The smaller of two elements, with broadcasting.
    Minimum,
    /// Average over each window, padding excluded from the count.
    AveragePool2d {
        window: Window2d,
        clamp: Clamp,
    },
    MaxPool2d {
        window: Window2d,
        clamp: Clamp,
    },
    /// Mean over H and W of an NHWC tensor; output `[n, 1, 1, c]` (`keep_dims`) or `[n, c]`.
    Mean {
        keep_dims: bool,
    },
    /// Softmax over the last axis.
    Softmax {
        beta: f32,
    },
    Logistic,
    Tanh,
    /// A standalone clamp (ReLU, ReLU6, Clip).
    Relu {
        clamp: Clamp,
    },
    /// `x` where `x >= 0`, `alpha * x` below (`alpha >= 0`).
    LeakyRelu {
        alpha: f32,
    },
    /// `x` where `x >= 0`, `slope[c] * x` below; `slope` is `[1]` (shared) or `[c]` (per channel
    /// of the last axis), trainable.
    PRelu {
        slope: Param,
    },
    /// Nearest-neighbour resize of an NHWC tensor to `size` (height, width): output pixel `(y, x)`
    /// copies input pixel `(y * in_h / out_h, x * in_w / out_w)` (integer division).
    ResizeNearest {
        size: [usize; 2],
    },
    /// Bilinear resize of an NHWC tensor to `size` (height, width), TFLite's coordinates by `mode`.
    ResizeBilinear {
        size: [usize; 2],
        mode: BilinearMode,
    },
    /// Same elements, new shape; `shape[0]` is the batch (1), replaced by the input's batch when run.
    Reshape {
        shape: Vec<usize>,
    },
    /// Concatenation along `axis` (not the batch).
    Concatenation {
        axis: usize,
    },
    /// Zero padding; `before` and `after` per dimension.
    Pad {
        before: Vec<usize>,
        after: Vec<usize>,
    },
    /// Padding by the input's own elements (mirrored, the border repeated, or wrapped around);
    /// `before` and `after` per dimension.
    MirrorPad {
        before: Vec<usize>,
        after: Vec<usize>,
        mode: PadMode,
    },
    /// Per-channel affine over the last axis, `x * scale[c] + shift[c]` (inference BatchNormalization);
    /// folded into the preceding Conv/FullyConnected by the passes.
    BatchNorm {
        scale: Param,
        shift: Param,
    },
    /// Log-softmax over the last axis (int8 only).
    LogSoftmax,
    /// The box of the input from `begin` with `size` elements per dimension (`size[0]` follows the
    /// input's batch).
    Slice {
        begin: Vec<usize>,
        size: Vec<usize>,
    },
    /// Each pixel's channels as a `block[0] x block[1]` block of pixels; `crd`: ONNX's CRD channel
    /// order (PyTorch's PixelShuffle), otherwise TFLite's (ONNX DCR).
    DepthToSpace {
        block: [usize; 2],
        crd: bool,
    },
    /// The input's axes in another order: output axis `i` is input axis `perm[i]` (the batch stays
    /// first).
    Transpose {
        perm: Vec<usize>,
    },
    /// Zero mean and unit variance over each set of values, then `gamma[c] * x + beta[c]` per
    /// channel (the last axis): a set is one position's channels, or every position's with
    /// `across_positions`, per group of `c / groups` consecutive channels (ONNX LayerNormalization,
    /// GroupNormalization, InstanceNormalization); `gamma` and `beta` are `[c]`, trainable; a fused
    /// clamp after.
    Normalize {
        groups: usize,
        across_positions: bool,
        epsilon: f32,
        gamma: Param,
        beta: Param,
        clamp: Clamp,
    },
    /// An element-wise function without a kernel of its own, run by an int8 table (LOOKUP).
    Lookup {
        f: UnaryFn,
    },
    /// Copies its input (ONNX Identity and inference Dropout); removed by the passes. In a model
    /// imported with its own quantization (TFLite QUANTIZE and DEQUANTIZE) it converts between
    /// differently typed or quantized values, and is lowered to the runtime's Quantize or Dequantize.
    Identity,
}

impl Op {
    /// The operator's name, as the runtime (TFLite) spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "CONV_2D",
            Op::DepthwiseConv2d { .. } => "DEPTHWISE_CONV_2D",
            Op::FullyConnected { .. } => "FULLY_CONNECTED",
            Op::Add { .. } => "ADD",
            Op::Mul { .. } => "MUL",
            Op::Sub { .. } => "SUB",
            Op::Maximum => "MAXIMUM",
            Op::Minimum => "MINIMUM",
            Op::AveragePool2d { .. } => "AVERAGE_POOL_2D",
            Op::MaxPool2d { .. } => "MAX_POOL_2D",
            Op::Mean { .. } => "MEAN",
            Op::Softmax { .. } => "SOFTMAX",
            Op::Logistic => "LOGISTIC",
            Op::Tanh => "TANH",
            Op::Relu { .. } => "RELU",
            Op::LeakyRelu { .. } => "LEAKY_RELU",
            Op::PRelu { .. } => "PRELU",
            Op::ResizeNearest { .. } => "RESIZE_NEAREST_NEIGHBOR",
            Op::ResizeBilinear { .. } => "RESIZE_BILINEAR",
            Op::Reshape { .. } => "RESHAPE",
            Op::Concatenation { .. } => "CONCATENATION",
            Op::Pad { .. } => "PAD",
            Op::MirrorPad { .. } => "MIRROR_PAD",
            Op::BatchNorm { .. } => "BATCH_NORM",
            Op::Lookup { .. } => "LOOKUP",
            Op::LogSoftmax => "LOG_SOFTMAX",
            Op::Slice { .. } => "SLICE",
            Op::DepthToSpace { .. } => "DEPTH_TO_SPACE",
            Op::Transpose { .. } => "TRANSPOSE",
            Op::Normalize { .. } => "NORMALIZE",
            Op::Identity => "IDENTITY",
        }
    }

    /// The fused output clamp, for operators that have one (the same operators as [`Self::clamp_mut`]).
    pub fn clamp(&self) -> Option<Clamp> {
        match self {
            Op::Conv2d { clamp, .. }
            | Op::DepthwiseConv2d { clamp, .. }
            | Op::FullyConnected { clamp, .. }
            | Op::Add { clamp }
            | Op::Sub { clamp }
            | Op::Mul { clamp }
            | Op::AveragePool2d { clamp, .. }
            | Op::MaxPool2d { clamp, .. }
            | Op::Normalize { clamp, .. }
            | Op::Relu { clamp } => Some(*clamp),
            Op::Mean { .. }
            | Op::Maximum
            | Op::Minimum
            | Op::Softmax { .. }
            | Op::Logistic
            | Op::Tanh
            | Op::LeakyRelu { .. }
            | Op::PRelu { .. }
            | Op::ResizeNearest { .. }
            | Op::ResizeBilinear { .. }
            | Op::Reshape { .. }
            | Op::Concatenation { .. }
            | Op::Pad { .. }
            | Op::MirrorPad { .. }
            | Op::BatchNorm { .. }
            | Op::Lookup { .. }
            | Op::LogSoftmax
            | Op::Slice { .. }
            | Op::DepthToSpace { .. }
            | Op::Transpose { .. }
            | Op::Identity => None,
        }
    }

    /// The fused output clamp, for operators that have one.
    pub fn clamp_mut(&mut self) -> Option<&mut Clamp> {
        match self {
            Op::Conv2d { clamp, .. }
            | Op::DepthwiseConv2d { clamp, .. }
            | Op::FullyConnected { clamp, .. }
            | Op::Add { clamp }
            | Op::Sub { clamp }
            | Op::Mul { clamp }
            | Op::AveragePool2d { clamp, .. }
            | Op::MaxPool2d { clamp, .. }
            | Op::Normalize { clamp, .. }
            | Op::Relu { clamp } => Some(clamp),
            Op::Mean { .. }
            | Op::Maximum
            | Op::Minimum
            | Op::Softmax { .. }
            | Op::Logistic
            | Op::Tanh
            | Op::LeakyRelu { .. }
            | Op::PRelu { .. }
            | Op::ResizeNearest { .. }
            | Op::ResizeBilinear { .. }
            | Op::Reshape { .. }
            | Op::Concatenation { .. }
            | Op::Pad { .. }
            | Op::MirrorPad { .. }
            | Op::BatchNorm { .. }
            | Op::Lookup { .. }
            | Op::LogSoftmax
            | Op::Slice { .. }
            | Op::DepthToSpace { .. }
            | Op::Transpose { .. }
            | Op::Identity => None,
        }
    }

    /// The weight arrays the operator owns (filter then bias; BatchNorm scale then shift; PRelu its
    /// slope), for training and pruning.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        match self {
            Op::Conv2d { filter, bias, .. }
            | Op::DepthwiseConv2d { filter, bias, .. }
            | Op::FullyConnected { filter, bias, .. } => vec![filter, bias],
            Op::BatchNorm { scale, shift } => vec![scale, shift],
            Op::PRelu { slope } => vec![slope],
            Op::Normalize { gamma, beta, .. } => vec![gamma, beta],
            Op::Add { .. }
            | Op::Sub { .. }
            | Op::Maximum
            | Op::Minimum
            | Op::Mul { .. }
            | Op::AveragePool2d { .. }
            | Op::MaxPool2d { .. }
            | Op::Mean { .. }
            | Op::Softmax { .. }
            | Op::Logistic
            | Op::Tanh
            | Op::Relu { .. }
            | Op::LeakyRelu { .. }
            | Op::ResizeNearest { .. }
            | Op::ResizeBilinear { .. }
            | Op::Reshape { .. }
            | Op::Concatenation { .. }
            | Op::Pad { .. }
            | Op::MirrorPad { .. }
            | Op::Lookup { .. }
            | Op::LogSoftmax
            | Op::Slice { .. }
            | Op::DepthToSpace { .. }
            | Op::Transpose { .. }
            | Op::Identity => Vec::new(),
        }
    }

    /// Multiply-accumulates per sample for an output of `out` elements (0 for data movement).
    pub fn macs(&self, out_elements: usize) -> usize {
        match self {
            Op::Conv2d { filter, .. } => out_elements * filter.shape[1..].iter().product::<usize>(),
            Op::DepthwiseConv2d { window, .. } => {
                out_elements * window.kernel[0] * window.kernel[1]
            }
            Op::FullyConnected { filter, .. } => out_elements * filter.shape[1],
            Op::Add { .. }
            | Op::Sub { .. }
            | Op::Maximum
            | Op::Minimum
            | Op::Mul { .. }
            | Op::AveragePool2d { .. }
            | Op::MaxPool2d { .. }
            | Op::Mean { .. }
            | Op::Softmax { .. }
            | Op::Logistic
            | Op::Tanh
            | Op::Relu { .. }
            | Op::LeakyRelu { .. }
            | Op::PRelu { .. }
            | Op::ResizeNearest { .. }
            | Op::ResizeBilinear { .. }
            | Op::Reshape { .. }
            | Op::Concatenation { .. }
            | Op::Pad { .. }
            | Op::MirrorPad { .. }
            | Op::BatchNorm { .. }
            | Op::Lookup { .. }
            | Op::LogSoftmax
            | Op::Slice { .. }
            | Op::DepthToSpace { .. }
            | Op::Transpose { .. }
            | Op::Normalize { .. }
            | Op::Identity => 0,
        }
    }
}

/// How an operator's int8 output is quantized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutputQuant {
    /// From the output's own calibrated range.
    Calibrated,
    /// The input's quantization, unchanged (data movement, max, averages, clamps in the input's
    /// domain).
    Input,
    /// Fixed by the operator (TFLite's int8 kernels require it).
    Fixed(QParams),
}

/// What an operator does to the channels (the last axis) of its inputs: how filter pruning follows
/// channels through a graph, and whether equalization may look through the operator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Channels<'o> {
    /// A new set of `count` channels, one per filter row (Conv2d, FullyConnected).
    New { count: usize },
    /// Output channel `c * depth_multiplier + m` reads input channel `c` only.
    Depthwise { depth_multiplier: usize },
    /// Output channel `c` reads input channel `c` only. `positive_scale`: scaling an input channel
    /// by `s > 0` scales its output channel by `s`, so equalization may look through the operator.
    Kept { positive_scale: bool },
    /// Zero padding; `channels`: the channel axis itself is padded.
    Padded { channels: bool },
    /// The elements under a new shape.
    Reshaped { shape: &'o [usize] },
    /// Inputs joined element for element (Add, Mul: `axis` none) or concatenated along `axis`.
    Joined { axis: Option<usize> },
    /// Every output channel reads every input channel (Softmax).
    Mixed,
}

impl Op {
    /// The output shape of the operator applied to inputs of shapes `inputs` (batch first).
    pub fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        match self {
            Op::Conv2d {
                window,
                filter,
                bias,
                ..
            } => conv2d::shape(window, filter, bias, inputs),
            Op::DepthwiseConv2d {
                window,
                depth_multiplier,
                filter,
                bias,
                ..
            } => depthwise_conv2d::shape(window, *depth_multiplier, filter, bias, inputs),
            Op::FullyConnected { filter, bias, .. } => fully_connected::shape(filter, bias, inputs),
            Op::Add { .. } => add::shape(inputs),
            Op::Sub { .. } => sub::shape(inputs),
            Op::Maximum | Op::Minimum => maximum::shape(inputs),
            Op::Mul { .. } => mul::shape(inputs),
            Op::AveragePool2d { window, .. } => average_pool2d::shape(window, inputs),
            Op::MaxPool2d { window, .. } => max_pool2d::shape(window, inputs),
            Op::Mean { keep_dims } => mean::shape(*keep_dims, inputs),
            Op::Softmax { .. } => softmax::shape(inputs),
            Op::Logistic => logistic::shape(inputs),
            Op::Tanh => tanh::shape(inputs),
            Op::Relu { .. } => relu::shape(inputs),
            Op::LeakyRelu { .. } => leaky_relu::shape(inputs),
            Op::PRelu { slope } => prelu::shape(slope, inputs),
            Op::ResizeNearest { size } => resize_nearest::shape(*size, inputs),
            Op::ResizeBilinear { size, .. } => resize_bilinear::shape(*size, inputs),
            Op::Reshape { shape } => reshape::shape(shape, inputs),
            Op::Concatenation { axis } => concatenation::shape(*axis, inputs),
            Op::Pad { before, after } => pad::shape(before, after, inputs),
            Op::MirrorPad {
                before,
                after,
                mode,
            } => mirror_pad::shape(before, after, *mode, inputs),
            Op::BatchNorm { scale, shift } => batch_norm::shape(scale, shift, inputs),
            Op::Lookup { .. } => lookup::shape(inputs),
            Op::LogSoftmax => log_softmax::shape(inputs),
            Op::Slice { begin, size } => slice::shape(begin, size, inputs),
            Op::DepthToSpace { block, .. } => depth_to_space::shape(*block, inputs),
            Op::Transpose { perm } => transpose::shape(perm, inputs),
            Op::Normalize {
                groups,
                across_positions,
                gamma,
                beta,
                ..
            } => normalize::shape(*groups, *across_positions, gamma, beta, inputs),
            Op::Identity => identity::shape(inputs),
        }
    }

    /// Runs the operator in f32 on `inputs`, writing `out` (already shaped by [`Op::output_shape`]).
    pub(crate) fn eval(&self, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
        match self {
            Op::Conv2d {
                window,
                filter,
                bias,
                clamp,
            } => conv2d::eval(window, filter, bias, *clamp, inputs, out),
            Op::DepthwiseConv2d {
                window,
                depth_multiplier,
                filter,
                bias,
                clamp,
            } => {
                depthwise_conv2d::eval(window, *depth_multiplier, filter, bias, *clamp, inputs, out)
            }
            Op::FullyConnected {
                filter,
                bias,
                clamp,
            } => fully_connected::eval(filter, bias, *clamp, inputs, out),
            Op::Add { clamp } => add::eval(*clamp, inputs, out),
            Op::Sub { clamp } => sub::eval(*clamp, inputs, out),
            Op::Maximum => maximum::eval(true, inputs, out),
            Op::Minimum => maximum::eval(false, inputs, out),
            Op::Mul { clamp } => mul::eval(*clamp, inputs, out),
            Op::AveragePool2d { window, clamp } => {
                average_pool2d::eval(window, *clamp, inputs, out)
            }
            Op::MaxPool2d { window, clamp } => max_pool2d::eval(window, *clamp, inputs, out),
            Op::Mean { .. } => mean::eval(inputs, out),
            Op::Softmax { beta } => softmax::eval(*beta, inputs, out),
            Op::Logistic => logistic::eval(inputs, out),
            Op::Tanh => tanh::eval(inputs, out),
            Op::Relu { clamp } => relu::eval(*clamp, inputs, out),
            Op::LeakyRelu { alpha } => leaky_relu::eval(*alpha, inputs, out),
            Op::PRelu { slope } => prelu::eval(slope, inputs, out),
            Op::ResizeNearest { .. } => resize_nearest::eval(inputs, out),
            Op::ResizeBilinear { mode, .. } => resize_bilinear::eval(*mode, inputs, out),
            Op::Reshape { .. } => reshape::eval(inputs, out),
            Op::Concatenation { axis } => concatenation::eval(*axis, inputs, out),
            Op::Pad { before, .. } => pad::eval(before, inputs, out),
            Op::MirrorPad { before, mode, .. } => mirror_pad::eval(before, *mode, inputs, out),
            Op::BatchNorm { scale, shift } => batch_norm::eval(scale, shift, inputs, out),
            Op::Lookup { f } => lookup::eval(*f, inputs, out),
            Op::LogSoftmax => log_softmax::eval(inputs, out),
            Op::Slice { begin, .. } => slice::eval(begin, inputs, out),
            Op::DepthToSpace { block, crd } => depth_to_space::eval(*block, *crd, inputs, out),
            Op::Transpose { perm } => transpose::eval(perm, inputs, out),
            Op::Normalize {
                groups,
                across_positions,
                epsilon,
                gamma,
                beta,
                clamp,
            } => normalize::eval(
                (*groups, *across_positions, *epsilon),
                gamma,
                beta,
                *clamp,
                inputs,
                out,
            ),
            Op::Identity => identity::eval(inputs, out),
        }
    }

    /// The gradients of the operator's inputs and parameters (see [`Grad`]).
    pub(crate) fn backward(&self, g: &Grad<'_>) -> Result<OpGrads> {
        match self {
            Op::Conv2d { window, filter, .. } => conv2d::backward(window, filter, g),
            Op::DepthwiseConv2d {
                window,
                depth_multiplier,
                filter,
                ..
            } => depthwise_conv2d::backward(window, *depth_multiplier, filter, g),
            Op::FullyConnected { filter, .. } => fully_connected::backward(filter, g),
            Op::Add { .. } => add::backward(g),
            Op::Sub { .. } => sub::backward(g),
            Op::Maximum => maximum::backward(true, g),
            Op::Minimum => maximum::backward(false, g),
            Op::Mul { .. } => mul::backward(g),
            Op::AveragePool2d { window, .. } => average_pool2d::backward(window, g),
            Op::MaxPool2d { window, .. } => max_pool2d::backward(window, g),
            Op::Mean { .. } => mean::backward(g),
            Op::Softmax { beta } => softmax::backward(*beta, g),
            Op::Logistic => logistic::backward(g),
            Op::Tanh => tanh::backward(g),
            Op::Relu { .. } => relu::backward(g),
            Op::LeakyRelu { alpha } => leaky_relu::backward(*alpha, g),
            Op::PRelu { slope } => prelu::backward(slope, g),
            Op::ResizeNearest { .. } => resize_nearest::backward(g),
            Op::ResizeBilinear { mode, .. } => resize_bilinear::backward(*mode, g),
            Op::Reshape { .. } => reshape::backward(g),
            Op::Concatenation { axis } => concatenation::backward(*axis, g),
            Op::Pad { before, .. } => pad::backward(before, g),
            Op::MirrorPad { before, mode, .. } => mirror_pad::backward(before, *mode, g),
            Op::BatchNorm { scale, .. } => batch_norm::backward(scale, g),
            Op::Lookup { f } => lookup::backward(*f, g),
            Op::LogSoftmax => log_softmax::backward(g),
            Op::Slice { begin, .. } => slice::backward(begin, g),
            Op::DepthToSpace { block, crd } => depth_to_space::backward(*block, *crd, g),
            Op::Transpose { perm } => transpose::backward(perm, g),
            Op::Normalize {
                groups,
                across_positions,
                epsilon,
                gamma,
                ..
            } => normalize::backward(*groups, *across_positions, *epsilon, gamma, g),
            Op::Identity => identity::backward(g),
        }
    }

    /// The runtime operator of the node `cx` lowers (its tensors placed and quantized).
    pub(crate) fn lower<'a>(&self, cx: &NodeCx<'_, 'a>) -> Result<Lowered<'a>> {
        let op: RtOp<'a> = match self {
            Op::Conv2d {
                window,
                filter,
                clamp,
                ..
            } => conv2d::lower(window, filter, *clamp, cx)?,
            Op::DepthwiseConv2d {
                window,
                depth_multiplier,
                filter,
                clamp,
                ..
            } => depthwise_conv2d::lower(window, *depth_multiplier, filter, *clamp, cx)?,
            Op::FullyConnected { clamp, .. } => fully_connected::lower(*clamp, cx)?,
            Op::Add { clamp } => add::lower(*clamp, cx)?,
            Op::Sub { clamp } => sub::lower(*clamp, cx)?,
            Op::Maximum => maximum::lower(true, cx)?,
            Op::Minimum => maximum::lower(false, cx)?,
            Op::Mul { clamp } => mul::lower(*clamp, cx)?,
            Op::AveragePool2d { window, clamp } => average_pool2d::lower(window, *clamp, cx)?,
            Op::MaxPool2d { window, clamp } => max_pool2d::lower(window, *clamp, cx)?,
            Op::Mean { .. } => mean::lower(cx)?,
            Op::Softmax { beta } => softmax::lower(*beta, cx),
            Op::Logistic => logistic::lower(cx),
            Op::Tanh => tanh::lower(cx),
            Op::Relu { clamp } => relu::lower(*clamp, cx)?,
            Op::LeakyRelu { alpha } => leaky_relu::lower(*alpha, cx),
            Op::PRelu { .. } => prelu::lower(cx)?,
            Op::ResizeNearest { .. } => resize_nearest::lower(cx),
            Op::ResizeBilinear { mode, .. } => resize_bilinear::lower(*mode, cx),
            Op::Reshape { .. } => reshape::lower(cx),
            Op::Concatenation { axis } => return concatenation::lower(*axis, cx),
            Op::Pad { before, .. } => pad::lower(before, cx)?,
            Op::MirrorPad { before, mode, .. } => mirror_pad::lower(before, *mode, cx)?,
            Op::BatchNorm { .. } => batch_norm::lower(cx)?,
            Op::Lookup { .. } => lookup::lower(cx)?,
            Op::LogSoftmax => log_softmax::lower(cx)?,
            Op::Slice { begin, .. } => slice::lower(begin, cx)?,
            Op::DepthToSpace { block, crd } => depth_to_space::lower(*block, *crd, cx)?,
            Op::Transpose { perm } => transpose::lower(perm, cx)?,
            Op::Normalize {
                groups,
                across_positions,
                epsilon,
                clamp,
                ..
            } => normalize::lower((*groups, *across_positions, *epsilon), *clamp, cx)?,
            Op::Identity => identity::lower(cx)?,
        };
        Ok(Lowered::Op(op))
    }

    /// Writes node `n` (the graph's node `i`) into the ONNX file `e` builds: the name of its output
    /// tensor and that tensor's layout.
    pub(crate) fn export(
        &self,
        e: &mut Exporter<'_>,
        i: usize,
        n: &Node,
    ) -> Result<(String, Layout)> {
        match self {
            Op::Conv2d {
                window,
                filter,
                bias,
                clamp,
            } => conv2d::export(window, filter, bias, *clamp, e, i, n),
            Op::DepthwiseConv2d {
                window,
                filter,
                bias,
                clamp,
                ..
            } => depthwise_conv2d::export(window, filter, bias, *clamp, e, i, n),
            Op::FullyConnected {
                filter,
                bias,
                clamp,
            } => fully_connected::export(filter, bias, *clamp, e, i, n),
            Op::Add { clamp } => add::export(*clamp, e, n),
            Op::Sub { clamp } => sub::export(*clamp, e, n),
            Op::Maximum => maximum::export(true, e, n),
            Op::Minimum => maximum::export(false, e, n),
            Op::Mul { clamp } => mul::export(*clamp, e, n),
            Op::AveragePool2d { window, clamp } => average_pool2d::export(window, *clamp, e, n),
            Op::MaxPool2d { window, clamp } => max_pool2d::export(window, *clamp, e, n),
            Op::Mean { keep_dims } => mean::export(*keep_dims, e, n),
            Op::Softmax { beta } => softmax::export(*beta, e, n),
            Op::Logistic => logistic::export(e, n),
            Op::Tanh => tanh::export(e, n),
            Op::Relu { clamp } => relu::export(*clamp, e, n),
            Op::LeakyRelu { alpha } => leaky_relu::export(*alpha, e, n),
            Op::PRelu { slope } => prelu::export(slope, e, n),
            Op::ResizeNearest { size } => resize_nearest::export(*size, e, n),
            Op::ResizeBilinear { size, mode } => resize_bilinear::export(*size, *mode, e, n),
            Op::Reshape { shape } => reshape::export(shape, e, n),
            Op::Concatenation { axis } => concatenation::export(*axis, e, n),
            Op::Pad { before, after } => pad::export(before, after, e, n),
            Op::MirrorPad {
                before,
                after,
                mode,
            } => mirror_pad::export(before, after, *mode, e, n),
            Op::BatchNorm { .. } => batch_norm::export(n),
            Op::Lookup { f } => lookup::export(*f, e, n),
            Op::LogSoftmax => log_softmax::export(e, n),
            Op::Slice { begin, size } => slice::export(begin, size, e, n),
            Op::DepthToSpace { block, crd } => depth_to_space::export(*block, *crd, e, n),
            Op::Transpose { perm } => transpose::export(perm, e, n),
            Op::Normalize {
                groups,
                across_positions,
                epsilon,
                gamma,
                beta,
                clamp,
            } => normalize::export(
                (*groups, *across_positions, *epsilon),
                gamma,
                beta,
                *clamp,
                e,
                n,
            ),
            Op::Identity => identity::export(e, n),
        }
    }

    /// How the operator's int8 output is quantized.
    pub fn output_quant(&self) -> OutputQuant {
        match self {
            Op::Conv2d { .. } => conv2d::OUTPUT,
            Op::DepthwiseConv2d { .. } => depthwise_conv2d::OUTPUT,
            Op::FullyConnected { .. } => fully_connected::OUTPUT,
            Op::Add { .. } => add::OUTPUT,
            Op::Sub { .. } => sub::OUTPUT,
            Op::Maximum | Op::Minimum => maximum::OUTPUT,
            Op::Mul { .. } => mul::OUTPUT,
            Op::AveragePool2d { .. } => average_pool2d::OUTPUT,
            Op::MaxPool2d { .. } => max_pool2d::OUTPUT,
            Op::Mean { .. } => mean::OUTPUT,
            Op::Softmax { .. } => softmax::OUTPUT,
            Op::Logistic => logistic::OUTPUT,
            Op::Tanh => tanh::OUTPUT,
            Op::Relu { .. } => relu::OUTPUT,
            Op::LeakyRelu { .. } => leaky_relu::OUTPUT,
            Op::PRelu { .. } => prelu::OUTPUT,
            Op::ResizeNearest { .. } => resize_nearest::OUTPUT,
            Op::ResizeBilinear { .. } => resize_bilinear::OUTPUT,
            Op::Reshape { .. } => reshape::OUTPUT,
            Op::Concatenation { .. } => concatenation::OUTPUT,
            Op::Pad { .. } => pad::OUTPUT,
            Op::MirrorPad { .. } => mirror_pad::OUTPUT,
            Op::BatchNorm { .. } => batch_norm::OUTPUT,
            Op::Lookup { .. } => lookup::OUTPUT,
            Op::LogSoftmax => log_softmax::OUTPUT,
            Op::Slice { .. } => slice::OUTPUT,
            Op::DepthToSpace { .. } => depth_to_space::OUTPUT,
            Op::Transpose { .. } => transpose::OUTPUT,
            Op::Normalize { .. } => normalize::OUTPUT,
            Op::Identity => identity::OUTPUT,
        }
    }

    /// Whether post-training quantization (`--int16`, accuracy control) may give the operator int16
    /// activations: the runtime runs it in int16 ([`Self::has_int16`]) on inputs of any int16 scale.
    /// Concatenation copies int16 inputs and Maximum and Minimum compare them as they are, which
    /// needs them quantized as the output: TFLite's 16x8 models are, calibrated ranges are not
    /// (these stay int8 between conversions).
    pub fn int16_from_calibration(&self) -> bool {
        self.has_int16() && !matches!(self, Op::Concatenation { .. } | Op::Maximum | Op::Minimum)
    }

    /// Whether the runtime runs the operator on int16 activations (int16x8); the lowering refuses
    /// an int16 node of any other.
    pub fn has_int16(&self) -> bool {
        match self {
            Op::Conv2d { .. } => conv2d::INT16,
            Op::DepthwiseConv2d { .. } => depthwise_conv2d::INT16,
            Op::FullyConnected { .. } => fully_connected::INT16,
            Op::Add { .. } => add::INT16,
            Op::Sub { .. } => sub::INT16,
            Op::Maximum | Op::Minimum => maximum::INT16,
            Op::Mul { .. } => mul::INT16,
            Op::AveragePool2d { .. } => average_pool2d::INT16,
            Op::MaxPool2d { .. } => max_pool2d::INT16,
            Op::Mean { .. } => mean::INT16,
            Op::Softmax { .. } => softmax::INT16,
            Op::Logistic => logistic::INT16,
            Op::Tanh => tanh::INT16,
            Op::Relu { .. } => relu::INT16,
            Op::LeakyRelu { .. } => leaky_relu::INT16,
            Op::PRelu { .. } => prelu::INT16,
            Op::ResizeNearest { .. } => resize_nearest::INT16,
            Op::ResizeBilinear { .. } => resize_bilinear::INT16,
            Op::Reshape { .. } => reshape::INT16,
            Op::Concatenation { .. } => concatenation::INT16,
            Op::Pad { .. } => pad::INT16,
            Op::MirrorPad { .. } => mirror_pad::INT16,
            Op::BatchNorm { .. } => batch_norm::INT16,
            Op::Lookup { .. } => lookup::INT16,
            Op::LogSoftmax => log_softmax::INT16,
            Op::Slice { .. } => slice::INT16,
            Op::DepthToSpace { .. } => depth_to_space::INT16,
            Op::Transpose { .. } => transpose::INT16,
            Op::Normalize { .. } => normalize::INT16,
            Op::Identity => identity::INT16,
        }
    }

    /// Whether the runtime runs the operator in f32 (a node kept in float); LOOKUP and LOG_SOFTMAX
    /// run in int8 only, and so does an operator whose fused clamp is none of the f32 kernels'
    /// activations (a HardSigmoid's `[0, 1]`). NORMALIZE runs in int8 only too.
    pub fn has_float(&self) -> bool {
        !matches!(
            self,
            Op::Lookup { .. } | Op::LogSoftmax | Op::Normalize { .. }
        ) && self.clamp().is_none_or(|c| c.activation().is_some())
    }

    /// The ONNX opset the operator's export needs (the exporter's default but for newer functions).
    pub(crate) fn onnx_opset(&self) -> i64 {
        match self {
            Op::Lookup { f } => return lookup::onnx_opset(*f),
            Op::MirrorPad {
                mode: PadMode::Wrap,
                ..
            } => return 19,
            _ => {}
        }
        crate::export::OPSET
    }

    /// The table an int8 LOOKUP or LOG_SOFTMAX borrows, for an input and an output quantized with
    /// `input` and `output`: a Tanh's, Logistic's or HardSwish's holds TFLite Micro's fixed-point
    /// results with `tflite_functions` ([`crate::lower::Options`]), the correctly rounded function
    /// without.
    /// `None` for the other operators.
    pub(crate) fn table(
        &self,
        input: QParams,
        output: QParams,
        tflite_functions: bool,
    ) -> Option<Vec<u8>> {
        match self {
            Op::Lookup {
                f: UnaryFn::HardSwish,
            } if tflite_functions => Some(lookup::tflite_hard_swish_table(input, output)),
            Op::Lookup {
                f: UnaryFn::WithConstant(k),
            } if tflite_functions => Some(k.tflite_table(input, output)),
            Op::Lookup { f } => Some(f.table(input, output)),
            Op::LogSoftmax => Some(log_softmax::table(input)),
            Op::Tanh if tflite_functions => Some(tanh::tflite_table(input)),
            Op::Logistic if tflite_functions => Some(logistic::tflite_table(input)),
            Op::Tanh => Some(lookup::table(f64::tanh, input, output)),
            Op::Logistic => Some(lookup::table(lookup::sigmoid, input, output)),
            _ => None,
        }
    }

    /// The element-wise function an int8 LOOKUP computes for this operator in Ferrite's own
    /// models (the tables of [`Op::table`] without `tflite_functions`), if it is one.
    pub(crate) fn table_function(&self) -> Option<Box<dyn Fn(f64) -> f64>> {
        match *self {
            Op::Lookup { f } => Some(Box::new(move |x| f.at(x))),
            Op::Tanh => Some(Box::new(f64::tanh)),
            Op::Logistic => Some(Box::new(lookup::sigmoid)),
            _ => None,
        }
    }

    /// NORMALIZE's gamma and beta for an output quantized with `output`; `None` for the other
    /// operators.
    pub(crate) fn normalize_data(&self, output: QParams) -> Option<Result<normalize::Prepared>> {
        match self {
            Op::Normalize { gamma, beta, .. } => Some(normalize::prepare(gamma, beta, output)),
            _ => None,
        }
    }

    /// The int16-input table of such a function over a wide output ([`lookup::table16`]).
    pub(crate) fn table16(&self, input_scale: f32, output: QParams) -> Option<Vec<u8>> {
        Some(lookup::table16(self.table_function()?, input_scale, output))
    }

    /// The int16 scale of a wide output that such a function reads, for the values `lo..=hi`
    /// ([`lookup::wide_scale`]).
    pub(crate) fn wide_scale(&self, lo: f32, hi: f32, output: QParams) -> Option<f32> {
        Some(lookup::wide_scale(self.table_function()?, lo, hi, output))
    }

    /// What the operator does to the channels of its inputs.
    pub fn channels(&self) -> Channels<'_> {
        match self {
            Op::Conv2d { filter, .. } | Op::FullyConnected { filter, .. } => Channels::New {
                count: filter.shape[0],
            },
            Op::DepthwiseConv2d {
                depth_multiplier, ..
            } => Channels::Depthwise {
                depth_multiplier: *depth_multiplier,
            },
            Op::Add { .. } | Op::Sub { .. } | Op::Mul { .. } | Op::Maximum | Op::Minimum => {
                Channels::Joined { axis: None }
            }
            Op::AveragePool2d { clamp, .. } => average_pool2d::channels(*clamp),
            Op::MaxPool2d { clamp, .. } => max_pool2d::channels(*clamp),
            Op::Mean { .. } => mean::CHANNELS,
            Op::Softmax { .. } => softmax::CHANNELS,
            Op::Logistic => logistic::CHANNELS,
            Op::Tanh => tanh::CHANNELS,
            Op::Relu { clamp } => relu::channels(*clamp),
            Op::LeakyRelu { .. } => leaky_relu::CHANNELS,
            Op::PRelu { .. } => prelu::CHANNELS,
            Op::Lookup { .. } => lookup::CHANNELS,
            Op::LogSoftmax => log_softmax::CHANNELS,
            Op::Slice { .. } => slice::CHANNELS,
            Op::DepthToSpace { .. } => depth_to_space::CHANNELS,
            Op::Transpose { .. } => transpose::CHANNELS,
            Op::Normalize { .. } => normalize::CHANNELS,
            Op::ResizeNearest { .. } => resize_nearest::CHANNELS,
            Op::ResizeBilinear { .. } => resize_bilinear::CHANNELS,
            Op::Reshape { shape } => Channels::Reshaped { shape },
            Op::Concatenation { axis } => Channels::Joined { axis: Some(*axis) },
            Op::Pad { before, after } => pad::channels(before, after),
            Op::MirrorPad { before, after, .. } => mirror_pad::channels(before, after),
            Op::BatchNorm { .. } => batch_norm::CHANNELS,
            Op::Identity => identity::CHANNELS,
        }
    }
}

impl Op {
    /// Constant bytes the runtime operator borrows besides weights and bias (PRelu's alpha), and
    /// their int8 quantization; `float`: the node runs in f32; `imported`: int8 values and scales a
    /// pre-quantized model gave for them.
    pub(crate) fn own_data(
        &self,
        float: bool,
        imported: Option<&(Vec<i8>, Vec<f32>)>,
    ) -> Result<Option<(Vec<u8>, Option<QParams>)>> {
        match self {
            Op::PRelu { slope } => prelu::alpha_data(slope, float, imported).map(Some),
            Op::Conv2d { .. }
            | Op::DepthwiseConv2d { .. }
            | Op::FullyConnected { .. }
            | Op::Add { .. }
            | Op::Sub { .. }
            | Op::Maximum
            | Op::Minimum
            | Op::Mul { .. }
            | Op::AveragePool2d { .. }
            | Op::MaxPool2d { .. }
            | Op::Mean { .. }
            | Op::Softmax { .. }
            | Op::Logistic
            | Op::Tanh
            | Op::Relu { .. }
            | Op::LeakyRelu { .. }
            | Op::ResizeNearest { .. }
            | Op::ResizeBilinear { .. }
            | Op::Reshape { .. }
            | Op::Concatenation { .. }
            | Op::Pad { .. }
            | Op::MirrorPad { .. }
            | Op::BatchNorm { .. }
            | Op::Lookup { .. }
            | Op::LogSoftmax
            | Op::Slice { .. }
            | Op::DepthToSpace { .. }
            | Op::Transpose { .. }
            | Op::Normalize { .. }
            | Op::Identity => Ok(None),
        }
    }

    /// The parameters indexed by the operator's output channels, each with the axis that runs over
    /// them: filter pruning keeps the entries of the channels it keeps. Conv2d and FullyConnected,
    /// whose rows are new channels and whose columns read the input's, are pruned by
    /// `train::filters` itself.
    pub(crate) fn channel_params_mut(&mut self) -> Vec<(&mut Param, usize)> {
        match self {
            Op::DepthwiseConv2d { filter, bias, .. } => vec![(filter, 3), (bias, 0)],
            Op::BatchNorm { scale, shift } => vec![(scale, 0), (shift, 0)],
            Op::PRelu { slope } if slope.data.len() > 1 => vec![(slope, 0)],
            Op::PRelu { .. }
            | Op::Conv2d { .. }
            | Op::FullyConnected { .. }
            | Op::Add { .. }
            | Op::Sub { .. }
            | Op::Maximum
            | Op::Minimum
            | Op::Mul { .. }
            | Op::AveragePool2d { .. }
            | Op::MaxPool2d { .. }
            | Op::Mean { .. }
            | Op::Softmax { .. }
            | Op::Logistic
            | Op::Tanh
            | Op::Relu { .. }
            | Op::LeakyRelu { .. }
            | Op::ResizeNearest { .. }
            | Op::ResizeBilinear { .. }
            | Op::Reshape { .. }
            | Op::Concatenation { .. }
            | Op::Pad { .. }
            | Op::MirrorPad { .. }
            | Op::Lookup { .. }
            | Op::LogSoftmax
            | Op::Slice { .. }
            | Op::DepthToSpace { .. }
            | Op::Transpose { .. }
            | Op::Normalize { .. }
            | Op::Identity => Vec::new(),
        }
    }
}

/// Whether a clamp commutes with a positive scale: no lower bound or zero, no upper bound.
fn clamp_keeps_scale(clamp: Clamp) -> bool {
    (clamp.min == f32::NEG_INFINITY || clamp.min == 0.0) && clamp.max == f32::INFINITY
}

/// The shape of a unary operator that keeps its input's shape.
fn same_shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    crate::ir::shape::arity(inputs, 1)?;
    Ok(inputs[0].to_vec())
}
