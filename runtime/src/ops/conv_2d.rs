//! CONV_2D: a 2-D convolution with a fused activation; [`Conv`] is also DEPTHWISE_CONV_2D's wire struct.

use serde::{Deserialize, Serialize};

use crate::format::DType;
use crate::format::{Activation, Operand, Window};
#[cfg(feature = "float")]
use crate::interpreter::le_f32;
#[cfg(feature = "int16")]
use crate::interpreter::le_i64;
use crate::interpreter::{geometry, le_i32, output_quant, Views, CORRUPT};
#[cfg(feature = "float")]
use crate::kernels::LeF32;
#[cfg(feature = "int16")]
use crate::kernels::LeI64;
use crate::kernels::{self, ConvGeometry, LeI32, OutputQuant};
use crate::validate::{clamp_range_of, window, Check, Kind};
use crate::Error;

/// Conv2D and DepthwiseConv2D.
///
/// int8: filter int8 (`[out_c, kh, kw, in_c]`, depthwise `[1, kh, kw, out_c]`), bias int32 per output
/// channel (or empty), `multiplier`/`shift` int32 per output channel or one per tensor, all little-endian.
/// int16x8 (int16 input and output): the same with an int64 bias. f32: filter and bias little-endian
/// f32, no multipliers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv<'a> {
    /// Input, rank-4 NHWC.
    pub input: Operand,
    /// Output, rank-4 NHWC.
    pub output: Operand,
    /// Kernel height, at least 1.
    pub kernel_h: u16,
    /// Kernel width, at least 1.
    pub kernel_w: u16,
    /// Strides, dilations and padding.
    pub window: Window,
    /// Output channels per input channel (depthwise only; 1 for Conv2D).
    pub depth_multiplier: u16,
    /// Fused activation, applied by the f32 kernel.
    pub activation: Activation,
    /// The fused activation as a clamp in the output's integer domain (int8 or int16).
    pub act_min: i32,
    /// Upper end of that clamp (`act_min` is the lower).
    pub act_max: i32,
    /// Filter weights: int8, or little-endian f32, in the layout above.
    pub filter: &'a [u8],
    /// Bias per output channel: little-endian int32 (int8), int64 (int16x8) or f32; may be empty.
    pub bias: &'a [u8],
    /// int8: Q0.31 multiplier per output channel or one per tensor, little-endian int32; f32: empty.
    pub multiplier: &'a [u8],
    /// int8: each multiplier's shift ([`crate::quant::Requant::shift`]), little-endian int32; f32: empty.
    pub shift: &'a [u8],
}

