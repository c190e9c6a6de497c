//! Int8 elementwise Add and Mul with NumPy-style broadcasting (TFLite Micro `add.cc` / `mul.cc` reference path).
//! The per-element arithmetic and the broadcasting loop are shared with the int16x8 kernels.

use super::Nhwc;
use crate::ops::{AddParams, MulParams};

impl AddParams {
    /// Both inputs shifted up by `2^left_shift` and rescaled to the common scale (TFLite
    /// `AddElementwise` and `SubElementwise`, the int8 and the general int16 form).
    #[inline(always)]
    fn rescaled(&self, x: i32, y: i32) -> (i32, i32) {
        let up = 1i32.wrapping_shl(self.left_shift as u32);
        let shifted1 = self.input1_offset.wrapping_add(x).wrapping_mul(up);
        let shifted2 = self.input2_offset.wrapping_add(y).wrapping_mul(up);
        (self.input1.apply(shifted1), self.input2.apply(shifted2))
    }

    /// The combined rescaled inputs rescaled to the output, clamped to `act_min..=act_max`.
    #[inline(always)]
    fn output_of(&self, combined: i32) -> i32 {
        let raw = self.output.apply(combined).wrapping_add(self.output_offset);
        raw.clamp(self.act_min, self.act_max)
    }

    /// One output element of ADD.
    #[inline(always)]
    pub(crate) fn sum(&self, x: i32, y: i32) -> i32 {
        let (a, b) = self.rescaled(x, y);
        self.output_of(a.wrapping_add(b))
    }

    /// One output element of SUB: the second rescaled input subtracted.
    #[inline(always)]
    pub(crate) fn difference(&self, x: i32, y: i32) -> i32 {
        let (a, b) = self.rescaled(x, y);
        self.output_of(a.wrapping_sub(b))
    }

    #[inline(always)]
    fn apply(&self, x: i8, y: i8) -> i8 {
        self.sum(x as i32, y as i32) as i8
    }
}

impl MulParams {
    /// One output element, clamped to `act_min..=act_max` (TFLite `MulElementwise`, int8 and int16).
    #[inline(always)]
    pub(crate) fn product(&self, x: i32, y: i32) -> i32 {
        let product = self
            .input1_offset
            .wrapping_add(x)
            .wrapping_mul(self.input2_offset.wrapping_add(y));
        let raw = self.output.apply(product).wrapping_add(self.output_offset);
        raw.clamp(self.act_min, self.act_max)
    }

    #[inline(always)]
    fn apply(&self, x: i8, y: i8) -> i8 {
        self.product(x as i32, y as i32) as i8
    }
}

/// Applies `f` to every pair of elements of `a` and `b` broadcast to `out_shape`.
///
/// Each dimension of `a_shape` and `b_shape` equals the output's or is 1 (validated by the caller).
/// Equal shapes take a flat loop.
#[inline(always)]
pub(crate) fn broadcast_binary<T: Copy>(
    a_shape: Nhwc,
    a: &[T],
    b_shape: Nhwc,
    b: &[T],
    out_shape: Nhwc,
    out: &mut [T],
    f: impl Fn(T, T) -> T,
) {
    if a_shape == b_shape {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
        return;
    }
    // A size-1 dimension always reads index 0.
    let pick = |size: usize, i: usize| if size == 1 { 0 } else { i };
    let mut o = 0;
    for n in 0..out_shape.n {
        for y in 0..out_shape.h {
            for x in 0..out_shape.w {
                for c in 0..out_shape.c {
                    let ia = a_shape.index(
                        pick(a_shape.n, n),
                        pick(a_shape.h, y),
                        pick(a_shape.w, x),
                        pick(a_shape.c, c),
                    );
                    let ib = b_shape.index(
                        pick(b_shape.n, n),
                        pick(b_shape.h, y),
                        pick(b_shape.w, x),
                        pick(b_shape.c, c),
                    );
                    out[o] = f(a[ia], b[ib]);
                    o += 1;
                }
            }
        }
    }
}

/// Int8 Add, mirroring TFLite Micro `EvalAddQuantized` (`reference_integer_ops::Add` and
/// `BroadcastAdd4DSlow`): `out = clamp(requant(a) + requant(b))` with NumPy-style broadcasting.
pub fn add_s8(
    p: &AddParams,
    a_shape: Nhwc,
    a: &[i8],
    b_shape: Nhwc,
    b: &[i8],
    out_shape: Nhwc,
    out: &mut [i8],
) {
    broadcast_binary(a_shape, a, b_shape, b, out_shape, out, |x, y| p.apply(x, y));
}

