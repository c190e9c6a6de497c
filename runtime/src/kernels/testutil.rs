//! Helpers for kernel tests: a seeded generator and the float side of "dequantize -> float op -> quantize".

/// xorshift64*: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        let span = (hi as i64 - lo as i64 + 1) as u64;
        (lo as i64 + (self.next_u64() % span) as i64) as i32
    }

    pub fn i8(&mut self) -> i8 {
        self.range(-128, 127) as i8
    }

    pub fn i8_vec(&mut self, n: usize) -> std::vec::Vec<i8> {
        (0..n).map(|_| self.i8()).collect()
    }

    /// Uniform in `[lo, hi)`.
    pub fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
}

/// Real value of `q` under `(scale, zero_point)`.
pub fn dequant(q: i8, scale: f32, zero_point: i32) -> f64 {
    scale as f64 * (q as i32 - zero_point) as f64
}

/// Quantizes a real value to int8, rounding half away from zero and saturating.
pub fn quant(x: f64, scale: f32, zero_point: i32) -> i8 {
    ((x / scale as f64).round() + zero_point as f64).clamp(-128.0, 127.0) as i8
}

/// Asserts two int8 tensors differ by at most `tol` LSB everywhere; reports the first offending index.
pub fn assert_close(got: &[i8], want: &[i8], tol: i32) {
    assert_eq!(got.len(), want.len(), "length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as i32 - w as i32).abs() <= tol,
            "element {i}: got {g}, want {w} (tolerance {tol})"
        );
    }
}
