//! f32 element-wise binary operators with broadcasting.

use crate::format::Activation;
use crate::kernels::Nhwc;

/// Flat index into `shape` of output coordinate `(n, y, x, c)`, reading dimensions of size 1 at 0.
#[inline(always)]
fn broadcast_index(shape: Nhwc, n: usize, y: usize, x: usize, c: usize) -> usize {
    let pick = |size: usize, i: usize| if size == 1 { 0 } else { i };
    shape.index(
        pick(shape.n, n),
        pick(shape.h, y),
        pick(shape.w, x),
        pick(shape.c, c),
    )
}

/// `out = act(op(a, b))` over `out_shape`, broadcasting size-1 dimensions of `a` and `b` (NumPy rules).
#[allow(clippy::too_many_arguments)] // the public operators' arguments plus `op`
fn binary_f32(
    op: impl Fn(f32, f32) -> f32,
    act: Activation,
    a_shape: Nhwc,
    a: &[f32],
    b_shape: Nhwc,
    b: &[f32],
    out_shape: Nhwc,
    out: &mut [f32],
) {
    for n in 0..out_shape.n {
        for y in 0..out_shape.h {
            for x in 0..out_shape.w {
                for c in 0..out_shape.c {
                    let va = a[broadcast_index(a_shape, n, y, x, c)];
                    let vb = b[broadcast_index(b_shape, n, y, x, c)];
                    out[out_shape.index(n, y, x, c)] = act.apply_f32(op(va, vb));
                }
            }
        }
    }
}

/// `out = act(a + b)`, broadcasting dimensions of size 1 (NumPy rules).
///
/// Each dimension of `a_shape` and `b_shape` is 1 or equal to that of `out_shape`; the slices hold
/// `len()` values of their shapes.
pub fn add_f32(
    act: Activation,
    a_shape: Nhwc,
    a: &[f32],
    b_shape: Nhwc,
    b: &[f32],
    out_shape: Nhwc,
    out: &mut [f32],
) {
    binary_f32(|x, y| x + y, act, a_shape, a, b_shape, b, out_shape, out);
}

/// `out = act(a - b)`, broadcasting dimensions of size 1 as [`add_f32`].
pub fn sub_f32(
    act: Activation,
    a_shape: Nhwc,
    a: &[f32],
    b_shape: Nhwc,
    b: &[f32],
    out_shape: Nhwc,
    out: &mut [f32],
) {
    binary_f32(|x, y| x - y, act, a_shape, a, b_shape, b, out_shape, out);
}

/// `out = max(a, b)`, broadcasting dimensions of size 1 as [`add_f32`].
pub fn maximum_f32(
    a_shape: Nhwc,
    a: &[f32],
    b_shape: Nhwc,
    b: &[f32],
    out_shape: Nhwc,
    out: &mut [f32],
) {
    let act = Activation::None;
    binary_f32(f32::max, act, a_shape, a, b_shape, b, out_shape, out);
}

/// `out = min(a, b)`, broadcasting dimensions of size 1 as [`add_f32`].
pub fn minimum_f32(
    a_shape: Nhwc,
    a: &[f32],
    b_shape: Nhwc,
    b: &[f32],
    out_shape: Nhwc,
    out: &mut [f32],
) {
    let act = Activation::None;
    binary_f32(f32::min, act, a_shape, a, b_shape, b, out_shape, out);
}

