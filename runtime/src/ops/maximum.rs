//! MAXIMUM (and MINIMUM, `minimum.rs`): the larger (smaller) of two elements, with broadcasting.
//! TFLite Micro compares the raw integers, its converter giving both inputs the output's
//! quantization; an input quantized otherwise is first requantized to the output's
//! ([`ExtremumParams`]), which commutes with the comparison, so the result is one rounding of the
//! exact maximum or minimum.

use serde::{Deserialize, Serialize};

use super::{Binary, RequantizeParams};
use crate::format::{Activation, Operand};
use crate::kernels::elementwise::broadcast_binary;
use crate::kernels::Nhwc;
use crate::validate::{Check, Kind};
use crate::Error;

/// Each integer input's requantization to the output's quantization; `None` where they are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ExtremumParams {
    /// The first input's requantization to the output's scale and zero point.
    pub input1: Option<RequantizeParams>,
    /// The second input's.
    pub input2: Option<RequantizeParams>,
}

crate::format::decode_fields!(ExtremumParams { input1, input2 });

pub(crate) fn validate(b: &Binary<ExtremumParams>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    validate_extremum(b, check)
}

pub(crate) fn run(b: &Binary<ExtremumParams>, arena: &mut [u8]) -> Result<(), Error> {
    run_extremum(b, arena, true)
}

/// The checks of MAXIMUM and MINIMUM: broadcasting operands of one type; int8 inputs of another
/// quantization than the output's carry their requantization (int16 ones may not differ).
pub(crate) fn validate_extremum(
    b: &Binary<ExtremumParams>,
    check: &Check<'_, '_, '_>,
) -> Result<(), Error> {
    let kind = check.binary16(&b.a, &b.b, &b.output, b.quant.is_some())?;
    if b.activation != Activation::None {
        return check.bad("maximum and minimum have no fused activation");
    }
    let Some(p) = &b.quant else { return Ok(()) };
    let out = check.tensor(&b.output)?;
    for (input, requant) in [(&b.a, &p.input1), (&b.b, &p.input2)] {
        match requant {
            Some(r) => {
                if kind != Kind::Int8 || !r.requant.is_valid() {
                    return check.bad("invalid maximum/minimum requantization");
                }
                if r.input_zero_point != input.zero_point
                    || r.output_zero_point != b.output.zero_point
                {
                    return check.bad(
                        "maximum/minimum requantization zero points differ from the operands'",
                    );
                }
            }
            None => {
                let t = check.tensor(input)?;
                if t.scale != out.scale || t.zero_point != out.zero_point {
                    return check.bad("maximum/minimum input needs requantization");
                }
            }
        }
    }
    Ok(())
}

/// Outputs of more elements than this requantize their inputs by tables (a table entry costs about
/// as much as requantizing an element on the Cortex-M4F).
const TABLE_FROM: usize = 1024;

/// `x` in the output's quantization.
#[inline(always)]
fn rescaled(r: &Option<RequantizeParams>, x: i8) -> i8 {
    match r {
        Some(r) => r.apply(x),
        None => x,
    }
}

/// Every int8 value in the output's quantization, indexed by the value's byte.
fn table(r: &Option<RequantizeParams>) -> [i8; 256] {
    let mut t = [0i8; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = rescaled(r, i as u8 as i8);
    }
    t
}

/// Runs MAXIMUM (`max`) or MINIMUM with the kernel of its operands' type.
pub(crate) fn run_extremum(
    b: &Binary<ExtremumParams>,
    arena: &mut [u8],
    max: bool,
) -> Result<(), Error> {
    use crate::interpreter::{Views, CORRUPT};
    fn shapes(a: &Operand, b: &Operand, o: &Operand) -> (Nhwc, Nhwc, Nhwc) {
        (a.shape.nhwc(), b.shape.nhwc(), o.shape.nhwc())
    }
    let v = Views::new(arena, &b.output)?;
    let (x, y) = (v.bytes(&b.a)?, v.bytes(&b.b)?);
    let (sa, sb, so) = shapes(&b.a, &b.b, &b.output);
    macro_rules! pick {
        ($t:ty, $f:expr) => {{
            let x: &[$t] = bytemuck::try_cast_slice(x).map_err(|_| CORRUPT)?;
            let y: &[$t] = bytemuck::try_cast_slice(y).map_err(|_| CORRUPT)?;
            let out: &mut [$t] = bytemuck::try_cast_slice_mut(v.out).map_err(|_| CORRUPT)?;
            broadcast_binary(sa, x, sb, y, so, out, $f);
        }};
    }
    // One loop per type for both operators (each is the whole broadcasting walk, inlined), without
    // a branch per element: `!x` reverses the order, so `min(p, q) = !max(!p, !q)`.
    let flip: i8 = if max { 0 } else { -1 };
    let pick_i8 = move |p: i8, q: i8| (p ^ flip).max(q ^ flip) ^ flip;
    match (&b.quant, b.output.dtype) {
        (Some(p), crate::format::DType::I8) => {
            let (r1, r2) = (p.input1, p.input2);
            if v.out.len() > TABLE_FROM && (r1.is_some() || r2.is_some()) {
                let (t1, t2) = (table(&r1), table(&r2));
                let at = |t: &[i8; 256], x: i8| t[x as u8 as usize];
                pick!(i8, |s: i8, u: i8| pick_i8(at(&t1, s), at(&t2, u)))
            } else if max {
                // The common path (an ONNX Max or Min), one loop each: about 20 instructions an
                // element fewer on the Cortex-M4F than through `pick_i8`.
                pick!(i8, |s: i8, u: i8| rescaled(&r1, s).max(rescaled(&r2, u)))
            } else {
                pick!(i8, |s: i8, u: i8| rescaled(&r1, s).min(rescaled(&r2, u)))
            }
        }
        #[cfg(feature = "int16")]
        (Some(_), crate::format::DType::I16) => {
            let flip = flip as i16;
            pick!(i16, |s: i16, t: i16| (s ^ flip).max(t ^ flip) ^ flip)
        }
        #[cfg(feature = "float")]
        (None, _) => {
            let x: &[f32] = bytemuck::try_cast_slice(x).map_err(|_| CORRUPT)?;
            let y: &[f32] = bytemuck::try_cast_slice(y).map_err(|_| CORRUPT)?;
            let out: &mut [f32] = bytemuck::try_cast_slice_mut(v.out).map_err(|_| CORRUPT)?;
            let kernel = if max {
                crate::kernels::float::maximum_f32
            } else {
                crate::kernels::float::minimum_f32
            };
            kernel(sa, x, sb, y, so, out);
        }
        _ => return Err(CORRUPT),
    }
    Ok(())
}

