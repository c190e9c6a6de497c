//! FULLY_CONNECTED: `output[b, o] = sum_i input[b, i] * filter[o, i] + bias[o]`, with a fused activation.

use serde::{Deserialize, Serialize};

use crate::format::{Activation, DType, Operand};
#[cfg(feature = "float")]
use crate::interpreter::le_f32;
#[cfg(feature = "int16")]
use crate::interpreter::le_i64;
use crate::interpreter::{le_i32, output_quant, Views, CORRUPT};
use crate::kernels;
use crate::validate::{clamp_range_of, Check, Kind};
use crate::Error;

/// FullyConnected: the input flattened to `[batches, in_features]` with
/// `in_features = filter.len() / out_features`. Arrays as in [`super::Conv`], filter `[out, in]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FullyConnected<'a> {
    /// Input, read as `[batches, in_features]`.
    pub input: Operand,
    /// Output, `[batches, out_features]`: its last dimension is `out_features`.
    pub output: Operand,
    /// Fused activation, applied by the f32 kernel.
    pub activation: Activation,
    /// Lower end of the fused activation clamp in the output's integer domain (int8).
    pub act_min: i32,
    /// Upper end of that clamp.
    pub act_max: i32,
    /// Weights `[out_features, in_features]`: int8, or little-endian f32.
    pub filter: &'a [u8],
    /// Bias per output feature: little-endian int32 (int8), int64 (int16x8) or f32; may be empty.
    pub bias: &'a [u8],
    /// int8: Q0.31 multiplier per output feature or one per tensor, little-endian int32; f32: empty.
    pub multiplier: &'a [u8],
    /// int8: each multiplier's shift ([`crate::quant::Requant::shift`]), little-endian int32; f32: empty.
    pub shift: &'a [u8],
}

crate::format::decode_fields!(FullyConnected<'a> { input, output, activation, act_min, act_max, filter, bias, multiplier, shift });

super::operand_fields!(FullyConnected<'_>: input => output);

pub(crate) fn validate(f: &FullyConnected<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let (kind, wide) = check.kind_wide(&f.input, &f.output)?;
    let out_features = f.output.shape.last();
    let out_elems = f.output.shape.elements().unwrap_or(0);
    let in_elems = f.input.shape.elements().unwrap_or(0);
    let filter_elems = f.filter.len() / if kind == Kind::Float { 4 } else { 1 };
    if out_features == 0
        || !filter_elems.is_multiple_of(out_features)
        || !out_elems.is_multiple_of(out_features)
    {
        return check.bad("filter size is not a multiple of the output features");
    }
    let in_features = filter_elems / out_features;
    let batches = out_elems / out_features;
    if in_features == 0 || batches.checked_mul(in_features) != Some(in_elems) {
        return check.bad("input size is not batches x filter input features");
    }
    check.weights(
        kind,
        f.filter,
        f.bias,
        f.multiplier,
        f.shift,
        filter_elems,
        in_features,
        out_features,
    )?;
    if kind != Kind::Float {
        let clamp_kind = if wide { Kind::Int16 } else { kind };
        clamp_range_of(clamp_kind, f.act_min, f.act_max).map_err(|r| check.fail(r))?;
    }
    Ok(())
}

pub(crate) fn run(f: &FullyConnected<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &f.output)?;
    let out_features = f.output.shape.last();
    let batches = f.output.shape.elements().ok_or(CORRUPT)? / out_features;
    let elem = if f.input.dtype == DType::F32 { 4 } else { 1 };
    let in_features = f.filter.len() / elem / out_features;
    match f.input.dtype {
        DType::I8 => {
            let q = output_quant(
                &f.input,
                &f.output,
                f.act_min,
                f.act_max,
                f.multiplier,
                f.shift,
            )?;
            let input = v.i8(&f.input)?;
            let (filter, bias) = (bytemuck::cast_slice(f.filter), le_i32(f.bias)?);
            match f.output.dtype {
                // A wide (int16) output.
                #[cfg(feature = "int16")]
                DType::I16 => kernels::optimized::fully_connected_s8(
                    batches,
                    in_features,
                    out_features,
                    &q,
                    input,
                    filter,
                    bias,
                    v.out_i16()?,
                ),
                _ => kernels::optimized::fully_connected_s8(
                    batches,
                    in_features,
                    out_features,
                    &q,
                    input,
                    filter,
                    bias,
                    v.out_i8(),
                ),
            }
        }
        #[cfg(feature = "int16")]
        DType::I16 => {
            let q = output_quant(
                &f.input,
                &f.output,
                f.act_min,
                f.act_max,
                f.multiplier,
                f.shift,
            )?;
            let input = v.i16(&f.input)?;
            kernels::optimized::fully_connected_s16(
                batches,
                in_features,
                out_features,
                &q,
                input,
                bytemuck::cast_slice(f.filter),
                le_i64(f.bias)?,
                v.out_i16()?,
            );
        }
        #[cfg(feature = "float")]
        DType::F32 => {
            let input = v.f32(&f.input)?;
            kernels::float::fully_connected_f32(
                batches,
                in_features,
                out_features,
                f.activation,
                input,
                le_f32(f.filter)?,
                le_f32(f.bias)?,
                v.out_f32()?,
            );
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}
