//! MEAN over H and W of an NHWC tensor (TFLite Micro `reduce_common.cc` int8 arithmetic).

use serde::{Deserialize, Serialize};

use super::Unary;
use crate::kernels;
use crate::quant::Requant;
use crate::validate::{quant_presence, Check, MAX_REDUCTION};
use crate::Error;

/// Precomputed quantization of an int8 mean over H and W.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MeanParams {
    /// Zero point of the input, as the kernel subtracts it.
    pub input_zero_point: i32,
    /// Zero point of the output, added after rescaling.
    pub output_zero_point: i32,
    /// Number of elements averaged (`H * W`) the multiplier was prepared for.
    pub num_elements: u32,
    /// Input and output scale and zero point are identical: divide the raw sum by the count.
    pub same_quantization: bool,
    /// `input_scale / output_scale` with the `1 / num_elements` folded in as `QuantizedMeanOrSum` does
    /// (its mantissa may lie below `2^30`). Unused when `same_quantization`.
    pub requant: Requant,
}

impl MeanParams {
    /// Mirrors TFLite Micro's `PrepareMeanOrSumHelper` (`QuantizeMultiplier(input_scale / output_scale)` in
    /// double) followed by `QuantizedMeanOrSum`'s folding of `1 / num_elements` into that multiplier.
    #[cfg(any(feature = "host", test))]
    pub fn prepare(
        input_scale: f32,
        input_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
        num_elements: usize,
    ) -> Self {
        use crate::quant::prepare::quantize_multiplier;
        let base = quantize_multiplier(input_scale as f64 / output_scale as f64);
        let requant = if num_elements == 0 {
            base
        } else {
            // shift = floor(log2(n)), kept <= 32 and such that the final shift stays >= -31.
            let n = num_elements as i64;
            let shift = (63 - (n as u64).leading_zeros() as i32)
                .min(32)
                .min(31 + base.shift);
            Requant {
                multiplier: (((base.multiplier as i64) << shift) / n) as i32,
                shift: base.shift - shift,
            }
        };
        Self {
            input_zero_point,
            output_zero_point,
            num_elements: num_elements as u32,
            same_quantization: input_zero_point == output_zero_point && input_scale == output_scale,
            requant,
        }
    }
}

pub(crate) fn validate(u: &Unary<MeanParams>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let k = check.kind(&u.input, &u.output)?;
    let (i, o) = (u.input.shape.nhwc(), u.output.shape.nhwc());
    if u.input.shape.rank != 4 || u.output.shape.elements() != Some(i.n * i.c) || o.c != i.c {
        return check.bad("mean reduces H and W of a rank-4 tensor to N x C");
    }
    if i.h * i.w > MAX_REDUCTION {
        return check.bad("mean window too large");
    }
    quant_presence(k, u.quant.is_some()).map_err(|r| check.fail(r))?;
    match &u.quant {
        Some(p)
            if p.num_elements as usize != i.h * i.w
                || p.input_zero_point != u.input.zero_point
                || p.output_zero_point != u.output.zero_point
                || !p.requant.is_valid() =>
        {
            check.bad("mean parameters inconsistent with its operands")
        }
        _ => Ok(()),
    }
}

pub(crate) fn run(u: &Unary<MeanParams>, arena: &mut [u8]) -> Result<(), Error> {
    let shape = u.input.shape.nhwc();
    super::run_unary(
        &u.input,
        &u.output,
        u.quant.as_ref(),
        arena,
        |p, x, out| kernels::mean::mean_hw_s8(p, shape, x, out),
        #[cfg(feature = "float")]
        |x, out| kernels::float::mean_hw_f32(shape, x, out),
    )
}
