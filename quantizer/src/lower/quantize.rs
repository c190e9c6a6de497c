//! Quantize and Dequantize: conversions between f32 and int8 tensors (and int8 requantization),
//! inserted where int8 and f32 values meet, or written by an `Identity` node between differently
//! typed or quantized values (a pre-quantized model's own QUANTIZE and DEQUANTIZE).

use ferrite_runtime::format::DType;
use ferrite_runtime::ops::{Dequantize, Op as RtOp, Quantize, RequantizeParams};

use crate::builder::ModelBuilder;

/// The operator converting tensor `from` into tensor `to`: Dequantize to f32, Quantize from f32, or
/// a requantizing Quantize between int8 tensors.
pub(crate) fn convert(b: &ModelBuilder<'_>, from: u16, to: u16) -> RtOp<'static> {
    let (f, t) = (b.def(from), b.def(to));
    if t.dtype == DType::F32 {
        return RtOp::Dequantize(Dequantize {
            input: b.operand(from),
            output: b.operand(to),
            scale: f.scale,
        });
    }
    let requant = (f.dtype != DType::F32)
        .then(|| RequantizeParams::prepare(f.scale, f.zero_point, t.scale, t.zero_point));
    RtOp::Quantize(Quantize {
        input: b.operand(from),
        output: b.operand(to),
        scale: t.scale,
        requant,
    })
}
