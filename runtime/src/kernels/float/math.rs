//! Scalar `exp`, `expm1` and `tanh` for `f32`, accurate to a few ulp, without `std`.
//!
//! `micromath`'s `exp` uses a four-term series and is off by up to about 1e-3 relative (measured in
//! the tests below), too coarse for softmax and logistic, and `micromath` has no `tanh`. These use
//! the classic scheme: `x = k * ln 2 + r` with `|r| <= ln 2 / 2` (Cody-Waite split of `ln 2`), a
//! degree-7 Taylor polynomial for `e^r - 1`, and a multiplication by `2^k`.

/// `ln 2` split so that `k * LN2_HI` is exact for the `k` that occur (`|k| <= 150`).
const LN2_HI: f32 = 6.931_457_5e-1; // 0x3f31_7200
const LN2_LO: f32 = 1.428_606_8e-6; // 0x35bf_be8e
const LOG2_E: f32 = core::f32::consts::LOG2_E;

/// Below this `e^x` rounds to 0 in `f32` (smallest subnormal is `e^-103.28`).
const EXP_UNDERFLOW: f32 = -104.0;
/// Above this `e^x` overflows to infinity (`ln f32::MAX` is 88.7228).
const EXP_OVERFLOW: f32 = 88.8;

/// `2^k` for `k` in `-126..=127` (a normal number).
#[inline(always)]
fn pow2i(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// `p * 2^k` for `k` in `-252..=254`, rounding once into the subnormal range when needed.
#[inline(always)]
fn scale_by_pow2(p: f32, k: i32) -> f32 {
    let k1 = k / 2;
    p * pow2i(k1) * pow2i(k - k1)
}

/// Splits `x` (within the exp range) into `k` and `r` with `x = k * ln 2 + r`, `|r| <~ ln 2 / 2`.
#[inline(always)]
fn reduce(x: f32) -> (i32, f32) {
    let y = x * LOG2_E;
    // Round to nearest; exact ties do not matter here.
    let k = if y >= 0.0 {
        (y + 0.5) as i32
    } else {
        (y - 0.5) as i32
    };
    let kf = k as f32;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    (k, r)
}

/// `e^r - 1` for `|r| <= ~0.35` (Taylor to degree 7, truncation error below 1e-8 relative).
#[inline(always)]
fn expm1_poly(r: f32) -> f32 {
    const C2: f32 = 1.0 / 2.0;
    const C3: f32 = 1.0 / 6.0;
    const C4: f32 = 1.0 / 24.0;
    const C5: f32 = 1.0 / 120.0;
    const C6: f32 = 1.0 / 720.0;
    const C7: f32 = 1.0 / 5040.0;
    let p = C6 + r * C7;
    let p = C5 + r * p;
    let p = C4 + r * p;
    let p = C3 + r * p;
    let p = C2 + r * p;
    r + r * (r * p)
}

/// `e^x` with a relative error of a few ulp over the normal range; 0 below about -104 (subnormal
/// results are rounded once), `+inf` above about 88.72, NaN for NaN.
pub fn exp_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x < EXP_UNDERFLOW {
        return 0.0;
    }
    if x > EXP_OVERFLOW {
        return f32::INFINITY;
    }
    let (k, r) = reduce(x);
    scale_by_pow2(1.0 + expm1_poly(r), k)
}

/// `e^x - 1`, accurate in relative terms also near 0 (where `exp_f32(x) - 1.0` loses digits).
pub fn expm1_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x < -20.0 {
        // e^x < 2.1e-9 is below half an ulp of 1.
        return -1.0;
    }
    if x > EXP_OVERFLOW {
        return f32::INFINITY;
    }
    let (k, r) = reduce(x);
    if k == 0 {
        expm1_poly(r)
    } else {
        // |x| > ln 2 / 2 here, so |e^x - 1| > 0.29 and the subtraction loses at most 2 bits.
        scale_by_pow2(1.0 + expm1_poly(r), k) - 1.0
    }
}

