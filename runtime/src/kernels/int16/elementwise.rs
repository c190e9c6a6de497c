//! int16x8 element-wise Add and Mul with NumPy-style broadcasting (TFLite Micro's int16 paths:
//! `reference_ops::Add` with general scales and `BroadcastAdd4DSlow`, `reference_integer_ops::Mul`
//! and `BroadcastMul4DSlow` on int16). The arithmetic is the int8 one on wider values: Add shifts
//! its inputs up by `2^15` instead of `2^20`, Mul multiplies the raw values (zero points 0).

use crate::kernels::elementwise::broadcast_binary;
use crate::kernels::Nhwc;
use crate::ops::{AddParams, MulParams};

/// int16 Add: `out = clamp(requant(requant(a) + requant(b)))`, broadcasting as the int8 kernel.
pub fn add_s16(
    p: &AddParams,
    a_shape: Nhwc,
    a: &[i16],
    b_shape: Nhwc,
    b: &[i16],
    out_shape: Nhwc,
    out: &mut [i16],
) {
    broadcast_binary(a_shape, a, b_shape, b, out_shape, out, |x, y| {
        p.sum(x as i32, y as i32) as i16
    });
}

/// int16 Sub: Add's arithmetic with the second input subtracted, broadcasting as the int8 kernel.
pub fn sub_s16(
    p: &AddParams,
    a_shape: Nhwc,
    a: &[i16],
    b_shape: Nhwc,
    b: &[i16],
    out_shape: Nhwc,
    out: &mut [i16],
) {
    broadcast_binary(a_shape, a, b_shape, b, out_shape, out, |x, y| {
        p.difference(x as i32, y as i32) as i16
    });
}

/// int16 Mul: `out = clamp(requant(a * b))`, broadcasting as the int8 kernel.
pub fn mul_s16(
    p: &MulParams,
    a_shape: Nhwc,
    a: &[i16],
    b_shape: Nhwc,
    b: &[i16],
    out_shape: Nhwc,
    out: &mut [i16],
) {
    broadcast_binary(a_shape, a, b_shape, b, out_shape, out, |x, y| {
        p.product(x as i32, y as i32) as i16
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::Rng;
    use crate::quant::Requant;
    use std::vec;
    use std::vec::Vec;

    const FULL: (i32, i32) = (i16::MIN as i32, i16::MAX as i32);

    fn quant16(x: f64, scale: f32) -> i32 {
        (x / scale as f64).round().clamp(-32768.0, 32767.0) as i32
    }

    #[test]
    fn add_prepare_int16_shifts_by_15() {
        // Equal input scales: each input halved; output 2 * 0.001 / (2^15 * 0.002) = 2^-15.
        let p = AddParams::prepare_int16(0.001, 0, 0.001, 0, 0.002, 0, FULL.0, FULL.1);
        assert_eq!(p.left_shift, 15);
        assert_eq!(
            (p.input1, p.input2, p.output),
            (
                Requant {
                    multiplier: 1 << 30,
                    shift: 0
                },
                Requant {
                    multiplier: 1 << 30,
                    shift: 0
                },
                Requant {
                    multiplier: 1 << 30,
                    shift: -14
                }
            )
        );
        // (1000 + 3001) * 0.001 = 4.001 -> 4.001 / 0.002 = 2000.5, rounded up: 2001. The
        // extremes saturate: 32767 + 32767 halves to 32767, -32768 - 32768 to -32768.
        let s = Nhwc::new(1, 1, 1, 3);
        let mut out = [0i16; 3];
        add_s16(
            &p,
            s,
            &[1000, 32767, -32768],
            s,
            &[3001, 32767, -32768],
            s,
            &mut out,
        );
        assert_eq!(out, [2001, 32767, -32768]);
    }

    #[test]
    fn add_matches_float_reference_with_broadcast() {
        let mut rng = Rng::new(16);
        let (sa, sb) = (Nhwc::new(2, 3, 4, 5), Nhwc::new(1, 3, 1, 5));
        for trial in 0..20 {
            let (s1, s2) = (rng.f32(1e-5, 1e-3), rng.f32(1e-5, 1e-3));
            let so = rng.f32(0.5, 1.5) * (s1 + s2);
            let relu = trial % 2 == 0;
            let lo = if relu { 0 } else { FULL.0 };
            let p = AddParams::prepare_int16(s1, 0, s2, 0, so, 0, lo, FULL.1);
            let a: Vec<i16> = (0..sa.len())
                .map(|_| rng.range(-32768, 32767) as i16)
                .collect();
            let b: Vec<i16> = (0..sb.len())
                .map(|_| rng.range(-32768, 32767) as i16)
                .collect();
            let mut out = vec![0i16; sa.len()];
            add_s16(&p, sa, &a, sb, &b, sa, &mut out);
            for n in 0..2 {
                for y in 0..3 {
                    for x in 0..4 {
                        for c in 0..5 {
                            let real = a[sa.index(n, y, x, c)] as f64 * s1 as f64
                                + b[sb.index(0, y, 0, c)] as f64 * s2 as f64;
                            let want = quant16(real, so).max(lo);
                            let got = out[sa.index(n, y, x, c)] as i32;
                            assert!((got - want).abs() <= 1, "got {got}, want {want}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn mul_hand_checked_and_saturating() {
        // 0.001 * 0.002 / 0.0005 = 0.004 = 0.512 * 2^-7.
        let p = MulParams::prepare(0.001, 0, 0.002, 0, 0.0005, 0, FULL.0, FULL.1);
        let s = Nhwc::new(1, 1, 1, 4);
        let mut out = [0i16; 4];
        // 300 * -250 * 0.004 = -300; the extreme product 2^30 saturates; 125 * 1 * 0.004 = 0.5
        // rounds away from zero.
        mul_s16(
            &p,
            s,
            &[300, -32768, 125, -125],
            s,
            &[-250, -32768, 1, 1],
            s,
            &mut out,
        );
        assert_eq!(out, [-300, 32767, 1, -1]);
    }

    #[test]
    fn mul_broadcast_matches_float_reference() {
        let mut rng = Rng::new(17);
        let (sa, sb) = (Nhwc::new(1, 4, 5, 8), Nhwc::new(1, 1, 1, 8));
        for _ in 0..20 {
            let (s1, s2) = (rng.f32(1e-5, 1e-3), rng.f32(1e-5, 1e-3));
            let so = rng.f32(0.5, 2.0) * 32768.0 * s1 * s2;
            let p = MulParams::prepare(s1, 0, s2, 0, so, 0, FULL.0, FULL.1);
            let a: Vec<i16> = (0..sa.len())
                .map(|_| rng.range(-32768, 32767) as i16)
                .collect();
            let b: Vec<i16> = (0..sb.len())
                .map(|_| rng.range(-32768, 32767) as i16)
                .collect();
            let mut out = vec![0i16; sa.len()];
            mul_s16(&p, sa, &a, sb, &b, sa, &mut out);
            for (i, &got) in out.iter().enumerate() {
                let real = a[i] as f64 * s1 as f64 * b[i % 8] as f64 * s2 as f64;
                let want = quant16(real, so);
                assert!((got as i32 - want).abs() <= 1, "got {got}, want {want}");
            }
        }
    }
}
