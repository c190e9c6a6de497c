//! Fake quantization with learned step sizes (LSQ, Esser et al. 2020): the device's int8 rounding
//! simulated in f32, with the gradients of its input (straight through inside the integer range, zero
//! outside) and of its scale.
//!
//! With `n = round(x / s)` and the integer range `lo..=hi` (zero point `z` included):
//! `x^ = (clamp(n + z, lo, hi) - z) * s`, `dx^/dx = 1` inside the range and 0 outside, and
//! `dx^/ds = n - x / s` inside, `lo - z` below, `hi - z` above.

use rayon::prelude::*;

/// Elements per piece of the parallel loops; fixed, so that sums do not depend on the thread count.
const CHUNK: usize = 1 << 14;

/// `v` rounded half away from zero, as `f32::round`, for `|v| < 2^22` (callers clamp first), in
/// float operations only so that the loops below (the training step's hottest) vectorize: adding
/// and subtracting `1.5 * 2^23` rounds to nearest even, and a tie rounded down is moved up.
#[inline(always)]
fn round(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    let t = v.abs();
    let r = (t + MAGIC) - MAGIC;
    (r + ((t - r) >= 0.5) as u32 as f32).copysign(v)
}

/// An integer grid: asymmetric activations (`-128..=127`, any zero point) or symmetric weights
/// (`-127..=127`, zero point 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub zero_point: i32,
    pub lo: i32,
    pub hi: i32,
}

impl Grid {
    pub fn activation(zero_point: i32) -> Grid {
        Grid {
            zero_point,
            lo: -128,
            hi: 127,
        }
    }

    /// A wide output's int16 grid (zero point 0).
    pub const INT16: Grid = Grid {
        zero_point: 0,
        lo: -32768,
        hi: 32767,
    };

    pub const WEIGHT: Grid = Grid {
        zero_point: 0,
        lo: -127,
        hi: 127,
    };

    /// Steps from the zero point to each end of the grid: `(lo - z, hi - z)`.
    pub fn steps(&self) -> (f32, f32) {
        (
            (self.lo - self.zero_point) as f32,
            (self.hi - self.zero_point) as f32,
        )
    }

    /// LSQ's gradient scale `1 / sqrt(elements * positive levels)` for a scale shared by `elements`
    /// values (per sample for activations, per channel for weights).
    pub fn gradient_scale(&self, elements: usize) -> f32 {
        let positive = (self.hi - self.zero_point).max(1) as f32;
        1.0 / (elements.max(1) as f32 * positive).sqrt()
    }

    /// `x` quantized with scale `s` and back.
    #[inline]
    pub fn quantize(&self, x: f32, s: f32) -> f32 {
        let q =
            ((x / s).round() as i64 + self.zero_point as i64).clamp(self.lo as i64, self.hi as i64);
        (q - self.zero_point as i64) as f32 * s
    }

    /// `x`'s derivatives: `(dx^/dx, dx^/ds)`.
    #[inline]
    pub fn derivatives(&self, x: f32, s: f32) -> (f32, f32) {
        let v = x / s;
        let n = round(v);
        let q = n as i64 + self.zero_point as i64;
        if q < self.lo as i64 {
            (0.0, (self.lo - self.zero_point) as f32)
        } else if q > self.hi as i64 {
            (0.0, (self.hi - self.zero_point) as f32)
        } else {
            (1.0, n - v)
        }
    }
}

/// Fake-quantizes `x` with one scale.
pub fn forward(grid: Grid, s: f32, x: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(out, x)| {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = grid.quantize(v, s);
            }
        });
}

/// Backward of [`forward`]: `d` is d loss / d x^; writes d loss / d x into `dx` and returns
/// d loss / d s (without LSQ's gradient scale).
pub fn backward(grid: Grid, s: f32, x: &[f32], d: &[f32], dx: &mut [f32]) -> f64 {
    let partial: Vec<f64> = dx
        .par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .zip(d.par_chunks(CHUNK))
        .map(|((dx, x), d)| {
            // Eight running sums, so that the loop vectorizes.
            let mut lanes = [0f32; 8];
            for ((o, x), d) in dx.chunks_mut(8).zip(x.chunks(8)).zip(d.chunks(8)) {
                for (k, ((o, &v), &g)) in o.iter_mut().zip(x).zip(d).enumerate() {
                    let (dv, dsv) = grid.derivatives(v, s);
                    *o = g * dv;
                    lanes[k] += g * dsv;
                }
            }
            lanes.iter().map(|&l| l as f64).sum::<f64>()
        })
        .collect();
    partial.iter().sum()
}