/// Hyperbolic tangent, accurate to a few ulp (odd; saturates to +-1; NaN for NaN).
pub fn tanh_scalar_f32(x: f32) -> f32 {
    // tanh|x| = (1 - e^-2|x|) / (1 + e^-2|x|) = -t / (2 + t) with t = expm1(-2|x|).
    let t = expm1_f32(-2.0 * x.abs());
    let magnitude = -t / (2.0 + t);
    if x < 0.0 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::println;

    fn rel_err(got: f32, want: f64) -> f64 {
        ((got as f64 - want) / want).abs()
    }

    /// Maximum relative error of `f` against `reference` on `n + 1` evenly spaced points of `[lo, hi]`.
    fn max_rel_err(
        f: impl Fn(f32) -> f32,
        reference: impl Fn(f64) -> f64,
        lo: f32,
        hi: f32,
        n: usize,
    ) -> (f64, f32) {
        // Under Miri, a coarser sweep of the same range.
        let n = if cfg!(miri) { n.min(500) } else { n };
        let mut worst = (0.0, lo);
        for i in 0..=n {
            let x = lo + (hi - lo) * (i as f32 / n as f32);
            let e = rel_err(f(x), reference(x as f64));
            if e > worst.0 {
                worst = (e, x);
            }
        }
        worst
    }

    #[test]
    fn micromath_exp_error_is_measured() {
        use micromath::F32Ext;
        // Softmax arguments are <= 0 (after subtracting the row max); logistic uses e^-x for |x| <= ~20.
        let (mm, at) = max_rel_err(F32Ext::exp, f64::exp, -20.0, 20.0, 40_000);
        let (ours, ours_at) = max_rel_err(exp_f32, f64::exp, -20.0, 20.0, 40_000);
        println!(
            "exp on [-20, 20]: micromath max rel err {mm:e} at {at}; exp_f32 {ours:e} at {ours_at}"
        );
        // The reason this module exists; if micromath improves, it could be used instead.
        assert!(ours < 3e-7, "exp_f32 relative error {ours:e} at {ours_at}");
    }

    #[test]
    fn exp_matches_std_over_normal_range() {
        let (e, at) = max_rel_err(exp_f32, f64::exp, -87.3, 88.7, 200_000);
        assert!(e < 3e-7, "relative error {e:e} at {at}");
        let (e, at) = max_rel_err(exp_f32, f64::exp, -1.0, 1.0, 20_001);
        assert!(e < 2e-7, "relative error {e:e} at {at}");
    }

    #[test]
    fn ln2_split_is_as_documented() {
        assert_eq!(LN2_HI.to_bits(), 0x3f31_7200);
        assert_eq!(LN2_LO.to_bits(), 0x35bf_be8e);
        assert!((LN2_HI as f64 + LN2_LO as f64 - core::f64::consts::LN_2).abs() < 1e-13);
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        // Largest finite result and the subnormal range (absolute error within one subnormal step).
        assert!(exp_f32(88.72).is_finite());
        for i in 0..=1000 {
            let x = -87.3 - 16.0 * (i as f32 / 1000.0);
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            assert!(
                (got - want).abs() <= want * 3e-7 + 1.5e-45,
                "x = {x}: {got:e} vs {want:e}"
            );
        }
    }

    #[test]
    fn expm1_matches_std() {
        let reference = |x: f64| x.exp_m1();
        for &(lo, hi) in &[(-1e-6f32, 1e-6f32), (-0.5, 0.5), (-20.0, 20.0)] {
            let (e, at) = max_rel_err(expm1_f32, reference, lo, hi, 40_000);
            assert!(e < 4e-7, "[{lo}, {hi}]: relative error {e:e} at {at}");
        }
        assert_eq!(expm1_f32(0.0), 0.0);
        assert_eq!(expm1_f32(-50.0), -1.0);
    }

    #[test]
    fn tanh_matches_std() {
        for &(lo, hi) in &[(-1e-5f32, 1e-5f32), (-1.0, 1.0), (-12.0, 12.0)] {
            let (e, at) = max_rel_err(tanh_scalar_f32, f64::tanh, lo, hi, 40_000);
            assert!(e < 4e-7, "[{lo}, {hi}]: relative error {e:e} at {at}");
        }
        assert_eq!(tanh_scalar_f32(0.0), 0.0);
        assert_eq!(tanh_scalar_f32(30.0), 1.0);
        assert_eq!(tanh_scalar_f32(-30.0), -1.0);
        assert_eq!(tanh_scalar_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_scalar_f32(f32::NEG_INFINITY), -1.0);
        assert!(tanh_scalar_f32(f32::NAN).is_nan());
        assert_eq!(tanh_scalar_f32(1e-30), 1e-30);
    }
}
