//! Int8 Add of two same-shape tensors, optimized: each input's rescaling depends on one int8 value,
//! so it is tabulated once per invoke (256 entries per input, [`AddTables`], kept for every band of
//! an Add that runs in place) and each element costs two loads, an add and the output rescaling.

use super::{ChannelQuant, RightShiftQuant};
use crate::ops::AddParams;

/// Each input value of an int8 Add, shifted and rescaled: input 1's 256 entries, then input 2's;
/// and whether no sum of two entries reaches 2^30 in magnitude.
pub struct AddTables {
    tables: [i32; 512],
    small: bool,
}

impl AddTables {
    /// The tables of `p` (TFLite AddFunc: shifted = (offset + x) * 2^left_shift, then the input's
    /// rescaling).
    pub fn new(p: &AddParams) -> AddTables {
        let mut tables = [0i32; 512];
        let inputs = [
            (p.input1_offset, p.input1.multiplier, p.input1.shift),
            (p.input2_offset, p.input2.multiplier, p.input2.shift),
        ];
        for (t, (offset, multiplier, shift)) in tables.chunks_exact_mut(256).zip(inputs) {
            let scale = ChannelQuant::from_parts(multiplier, shift);
            for (i, v) in t.iter_mut().enumerate() {
                let x = i as u8 as i8 as i32;
                *v = scale.scale((offset + x).wrapping_mul(1 << p.left_shift));
            }
        }
        let bound = max_abs(&tables[..256]) as u64 + max_abs(&tables[256..]) as u64;
        AddTables {
            tables,
            small: bound < 1 << 30,
        }
    }

    /// The tables of an int8 Sub with parameters `p`: Add's with input 2's entries negated, so that
    /// the Add kernels compute the difference (negation wraps, as every sum in them does; `small`
    /// bounds magnitudes, which negation keeps).
    pub fn subtracting(p: &AddParams) -> AddTables {
        let mut t = AddTables::new(p);
        for v in &mut t.tables[256..] {
            *v = v.wrapping_neg();
        }
        t
    }
}

/// Same result as [`crate::kernels::elementwise::add_s8`] when `a`, `b` and `out` have one shape,
/// with the tables of `p`.
pub fn add_s8_same_shape(p: &AddParams, add: &AddTables, a: &[i8], b: &[i8], out: &mut [i8]) {
    let tables = &add.tables;
    let (t1, t2) = tables.split_at(256);
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::x86::add_tables(
        tables,
        p.output.multiplier,
        p.output.shift,
        p.output_offset,
        p.act_min,
        p.act_max,
        a,
        b,
        out,
    ) {
        return;
    }
    let output = ChannelQuant::from_parts(p.output.multiplier, p.output.shift);
    if let Some(fast) = RightShiftQuant::from_parts(output, p.output_offset, p.act_min, p.act_max) {
        if add.small && add_loop(fast, tables, a, b, out) {
            return;
        }
    }
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let sum = t1[x as u8 as usize].wrapping_add(t2[y as u8 as usize]);
        let raw = output.scale(sum).wrapping_add(p.output_offset);
        *o = raw.clamp(p.act_min, p.act_max) as i8;
    }
}

/// Largest magnitude of a table entry.
fn max_abs(t: &[i32]) -> u32 {
    t.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0)
}

/// The elements through `fast`, for tables no sum of two entries of which reaches 2^30 in
/// magnitude (so its double fits in 32 bits, as `fast` needs: [`AddTables`] `small`); `false`,
/// with nothing written, when an input is short. One assembly loop on Arm targets.
#[inline(always)]
fn add_loop(
    fast: RightShiftQuant,
    tables: &[i32; 512],
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
) -> bool {
    let n = out.len();
    if a.len() < n || b.len() < n {
        return false;
    }
    if n > 0 {
        // SAFETY: `a` and `b` hold at least `n = out.len() >= 1` elements, checked above.
        #[allow(unsafe_code)]
        unsafe {
            add_asm(fast, tables, a, b, out)
        };
    }
    true
}

/// The loop of [`add_loop`], portable form (the same contract as the assembly's).
///
/// # Safety
///
/// `out` is not empty and `a` and `b` hold at least `out.len()` elements.
#[cfg(not(ferrite_armv7m))]
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn add_asm(fast: RightShiftQuant, tables: &[i32; 512], a: &[i8], b: &[i8], out: &mut [i8]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let sum = tables[x as u8 as usize] + tables[256 + y as u8 as usize];
        *o = fast.requantize_doubled(sum + sum);
    }
}

