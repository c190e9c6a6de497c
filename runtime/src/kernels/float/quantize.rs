//! Conversions between f32 and int8 at the boundaries of layers kept in float.

use crate::quant::{dequantize_f32, quantize_f32};

/// `output[i] = clamp(round(input[i] / scale) + zero_point, -128, 127)`, rounding half away from zero
/// (NaN maps to `zero_point`). Slices have equal lengths.
pub fn quantize_f32_to_s8(scale: f32, zero_point: i32, input: &[f32], output: &mut [i8]) {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = quantize_f32(x, scale, zero_point, i8::MIN as i32, i8::MAX as i32) as i8;
    }
}

/// f32 -> int16 (zero point 0): TFLite's `AffineQuantize` into `-32768..=32767`.
pub fn quantize_f32_to_s16(scale: f32, input: &[f32], output: &mut [i16]) {
    for (o, &x) in output.iter_mut().zip(input) {
        *o = quantize_f32(x, scale, 0, i16::MIN as i32, i16::MAX as i32) as i16;
    }
}

/// `output[i] = scale * input[i]`: int16 (zero point 0) -> f32.
pub fn dequantize_s16_to_f32(scale: f32, input: &[i16], output: &mut [f32]) {
    for (o, &q) in output.iter_mut().zip(input) {
        *o = dequantize_f32(q as i32, scale, 0);
    }
}

/// `output[i] = scale * (input[i] - zero_point)`. Slices have equal lengths.
pub fn dequantize_s8_to_f32(scale: f32, zero_point: i32, input: &[i8], output: &mut [f32]) {
    for (o, &q) in output.iter_mut().zip(input) {
        *o = dequantize_f32(q as i32, scale, zero_point);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{quant, Rng};
    use std::vec::Vec;

    #[test]
    fn ties_round_away_from_zero_and_saturate() {
        let input = [
            2.5f32,
            -2.5,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.4,
            -2.6,
            127.5,
            -128.5,
            1e9,
            -1e9,
            f32::NAN,
        ];
        let mut out = [0i8; 13];
        quantize_f32_to_s8(1.0, 0, &input, &mut out);
        assert_eq!(out, [3, -3, 1, -1, 2, -2, 2, -3, 127, -128, 127, -128, 0]);
        // With a zero point, rounding happens before the offset and saturation after it.
        quantize_f32_to_s8(0.5, 10, &[1.25, -1.25, 60.0, -70.0], &mut out[..4]);
        assert_eq!(out[..4], [13, 7, 127, -128]);
        quantize_f32_to_s8(0.5, -10, &[f32::INFINITY, f32::NEG_INFINITY], &mut out[..2]);
        assert_eq!(out[..2], [127, -128]);
    }

    /// The largest f32 below 0.5 must round to 0 (adding 0.5 then truncating would give 1).
    #[test]
    fn largest_value_below_a_half_rounds_down() {
        let below_half = f32::from_bits(0.5f32.to_bits() - 1);
        let mut out = [0i8; 2];
        quantize_f32_to_s8(1.0, 0, &[below_half, -below_half], &mut out);
        assert_eq!(out, [0, 0]);
    }

    #[test]
    fn dequantize_hand_computed() {
        let mut out = [0.0f32; 3];
        dequantize_s8_to_f32(0.25, -3, &[-128, -3, 127], &mut out);
        assert_eq!(out, [-31.25, 0.0, 32.5]);
    }

    #[test]
    fn round_trips() {
        let mut rng = Rng::new(0x9a);
        for _ in (0..100).take(crate::MIRI_CASES) {
            let scale = rng.f32(0.001, 2.0);
            let zero_point = rng.range(-128, 127);
            // Every int8 value survives dequantize -> quantize.
            let all: Vec<i8> = (-128..=127).collect();
            let mut real = std::vec![0.0f32; 256];
            let mut back = std::vec![0i8; 256];
            dequantize_s8_to_f32(scale, zero_point, &all, &mut real);
            quantize_f32_to_s8(scale, zero_point, &real, &mut back);
            assert_eq!(back, all, "scale {scale}, zero point {zero_point}");
            // Real values come back within half a step inside the representable range and match the
            // f64 reference quantizer (away from exact ties, where f32 division may differ).
            let lo = scale * (-128 - zero_point) as f32;
            let hi = scale * (127 - zero_point) as f32;
            let input: Vec<f32> = (0..256)
                .map(|_| rng.f32(lo - 10.0 * scale, hi + 10.0 * scale))
                .collect();
            let mut q = std::vec![0i8; 256];
            quantize_f32_to_s8(scale, zero_point, &input, &mut q);
            dequantize_s8_to_f32(scale, zero_point, &q, &mut real);
            for ((&x, &qi), &r) in input.iter().zip(&q).zip(&real) {
                let steps = x as f64 / scale as f64;
                let frac = (steps - steps.trunc()).abs();
                if (frac - 0.5).abs() > 1e-4 {
                    assert_eq!(
                        qi,
                        quant(x as f64, scale, zero_point),
                        "x {x}, scale {scale}, zero point {zero_point}"
                    );
                }
                if x >= lo && x <= hi {
                    assert!(
                        (r - x).abs() <= 0.5 * scale * (1.0 + 1e-5),
                        "x {x} -> {qi} -> {r}, scale {scale}"
                    );
                }
            }
        }
    }
}
