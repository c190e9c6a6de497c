//! ADD: element-wise sum with broadcasting and a fused activation (TFLite Micro `add.cc` arithmetic).

use serde::{Deserialize, Serialize};

use super::Binary;
use crate::kernels;
use crate::quant::Requant;
use crate::validate::{clamp_range_of, Check, Kind};
use crate::Error;

/// Precomputed quantization of an int8 Add, as TFLite Micro's `CalculateOpDataAdd` produces it.
/// An int16 Add (int16x8) carries the same fields: zero offsets, `left_shift` 15.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AddParams {
    /// `-input1_zero_point`.
    pub input1_offset: i32,
    /// `-input2_zero_point`.
    pub input2_offset: i32,
    /// `output_zero_point`.
    pub output_offset: i32,
    /// Headroom given to the inputs before rescaling (20 for int8 outputs, 15 for int16).
    pub left_shift: i32,
    /// `input1_scale / (2 * max_input_scale)`.
    pub input1: Requant,
    /// `input2_scale / (2 * max_input_scale)`.
    pub input2: Requant,
    /// `2 * max_input_scale / (2^left_shift * output_scale)`.
    pub output: Requant,
    /// Fused activation clamp in the output's integer domain.
    pub act_min: i32,
    /// Upper end of that clamp (`act_min` is the lower).
    pub act_max: i32,
}

crate::format::decode_fields!(AddParams {
    input1_offset,
    input2_offset,
    output_offset,
    left_shift,
    input1,
    input2,
    output,
    act_min,
    act_max
});

/// TFLite's int8 Add input headroom (`left_shift = 20` for int8 outputs).
pub const ADD_LEFT_SHIFT: i32 = 20;
/// TFLite's int16 Add input headroom (`left_shift = 15` for int16 outputs): an int16 value shifted
/// by it stays within `2^30`.
pub const ADD_LEFT_SHIFT_INT16: i32 = 15;

impl AddParams {
    /// Mirrors TFLite Micro `CalculateOpDataAdd` for int8 (scales widened to `f64` as TFLite does).
    /// `act_min..=act_max` is the fused activation range already quantized with the output scale.
    #[cfg(any(feature = "host", test))]
    #[allow(clippy::too_many_arguments)]
    pub fn prepare(
        input1_scale: f32,
        input1_zero_point: i32,
        input2_scale: f32,
        input2_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
        act_min: i32,
        act_max: i32,
    ) -> Self {
        Self::prepare_shifted(
            ADD_LEFT_SHIFT,
            (input1_scale, input1_zero_point),
            (input2_scale, input2_zero_point),
            (output_scale, output_zero_point),
            (act_min, act_max),
        )
    }

    /// Mirrors TFLite Micro `CalculateOpDataAdd` for int16 outputs: the general path (TFLite Micro
    /// ignores the converter's `pot_scale_int16` and always rescales both inputs) with
    /// `left_shift` 15. The zero points are 0 for int16 tensors; the signature is [`Self::prepare`]'s.
    #[cfg(any(feature = "host", test))]
    #[allow(clippy::too_many_arguments)]
    pub fn prepare_int16(
        input1_scale: f32,
        input1_zero_point: i32,
        input2_scale: f32,
        input2_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
        act_min: i32,
        act_max: i32,
    ) -> Self {
        Self::prepare_shifted(
            ADD_LEFT_SHIFT_INT16,
            (input1_scale, input1_zero_point),
            (input2_scale, input2_zero_point),
            (output_scale, output_zero_point),
            (act_min, act_max),
        )
    }

    #[cfg(any(feature = "host", test))]
    fn prepare_shifted(
        left_shift: i32,
        (input1_scale, input1_zero_point): (f32, i32),
        (input2_scale, input2_zero_point): (f32, i32),
        (output_scale, output_zero_point): (f32, i32),
        (act_min, act_max): (i32, i32),
    ) -> Self {
        use crate::quant::prepare::quantize_multiplier;
        let twice_max_input_scale = 2.0 * input1_scale.max(input2_scale) as f64;
        let real_input1 = input1_scale as f64 / twice_max_input_scale;
        let real_input2 = input2_scale as f64 / twice_max_input_scale;
        let real_output =
            twice_max_input_scale / ((1i64 << left_shift) as f64 * output_scale as f64);
        Self {
            input1_offset: -input1_zero_point,
            input2_offset: -input2_zero_point,
            output_offset: output_zero_point,
            left_shift,
            input1: quantize_multiplier(real_input1),
            input2: quantize_multiplier(real_input2),
            output: quantize_multiplier(real_output),
            act_min,
            act_max,
        }
    }
}

pub(crate) fn validate(b: &Binary<AddParams>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let kind = check.binary16(&b.a, &b.b, &b.output, b.quant.is_some())?;
    let Some(p) = &b.quant else { return Ok(()) };
    // int16: the shifted inputs stay within 2^30 (zero offsets, |x| <= 2^15).
    let max_left_shift = if kind == Kind::Int16 {
        ADD_LEFT_SHIFT_INT16
    } else {
        24
    };
    let ok = p.input1_offset == -b.a.zero_point
        && p.input2_offset == -b.b.zero_point
        && p.output_offset == b.output.zero_point
        && (0..=max_left_shift).contains(&p.left_shift)
        && [p.input1, p.input2, p.output].iter().all(Requant::is_valid);
    if !ok {
        return check.bad("add parameters inconsistent with its operands");
    }
    clamp_range_of(kind, p.act_min, p.act_max).map_err(|r| check.fail(r))
}

pub(crate) fn run(b: &Binary<AddParams>, arena: &mut [u8]) -> Result<(), Error> {
    super::run_binary(
        b,
        arena,
        kernels::optimized::add_s8,
        #[cfg(feature = "int16")]
        kernels::int16::elementwise::add_s16,
        #[cfg(feature = "float")]
        kernels::float::add_f32,
    )
}
