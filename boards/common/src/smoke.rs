//! Smoke test, used when no golden case is embedded: runs the runtime's
//! fixed-point requantization on a few inputs with known results.

use crate::{ferrite_bench_mark, fnv, Outcome};
use ferrite_runtime::quant::multiply_by_quantized_multiplier;

/// `(x, multiplier, shift, expected)`; multipliers are Q0.31 (`1 << 30` is 0.5).
const CASES: [(i32, i32, i32, i32); 7] = [
    (100, 1 << 30, 0, 50),
    (101, 1 << 30, 0, 51),
    (-101, 1 << 30, 0, -50),
    (101, 1 << 30, -1, 26),
    (100, 1 << 30, 2, 200),
    (i32::MIN, i32::MIN, 0, i32::MAX),
    (1000, 1_518_500_250, -3, 88),
];

pub fn run() -> Outcome {
    defmt::info!(
        "smoke: multiply_by_quantized_multiplier on {=usize} inputs",
        CASES.len()
    );
    let mut results = [0i32; CASES.len()];
    ferrite_bench_mark();
    for (slot, &(x, multiplier, shift, _)) in results.iter_mut().zip(CASES.iter()) {
        // black_box: keep the computation on the device, not in the compiler.
        *slot = multiply_by_quantized_multiplier(
            core::hint::black_box(x),
            core::hint::black_box(multiplier),
            core::hint::black_box(shift),
        );
    }
    ferrite_bench_mark();
    let mut hash = fnv::fnv1a_start();
    let mut mismatches = 0usize;
    for (&got, &(x, multiplier, shift, expected)) in results.iter().zip(CASES.iter()) {
        hash = fnv::fnv1a_update(hash, &got.to_le_bytes());
        if got != expected {
            mismatches += 1;
            defmt::error!(
                "mbqm({=i32}, {=i32}, {=i32}) = {=i32}, expected {=i32}",
                x,
                multiplier,
                shift,
                got,
                expected
            );
        }
    }
    #[cfg(feature = "selftest-mismatch")]
    {
        defmt::info!("selftest: counting a mismatch on purpose");
        mismatches += 1;
    }
    defmt::info!(
        "smoke: {=usize} results, {=usize} mismatching, fnv1a={=u32:#010x}",
        results.len(),
        mismatches,
        hash
    );
    if mismatches == 0 {
        Outcome::Pass
    } else {
        Outcome::Fail
    }
}