crate::format::decode_fields!(Conv<'a> { input, output, kernel_h, kernel_w, window, depth_multiplier, activation, act_min, act_max, filter, bias, multiplier, shift });

super::operand_fields!(Conv<'_>: input => output);

pub(crate) fn validate(c: &Conv<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    validate_conv(c, check, false)
}

pub(crate) fn run(c: &Conv<'_>, arena: &mut [u8]) -> Result<(), Error> {
    run_conv(
        c,
        arena,
        kernels::optimized::conv2d_s8,
        #[cfg(feature = "int16")]
        kernels::optimized::conv2d_s16,
        #[cfg(feature = "float")]
        kernels::float::conv2d_f32,
    )
}

/// The checks of Conv2D (`depthwise` false) and DepthwiseConv2D.
pub(crate) fn validate_conv(
    c: &Conv<'_>,
    check: &Check<'_, '_, '_>,
    depthwise: bool,
) -> Result<(), Error> {
    let (kind, filter_elems, reduction) = validate_shapes(c, check, depthwise)?;
    validate_weights(c, check, kind, filter_elems, reduction)
}

/// The checks of a convolution's shapes, window and depth multiplier; returns its element kind,
/// its dense filter's weights and the products per accumulator.
pub(crate) fn validate_shapes(
    c: &Conv<'_>,
    check: &Check<'_, '_, '_>,
    depthwise: bool,
) -> Result<(Kind, usize, usize), Error> {
    let kind = check.kind16(&c.input, &c.output)?;
    if c.input.shape.rank != 4 || c.output.shape.rank != 4 {
        return check.bad("convolution needs rank-4 NHWC tensors");
    }
    let (i, o) = (c.input.shape.nhwc(), c.output.shape.nhwc());
    let (kh, kw) = (c.kernel_h as usize, c.kernel_w as usize);
    if i.n != o.n || kh == 0 || kw == 0 {
        return check.bad("batch differs or kernel is empty");
    }
    window(&c.window).map_err(|r| check.fail(r))?;
    let (filter_elems, reduction) = if depthwise {
        if c.depth_multiplier == 0 || o.c != i.c * c.depth_multiplier as usize {
            return check
                .bad("depthwise output channels must be input channels x depth multiplier");
        }
        (kh * kw * o.c, kh * kw)
    } else {
        if c.depth_multiplier != 1 {
            return check.bad("Conv2D has depth multiplier 1");
        }
        (o.c * kh * kw * i.c, kh * kw * i.c)
    };
    Ok((kind, filter_elems, reduction))
}

/// The checks of a convolution's weights (`c.filter` holding `filter_elems` values), quantization
/// and clamp.
pub(crate) fn validate_weights(
    c: &Conv<'_>,
    check: &Check<'_, '_, '_>,
    kind: Kind,
    filter_elems: usize,
    reduction: usize,
) -> Result<(), Error> {
    check.weights(
        kind,
        c.filter,
        c.bias,
        c.multiplier,
        c.shift,
        filter_elems,
        reduction,
        c.output.shape.nhwc().c,
    )?;
    if kind != Kind::Float {
        clamp_range_of(kind, c.act_min, c.act_max).map_err(|r| check.fail(r))?;
    }
    Ok(())
}

/// Runs a convolution with the int8, int16x8 or f32 kernel its operands' type selects.
pub(crate) fn run_conv(
    c: &Conv<'_>,
    arena: &mut [u8],
    int8: impl FnOnce(&ConvGeometry, &OutputQuant<'_>, &[i8], &[i8], LeI32<'_>, &mut [i8]),
    #[cfg(feature = "int16")] int16: impl FnOnce(
        &ConvGeometry,
        &OutputQuant<'_>,
        &[i16],
        &[i8],
        LeI64<'_>,
        &mut [i16],
    ),
    #[cfg(feature = "float")] float: impl FnOnce(
        &ConvGeometry,
        Activation,
        &[f32],
        LeF32<'_>,
        LeF32<'_>,
        &mut [f32],
    ),
) -> Result<(), Error> {
    let mut v = Views::new(arena, &c.output)?;
    let g = geometry(&c.input, &c.output, c.kernel_h, c.kernel_w, &c.window);
    match c.input.dtype {
        DType::I8 => {
            let q = output_quant(
                &c.input,
                &c.output,
                c.act_min,
                c.act_max,
                c.multiplier,
                c.shift,
            )?;
            let filter = bytemuck::cast_slice::<u8, i8>(c.filter);
            int8(&g, &q, v.i8(&c.input)?, filter, le_i32(c.bias)?, v.out_i8());
        }
        #[cfg(feature = "int16")]
        DType::I16 => {
            let q = output_quant(
                &c.input,
                &c.output,
                c.act_min,
                c.act_max,
                c.multiplier,
                c.shift,
            )?;
            let filter = bytemuck::cast_slice::<u8, i8>(c.filter);
            let x = v.i16(&c.input)?;
            int16(&g, &q, x, filter, le_i64(c.bias)?, v.out_i16()?);
        }
        #[cfg(feature = "float")]
        DType::F32 => {
            let (x, filter, bias) = (v.f32(&c.input)?, le_f32(c.filter)?, le_f32(c.bias)?);
            float(&g, c.activation, x, filter, bias, v.out_f32()?);
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}
