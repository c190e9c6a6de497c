//! gemmlowp fixed-point transcendental functions on raw `i32` values (exp, 1/(1+x), logistic, tanh, reciprocal).
//!
//! A value in the Q`m`.`31-m` format is a raw `i32` `r` standing for `r / 2^(31 - m)`; `m` is the
//! number of integer bits (gemmlowp's `FixedPoint<int32_t, m>`), passed here as an argument.
//! Products of two fixed-point values are [`saturating_rounding_doubling_high_mul`](crate::quant::saturating_rounding_doubling_high_mul) on the raws, whose
//! integer bits add up. Raw additions wrap (gemmlowp assumes they never overflow).

use crate::quant::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul as mul};

/// Number of fractional bits of the Q`integer_bits` format.
#[inline(always)]
pub const fn fractional_bits(integer_bits: u32) -> u32 {
    31 - integer_bits
}

/// gemmlowp `FixedPoint::One()`: `1.0`, or `i32::MAX` (closest to 1) when there are no integer bits.
#[inline(always)]
pub const fn one(integer_bits: u32) -> i32 {
    if integer_bits == 0 {
        i32::MAX
    } else {
        1 << fractional_bits(integer_bits)
    }
}

/// gemmlowp `ConstantPOT<exponent>()`: the exact power of two `2^exponent` in Q`integer_bits`.
#[inline(always)]
pub const fn constant_pot(integer_bits: u32, exponent: i32) -> i32 {
    1 << (fractional_bits(integer_bits) as i32 + exponent)
}

/// gemmlowp `SaturatingRoundingMultiplyByPOT`: `x * 2^exponent`, saturating for a positive exponent,
/// rounding to nearest (ties away from zero) for a negative one.
#[inline(always)]
pub fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent > 0 {
        // Values beyond +-(2^(31-e) - 1) saturate, as gemmlowp compares against that threshold.
        let threshold = (1i32 << (31 - exponent)) - 1;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x << exponent
        }
    } else if exponent < 0 {
        rounding_divide_by_pot(x, -exponent)
    } else {
        x
    }
}

/// gemmlowp `Rescale`: changes the format of `x` from Q`src_integer_bits` to Q`dst_integer_bits`.
#[inline(always)]
pub fn rescale(x: i32, src_integer_bits: u32, dst_integer_bits: u32) -> i32 {
    saturating_rounding_multiply_by_pot(x, src_integer_bits as i32 - dst_integer_bits as i32)
}

/// gemmlowp `RoundingHalfSum`: `(a + b) / 2` rounded to nearest, ties away from zero, without overflow.
#[inline(always)]
pub fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = a as i64 + b as i64;
    let sign = if sum >= 0 { 1 } else { -1 };
    // Division truncates toward zero, as in C.
    ((sum + sign) / 2) as i32
}

/// gemmlowp `exp_on_interval_between_negative_one_quarter_and_0_excl`: `exp(a)` for Q0.31 `a` in
/// `[-1/4, 0)`, as a fourth-order Taylor expansion around `-1/8`. Returns Q0.31.
pub fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    // exp(-1/8) and 1/3 in Q0.31.
    const EXP_MINUS_ONE_EIGHTH: i32 = 1_895_147_668;
    const ONE_THIRD: i32 = 715_827_883;
    // Change of variable x = a + 1/8.
    let x = a.wrapping_add(constant_pot(0, -3));
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2);
    // x^4/24 + x^3/6 + x^2/2 = ((x^4/4 + x^3) / 3 + x^2) / 2.
    let poly = saturating_rounding_multiply_by_pot(
        mul(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2),
        -1,
    );
    EXP_MINUS_ONE_EIGHTH.wrapping_add(mul(EXP_MINUS_ONE_EIGHTH, x.wrapping_add(poly)))
}