/// `out = act(a * b)`, broadcasting dimensions of size 1 as [`add_f32`].
pub fn mul_f32(
    act: Activation,
    a_shape: Nhwc,
    a: &[f32],
    b_shape: Nhwc,
    b: &[f32],
    out_shape: Nhwc,
    out: &mut [f32],
) {
    binary_f32(|x, y| x * y, act, a_shape, a, b_shape, b, out_shape, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::float::testutil::*;
    use std::vec::Vec;

    #[test]
    fn hand_computed_broadcast() {
        // a: [1, 1, 2, 1] (a column), b: [1, 1, 1, 3] (a row) -> [1, 1, 2, 3].
        let a = [1.0f32, 10.0];
        let b = [1.0f32, 2.0, 3.0];
        let (sa, sb, so) = (
            Nhwc::new(1, 1, 2, 1),
            Nhwc::new(1, 1, 1, 3),
            Nhwc::new(1, 1, 2, 3),
        );
        let mut out = [0.0f32; 6];
        add_f32(Activation::None, sa, &a, sb, &b, so, &mut out);
        assert_eq!(out, [2.0, 3.0, 4.0, 11.0, 12.0, 13.0]);
        mul_f32(Activation::Relu6, sa, &a, sb, &b, so, &mut out);
        assert_eq!(out, [1.0, 2.0, 3.0, 6.0, 6.0, 6.0]);
        // Scalar b.
        let mut out = [0.0f32; 2];
        mul_f32(
            Activation::None,
            sa,
            &a,
            Nhwc::new(1, 1, 1, 1),
            &[-0.5],
            sa,
            &mut out,
        );
        assert_eq!(out, [-0.5, -5.0]);
    }

    /// `x` expanded to `out` shape by materializing the broadcast with zero strides for size-1 dimensions.
    fn expand(shape: Nhwc, x: &[f32], out: Nhwc) -> Vec<f64> {
        let stride_c = if shape.c == 1 { 0 } else { 1 };
        let stride_w = if shape.w == 1 { 0 } else { shape.c };
        let stride_h = if shape.h == 1 { 0 } else { shape.c * shape.w };
        let stride_n = if shape.n == 1 {
            0
        } else {
            shape.c * shape.w * shape.h
        };
        let mut v = Vec::with_capacity(out.len());
        for i in 0..out.len() {
            let (c, rest) = (i % out.c, i / out.c);
            let (w, rest) = (rest % out.w, rest / out.w);
            let (h, n) = (rest % out.h, rest / out.h);
            v.push(x[n * stride_n + h * stride_h + w * stride_w + c * stride_c] as f64);
        }
        v
    }

    #[test]
    fn matches_materialized_broadcast() {
        let mut rng = Rng::new(0xadd);
        for case in (0..300).take(crate::MIRI_CASES) {
            let dims: Vec<usize> = (0..4).map(|_| rng.range(1, 4) as usize).collect();
            let out_shape = Nhwc::new(dims[0], dims[1], dims[2], dims[3]);
            // Each operand keeps or collapses each dimension independently.
            let operand = |rng: &mut Rng| {
                let mut keep = || rng.range(0, 2) != 0;
                let (kn, kh, kw, kc) = (keep(), keep(), keep(), keep());
                let pick = |k: bool, d: usize| if k { d } else { 1 };
                Nhwc::new(
                    pick(kn, out_shape.n),
                    pick(kh, out_shape.h),
                    pick(kw, out_shape.w),
                    pick(kc, out_shape.c),
                )
            };
            let (sa, sb) = (operand(&mut rng), operand(&mut rng));
            let a = f32_vec(&mut rng, sa.len(), -3.0, 3.0);
            let b = f32_vec(&mut rng, sb.len(), -3.0, 3.0);
            let act = random_activation(&mut rng);
            let (ea, eb) = (expand(sa, &a, out_shape), expand(sb, &b, out_shape));
            let (lo, hi) = act.range();
            let clamp = |v: f64| v.clamp(lo as f64, hi as f64);

            let mut out = std::vec![f32::NAN; out_shape.len()];
            add_f32(act, sa, &a, sb, &b, out_shape, &mut out);
            let want: Vec<f64> = ea.iter().zip(&eb).map(|(x, y)| clamp(x + y)).collect();
            assert_close_f32(
                &out,
                &want,
                &std::format!("add case {case}: {sa:?} + {sb:?}"),
            );

            mul_f32(act, sa, &a, sb, &b, out_shape, &mut out);
            let want: Vec<f64> = ea.iter().zip(&eb).map(|(x, y)| clamp(x * y)).collect();
            assert_close_f32(
                &out,
                &want,
                &std::format!("mul case {case}: {sa:?} * {sb:?}"),
            );
        }
    }
}
