//! Requantization between integer types: int8 -> int8, and int8 <-> int16 and int16 -> int16 for
//! int16x8 models (TFLite Micro `Quantize` with an integer input, i.e. `reference_ops::Requantize`).

use crate::ops::RequantizeParams;

impl RequantizeParams {
    /// Requantizes one value.
    ///
    /// TFLite: `clamp(MultiplyByQuantizedMultiplier(x - input_zp, m, shift) + output_zp, -128, 127)`.
    #[inline(always)]
    pub fn apply(&self, x: i8) -> i8 {
        let scaled = self.requant.apply(x as i32 - self.input_zero_point);
        scaled
            .saturating_add(self.output_zero_point)
            .max(i8::MIN as i32)
            .min(i8::MAX as i32) as i8
    }
}

/// Requantizes every element of `input` into `output` (same length).
pub fn requantize_s8(p: &RequantizeParams, input: &[i8], output: &mut [i8]) {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = p.apply(x);
    }
}

/// Requantizes integers of any width: `clamp(MultiplyByQuantizedMultiplier(x - input_zp, m,
/// shift) + output_zp)` to the output type's range, `O::MIN..=O::MAX`.
pub fn requantize<I, O>(p: &RequantizeParams, input: &[I], output: &mut [O])
where
    I: Copy + Into<i32>,
    O: Bounded,
{
    for (o, &x) in output.iter_mut().zip(input) {
        let scaled = p.requant.apply(x.into() - p.input_zero_point);
        *o = O::clamp_from(scaled.saturating_add(p.output_zero_point));
    }
}

/// An integer element type a requantization writes, clamping into its range.
pub trait Bounded: Copy {
    /// `x` clamped to the type's range.
    fn clamp_from(x: i32) -> Self;
}

impl Bounded for i8 {
    fn clamp_from(x: i32) -> Self {
        x.clamp(i8::MIN as i32, i8::MAX as i32) as i8
    }
}

impl Bounded for i16 {
    fn clamp_from(x: i32) -> Self {
        x.clamp(i16::MIN as i32, i16::MAX as i32) as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, dequant, quant, Rng};
    use crate::quant::Requant;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn hand_computed() {
        // Same scale: a pure zero-point shift, saturating at the int8 range.
        let p = RequantizeParams::prepare(0.5, 10, 0.5, -20);
        assert_eq!(
            p.requant,
            Requant {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        let mut out = [0i8; 4];
        requantize_s8(&p, &[10, 0, -100, 127], &mut out);
        assert_eq!(out, [-20, -30, -128, 97]);

        // Factor 0.5: (x - 0) * 0.5, ties toward +inf in the doubling high multiply.
        let p = RequantizeParams::prepare(0.25, 0, 0.5, 0);
        requantize_s8(&p, &[3, -3, 127, -128], &mut out);
        assert_eq!(out, [2, -1, 64, -64]);

        // Factor 4 saturates.
        let p = RequantizeParams::prepare(2.0, 0, 0.5, 1);
        requantize_s8(&p, &[10, -10, 40, -40], &mut out);
        assert_eq!(out, [41, -39, 127, -128]);
    }

    #[test]
    fn random_matches_float_reference() {
        let mut rng = Rng::new(0x4E9);
        for _ in (0..200).take(crate::MIRI_CASES) {
            let in_scale = rng.f32(0.005, 0.2);
            let out_scale = rng.f32(0.005, 0.2);
            let in_zp = rng.range(-128, 127);
            let out_zp = rng.range(-128, 127);
            let p = RequantizeParams::prepare(in_scale, in_zp, out_scale, out_zp);
            let input = rng.i8_vec(64);
            let want: Vec<i8> = input
                .iter()
                .map(|&x| quant(dequant(x, in_scale, in_zp), out_scale, out_zp))
                .collect();
            let mut got = vec![0i8; input.len()];
            requantize_s8(&p, &input, &mut got);
            assert_close(&got, &want, 1);
        }
    }
}
