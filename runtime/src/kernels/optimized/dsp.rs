//! The Armv7E-M DSP instructions the optimized kernels use (`SXTB16`, `SMLAD`, `SADD16`, ...), as inline assembly
//! on `cfg(ferrite_dsp)` targets and as exact pure-Rust equivalents elsewhere, so the host tests run
//! the same kernel code that the Cortex-M4/M7 runs.
#![allow(unsafe_code)]

/// `SXTB16 x`: bytes 0 and 2 of `x`, sign-extended into the low and high halfwords.
#[inline(always)]
pub fn sxtb16(x: u32) -> u32 {
    #[cfg(ferrite_dsp)]
    {
        let r: u32;
        // SAFETY: register-only arithmetic; no memory access, no stack use, flags untouched.
        unsafe {
            core::arch::asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }
    #[cfg(not(ferrite_dsp))]
    {
        let lo = (x as u8 as i8 as i16) as u16 as u32;
        let hi = ((x >> 16) as u8 as i8 as i16) as u16 as u32;
        lo | (hi << 16)
    }
}

/// `SXTB16 x, ROR #8`: bytes 1 and 3 of `x`, sign-extended into the low and high halfwords.
#[inline(always)]
pub fn sxtb16_ror8(x: u32) -> u32 {
    #[cfg(ferrite_dsp)]
    {
        let r: u32;
        // SAFETY: register-only arithmetic; no memory access, no stack use, flags untouched.
        unsafe {
            core::arch::asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }
    #[cfg(not(ferrite_dsp))]
    {
        sxtb16(x >> 8)
    }
}

/// `SMLAD a, b, acc`: `acc + a.lo * b.lo + a.hi * b.hi` over signed halfwords, wrapping (the Q flag it
/// may set is never read).
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    #[cfg(ferrite_dsp)]
    {
        let r: i32;
        // SAFETY: register-only arithmetic; no memory access, no stack use. SMLAD may set the Q
        // flag (sticky saturation flag in APSR), which nothing in this crate reads, so it is
        // declared as not preserving flags.
        unsafe {
            core::arch::asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a,
                b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack));
        }
        r
    }
    #[cfg(not(ferrite_dsp))]
    {
        let lo = (a as u16 as i16 as i32) * (b as u16 as i16 as i32);
        let hi = ((a >> 16) as u16 as i16 as i32) * ((b >> 16) as u16 as i16 as i32);
        acc.wrapping_add(lo).wrapping_add(hi)
    }
}

/// `SMLABB a, b, acc`: `acc + a.lo * b.lo` over signed halfwords, wrapping.
#[inline(always)]
pub fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
    #[cfg(ferrite_dsp)]
    {
        let r: i32;
        // SAFETY: register-only arithmetic; no memory access, no stack use. May set the Q flag,
        // which nothing in this crate reads.
        unsafe {
            core::arch::asm!("smlabb {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a,
                b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack));
        }
        r
    }
    #[cfg(not(ferrite_dsp))]
    {
        acc.wrapping_add((a as u16 as i16 as i32) * (b as u16 as i16 as i32))
    }
}

/// `SMLATT a, b, acc`: `acc + a.hi * b.hi` over signed halfwords, wrapping.
#[inline(always)]
pub fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
    #[cfg(ferrite_dsp)]
    {
        let r: i32;
        // SAFETY: register-only arithmetic; no memory access, no stack use. May set the Q flag,
        // which nothing in this crate reads.
        unsafe {
            core::arch::asm!("smlatt {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a,
                b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack));
        }
        r
    }
    #[cfg(not(ferrite_dsp))]
    {
        acc.wrapping_add(((a >> 16) as u16 as i16 as i32) * ((b >> 16) as u16 as i16 as i32))
    }
}

/// `SADD16 a, b`: lane-wise sum of the signed halfwords, each wrapping (the GE flags it sets are
/// never read).
#[inline(always)]
pub fn sadd16(a: u32, b: u32) -> u32 {
    #[cfg(ferrite_dsp)]
    {
        let r: u32;
        // SAFETY: register-only arithmetic; no memory access, no stack use. SADD16 sets the GE
        // flags, which nothing in this crate reads, so it is declared as not preserving flags.
        unsafe {
            core::arch::asm!("sadd16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a,
                b = in(reg) b, options(pure, nomem, nostack));
        }
        r
    }
    #[cfg(not(ferrite_dsp))]
    {
        let lo = (a as u16).wrapping_add(b as u16) as u32;
        let hi = ((a >> 16) as u16).wrapping_add((b >> 16) as u16) as u32;
        lo | (hi << 16)
    }
}

/// The lane-wise maximum of the signed bytes of `a` and `b` (`SSUB8` then `SEL`: the GE flags of
/// the subtraction pick each byte).
#[inline(always)]
pub fn max_s8x4(a: u32, b: u32) -> u32 {
    #[cfg(ferrite_dsp)]
    {
        let r: u32;
        // SAFETY: register-only arithmetic; no memory access, no stack use. SSUB8 sets the GE
        // flags and SEL reads them within the same block; they are declared clobbered.
        unsafe {
            core::arch::asm!("ssub8 {t}, {a}, {b}", "sel {r}, {a}, {b}", t = out(reg) _,
                r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack));
        }
        r
    }
    #[cfg(not(ferrite_dsp))]
    {
        let la = a.to_le_bytes().map(|x| x as i8);
        let lb = b.to_le_bytes().map(|x| x as i8);
        u32::from_le_bytes(core::array::from_fn(|i| la[i].max(lb[i]) as u8))
    }
}

/// `SMMULR a, b`: the high word of `a * b`, rounded (`(a * b + 2^31) >> 32`).
#[inline(always)]
pub fn smmulr(a: i32, b: i32) -> i32 {
    #[cfg(ferrite_dsp)]
    {
        let r: i32;
        // SAFETY: register-only arithmetic; no memory access, no stack use, flags untouched.
        unsafe {
            core::arch::asm!("smmulr {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a,
                b = in(reg) b, options(pure, nomem, nostack, preserves_flags));
        }
        r
    }
    #[cfg(not(ferrite_dsp))]
    {
        ((a as i64 * b as i64 + (1 << 31)) >> 32) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn smlad_of_sign_extended_bytes_is_a_four_term_dot_product(x: u32, w: u32, acc: i32) {
            let b = |v: u32, i: u32| (v >> (8 * i)) as u8 as i8 as i32;
            let want = (0..4).fold(acc, |a, i| a.wrapping_add(b(x, i) * b(w, i)));
            let got = smlad(sxtb16_ror8(x), sxtb16_ror8(w), smlad(sxtb16(x), sxtb16(w), acc));
            prop_assert_eq!(got, want);
        }

        #[test]
        fn smlabb_smlatt_multiply_the_halfwords(a: u32, b: u32, acc: i32) {
            let h = |v: u32, i: u32| (v >> (16 * i)) as u16 as i16 as i32;
            prop_assert_eq!(smlabb(a, b, acc), acc.wrapping_add(h(a, 0) * h(b, 0)));
            prop_assert_eq!(smlatt(a, b, acc), acc.wrapping_add(h(a, 1) * h(b, 1)));
        }

        #[test]
        fn sadd16_adds_the_halfwords(a: u32, b: u32) {
            let h = |v: u32, i: u32| (v >> (16 * i)) as u16;
            let got = sadd16(a, b);
            prop_assert_eq!(h(got, 0), h(a, 0).wrapping_add(h(b, 0)));
            prop_assert_eq!(h(got, 1), h(a, 1).wrapping_add(h(b, 1)));
        }
    }
}