/// Int8 Sub, mirroring TFLite Micro `EvalSubQuantized` (`reference_ops::Sub` and
/// `BroadcastQuantSubSlow`): `out = clamp(requant(requant(a) - requant(b)))` with NumPy-style
/// broadcasting.
pub fn sub_s8(
    p: &AddParams,
    a_shape: Nhwc,
    a: &[i8],
    b_shape: Nhwc,
    b: &[i8],
    out_shape: Nhwc,
    out: &mut [i8],
) {
    broadcast_binary(a_shape, a, b_shape, b, out_shape, out, |x, y| {
        p.difference(x as i32, y as i32) as i8
    });
}

/// Int8 Mul, mirroring TFLite Micro `EvalMulQuantizedReference` (`reference_integer_ops::Mul` and
/// `BroadcastMul4DSlow`): `out = clamp(requant((a - za) * (b - zb)))` with NumPy-style broadcasting.
pub fn mul_s8(
    p: &MulParams,
    a_shape: Nhwc,
    a: &[i8],
    b_shape: Nhwc,
    b: &[i8],
    out_shape: Nhwc,
    out: &mut [i8],
) {
    broadcast_binary(a_shape, a, b_shape, b, out_shape, out, |x, y| p.apply(x, y));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{assert_close, dequant, quant, Rng};
    use crate::quant::Requant;
    use std::vec;
    use std::vec::Vec;

    /// TFLite `CalculateActivationRangeQuantized` for int8 with ReLU or no activation.
    fn act_range(relu: bool, zero_point: i32) -> (i32, i32) {
        if relu {
            (zero_point.max(-128), 127)
        } else {
            (-128, 127)
        }
    }

    struct Case {
        a_shape: Nhwc,
        b_shape: Nhwc,
        out_shape: Nhwc,
    }

    fn cases() -> Vec<Case> {
        let s = Nhwc::new;
        vec![
            Case {
                a_shape: s(1, 3, 4, 5),
                b_shape: s(1, 3, 4, 5),
                out_shape: s(1, 3, 4, 5),
            },
            Case {
                a_shape: s(1, 3, 4, 5),
                b_shape: s(1, 1, 1, 5),
                out_shape: s(1, 3, 4, 5),
            },
            Case {
                a_shape: s(1, 1, 1, 1),
                b_shape: s(2, 3, 2, 3),
                out_shape: s(2, 3, 2, 3),
            },
            Case {
                a_shape: s(2, 1, 4, 1),
                b_shape: s(1, 3, 1, 5),
                out_shape: s(2, 3, 4, 5),
            },
            Case {
                a_shape: s(1, 3, 4, 5),
                b_shape: s(1, 3, 4, 1),
                out_shape: s(1, 3, 4, 5),
            },
        ]
    }

    /// Float reference over the broadcast output, quantized and clamped.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        c: &Case,
        a: &[i8],
        (sa, za): (f32, i32),
        b: &[i8],
        (sb, zb): (f32, i32),
        (so, zo): (f32, i32),
        (lo, hi): (i32, i32),
        op: impl Fn(f64, f64) -> f64,
    ) -> Vec<i8> {
        let pick = |size: usize, i: usize| if size == 1 { 0 } else { i };
        let o = c.out_shape;
        let mut want = Vec::with_capacity(o.len());
        for n in 0..o.n {
            for y in 0..o.h {
                for x in 0..o.w {
                    for ch in 0..o.c {
                        let (s, t) = (c.a_shape, c.b_shape);
                        let va =
                            a[s.index(pick(s.n, n), pick(s.h, y), pick(s.w, x), pick(s.c, ch))];
                        let vb =
                            b[t.index(pick(t.n, n), pick(t.h, y), pick(t.w, x), pick(t.c, ch))];
                        let r = op(dequant(va, sa, za), dequant(vb, sb, zb));
                        want.push((quant(r, so, zo) as i32).clamp(lo, hi) as i8);
                    }
                }
            }
        }
        want
    }

    #[test]
    fn add_matches_float_reference() {
        let mut rng = Rng::new(1);
        for case in cases() {
            for trial in 0..12 {
                let (sa, za) = (rng.f32(0.005, 0.2), rng.range(-30, 30));
                let (sb, zb) = (rng.f32(0.005, 0.2), rng.range(-30, 30));
                let (so, zo) = (rng.f32(0.5, 1.5) * (sa + sb), rng.range(-40, 40));
                let relu = trial % 3 == 0;
                let (lo, hi) = act_range(relu, zo);
                let p = AddParams::prepare(sa, za, sb, zb, so, zo, lo, hi);
                let a = rng.i8_vec(case.a_shape.len());
                let b = rng.i8_vec(case.b_shape.len());
                let mut out = vec![0i8; case.out_shape.len()];
                add_s8(
                    &p,
                    case.a_shape,
                    &a,
                    case.b_shape,
                    &b,
                    case.out_shape,
                    &mut out,
                );
                let want = reference(
                    &case,
                    &a,
                    (sa, za),
                    &b,
                    (sb, zb),
                    (so, zo),
                    (lo, hi),
                    |x, y| x + y,
                );
                assert_close(&out, &want, 1);
                if relu {
                    assert!(out.iter().all(|&v| v as i32 >= lo));
                }
            }
        }
    }

    #[test]
    fn mul_matches_float_reference() {
        let mut rng = Rng::new(2);
        for case in cases() {
            for trial in 0..12 {
                let (sa, za) = (rng.f32(0.005, 0.1), rng.range(-30, 30));
                let (sb, zb) = (rng.f32(0.005, 0.1), rng.range(-30, 30));
                // Products reach about (160 sa)(160 sb); map that to roughly the int8 range.
                let (so, zo) = (
                    rng.f32(0.5, 2.0) * 160.0 * 160.0 * sa * sb / 128.0,
                    rng.range(-40, 40),
                );
                let relu = trial % 3 == 0;
                let (lo, hi) = act_range(relu, zo);
                let p = MulParams::prepare(sa, za, sb, zb, so, zo, lo, hi);
                let a = rng.i8_vec(case.a_shape.len());
                let b = rng.i8_vec(case.b_shape.len());
                let mut out = vec![0i8; case.out_shape.len()];
                mul_s8(
                    &p,
                    case.a_shape,
                    &a,
                    case.b_shape,
                    &b,
                    case.out_shape,
                    &mut out,
                );
                let want = reference(
                    &case,
                    &a,
                    (sa, za),
                    &b,
                    (sb, zb),
                    (so, zo),
                    (lo, hi),
                    |x, y| x * y,
                );
                assert_close(&out, &want, 1);
            }
        }
    }

    #[test]
    fn add_prepare_fields() {
        // Equal scales: each input is halved (multiplier 0.5 = 2^30, shift 0).
        let p = AddParams::prepare(0.1, 3, 0.1, -4, 0.2, 5, -128, 127);
        assert_eq!(
            (
                p.input1_offset,
                p.input2_offset,
                p.output_offset,
                p.left_shift
            ),
            (-3, 4, 5, 20)
        );
        assert_eq!(
            p.input1,
            Requant {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(
            p.input2,
            Requant {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        // 0.2 / (2^20 * 0.2) = 2^-20 = 0.5 * 2^-19.
        assert_eq!(
            p.output,
            Requant {
                multiplier: 1 << 30,
                shift: -19
            }
        );
        // Hand-checked element: (10 - 3) * 0.1 + (20 + 4) * 0.1 = 3.1 -> 3.1 / 0.2 = 15.5 -> 16, + 5 = 21.
        let mut out = [0i8; 1];
        let s = Nhwc::new(1, 1, 1, 1);
        add_s8(&p, s, &[10], s, &[20], s, &mut out);
        assert_eq!(out[0], 21);
    }

    #[test]
    fn mul_hand_checked() {
        // (10 - 2) * 0.5 * (-6 - 0) * 0.25 = -6 -> -6 / 0.5 = -12, + 1 = -11.
        let p = MulParams::prepare(0.5, 2, 0.25, 0, 0.5, 1, -128, 127);
        assert_eq!(
            p.output,
            Requant {
                multiplier: 1 << 30,
                shift: -1
            }
        );
        let mut out = [0i8; 2];
        let s = Nhwc::new(1, 1, 1, 2);
        mul_s8(&p, s, &[10, 127], s, &[-6, 127], s, &mut out);
        assert_eq!(out, [-11, 127]);
    }
}
