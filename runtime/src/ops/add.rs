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
    validate_params(b, check, "add parameters inconsistent with its operands")
}

/// Add's and Sub's checks; `bad` is the message of inconsistent parameters.
pub(crate) fn validate_params(
    b: &Binary<AddParams>,
    check: &Check<'_, '_, '_>,
    bad: &'static str,
) -> Result<(), Error> {
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
        return check.bad(bad);
    }
    clamp_range_of(kind, p.act_min, p.act_max).map_err(|r| check.fail(r))
}

/// Not inlined: the int8 kernel's 2 KiB of tables, made once for all the bands of an Add that
/// runs in place, must only be on the stack while an Add runs.
#[inline(never)]
pub(crate) fn run(b: &Binary<AddParams>, arena: &mut [u8]) -> Result<(), Error> {
    let mut tables = None;
    super::run_binary(
        b,
        arena,
        |p, sa, a, sb, bb, so, out| {
            kernels::optimized::add_s8(p, &mut tables, sa, a, sb, bb, so, out)
        },
        #[cfg(feature = "int16")]
        kernels::int16::elementwise::add_s16,
        #[cfg(feature = "float")]
        kernels::float::add_f32,
    )
}

#[cfg(all(test, feature = "in-place"))]
mod tests {
    use super::*;
    use crate::format::{Activation, ARENA_ALIGN};
    use crate::in_place::Direction;
    use crate::ops::testutil::{int8_tensor, one_op_model, refusal, run_int8, values};
    use crate::ops::Op;
    use crate::Model;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// An int8 Add of two `dims` tensors at offsets `a` and `b` into one at `y` (marked in place when
    /// `in_place`).
    fn model(dims: [usize; 4], a: u32, b: u32, y: u32, in_place: bool) -> Vec<u8> {
        let len = dims.iter().product::<usize>();
        let tensors = [
            int8_tensor("a", &dims, a, (0.05, 3), false),
            int8_tensor("b", &dims, b, (0.08, -7), false),
            int8_tensor("y", &dims, y, (0.1, 2), in_place),
        ];
        let add = Binary {
            a: tensors[0].operand(0),
            b: tensors[1].operand(1),
            output: tensors[2].operand(2),
            activation: Activation::None,
            quant: Some(AddParams::prepare(0.05, 3, 0.08, -7, 0.1, 2, -128, 127)),
        };
        let arena = [a, b, y].iter().map(|&o| o as usize + len).max().unwrap();
        let arena = arena.div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
        one_op_model(&tensors, arena as u32, false, Op::Add(add))
    }

    fn run(bytes: &[u8], a: &[i8], b: &[i8]) -> Vec<i8> {
        run_int8(bytes, &[a, b])
    }

    proptest! {
        #![proptest_config(crate::proptest_config(128))]

        /// An Add whose output overlaps either input, before or after it by the smallest room its
        /// bands need (and by more), computes what it computes out of place.
        #[test]
        fn in_place_equals_out_of_place(
            (n, h, w, c) in (1usize..3, 1usize..9, 1usize..6, 1usize..5),
            seed in any::<u64>(),
        ) {
            let dims = [n, h, w, c];
            let len = n * h * w * c;
            let a: Vec<i8> = values(seed, len, -128, 127).into_iter().map(|v| v as i8).collect();
            let b: Vec<i8> = values(!seed, len, -128, 127).into_iter().map(|v| v as i8).collect();
            let room = len.div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
            let expected = run(&model(dims, 0, room as u32, 2 * room as u32, false), &a, &b);
            let rows = {
                let bytes = model(dims, 0, room as u32, 2 * room as u32, false);
                let m = Model::from_bytes(&bytes).unwrap();
                let Some(Op::Add(add)) = m.ops().next() else { unreachable!() };
                add.rows().unwrap()
            };
            let before = rows.min_shift(Direction::Before, ARENA_ALIGN).unwrap();
            let after = rows.min_shift(Direction::After, ARENA_ALIGN).unwrap();
            let base = (before + 2 * ARENA_ALIGN) as u32;
            let other = base + 2 * room as u32 + 64;
            for extra in [0u32, 32] {
                // Over `a`, then over `b`, on either side.
                let cases = [
                    (base, other, base - before as u32 - extra),
                    (base, other, base + after as u32 + extra),
                    (other, base, base - before as u32 - extra),
                    (other, base, base + after as u32 + extra),
                ];
                for (xa, xb, y) in cases {
                    prop_assert_eq!(&run(&model(dims, xa, xb, y, true), &a, &b), &expected);
                }
            }
        }
    }

    #[test]
    fn in_place_add_over_both_inputs_or_without_room_is_refused() {
        // Output over both inputs at once.
        let bytes = model([1, 2, 4, 4], 0, 32, 16, true);
        assert!(refusal(&bytes).contains("in-place operator"));
        // Without room for a row (16 bytes) before the input.
        let bytes = model([1, 2, 4, 4], 8, 64, 0, true);
        assert!(refusal(&bytes).contains("in-place operator"));
    }
}