/// The loop of [`add_loop`] on Armv7E-M (`SMMULR`) and Armv7-M (`SMULL` and a 64-bit rounding
/// add).
///
/// # Safety
///
/// `out` is not empty and `a` and `b` hold at least `out.len()` elements: the loop walks raw
/// pointers for `out.len()` elements without checks.
#[cfg(ferrite_armv7m)]
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn add_asm(fast: RightShiftQuant, tables: &[i32; 512], a: &[i8], b: &[i8], out: &mut [i8]) {
    #[cfg(ferrite_dsp)]
    macro_rules! high {
        () => {
            "smmulr {y}, {x}, {m}"
        };
    }
    #[cfg(all(ferrite_armv7m, not(ferrite_dsp)))]
    macro_rules! high {
        () => {
            concat!(
                "smull {x}, {y}, {x}, {m}\n",
                "adds {x}, {x}, #0x80000000\n",
                "adc {y}, {y}, #0",
            )
        };
    }
    // SAFETY: reads a[..n] and b[..n] (the caller guarantees both lengths), table entries at
    // unsigned byte indexes (0..256 and 256..512: inside the 512-entry table), writes out[..n]
    // with n = out.len() >= 1. No stack use.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldrb {x}, [{pa}], #1",
            "ldrb {y}, [{pb}], #1",
            "ldr {x}, [{t}, {x}, lsl #2]",
            "add {y}, {t}, {y}, lsl #2",
            "ldr {y}, [{y}, #1024]",
            "add {x}, {x}, {y}",
            "add {x}, {x}, {x}",
            high!(),
            "add {x}, {y}, {round}",
            "add {x}, {x}, {y}, asr #31",
            "asr {x}, {x}, {right}",
            "cmp {x}, {min}",
            "it lt",
            "movlt {x}, {min}",
            "cmp {x}, #127",
            "it gt",
            "movgt {x}, #127",
            "strb {x}, [{po}], #1",
            "subs {n}, {n}, #1",
            "bne 2b",
            pa = inout(reg) a.as_ptr() => _,
            pb = inout(reg) b.as_ptr() => _,
            po = inout(reg) out.as_mut_ptr() => _,
            n = inout(reg) out.len() => _,
            t = in(reg) tables.as_ptr(),
            m = in(reg) fast.multiplier,
            round = in(reg) fast.round,
            right = in(reg) fast.right,
            min = in(reg) fast.act_min,
            x = out(reg) _,
            y = out(reg) _,
            options(nostack),
        );
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

    /// The table kernel against the reference on `len` seeded random elements of each input.
    fn check(p: &AddParams, len: usize, seed: u64) -> Result<(), TestCaseError> {
        let mut rng = crate::kernels::testutil::Rng::new(seed);
        let (a, b): (Vec<i8>, Vec<i8>) = (rng.i8_vec(len), rng.i8_vec(len));
        let shape = Nhwc::new(1, 1, 1, len);
        let mut want = vec![0i8; len];
        add_s8(p, shape, &a, shape, &b, shape, &mut want);
        let mut got = vec![0i8; len];
        add_s8_same_shape(p, &AddTables::new(p), &a, &b, &mut got);
        prop_assert_eq!(got, want);
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

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
            check(&p, len, seed)?;
        }

        #[test]
        fn matches_reference_in_the_fast_form(
            len in 1..200usize,
            offsets in (-127..=128i32, -127..=128i32, -128..=127i32),
            inputs in ((1i32 << 30)..i32::MAX, -2..=0i32, (1i32 << 30)..i32::MAX, -2..=0i32),
            output in ((1i32 << 30)..i32::MAX, -22..=-1i32),
            act_min in -128..=127i32,
            seed: u64,
        ) {
            // Int8 Add as converters prepare it: left shift 20, input factors at most 1/2, a
            // right-shift output factor, clamp up to 127 (the assembly loop's form).
            let requant = |multiplier, shift| Requant { multiplier, shift };
            let p = AddParams {
                input1_offset: offsets.0,
                input2_offset: offsets.1,
                output_offset: offsets.2,
                left_shift: 20,
                input1: requant(inputs.0, inputs.1),
                input2: requant(inputs.2, inputs.3),
                output: requant(output.0, output.1),
                act_min,
                act_max: 127,
            };
            check(&p, len, seed)?;
        }
    }
}
