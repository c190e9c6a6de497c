//! The inner loops of the patch convolution (`conv2d.rs`): two output positions by two output
//! channels, as hand-scheduled inline assembly on the cores that run them and as exact pure-Rust
//! twins elsewhere (the host tests run the twins; `cargo xtask qemu-test` checks the assembly).
//!
//! - [`dot_2x2_q15`] (Armv7E-M, `cfg(ferrite_dsp)`): patch pre-expanded to 16-bit pairs, weights
//!   split by `SXTB16`, 16 multiply-accumulates in 15 instructions (one `LDM`, two `LDR`, four
//!   `SXTB16`, eight `SMLAD`).
//! - [`dot_2x2_s8`] (Armv7-M, `cfg(ferrite_armv7m)`): raw int8 patches and weights, four `LDRSB`
//!   and four `MLA` per patch value, unrolled by four.
//!
//! Both loops need 14 registers: the asm also saves and uses r6 and r7, which Rust reserves.
#![allow(unsafe_code)]

#[cfg(not(ferrite_dsp))]
use super::dsp::{smlad, sxtb16, sxtb16_ror8};

/// Two positions (A, B) by two output channels over a patch of quads (see `conv2d_s8_patches`):
/// `acc + sum x * w` for (A, w0), (A, w1), (B, w0), (B, w1), in that order. `w0` and `w1` hold at
/// least `4 * patch.len()` weights.
#[inline(always)]
pub fn dot_2x2_q15(patch: &[[u32; 4]], w0: &[i8], w1: &[i8], acc: [i32; 4]) -> [i32; 4] {
    let groups = patch.len();
    assert!(w0.len() >= 4 * groups && w1.len() >= 4 * groups);
    #[cfg(ferrite_dsp)]
    {
        if groups == 0 {
            return acc;
        }
        let [mut a0, mut a1, mut b0, mut b1] = acc;
        // One group: the four patch words, then each channel's weight word split into its even
        // and odd bytes and multiplied with both positions' pairs.
        macro_rules! group {
            () => {
                concat!(
                    "ldm r10!, {{r2, r3, r4, r5}}\n",
                    "ldr r6, [r11], #4\n",
                    "sxtb16 r7, r6\n",
                    "sxtb16 r6, r6, ror #8\n",
                    "smlad r0, r2, r7, r0\n",
                    "smlad r0, r3, r6, r0\n",
                    "smlad r8, r4, r7, r8\n",
                    "smlad r8, r5, r6, r8\n",
                    "ldr r6, [r12], #4\n",
                    "sxtb16 r7, r6\n",
                    "sxtb16 r6, r6, ror #8\n",
                    "smlad r1, r2, r7, r1\n",
                    "smlad r1, r3, r6, r1\n",
                    "smlad r9, r4, r7, r9\n",
                    "smlad r9, r5, r6, r9\n",
                )
            };
        }
        // SAFETY: reads `4 * groups` words from `patch` and `4 * groups` bytes from each of `w0`
        // and `w1` (checked above; LDR of the weights may be unaligned, which Armv7-M allows),
        // writes nothing to memory. r6 and r7 (which Rust reserves) are saved on the stack and
        // restored; the other registers are explicit operands. SMLAD may set the Q flag, which nothing reads.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                "lsrs lr, lr, #1",
                "bcc 2f",
                group!(),
                "2:",
                "cmp lr, #0",
                "beq 4f",
                "3:",
                group!(),
                group!(),
                "subs lr, lr, #1",
                "bne 3b",
                "4:",
                "pop {{r6, r7}}",
                inout("r10") patch.as_ptr() => _,
                inout("r11") w0.as_ptr() => _,
                inout("r12") w1.as_ptr() => _,
                inout("lr") groups => _,
                inout("r0") a0,
                inout("r1") a1,
                inout("r8") b0,
                inout("r9") b1,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                options(readonly),
            );
        }
        [a0, a1, b0, b1]
    }
    #[cfg(not(ferrite_dsp))]
    {
        let [mut a0, mut a1, mut b0, mut b1] = acc;
        let (c0, _) = w0.as_chunks::<4>();
        let (c1, _) = w1.as_chunks::<4>();
        for ((x, p), r) in patch.iter().zip(c0).zip(c1) {
            let wp = u32::from_le_bytes(p.map(|b| b as u8));
            let (pe, po) = (sxtb16(wp), sxtb16_ror8(wp));
            a0 = smlad(x[1], po, smlad(x[0], pe, a0));
            b0 = smlad(x[3], po, smlad(x[2], pe, b0));
            let wr = u32::from_le_bytes(r.map(|b| b as u8));
            let (re, ro) = (sxtb16(wr), sxtb16_ror8(wr));
            a1 = smlad(x[1], ro, smlad(x[0], re, a1));
            b1 = smlad(x[3], ro, smlad(x[2], re, b1));
        }
        [a0, a1, b0, b1]
    }
}