#[cfg(all(test, feature = "in-place"))]
mod tests {
    use super::*;
    use crate::format::ARENA_ALIGN;
    use crate::ops::testutil::{int8_tensor, one_op_model, refusal, run_int8, values};
    use crate::ops::Op;
    use crate::Model;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// A MAXIMUM or MINIMUM of an `a_dims` tensor and a `b_dims` one, each input requantized where
    /// its quantization is not the output's (or with `params` as given).
    fn model(
        max: bool,
        (a_dims, b_dims): ([usize; 4], [usize; 4]),
        (qa, qb, qo): ((f32, i32), (f32, i32), (f32, i32)),
        params: Option<ExtremumParams>,
    ) -> Vec<u8> {
        let tensors = [
            int8_tensor("a", &a_dims, 0, qa, false),
            int8_tensor("b", &b_dims, 2048, qb, false),
            int8_tensor("y", &a_dims, 4096, qo, false),
        ];
        let requant =
            |q: (f32, i32)| (q != qo).then(|| RequantizeParams::prepare(q.0, q.1, qo.0, qo.1));
        let b = Binary {
            a: tensors[0].operand(0),
            b: tensors[1].operand(1),
            output: tensors[2].operand(2),
            activation: Activation::None,
            quant: Some(params.unwrap_or(ExtremumParams {
                input1: requant(qa),
                input2: requant(qb),
            })),
        };
        let op = if max { Op::Maximum(b) } else { Op::Minimum(b) };
        let len: usize = a_dims.iter().product();
        let arena = (4096 + len).div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
        one_op_model(&tensors, arena as u32, false, op)
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        /// Each output is within one step of the float maximum (minimum) of the dequantized
        /// inputs, and exactly the larger (smaller) raw input when every quantization is equal;
        /// outputs of 60 elements requantize each input element, of 1152 by a table.
        #[test]
        fn the_larger_or_smaller_within_one_step(
            max in any::<bool>(),
            large in any::<bool>(),
            broadcast in any::<bool>(),
            same in any::<bool>(),
            scales in (0.01f32..1.0, 0.01f32..1.0, 0.01f32..1.0),
            zps in (-128i32..128, -128i32..128, -128i32..128),
            seed in any::<u64>(),
        ) {
            let qo = (scales.2, zps.2);
            let (qa, qb) = if same { (qo, qo) } else { ((scales.0, zps.0), (scales.1, zps.1)) };
            let a_dims = if large { [1, 8, 12, 12] } else { [1, 3, 4, 5] };
            let b_dims = if broadcast { [1, 1, a_dims[2], a_dims[3]] } else { a_dims };
            let (len, b_len) = (a_dims.iter().product(), b_dims.iter().product::<usize>());
            let a: Vec<i8> = values(seed, len, -128, 127).into_iter().map(|v| v as i8).collect();
            let b: Vec<i8> = values(!seed, b_len, -128, 127).into_iter().map(|v| v as i8).collect();
            let out = run_int8(&model(max, (a_dims, b_dims), (qa, qb, qo), None), &[&a, &b]);
            for i in 0..len {
                let y = b[i % b_len];
                if same {
                    prop_assert_eq!(out[i], if max { a[i].max(y) } else { a[i].min(y) });
                }
                let (fa, fb) = (qa.0 * (a[i] as i32 - qa.1) as f32, qb.0 * (y as i32 - qb.1) as f32);
                let real = if max { fa.max(fb) } else { fa.min(fb) };
                let q = (real / qo.0 + qo.1 as f32).clamp(-128.0, 127.0);
                prop_assert!((out[i] as f32 - q).abs() <= 1.0, "{} vs {}", out[i], q);
            }
        }
    }

    #[test]
    fn an_input_of_another_quantization_without_requantization_is_refused() {
        let q = ((0.2, 0), (0.1, 0), (0.1, 0));
        let dims = ([1, 3, 4, 5], [1, 3, 4, 5]);
        assert!(Model::from_bytes(&model(true, dims, q, None)).is_ok());
        let none = ExtremumParams {
            input1: None,
            input2: None,
        };
        let bytes = model(false, dims, q, Some(none));
        assert_eq!(
            refusal(&bytes),
            "maximum/minimum input needs requantization"
        );
    }
}