/// gemmlowp `exp_on_negative_values`: `exp(a)` for `a <= 0` in Q`integer_bits` (at most 29). Returns Q0.31.
///
/// The input is split into its remainder modulo 1/4, handled by the Taylor expansion, and a sum of
/// powers of two whose exponentials multiply the result (a barrel shifter over `exp(-2^k)`).
pub fn exp_on_negative_values(a: i32, integer_bits: u32) -> i32 {
    let frac = fractional_bits(integer_bits) as i32;
    let one_quarter = constant_pot(integer_bits, -2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(
        a_mod_quarter_minus_one_quarter,
        integer_bits,
        0,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);

    // (k, exp(-2^k) in Q0.31): applied when bit `frac + k` of the remainder is set.
    const BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    for &(k, multiplier) in BARREL.iter() {
        // Only the powers of two representable in the input format take part.
        if (integer_bits as i32) > k && remainder & (1 << (frac + k)) != 0 {
            result = mul(result, multiplier);
        }
    }

    // Inputs below -32 give 0 (only reachable with more than 5 integer bits).
    if integer_bits > 5 {
        let clamp = -(1i32 << (36 - integer_bits));
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = one(0);
    }
    result
}

/// Newton-Raphson approximation of `2 / (1 + a)` in Q2.29 for Q0.31 `a` in `[0, 1)`: the shared core of
/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1` and `one_minus_x_over_one_plus_x_for_x_in_0_1`.
fn two_over_one_plus_x(a: i32) -> i32 {
    // 48/17 and -32/17 in Q2.29.
    const C48_OVER_17: i32 = 1_515_870_810;
    const CNEG32_OVER_17: i32 = -1_010_580_540;
    let half_denominator = rounding_half_sum(a, one(0));
    let mut x = C48_OVER_17.wrapping_add(mul(half_denominator, CNEG32_OVER_17));
    for _ in 0..3 {
        let half_denominator_times_x = mul(half_denominator, x);
        let one_minus_half_denominator_times_x = one(2).wrapping_sub(half_denominator_times_x);
        // Q2 * Q2 = Q4, rescaled back to Q2.
        x = x.wrapping_add(rescale(mul(x, one_minus_half_denominator_times_x), 4, 2));
    }
    x
}

/// gemmlowp `one_over_one_plus_x_for_x_in_0_1`: `1 / (1 + a)` for Q0.31 `a` in `[0, 1)`. Returns Q0.31.
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    // x = 2/(1+a) in Q2.29; halving it exactly makes a Q1.30 value, rescaled to Q0.31.
    rescale(two_over_one_plus_x(a), 1, 0)
}

/// gemmlowp `one_minus_x_over_one_plus_x_for_x_in_0_1`: `(1 - a) / (1 + a)` for Q0.31 `a` in `[0, 1)`.
/// Returns Q0.31.
pub fn one_minus_x_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    // (1 - a)/(1 + a) = 2/(1 + a) - 1, computed in Q2.29.
    rescale(two_over_one_plus_x(a).wrapping_sub(one(2)), 2, 0)
}

/// gemmlowp `logistic`: `1 / (1 + exp(-a))` for `a` in Q`integer_bits` (at most 29). Returns Q0.31.
pub fn logistic(a: i32, integer_bits: u32) -> i32 {
    if a == 0 {
        return constant_pot(0, -1);
    }
    // logistic(|a|) = 1 / (1 + exp(-|a|)); logistic(-|a|) = 1 - logistic(|a|).
    let abs_input = if a > 0 { a } else { a.wrapping_neg() };
    let result_if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(
        abs_input.wrapping_neg(),
        integer_bits,
    ));
    if a > 0 {
        result_if_positive
    } else {
        one(0).wrapping_sub(result_if_positive)
    }
}

/// gemmlowp `tanh`: `tanh(a)` for `a` in Q`integer_bits` (at most 28). Returns Q0.31.
pub fn tanh(a: i32, integer_bits: u32) -> i32 {
    if a == 0 {
        return 0;
    }
    // For n = -|a|: -tanh(n) = (1 - exp(2n)) / (1 + exp(2n)); 2n is the same raw with one more integer bit.
    let n = if a < 0 { a } else { a.wrapping_neg() };
    let t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1));
    if a < 0 {
        t.wrapping_neg()
    } else {
        t
    }
}

/// TFLite `GetReciprocal`: for a positive `x` in Q`x_integer_digits`, returns `(r, num_bits_over_unit)` with
/// `1 / x = (r / 2^31) / 2^num_bits_over_unit`, `r` in Q0.31.
///
/// `x` is normalised into `[1, 2)` by its leading zeros, and `1 / (1 + (x' - 1))` is evaluated with
/// [`one_over_one_plus_x_for_x_in_0_1`].
pub fn get_reciprocal(x: i32, x_integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros();
    let num_bits_over_unit = x_integer_digits - headroom_plus_one as i32;
    let shifted = (x as u32).checked_shl(headroom_plus_one).unwrap_or(0);
    let shifted_sum_minus_one = shifted.wrapping_sub(1u32 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one),
        num_bits_over_unit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_f64(raw: i32, integer_bits: u32) -> f64 {
        raw as f64 / (1u64 << fractional_bits(integer_bits)) as f64
    }

    fn from_f64(x: f64, integer_bits: u32) -> i32 {
        (x * (1u64 << fractional_bits(integer_bits)) as f64)
            .round()
            .clamp(i32::MIN as f64, i32::MAX as f64) as i32
    }

    /// Largest difference, in Q0.31 units, between `f` and `reference` over `inputs`.
    fn max_ulp_error(
        inputs: impl Iterator<Item = i32>,
        f: impl Fn(i32) -> i32,
        reference: impl Fn(i32) -> f64,
    ) -> i64 {
        inputs
            .map(|a| (f(a) as i64 - from_f64(reference(a), 0) as i64).abs())
            .max()
            .unwrap()
    }

    /// A spread of raw values covering `[lo, hi]`, including both ends.
    fn sweep(lo: i32, hi: i32, steps: i64) -> impl Iterator<Item = i32> {
        // Under Miri, a coarser sweep of the same range.
        let steps = if cfg!(miri) { steps.min(64) } else { steps };
        (0..=steps).map(move |i| (lo as i64 + (hi as i64 - lo as i64) * i / steps) as i32)
    }

    #[test]
    fn helpers_hand_checked() {
        assert_eq!(one(0), i32::MAX);
        assert_eq!(one(5), 1 << 26);
        assert_eq!(constant_pot(0, -3), 1 << 28);
        assert_eq!(constant_pot(5, -2), 1 << 24);
        // (1 + 2) / 2 = 1.5 -> 2; (-1 - 2) / 2 = -1.5 -> -2; no overflow at the top.
        assert_eq!(rounding_half_sum(1, 2), 2);
        assert_eq!(rounding_half_sum(-1, -2), -2);
        assert_eq!(rounding_half_sum(i32::MAX, i32::MAX), i32::MAX);
        assert_eq!(rounding_half_sum(0, i32::MAX), 1 << 30);
        // Saturating left shifts: 2^29 - 1 is the largest value that survives a shift by 2.
        assert_eq!(
            saturating_rounding_multiply_by_pot((1 << 29) - 1, 2),
            ((1 << 29) - 1) << 2
        );
        assert_eq!(saturating_rounding_multiply_by_pot(1 << 29, 2), i32::MAX);
        assert_eq!(saturating_rounding_multiply_by_pot(-(1 << 29), 2), i32::MIN);
        assert_eq!(
            saturating_rounding_multiply_by_pot(-((1 << 29) - 1), 2),
            -((1 << 29) - 1) * 4
        );
        // Rounding right shifts: 5/2 = 2.5 -> 3, -5/2 -> -3.
        assert_eq!(saturating_rounding_multiply_by_pot(5, -1), 3);
        assert_eq!(saturating_rounding_multiply_by_pot(-5, -1), -3);
        assert_eq!(rescale(1 << 26, 5, 0), i32::MAX); // 1.0 does not fit Q0.31.
        assert_eq!(rescale(-(1 << 24), 5, 0), -(1 << 29)); // -1/4.
        assert_eq!(rescale(i32::MAX, 0, 12), 1 << 19); // ~1.0 in Q12.19.
    }

    #[test]
    fn exp_hand_checked() {
        // exp(0) is the largest Q0.31 value.
        assert_eq!(exp_on_negative_values(0, 5), i32::MAX);
        assert_eq!(exp_on_negative_values(0, 0), i32::MAX);
        // exp(-1/4): only the Taylor part runs, so the result is exp(-1/8) times the 4th-order expansion
        // at x = -1/8 (which overshoots exp(-1/4) = 1672461947 / 2^31 by about x^5/120, ~480 ulp).
        let x = -0.125f64;
        let taylor =
            (-0.125f64).exp() * (1.0 + x + x * x / 2.0 + x.powi(3) / 6.0 + x.powi(4) / 24.0);
        let e = exp_on_negative_values(-(1 << 24), 5);
        assert!(
            (e - from_f64(taylor, 0)).abs() <= 4,
            "{e} vs {}",
            from_f64(taylor, 0)
        );
        assert!((e - 1_672_461_947).abs() <= 500, "{e}");
        // exp(-1) = -1/4 - 3/4: the Taylor part times exp(-1/4) * exp(-1/2) (bits of the remainder 3/4).
        let e = exp_on_negative_values(-(1 << 26), 5);
        let want = mul(
            mul(exp_on_negative_values(-(1 << 24), 5), 1_672_461_947),
            1_302_514_674,
        );
        assert_eq!(e, want);
        assert!((e - 790_015_084).abs() <= 500, "{e}");
        // Q5.26 input below -32 is not representable; -31.99 gives ~0.
        assert!(exp_on_negative_values(i32::MIN + 1, 5) <= 1);
        // Above 5 integer bits, inputs below -32 are clamped to exactly 0.
        assert_eq!(exp_on_negative_values(-(33 << 24), 7), 0);
    }

    /// gemmlowp's exp is accurate to about 2.3e-7 (~490 Q0.31 ulp): the truncation error of its
    /// 4th-order expansion on [-1/4, 0); measured maxima are 480..491 ulp over these sweeps.
    #[test]
    fn exp_matches_f64() {
        for &bits in &[0u32, 1, 3, 5, 8] {
            let lo = if bits == 0 {
                i32::MIN
            } else {
                -(12i64 << fractional_bits(bits)).min(1 << 31) as i32
            };
            let err = max_ulp_error(
                sweep(lo, 0, 20_000),
                |a| exp_on_negative_values(a, bits),
                |a| to_f64(a, bits).exp(),
            );
            assert!(err <= 500, "Q{bits}: {err} ulp");
        }
    }

    #[test]
    fn reciprocal_functions_match_f64() {
        let inputs = || sweep(0, i32::MAX, 20_000);
        let err = max_ulp_error(inputs(), one_over_one_plus_x_for_x_in_0_1, |a| {
            1.0 / (1.0 + to_f64(a, 0))
        });
        assert!(err <= 8, "1/(1+x): {err} ulp");
        let err = max_ulp_error(inputs(), one_minus_x_over_one_plus_x_for_x_in_0_1, |a| {
            let x = to_f64(a, 0);
            (1.0 - x) / (1.0 + x)
        });
        assert!(err <= 16, "(1-x)/(1+x): {err} ulp");
        // 1/(1 + 0.5) = 2/3.
        let r = one_over_one_plus_x_for_x_in_0_1(1 << 30);
        assert!((r as i64 - 1_431_655_765).abs() <= 4, "{r}");
    }

    #[test]
    fn logistic_and_tanh_match_f64() {
        assert_eq!(logistic(0, 4), 1 << 30);
        assert_eq!(tanh(0, 4), 0);
        let inputs = || sweep(i32::MIN + 1, i32::MAX, 40_000);
        let err = max_ulp_error(
            inputs(),
            |a| logistic(a, 4),
            |a| 1.0 / (1.0 + (-to_f64(a, 4)).exp()),
        );
        assert!(err <= 200, "logistic: {err} ulp");
        let err = max_ulp_error(inputs(), |a| tanh(a, 4), |a| to_f64(a, 4).tanh());
        assert!(err <= 400, "tanh: {err} ulp");
        // Odd / complementary symmetry holds exactly.
        for a in sweep(1, i32::MAX, 1000) {
            assert_eq!(tanh(-a, 4), -tanh(a, 4));
            assert_eq!(logistic(-a, 4), i32::MAX - logistic(a, 4));
        }
    }

    #[test]
    fn reciprocal_hand_checked() {
        // 1.0 in Q12.19: 1/1 with no extra bits (Q0.31 saturates at i32::MAX).
        let (r, bits) = get_reciprocal(1 << 19, 12);
        assert_eq!(bits, 0);
        assert!(r >= i32::MAX - 2, "{r}");
        // 3.0 in Q12.19: normalised to 1.5, so 1/3 = (2/3) / 2^1.
        let (r, bits) = get_reciprocal(3 << 19, 12);
        assert_eq!(bits, 1);
        assert!((r as i64 - 1_431_655_765).abs() <= 4, "{r}");
        // Against f64 over a range of sums.
        for x in sweep(1 << 19, i32::MAX, 5000) {
            let (r, bits) = get_reciprocal(x, 12);
            let got = to_f64(r, 0) / (1u64 << bits) as f64;
            let want = 1.0 / to_f64(x, 12);
            assert!((got - want).abs() <= want * 1e-8, "{x}: {got} vs {want}");
        }
    }
}
