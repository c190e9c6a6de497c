//! Fixed-point arithmetic of the int8 scheme (gemmlowp / TFLite), and f32 <-> int8 conversion helpers.
//!
//! Every function here is integer-only except the `f32` helpers and the `host`-only preparation
//! functions that turn real scales into multipliers offline.

use serde::{Deserialize, Serialize};

/// A real factor `multiplier * 2^(shift - 31)`, as TFLite's `QuantizeMultiplier` produces it or, for
/// one rounding instead of two, with shift 0 and a multiplier below `2^30` (see FORMAT.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Requant {
    /// Q0.31 mantissa: in `[2^30, 2^31)` from `QuantizeMultiplier` (0 for a zero factor), any
    /// non-negative value in general.
    pub multiplier: i32,
    /// Power of two applied after the mantissa; positive shifts left. Valid range `-31..=30`.
    pub shift: i32,
}

/// Smallest and largest shift a [`Requant`] may carry (checked at model load).
pub const SHIFT_RANGE: core::ops::RangeInclusive<i32> = -31..=30;

impl Requant {
    /// Whether the fields are in the range the kernels accept.
    pub fn is_valid(&self) -> bool {
        self.multiplier >= 0 && SHIFT_RANGE.contains(&self.shift)
    }

    /// `x * real_factor`, rounded as TFLite's `MultiplyByQuantizedMultiplier`.
    #[inline(always)]
    pub fn apply(&self, x: i32) -> i32 {
        multiply_by_quantized_multiplier(x, self.multiplier, self.shift)
    }
}

/// gemmlowp `SaturatingRoundingDoublingHighMul`: `round(a * b / 2^31)` with ties rounded up (toward +inf),
/// saturating the single overflow case `i32::MIN * i32::MIN`.
#[inline(always)]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Division truncates toward zero, as in C.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties away from zero.
/// `exponent` must be in `0..=31`.
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let exponent = (exponent & 31) as u32;
    let mask: i32 = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> exponent) + (remainder > threshold) as i32
}

/// TFLite `MultiplyByQuantizedMultiplier` (the double-rounding form used by TFLite Micro's reference
/// kernels and CMSIS-NN): a left shift, `SaturatingRoundingDoublingHighMul`, then `RoundingDivideByPOT`.
#[inline(always)]
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left_shift = if shift > 0 { shift } else { 0 };
    let right_shift = if shift > 0 { 0 } else { -shift };
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(
            x.wrapping_mul(1i32.wrapping_shl(left_shift as u32)),
            multiplier,
        ),
        right_shift,
    )
}

/// TFLite's 64-bit `MultiplyByQuantizedMultiplier` (int16x8 accumulators): the multiplier rounded to
/// 16 bits, one product and one rounding shift. Defined for `shift <= 7` and `|x| < 2^47` (what
/// validation guarantees); the result is truncated to 32 bits as TFLite's is.
#[inline(always)]
pub fn multiply_by_quantized_multiplier_64(x: i64, multiplier: i32, shift: i32) -> i32 {
    Multiplier64::new(multiplier, shift).apply(x)
}

/// The parts of [`multiply_by_quantized_multiplier_64`] that depend on the multiplier and shift
/// only, prepared once for many accumulators.
#[derive(Clone, Copy, Debug, Default)]
pub struct Multiplier64 {
    /// The multiplier rounded to 16 bits.
    reduced: i64,
    /// `2^(shift - 1)`, the rounding term.
    round: i64,
    /// `15 - shift` of the quantized multiplier: the right shift of the product.
    shift: u32,
}

impl Multiplier64 {
    /// From a quantized multiplier and its shift (`shift <= 7`, as validation guarantees).
    #[inline(always)]
    pub fn new(multiplier: i32, shift: i32) -> Self {
        let reduced = if multiplier < 0x7FFF_0000 {
            (multiplier + (1 << 15)) >> 16
        } else {
            0x7FFF
        };
        let total_shift = (15 - shift) as u32;
        Self {
            reduced: reduced as i64,
            round: 1i64 << (total_shift - 1),
            shift: total_shift,
        }
    }

    /// `MultiplyByQuantizedMultiplier(x, multiplier, shift)` (64-bit form), truncated to 32 bits.
    #[inline(always)]
    pub fn apply(self, x: i64) -> i32 {
        (x.wrapping_mul(self.reduced).wrapping_add(self.round) >> self.shift) as i32
    }
}

