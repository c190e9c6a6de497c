//! PRELU: `x` for `x >= 0`, `alpha * x` below, with `alpha` a constant of one value or one per
//! channel (the last axis), stored in the operator (TFLite Micro int8 arithmetic).

use serde::{Deserialize, Serialize};

use crate::format::Operand;
#[cfg(feature = "float")]
use crate::interpreter::le_f32;
use crate::interpreter::Views;
use crate::kernels;
use crate::quant::Requant;
use crate::validate::{Check, Kind};
use crate::Error;

/// A parametric ReLU; `quant` is present for int8, absent for f32.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PRelu<'a> {
    /// Input, int8 or f32.
    pub input: Operand,
    /// Output, with the input's shape.
    pub output: Operand,
    /// Slopes below zero, one or one per channel of the input's last axis: int8 values (quantized
    /// with `quant`'s alpha zero point) or little-endian f32.
    pub alpha: &'a [u8],
    /// Precomputed int8 parameters; `None` for f32.
    pub quant: Option<PReluParams>,
}

crate::format::decode_fields!(PRelu<'a> { input, output, alpha, quant });

super::operand_fields!(PRelu<'_>: input => output);

/// Precomputed parameters of an int8 PRelu (TFLite Micro `CalculatePreluParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PReluParams {
    /// Zero point of the input, as the kernel subtracts it.
    pub input_zero_point: i32,
    /// Zero point of the int8 alpha values.
    pub alpha_zero_point: i32,
    /// Zero point of the output, added after rescaling.
    pub output_zero_point: i32,
    /// `input_scale / output_scale`, for inputs at or above the zero point.
    pub identity: Requant,
    /// `input_scale * alpha_scale / output_scale`, applied to `(x - zp_in) * (alpha - zp_alpha)`
    /// for inputs below it.
    pub alpha: Requant,
}

crate::format::decode_fields!(PReluParams {
    input_zero_point,
    alpha_zero_point,
    output_zero_point,
    identity,
    alpha
});

impl PReluParams {
    /// Mirrors TFLite Micro's preparation: both factors formed in double from the f32 scales, then
    /// `QuantizeMultiplier`.
    #[cfg(any(feature = "host", test))]
    pub fn prepare(
        input_scale: f32,
        input_zero_point: i32,
        alpha_scale: f32,
        alpha_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
    ) -> Self {
        use crate::quant::prepare::quantize_multiplier;
        let (s_in, s_alpha, s_out) = (input_scale as f64, alpha_scale as f64, output_scale as f64);
        Self {
            input_zero_point,
            alpha_zero_point,
            output_zero_point,
            identity: quantize_multiplier(s_in / s_out),
            alpha: quantize_multiplier(s_in * s_alpha / s_out),
        }
    }
}

pub(crate) fn validate(u: &PRelu<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let kind = check.unary(&u.input, &u.output, u.quant.is_some())?;
    if u.input.shape != u.output.shape {
        return check.bad("prelu input and output shapes differ");
    }
    let channels = u.input.shape.last();
    let elem = if kind == Kind::Int8 { 1 } else { 4 };
    let count = u.alpha.len() / elem;
    if !u.alpha.len().is_multiple_of(elem) || (count != 1 && count != channels) {
        return check.bad("prelu needs one alpha, or one per channel of the last axis");
    }
    let Some(p) = &u.quant else {
        let finite = u
            .alpha
            .chunks_exact(4)
            .all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite());
        if !finite {
            return check.bad("prelu alpha not finite");
        }
        return Ok(());
    };
    if p.input_zero_point != u.input.zero_point
        || p.output_zero_point != u.output.zero_point
        || !(-128..=127).contains(&p.alpha_zero_point)
        || !p.identity.is_valid()
        || !p.alpha.is_valid()
    {
        return check.bad("prelu parameters inconsistent with its operands");
    }
    Ok(())
}

