//! SUB: element-wise difference with broadcasting and a fused activation (TFLite Micro `sub.cc`
//! arithmetic: Add's rescaling of both inputs, the second subtracted from the first). The
//! parameters are Add's, prepared as for Add (`AddParams::prepare`, `AddParams::prepare_int16`).

use super::add::validate_params;
use super::{AddParams, Binary};
use crate::kernels;
use crate::validate::Check;
use crate::Error;

pub(crate) fn validate(b: &Binary<AddParams>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    validate_params(b, check, "sub parameters inconsistent with its operands")
}

/// Not inlined, as Add's: the int8 kernel's tables are on the stack only while a Sub runs.
#[inline(never)]
pub(crate) fn run(b: &Binary<AddParams>, arena: &mut [u8]) -> Result<(), Error> {
    let mut tables = None;
    super::run_binary(
        b,
        arena,
        |p, sa, a, sb, bb, so, out| {
            kernels::optimized::sub_s8(p, &mut tables, sa, a, sb, bb, so, out)
        },
        #[cfg(feature = "int16")]
        kernels::int16::elementwise::sub_s16,
        #[cfg(feature = "float")]
        kernels::float::sub_f32,
    )
}

#[cfg(all(test, feature = "in-place"))]
mod tests {
    use super::*;
    use crate::format::Activation;
    use crate::ops::testutil::{int8_tensor, one_op_model, run_int8, values};
    use crate::ops::Op;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// TFLite's `MultiplyByQuantizedMultiplierSmallerThanOneExp`, written out: a rounding doubling
    /// high multiply, then a rounding right shift.
    fn scale(x: i32, multiplier: i32, shift: i32) -> i32 {
        let ab = x as i64 * multiplier as i64;
        let nudge = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
        let high = if x == multiplier && x == i32::MIN {
            i32::MAX
        } else {
            ((ab + nudge) / (1i64 << 31)) as i32
        };
        let exponent = -shift;
        if exponent <= 0 {
            return high;
        }
        let high = high as i64;
        let mask = (1i64 << exponent) - 1;
        let remainder = high & mask;
        let threshold = (mask >> 1) + i64::from(high < 0);
        ((high >> exponent) + i64::from(remainder > threshold)) as i32
    }

    /// TFLite's `SubElementwise` for one int8 element.
    fn reference(p: &AddParams, x: i8, y: i8) -> i8 {
        let s1 = (p.input1_offset + x as i32) << p.left_shift;
        let s2 = (p.input2_offset + y as i32) << p.left_shift;
        let d = scale(s1, p.input1.multiplier, p.input1.shift)
            - scale(s2, p.input2.multiplier, p.input2.shift);
        let raw = scale(d, p.output.multiplier, p.output.shift) + p.output_offset;
        raw.clamp(p.act_min, p.act_max) as i8
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        /// Every element equals TFLite's formula, and the output is within one step of the float
        /// difference of the dequantized inputs (where not clamped).
        #[test]
        fn sub_is_tflites_formula(
            scales in (0.001f32..1.0, 0.001f32..1.0, 0.001f32..2.0),
            zps in (-128i32..128, -128i32..128, -128i32..128),
            broadcast in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let (sa, sb, so) = scales;
            let (za, zb, zo) = zps;
            let dims = [1usize, 3, 4, 5];
            let b_dims = if broadcast { [1usize, 1, 4, 5] } else { dims };
            let len: usize = dims.iter().product();
            let b_len: usize = b_dims.iter().product();
            let p = AddParams::prepare(sa, za, sb, zb, so, zo, -128, 127);
            let tensors = [
                int8_tensor("a", &dims, 0, (sa, za), false),
                int8_tensor("b", &b_dims, 64, (sb, zb), false),
                int8_tensor("y", &dims, 128, (so, zo), false),
            ];
            let sub = Binary {
                a: tensors[0].operand(0),
                b: tensors[1].operand(1),
                output: tensors[2].operand(2),
                activation: Activation::None,
                quant: Some(p),
            };
            let bytes = one_op_model(&tensors, 192, false, Op::Sub(sub));
            let a: Vec<i8> = values(seed, len, -128, 127).into_iter().map(|v| v as i8).collect();
            let b: Vec<i8> = values(!seed, b_len, -128, 127).into_iter().map(|v| v as i8).collect();
            let out = run_int8(&bytes, &[&a, &b]);
            for i in 0..len {
                let y = if broadcast { b[i % 20] } else { b[i] };
                prop_assert_eq!(out[i], reference(&p, a[i], y));
                let real = sa * (a[i] as i32 - za) as f32 - sb * (y as i32 - zb) as f32;
                let q = real / so + zo as f32;
                if (-127.0..126.0).contains(&q) {
                    prop_assert!((out[i] as f32 - q).abs() <= 1.0, "{} vs {}", out[i], q);
                }
            }
        }
    }
}