/// Quantizes a real value with `(scale, zero_point)`, rounding half away from zero and saturating to `[min, max]`.
#[inline]
pub fn quantize_f32(x: f32, scale: f32, zero_point: i32, min: i32, max: i32) -> i32 {
    let y = x / scale;
    // `as` truncates toward zero, saturates out-of-range values and maps NaN to 0; the fraction left
    // (exact in f32) decides the rounding, half away from zero.
    let t = y as i32;
    let frac = y - t as f32;
    let q = if frac >= 0.5 {
        t.saturating_add(1)
    } else if frac <= -0.5 {
        t.saturating_sub(1)
    } else {
        t
    };
    q.saturating_add(zero_point).clamp(min, max)
}

/// Real value of a quantized integer: `scale * (q - zero_point)`.
#[inline]
pub fn dequantize_f32(q: i32, scale: f32, zero_point: i32) -> f32 {
    scale * (q - zero_point) as f32
}

/// Offline preparation of multipliers from real scales (host only: float math never runs on the device).
#[cfg(any(feature = "host", test))]
pub mod prepare {
    use super::Requant;

    /// TFLite `QuantizeMultiplier`: splits `real` into a Q0.31 mantissa and a power of two.
    /// Factors too small to represent (shift below -31) become zero, as in TFLite.
    pub fn quantize_multiplier(real: f64) -> Requant {
        if real == 0.0 || !real.is_finite() {
            return Requant {
                multiplier: 0,
                shift: 0,
            };
        }
        let (q, mut shift) = frexp(real);
        let mut q_fixed = (q * (1i64 << 31) as f64).round() as i64;
        if q_fixed == 1i64 << 31 {
            q_fixed /= 2;
            shift += 1;
        }
        if shift < -31 {
            shift = 0;
            q_fixed = 0;
        }
        Requant {
            multiplier: q_fixed as i32,
            shift,
        }
    }

