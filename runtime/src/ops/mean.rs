//! MEAN over H and W of an NHWC tensor (TFLite Micro `reduce_common.cc` int8 and int16 arithmetic).

use serde::{Deserialize, Serialize};

use super::Unary;
use crate::kernels;
use crate::quant::Requant;
use crate::validate::{quant_presence, Check, Kind, MAX_REDUCTION};
use crate::Error;

/// Precomputed quantization of an int8 or int16 mean over H and W. int16 (zero points 0) always takes
/// the rescaling path: `same_quantization` is false, as TFLite Micro has no other int16 path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MeanParams {
    /// Zero point of the input, as the kernel subtracts it.
    pub input_zero_point: i32,
    /// Zero point of the output, added after rescaling.
    pub output_zero_point: i32,
    /// Number of elements averaged (`H * W`) the multiplier was prepared for.
    pub num_elements: u32,
    /// Input and output scale and zero point are identical: divide the raw sum by the count (int8
    /// only; always false for int16).
    pub same_quantization: bool,
    /// `input_scale / output_scale` with the `1 / num_elements` folded in as `QuantizedMeanOrSum` does
    /// (its mantissa may lie below `2^30`). Unused when `same_quantization`.
    pub requant: Requant,
}

crate::format::decode_fields!(MeanParams {
    input_zero_point,
    output_zero_point,
    num_elements,
    same_quantization,
    requant
});

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

    /// The int16 mean's parameters (zero points 0): TFLite Micro's `PrepareMeanOrSumHelper` and
    /// `QuantizedMeanOrSum` arithmetic as in [`Self::prepare`], without the equal-quantization
    /// division (TFLite Micro rescales int16 sums in every case).
    #[cfg(any(feature = "host", test))]
    pub fn prepare16(input_scale: f32, output_scale: f32, num_elements: usize) -> Self {
        Self {
            same_quantization: false,
            ..Self::prepare(input_scale, 0, output_scale, 0, num_elements)
        }
    }
}

pub(crate) fn validate(u: &Unary<MeanParams>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let k = check.kind16(&u.input, &u.output)?;
    let (i, o) = (u.input.shape.nhwc(), u.output.shape.nhwc());
    if u.input.shape.rank != 4 || u.output.shape.elements() != Some(i.n * i.c) || o.c != i.c {
        return check.bad("mean reduces H and W of a rank-4 tensor to N x C");
    }
    if i.h * i.w > MAX_REDUCTION {
        return check.bad("mean window too large");
    }
    quant_presence(k, u.quant.is_some()).map_err(|r| check.fail(r))?;
    if k == Kind::Int16 && u.quant.as_ref().is_some_and(|p| p.same_quantization) {
        return check.bad("int16 mean always rescales (same_quantization must be false)");
    }
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
        #[cfg(feature = "int16")]
        |p, x, out| kernels::int16::mean::mean_hw_s16(p, shape, x, out),
        #[cfg(feature = "float")]
        |x, out| kernels::float::mean_hw_f32(shape, x, out),
    )
}

#[cfg(all(test, feature = "int16"))]
mod tests {
    use super::*;
    use crate::format::{DType, Shape, Tensor};
    use crate::ops::testutil::{one_op_model, refusal};
    use crate::ops::Op;
    use crate::{Interpreter, Model};
    use std::vec::Vec;

    /// A model of one int16 mean of a `[1, 2, 3, 2]` tensor (scale 0.5) into `[1, 2]` (scale 0.25);
    /// `edit` changes the operator.
    fn model(edit: impl FnOnce(&mut Unary<MeanParams>)) -> Vec<u8> {
        let tensor = |name, dims: &[usize], scale, offset| Tensor {
            name,
            dtype: DType::I16,
            shape: Shape::new(dims).unwrap(),
            scale,
            zero_point: 0,
            offset,
            first: 0,
            last: 0,
            in_place: false,
        };
        let tensors = [
            tensor("x", &[1, 2, 3, 2], 0.5, 0),
            tensor("y", &[1, 2], 0.25, 32),
        ];
        let mut mean = Unary {
            input: tensors[0].operand(0),
            output: tensors[1].operand(1),
            quant: Some(MeanParams::prepare16(0.5, 0.25, 6)),
        };
        edit(&mut mean);
        one_op_model(&tensors, 48, false, Op::Mean(mean))
    }

    #[test]
    fn an_int16_mean_runs_the_kernel() {
        let bytes = model(|_| {});
        let m = Model::from_bytes(&bytes).unwrap();
        let mut arena = std::vec![0u8; m.arena_size() + 16];
        let mut it = Interpreter::new(&m, &mut arena).unwrap();
        // Channel 0: 1..=6 (mean 3.5, times 2 -> 7); channel 1: -1000 each (-> -2000).
        let input: [i16; 12] = [1, -1000, 2, -1000, 3, -1000, 4, -1000, 5, -1000, 6, -1000];
        it.input_i16_mut(0).unwrap().copy_from_slice(&input);
        it.invoke().unwrap();
        assert_eq!(it.output_i16(0).unwrap(), [7, -2000]);
    }

    #[test]
    fn bad_int16_means_are_refused() {
        let same = model(|u| u.quant.as_mut().unwrap().same_quantization = true);
        assert_eq!(
            refusal(&same),
            "int16 mean always rescales (same_quantization must be false)"
        );
        let count = model(|u| u.quant.as_mut().unwrap().num_elements = 5);
        assert_eq!(
            refusal(&count),
            "mean parameters inconsistent with its operands"
        );
        let zero_point = model(|u| u.quant.as_mut().unwrap().output_zero_point = 1);
        assert_eq!(
            refusal(&zero_point),
            "mean parameters inconsistent with its operands"
        );
        let shift = model(|u| u.quant.as_mut().unwrap().requant.shift = 31);
        assert_eq!(
            refusal(&shift),
            "mean parameters inconsistent with its operands"
        );
        let missing = model(|u| u.quant = None);
        assert_eq!(
            refusal(&missing),
            "int16 operator without its quantization parameters"
        );
    }
}
