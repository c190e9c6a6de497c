//! Portable reference kernels: int8 with TFLite Micro's reference arithmetic, int16x8 (feature
//! `int16`) and f32 (feature `float`).
//!
//! Kernels are plain functions over slices. They know nothing of the file format: the interpreter
//! builds their geometry from validated operand shapes, so kernels index without further checks.

pub mod activation;
pub mod concatenation;
pub mod conv2d;
pub mod depthwise_conv2d;
pub mod elementwise;
pub mod fixedpoint;
#[cfg(feature = "float")]
pub mod float;
pub mod fully_connected;
#[cfg(feature = "int16")]
pub mod int16;
pub mod mean;
pub mod optimized;
pub mod pad;
pub mod pooling;
pub mod requantize;
pub mod resize;
pub mod softmax;
pub mod sparse;
#[cfg(target_arch = "x86_64")]
pub mod x86;

#[cfg(test)]
pub(crate) mod testutil;

/// A 4-D activation shape in NHWC order (lower ranks are padded with leading 1s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Nhwc {
    /// Batch.
    pub n: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Nhwc {
    /// A shape from its four dimensions.
    pub const fn new(n: usize, h: usize, w: usize, c: usize) -> Self {
        Self { n, h, w, c }
    }

    /// Number of elements.
    pub const fn len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// Whether any dimension is 0.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flat index of `(n, y, x, c)`.
    #[inline(always)]
    pub const fn index(&self, n: usize, y: usize, x: usize, c: usize) -> usize {
        ((n * self.h + y) * self.w + x) * self.c + c
    }
}

/// A little-endian `i64` array borrowed from the model bytes (any alignment): int16x8 biases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeI64<'a>(&'a [u8]);

impl<'a> LeI64<'a> {
    /// `None` when the byte length is not a multiple of 8.
    pub const fn new(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len().is_multiple_of(8) {
            Some(Self(bytes))
        } else {
            None
        }
    }

    /// Number of `i64` elements.
    pub const fn len(&self) -> usize {
        self.0.len() / 8
    }

    /// Whether the array has no elements.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Element `i`; 0 past the end (callers index within validated lengths).
    #[inline(always)]
    pub fn get(&self, i: usize) -> i64 {
        match self.0.get(8 * i..8 * i + 8) {
            Some(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                i64::from_le_bytes(a)
            }
            None => 0,
        }
    }
}

/// The output element of an int8 convolution or fully connected kernel: int8, or int16 for a wide
/// output (an int8 layer whose requantized accumulator a LOOKUP reads in int16: zero point 0, the
/// clamp in int16's range).
pub trait Int8Output: Copy {
    /// The requantized value, already clamped to the output's range.
    fn from_clamped(v: i32) -> Self;
    /// The output as int8 (`None` for int16): the int8-only paths of the optimized kernels.
    fn narrow(out: &mut [Self]) -> Option<&mut [i8]>;
}

impl Int8Output for i8 {
    #[inline(always)]
    fn from_clamped(v: i32) -> i8 {
        v as i8
    }
    #[inline(always)]
    fn narrow(out: &mut [i8]) -> Option<&mut [i8]> {
        Some(out)
    }
}

impl Int8Output for i16 {
    #[inline(always)]
    fn from_clamped(v: i32) -> i16 {
        v as i16
    }
    #[inline(always)]
    fn narrow(_: &mut [i16]) -> Option<&mut [i8]> {
        None
    }
}

/// A little-endian `i32` array borrowed from the model bytes (any alignment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeI32<'a>(&'a [u8]);

impl<'a> LeI32<'a> {
    /// `None` when the byte length is not a multiple of 4.
    pub const fn new(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len().is_multiple_of(4) {
            Some(Self(bytes))
        } else {
            None
        }
    }

    /// Number of `i32` elements.
    pub const fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// Whether the array has no elements.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Element `i`; 0 past the end (callers index within validated lengths).
    #[inline(always)]
    pub fn get(&self, i: usize) -> i32 {
        match self.0.get(4 * i..4 * i + 4) {
            Some(&[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    /// Element `i`, or element 0 when the array holds a single value (per-tensor broadcast).
    #[inline(always)]
    pub fn get_or_first(&self, i: usize) -> i32 {
        if self.len() == 1 {
            self.get(0)
        } else {
            self.get(i)
        }
    }
}

/// A little-endian `f32` array borrowed from the model bytes (any alignment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeF32<'a>(&'a [u8]);

impl<'a> LeF32<'a> {
    /// `None` when the byte length is not a multiple of 4.
    pub const fn new(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len().is_multiple_of(4) {
            Some(Self(bytes))
        } else {
            None
        }
    }

    /// Number of `f32` elements.
    pub const fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// Whether the array has no elements.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Element `i`; 0.0 past the end (callers index within validated lengths).
    #[inline(always)]
    pub fn get(&self, i: usize) -> f32 {
        match self.0.get(4 * i..4 * i + 4) {
            Some(&[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
            _ => 0.0,
        }
    }
}

/// Everything a convolution-like kernel needs to know about shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input shape.
    pub input: Nhwc,
    /// Output shape.
    pub output: Nhwc,
    /// Kernel (or pooling window) height.
    pub kernel_h: usize,
    /// Kernel (or pooling window) width.
    pub kernel_w: usize,
    /// Stride along H, at least 1.
    pub stride_h: usize,
    /// Stride along W, at least 1.
    pub stride_w: usize,
    /// Dilation along H, at least 1 (pooling ignores it).
    pub dilation_h: usize,
    /// Dilation along W, at least 1 (pooling ignores it).
    pub dilation_w: usize,
    /// Padding rows above the input (TF SAME puts the odd row below).
    pub pad_top: usize,
    /// Padding columns left of the input.
    pub pad_left: usize,
}

/// Quantization of a convolution or fully connected layer's output, all precomputed offline.
#[derive(Clone, Copy, Debug)]
pub struct OutputQuant<'a> {
    /// `-input_zero_point`.
    pub input_offset: i32,
    /// `output_zero_point`.
    pub output_offset: i32,
    /// Fused activation clamp in the output's integer domain.
    pub act_min: i32,
    /// Upper end of that clamp (`act_min` is the lower).
    pub act_max: i32,
    /// Per output channel (or a single per-tensor value): real factor `input_scale * weight_scale[c] / output_scale`.
    pub multiplier: LeI32<'a>,
    /// Power of two of each multiplier (as [`crate::quant::Requant::shift`]), same count.
    pub shift: LeI32<'a>,
}