/// Where a weight array keeps its output channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelAxis {
    /// `[out_c, ...]` (Conv2d, FullyConnected).
    First,
    /// `[..., out_c]` (DepthwiseConv2d).
    Last,
}

impl ChannelAxis {
    /// The channel of element `i` of an array of `len` elements with `channels` scales (1: one scale).
    #[inline]
    pub fn channel(self, i: usize, len: usize, channels: usize) -> usize {
        if channels == 1 {
            return 0;
        }
        match self {
            ChannelAxis::First => i / (len / channels),
            ChannelAxis::Last => i % channels,
        }
    }
}

/// Fake-quantizes weights with per-channel scales.
pub fn weights_forward(axis: ChannelAxis, scales: &[f32], w: &[f32], out: &mut [f32]) {
    let len = w.len();
    for (i, (o, &v)) in out.iter_mut().zip(w).enumerate() {
        *o = Grid::WEIGHT.quantize(v, scales[axis.channel(i, len, scales.len())]);
    }
}

/// Backward of [`weights_forward`]: d loss / d w into `dw`, and d loss / d scale per channel added to
/// `dscales` (without LSQ's gradient scale).
pub fn weights_backward(
    axis: ChannelAxis,
    scales: &[f32],
    w: &[f32],
    d: &[f32],
    dw: &mut [f32],
    dscales: &mut [f64],
) {
    let len = w.len();
    for (i, ((o, &v), &g)) in dw.iter_mut().zip(w).zip(d).enumerate() {
        let c = axis.channel(i, len, scales.len());
        let (dv, ds) = Grid::WEIGHT.derivatives(v, scales[c]);
        *o = g * dv;
        dscales[c] += (g * ds) as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_away_from_zero() {
        let cases = [
            0.5f32,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.49999997,
            -0.49999997,
            1e6,
            -1e6,
            0.0,
            3.7,
        ];
        for v in cases
            .into_iter()
            .chain((-3000..3000).map(|i| i as f32 * 0.0137))
        {
            assert_eq!(round(v), v.round(), "{v}");
        }
    }

    #[test]
    fn quantize_matches_the_int8_parameters() {
        // The PTQ fake quantization (QParams::fake_quant) and this one agree.
        let p = crate::quantize::params::activation(-1.3, 4.2, false);
        let g = Grid::activation(p.zero_point);
        for i in -700..700 {
            let x = i as f32 * 0.0097;
            assert_eq!(g.quantize(x, p.scale), p.fake_quant(x), "x = {x}");
        }
    }

    #[test]
    fn scale_gradient_is_lsqs() {
        // LSQ's straight-through gradient, not the derivative of the step function: inside the range
        // round(x/s) - x/s, the range's end level (minus the zero point) where clipped.
        let g = Grid::activation(-20);
        let s = 0.05f32;
        let inside = |x: f32, expected: f32| {
            let (dx, ds) = g.derivatives(x, s);
            assert_eq!(dx, 1.0);
            assert!((ds - expected).abs() < 1e-5, "x {x}: {ds} vs {expected}");
        };
        inside(0.33, 0.4); // 6.6 rounds to 7
        inside(-0.91, 0.2); // -18.2 rounds to -18
        inside(2.0, 0.0); // on the grid
        assert_eq!(g.derivatives(100.0, s), (0.0, 147.0));
        assert_eq!(g.derivatives(-100.0, s), (0.0, -108.0));
        assert_eq!(Grid::WEIGHT.derivatives(-100.0, s), (0.0, -127.0));
        // The gradient scale: 1 / sqrt(elements * positive levels).
        assert!((g.gradient_scale(147) - 1.0 / 147.0).abs() < 1e-9);
    }

    #[test]
    fn per_channel_weights_use_their_channel_scale() {
        let w = [0.5f32, -1.0, 0.25, 2.0, -0.5, 0.0];
        let mut out = [0f32; 6];
        weights_forward(
            ChannelAxis::First,
            &[1.0 / 127.0, 2.0 / 127.0],
            &w,
            &mut out,
        );
        let (q, s) = crate::quantize::params::weights_per_channel(&w, 2);
        for i in 0..6 {
            assert_eq!(out[i], q[i] as f32 * s[i / 3]);
        }
        let (q, s) = crate::quantize::params::weights_per_channel_last(&w, 2);
        weights_forward(ChannelAxis::Last, &s, &w, &mut out);
        for i in 0..6 {
            assert_eq!(out[i], q[i] as f32 * s[i % 2]);
        }
    }
}