/// Two positions (A, B) by two output channels over raw int8 values: `acc + sum x * w` for
/// (xa, w0), (xa, w1), (xb, w0), (xb, w1), in that order. All four slices have the same length.
#[inline(always)]
pub fn dot_2x2_s8(xa: &[i8], xb: &[i8], w0: &[i8], w1: &[i8], acc: [i32; 4]) -> [i32; 4] {
    let n = xa.len();
    assert!(xb.len() == n && w0.len() == n && w1.len() == n);
    #[cfg(ferrite_armv7m)]
    {
        if n == 0 {
            return acc;
        }
        let [mut a0, mut a1, mut b0, mut b1] = acc;
        // One patch value: xa, xb, w0 and w1 (at offsets from the pointers of xa and w0), four MLAs.
        macro_rules! step {
            () => {
                concat!(
                    "ldrsb r4, [r8, r10]\n",
                    "ldrsb r5, [r8], #1\n",
                    "ldrsb r6, [r9, r11]\n",
                    "ldrsb r7, [r9], #1\n",
                    "mla r0, r5, r7, r0\n",
                    "mla r1, r5, r6, r1\n",
                    "mla r2, r4, r7, r2\n",
                    "mla r3, r4, r6, r3\n",
                )
            };
        }
        let db = xb.as_ptr() as isize - xa.as_ptr() as isize;
        let dw = w1.as_ptr() as isize - w0.as_ptr() as isize;
        // SAFETY: reads `n` bytes from each of `xa`, `xb` (= xa + db), `w0` and `w1` (= w0 + dw),
        // lengths checked above; writes nothing to memory. r6 and r7 (which Rust reserves) are saved on
        // the stack and restored; the other registers are explicit operands.
        unsafe {
            core::arch::asm!(
                "push {{r6, r7}}",
                // n % 4 single steps, then n / 4 unrolled passes.
                "ands lr, r12, #3",
                "beq 2f",
                "1:",
                step!(),
                "subs lr, lr, #1",
                "bne 1b",
                "2:",
                "lsrs r12, r12, #2",
                "beq 4f",
                "3:",
                step!(),
                step!(),
                step!(),
                step!(),
                "subs r12, r12, #1",
                "bne 3b",
                "4:",
                "pop {{r6, r7}}",
                inout("r8") xa.as_ptr() => _,
                inout("r9") w0.as_ptr() => _,
                in("r10") db,
                in("r11") dw,
                inout("r12") n => _,
                out("lr") _,
                inout("r0") a0,
                inout("r1") a1,
                inout("r2") b0,
                inout("r3") b1,
                out("r4") _,
                out("r5") _,
                options(readonly),
            );
        }
        [a0, a1, b0, b1]
    }
    #[cfg(not(ferrite_armv7m))]
    {
        let [mut a0, mut a1, mut b0, mut b1] = acc;
        for (((&xa, &xb), &p), &r) in xa.iter().zip(xb).zip(w0).zip(w1) {
            let (xa, xb, p, r) = (xa as i32, xb as i32, p as i32, r as i32);
            a0 = a0.wrapping_add(xa * p);
            a1 = a1.wrapping_add(xa * r);
            b0 = b0.wrapping_add(xb * p);
            b1 = b1.wrapping_add(xb * r);
        }
        [a0, a1, b0, b1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    proptest! {
        #[test]
        fn dot_2x2_s8_is_four_dot_products(
            v in prop::collection::vec(any::<(i8, i8, i8, i8)>(), 0..40), acc: [i32; 4],
        ) {
            let (xa, xb, w0, w1): (Vec<i8>, Vec<i8>, Vec<i8>, Vec<i8>) = (
                v.iter().map(|t| t.0).collect(),
                v.iter().map(|t| t.1).collect(),
                v.iter().map(|t| t.2).collect(),
                v.iter().map(|t| t.3).collect(),
            );
            let dot = |x: &[i8], w: &[i8], a: i32| {
                x.iter().zip(w).fold(a, |a, (&x, &w)| a.wrapping_add(x as i32 * w as i32))
            };
            let want = [
                dot(&xa, &w0, acc[0]),
                dot(&xa, &w1, acc[1]),
                dot(&xb, &w0, acc[2]),
                dot(&xb, &w1, acc[3]),
            ];
            prop_assert_eq!(dot_2x2_s8(&xa, &xb, &w0, &w1, acc), want);
        }
    }
}
