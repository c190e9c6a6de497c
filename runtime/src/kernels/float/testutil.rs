//! Helpers for the f32 kernel tests.

use std::vec::Vec;

pub use crate::kernels::testutil::Rng;

/// Little-endian bytes of `values`, as the model stores f32 filters and biases.
pub fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `n` values uniform in `[lo, hi)`.
pub fn f32_vec(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.f32(lo, hi)).collect()
}

/// Asserts `|got - want| <= 1e-5 * max(|want|, 1)` everywhere (values in tests are of order 1);
/// `what` names the case in the failure message.
pub fn assert_close_f32(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-5 * w.abs().max(1.0);
        assert!(
            (g as f64 - w).abs() <= tol,
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}