pub(crate) fn run(u: &PRelu<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &u.output)?;
    match &u.quant {
        Some(p) => {
            let alpha: &[i8] = bytemuck::cast_slice(u.alpha);
            kernels::activation::prelu_s8(p, alpha, v.i8(&u.input)?, v.out_i8());
        }
        #[cfg(feature = "float")]
        None => {
            let alpha = le_f32(u.alpha)?;
            kernels::float::activation::prelu_f32(alpha, v.f32(&u.input)?, v.out_f32()?);
        }
        #[cfg(not(feature = "float"))]
        None => return Err(crate::interpreter::CORRUPT),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{DType, Shape, Tensor};
    use crate::ops::testutil::{one_op_model, refusal};
    use crate::ops::Op;
    use crate::{Interpreter, Model};
    use std::vec::Vec;

    /// A model of one PRelu over a `[1, 2, 2, 3]` tensor of `dtype`, the operator edited by `edit`.
    fn model(dtype: DType, alpha: &[u8], edit: impl FnOnce(&mut PRelu<'_>)) -> Vec<u8> {
        let shape = Shape::new(&[1, 2, 2, 3]).unwrap();
        let float = dtype == DType::F32;
        let (scale, size) = if float { (0.0, 48) } else { (0.5, 12) };
        let tensor = |name, offset, zero_point| Tensor {
            name,
            dtype,
            shape,
            scale,
            zero_point,
            offset,
            first: 0,
            last: 0,
            in_place: false,
        };
        let (zi, zo) = if float { (0, 0) } else { (3, -1) };
        let tensors = [tensor("x", 0, zi), tensor("y", size, zo)];
        let mut op = PRelu {
            input: tensors[0].operand(0),
            output: tensors[1].operand(1),
            alpha,
            quant: (!float).then(|| PReluParams::prepare(0.5, zi, 0.125, 2, 0.25, zo)),
        };
        edit(&mut op);
        let arena = (2 * size).next_multiple_of(16);
        one_op_model(&tensors, arena, float, Op::PRelu(op))
    }

    #[test]
    fn a_per_channel_int8_prelu_runs_the_kernel() {
        let alpha = [6u8, (-2i8) as u8, 2];
        let bytes = model(DType::I8, &alpha, |_| {});
        let m = Model::from_bytes(&bytes).unwrap();
        let mut arena = std::vec![0u8; m.arena_size() + 16];
        let mut it = Interpreter::new(&m, &mut arena).unwrap();
        let input: [i8; 12] = [3, 10, -4, -4, -4, -4, -128, 127, 0, 1, -100, 50];
        it.input_i8_mut(0).unwrap().copy_from_slice(&input);
        it.invoke().unwrap();
        let mut want = [0i8; 12];
        let p = PReluParams::prepare(0.5, 3, 0.125, 2, 0.25, -1);
        kernels::activation::prelu_s8(&p, bytemuck::cast_slice(&alpha), &input, &mut want);
        assert_eq!(it.output_i8(0).unwrap(), want);
        // Input -4 (7 below the zero point) in channels 2, 0, 1, 2: channel 2's alpha is its zero
        // point (slope 0), channel 0's is 0.5, channel 1's -0.5 (see the kernel's hand check).
        assert_eq!(want[2..6], [-1, -8, 6, -1]);
    }

    #[test]
    #[cfg(feature = "float")]
    fn an_f32_prelu_with_one_alpha_runs() {
        let bytes = model(DType::F32, &0.25f32.to_le_bytes(), |_| {});
        let m = Model::from_bytes(&bytes).unwrap();
        let mut arena = std::vec![0u8; m.arena_size() + 16];
        let mut it = Interpreter::new(&m, &mut arena).unwrap();
        let input: Vec<f32> = (0..12).map(|i| i as f32 - 6.0).collect();
        it.set_input_f32(0, &input).unwrap();
        it.invoke().unwrap();
        let want: Vec<f32> = input
            .iter()
            .map(|&x| if x >= 0.0 { x } else { x / 4.0 })
            .collect();
        assert_eq!(it.output_f32(0).unwrap(), &want[..]);
    }

    #[test]
    fn bad_alphas_and_parameters_are_refused() {
        let one = "prelu needs one alpha, or one per channel of the last axis";
        let params = "prelu parameters inconsistent with its operands";
        assert_eq!(refusal(&model(DType::I8, &[1, 2], |_| {})), one);
        assert_eq!(refusal(&model(DType::I8, &[], |_| {})), one);
        assert_eq!(refusal(&model(DType::I8, &[1; 4], |_| {})), one);
        assert_eq!(
            refusal(&model(DType::I8, &[1], |u| u.quant = None)),
            "int8 operator without its quantization parameters"
        );
        type Edit = fn(&mut PReluParams);
        let edits: [Edit; 5] = [
            |p| p.input_zero_point += 1,
            |p| p.output_zero_point += 1,
            |p| p.alpha_zero_point = 128,
            |p| p.identity.shift = 31,
            |p| p.alpha.multiplier = -1,
        ];
        for edit in edits {
            let bytes = model(DType::I8, &[1], |u| edit(u.quant.as_mut().unwrap()));
            assert_eq!(refusal(&bytes), params);
        }
        let shape = Shape::new(&[1, 4, 3]).unwrap();
        let bytes = model(DType::I8, &[1], |u| u.output.shape = shape);
        assert!(Model::from_bytes(&bytes).is_err());
    }

    #[test]
    #[cfg(feature = "float")]
    fn bad_f32_alphas_are_refused() {
        let f = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|a| a.to_le_bytes()).collect() };
        let bytes = model(DType::F32, &f(&[0.1, f32::NAN, 0.2]), |_| {});
        assert_eq!(refusal(&bytes), "prelu alpha not finite");
        // Five bytes: not whole f32 values.
        let bytes = model(DType::F32, &[0; 5], |_| {});
        assert_eq!(
            refusal(&bytes),
            "prelu needs one alpha, or one per channel of the last axis"
        );
        let bytes = model(DType::F32, &f(&[0.1]), |u| {
            u.quant = Some(PReluParams::prepare(1.0, 0, 1.0, 0, 1.0, 0))
        });
        assert_eq!(refusal(&bytes), "f32 operator with int8 parameters");
    }
}