    /// `frexp`: `x = m * 2^e` with `|m|` in `[0.5, 1)`.
    pub fn frexp(x: f64) -> (f64, i32) {
        if x == 0.0 || !x.is_finite() {
            return (x, 0);
        }
        let bits = x.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i32;
        if exp == 0 {
            // Subnormal: scale into the normal range first.
            let (m, e) = frexp(x * 2f64.powi(64));
            return (m, e - 64);
        }
        let e = exp - 1022;
        let m = f64::from_bits((bits & !(0x7ff << 52)) | (1022u64 << 52));
        (m, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiply_by_quantized_multiplier_64_rounds_half_up() {
        // 0.5 as (2^30, shift 0): the 16-bit multiplier is 2^14, the shift 15.
        let half = 1 << 30;
        assert_eq!(multiply_by_quantized_multiplier_64(100, half, 0), 50);
        assert_eq!(multiply_by_quantized_multiplier_64(101, half, 0), 51);
        assert_eq!(multiply_by_quantized_multiplier_64(-101, half, 0), -50);
        assert_eq!(multiply_by_quantized_multiplier_64(-103, half, 0), -51);
        // A multiplier at the top saturates to 0x7FFF; shift 7 multiplies by 128.
        assert_eq!(
            multiply_by_quantized_multiplier_64(1 << 20, i32::MAX, 0),
            0x7FFF << 5
        );
        assert_eq!(multiply_by_quantized_multiplier_64(3, half, 7), 192);
        // The largest accumulator validation admits stays exact in 64 bits.
        let big = (1i64 << 47) - 1;
        assert_eq!(
            multiply_by_quantized_multiplier_64(big, half, -31),
            ((big * (1 << 14) + (1 << 45)) >> 46) as i32
        );
    }
    use proptest::prelude::*;

    #[test]
    fn srdhm_hand_checked() {
        // 2^30 * 2^30 / 2^31 = 2^29.
        assert_eq!(
            saturating_rounding_doubling_high_mul(1 << 30, 1 << 30),
            1 << 29
        );
        // 3 * 2^30 / 2^31 = 1.5 -> 2; -1.5 -> -1 (ties go up).
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        // 0.5 -> 1; -0.5 -> 0; -0.75 -> -1.
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 30), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 29), -1);
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
            -i32::MAX
        );
    }

    #[test]
    fn rdbpot_hand_checked() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 -> 3
        assert_eq!(rounding_divide_by_pot(-5, 1), -3); // -2.5 -> -3
        assert_eq!(rounding_divide_by_pot(7, 2), 2); // 1.75 -> 2
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5 -> 2
        assert_eq!(rounding_divide_by_pot(-6, 2), -2); // -1.5 -> -2
        assert_eq!(rounding_divide_by_pot(100, 0), 100);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
    }

    #[test]
    fn mbqm_hand_checked() {
        // Multiplier 0.5 (2^30, shift 0): 7 * 0.5 = 3.5 -> 4.
        assert_eq!(multiply_by_quantized_multiplier(7, 1 << 30, 0), 4);
        // 0.5 * 2^-3 = 1/16: 100 / 16 = 6.25 -> 6.
        assert_eq!(multiply_by_quantized_multiplier(100, 1 << 30, -3), 6);
        // 0.5 * 2^2 = 2: 100 * 2 = 200.
        assert_eq!(multiply_by_quantized_multiplier(100, 1 << 30, 2), 200);
    }

    #[test]
    fn shift_zero_multiplier_rounds_once() {
        // A convolution's factor 0.0046048...: 3800 times it is 17.4987. TFLite's normalized form
        // (shift -7) rounds to 2239.84 / 128 -> 2240 / 128 = 17.5 first, then away from zero to 18;
        // the same factor as shift 0 and a multiplier below 2^30 rounds once, to 17.
        assert_eq!(
            multiply_by_quantized_multiplier(3800, 1_265_792_193, -7),
            18
        );
        assert_eq!(multiply_by_quantized_multiplier(3800, 9_889_002, 0), 17);
        assert_eq!(multiply_by_quantized_multiplier(-3800, 9_889_002, 0), -17);
    }

    /// Exact reference: round_half_away(round_half_up(x * 2^left * m / 2^31) / 2^right), with saturation
    /// only where gemmlowp saturates.
    fn reference(x: i32, m: i32, shift: i32) -> i32 {
        let left = shift.max(0);
        let right = (-shift).max(0);
        let xs = x.wrapping_mul(1 << left) as i128;
        let prod = xs * m as i128;
        let div = |n: i128, d: i128| -> i128 {
            // round half away from zero
            let q = n / d;
            let r = n % d;
            if 2 * r.abs() >= d {
                q + n.signum()
            } else {
                q
            }
        };
        // floor((2ab + 2^31) / 2^32) rounds ties up.
        let high = (prod * 2 + (1i128 << 31))
            .div_euclid(1i128 << 32)
            .clamp(i32::MIN as i128, i32::MAX as i128);
        div(high, 1i128 << right) as i32
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn mbqm_matches_exact_arithmetic(x in any::<i32>(), m in (1i32 << 30)..=i32::MAX, shift in -31i32..=0) {
            prop_assert_eq!(multiply_by_quantized_multiplier(x, m, shift), reference(x, m, shift));
        }

        #[test]
        fn mbqm_left_shift_matches_exact(x in -(1i32 << 20)..(1 << 20), m in (1i32 << 30)..=i32::MAX, shift in 0i32..=10) {
            prop_assert_eq!(multiply_by_quantized_multiplier(x, m, shift), reference(x, m, shift));
        }

        #[test]
        fn rdbpot_matches_exact(x in any::<i32>(), e in 0i32..=31) {
            let d = 1i64 << e;
            let n = x as i64;
            let q = n / d; let r = n % d;
            let expected = if 2 * r.abs() >= d { q + n.signum() } else { q };
            prop_assert_eq!(rounding_divide_by_pot(x, e) as i64, expected);
        }
    }

    #[cfg(any(feature = "host", test))]
    #[test]
    fn quantize_multiplier_roundtrips() {
        use prepare::quantize_multiplier;
        for &real in &[0.5, 0.25, 1.0, 3.0, 0.0123, 1e-5, 0.999_999_999_9] {
            let r = quantize_multiplier(real);
            let back = r.multiplier as f64 * 2f64.powi(r.shift - 31);
            assert!((back - real).abs() <= real * 1e-9, "{real}: {r:?}");
            assert!(r.is_valid());
        }
        assert_eq!(
            quantize_multiplier(0.5),
            Requant {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(
            quantize_multiplier(1e-20),
            Requant {
                multiplier: 0,
                shift: 0
            }
        );
    }
}
