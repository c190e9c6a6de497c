//! Int8 Add of two same-shape tensors, optimized: each input's rescaling depends on one int8 value,
//! so it is tabulated once per invoke (256 entries per input) and each element costs two loads,
//! an add and the output rescaling.

use super::ChannelQuant;
use crate::kernels::elementwise::AddParams;

/// Same result as [`crate::kernels::elementwise::add_s8`] when `a`, `b` and `out` have one shape.
/// Not inlined: its 2 KiB of tables must only be on the stack while an Add runs.
#[inline(never)]
pub fn add_s8_same_shape(p: &AddParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    // TFLite AddFunc: shifted = (offset + x) * 2^left_shift, then the input's rescaling.
    let table = |offset: i32, multiplier: i32, shift: i32| {
        let scale = ChannelQuant::from_parts(multiplier, shift);
        let mut t = [0i32; 256];
        for (i, v) in t.iter_mut().enumerate() {
            let x = i as u8 as i8 as i32;
            *v = scale.scale((offset + x).wrapping_mul(1 << p.left_shift));
        }
        t
    };
    let t1 = table(p.input1_offset, p.input1.multiplier, p.input1.shift);
    let t2 = table(p.input2_offset, p.input2.multiplier, p.input2.shift);
    let output = ChannelQuant::from_parts(p.output.multiplier, p.output.shift);
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let sum = t1[x as u8 as usize].wrapping_add(t2[y as u8 as usize]);
        let raw = output.scale(sum).wrapping_add(p.output_offset);
        *o = raw.clamp(p.act_min, p.act_max) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::elementwise::add_s8;
    use crate::kernels::Nhwc;
    use crate::quant::Requant;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    fn requant() -> impl Strategy<Value = Requant> {
        (any::<i32>(), -31..=30i32).prop_map(|(m, shift)| Requant {
            multiplier: m.checked_abs().unwrap_or(i32::MAX),
            shift,
        })
    }

    proptest! {
        #[test]
        fn matches_reference(
            len in 1..200usize,
            offsets in (-127..=128i32, -127..=128i32, -128..=127i32),
            left_shift in 0..=20i32,
            scales in (requant(), requant(), requant()),
            clamp in (-128..=127i32, -128..=127i32),
            seed: u64,
        ) {
            let p = AddParams {
                input1_offset: offsets.0,
                input2_offset: offsets.1,
                output_offset: offsets.2,
                left_shift,
                input1: scales.0,
                input2: scales.1,
                output: scales.2,
                act_min: clamp.0.min(clamp.1),
                act_max: clamp.0.max(clamp.1),
            };
            let mut rng = crate::kernels::testutil::Rng::new(seed);
            let (a, b): (Vec<i8>, Vec<i8>) = (rng.i8_vec(len), rng.i8_vec(len));
            let shape = Nhwc::new(1, 1, 1, len);
            let mut want = vec![0i8; len];
            add_s8(&p, shape, &a, shape, &b, shape, &mut want);
            let mut got = vec![0i8; len];
            add_s8_same_shape(&p, &a, &b, &mut got);
            prop_assert_eq!(got, want);
        }
    }
}
