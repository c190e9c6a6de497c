//! Sensitivity analysis shared by weight and filter pruning (Li et al. 2017): how far the float
//! model's outputs move as one layer (or group of layers) loses units, measured at a few counts, and
//! the allocation that takes each unit where the measured error grows least.

use anyhow::Result;

use crate::ir::float_exec::{self, Tensor};
use crate::ir::Graph;

/// Samples the sensitivity of each layer is measured on.
pub const SENSITIVITY_SAMPLES: usize = 128;
/// Points measured on each layer's curve of output error against units removed.
pub const SENSITIVITY_POINTS: usize = 8;

/// The float model's outputs on up to [`SENSITIVITY_SAMPLES`] samples, against which a pruned
/// graph's error is measured.
pub struct OutputError {
    x: Tensor,
    reference: Vec<f32>,
    power: f64,
    threads: usize,
}

impl OutputError {
    pub fn new(g: &Graph, x: &Tensor) -> Result<Self> {
        let x = x.slice_batch(0, x.shape[0].min(SENSITIVITY_SAMPLES));
        let threads = crate::runtime_exec::available_threads();
        let reference = run(g, &x, threads)?;
        let power = reference
            .iter()
            .map(|&v| (v as f64).powi(2))
            .sum::<f64>()
            .max(1e-30);
        Ok(OutputError {
            x,
            reference,
            power,
            threads,
        })
    }

    /// The samples measured on.
    pub fn samples(&self) -> &Tensor {
        &self.x
    }

    /// `g`'s squared output error over the reference outputs' power.
    pub fn of(&self, g: &Graph) -> Result<f64> {
        let err = run(g, &self.x, self.threads)?
            .iter()
            .zip(&self.reference)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum::<f64>();
        Ok(err / self.power)
    }
}

fn run(g: &Graph, x: &Tensor, threads: usize) -> Result<Vec<f32>> {
    Ok(float_exec::run(g, std::slice::from_ref(x), threads)?
        .remove(0)
        .data)
}

/// A curve's `(units removed, error)` points from 0 to `cap` units, [`SENSITIVITY_POINTS`] of them
/// after the first (0, 0): `error(k)` measures `k` units removed.
pub fn curve(cap: usize, mut error: impl FnMut(usize) -> Result<f64>) -> Result<Vec<(usize, f64)>> {
    let step = cap.div_ceil(SENSITIVITY_POINTS).max(1);
    let mut curve = vec![(0, 0.0)];
    let mut k = 0;
    while k < cap {
        k = (k + step).min(cap);
        curve.push((k, error(k)?));
    }
    Ok(curve)
}

/// The error at `k` units, linear between the measured points.
fn at(curve: &[(usize, f64)], k: usize) -> f64 {
    let i = curve
        .iter()
        .position(|&(c, _)| c >= k)
        .unwrap_or(curve.len() - 1);
    if i == 0 || curve[i].0 == k {
        return curve[i].1;
    }
    let ((k0, e0), (k1, e1)) = (curve[i - 1], curve[i]);
    e0 + (e1 - e0) * (k - k0) as f64 / (k1 - k0) as f64
}

/// `total` units shared among the curves, one at a time to the curve whose error grows least by it
/// (ties: the first), none past its cap.
pub fn allocate(curves: &[Vec<(usize, f64)>], caps: &[usize], total: usize) -> Vec<usize> {
    let mut counts = vec![0usize; curves.len()];
    for _ in 0..total {
        let cost = |i: usize| at(&curves[i], counts[i] + 1) - at(&curves[i], counts[i]);
        let best = (0..counts.len())
            .filter(|&i| counts[i] < caps[i])
            .min_by(|&a, &b| cost(a).total_cmp(&cost(b)).then(a.cmp(&b)));
        match best {
            Some(i) => counts[i] += 1,
            None => break,
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units go where the error grows least, interpolated between points, within the caps.
    #[test]
    fn units_go_where_the_error_grows_least() {
        // Curve 0 is steep, curve 1 flat up to 4 units and steep after.
        let curves = vec![vec![(0, 0.0), (4, 4.0)], vec![(0, 0.0), (4, 0.4), (8, 8.4)]];
        assert_eq!(allocate(&curves, &[4, 8], 6), [2, 4]);
        // A cap holds.
        assert_eq!(allocate(&curves, &[4, 2], 6), [4, 2]);
        // Not more than the caps allow in all.
        assert_eq!(allocate(&curves, &[1, 1], 6), [1, 1]);
        assert!((at(&curves[1], 6) - 4.4).abs() < 1e-12);
    }

    #[test]
    fn a_curve_has_its_points_up_to_the_cap() {
        let c = curve(20, |k| Ok(k as f64)).unwrap();
        let ks: Vec<usize> = c.iter().map(|p| p.0).collect();
        assert_eq!(ks, [0, 3, 6, 9, 12, 15, 18, 20]);
        assert_eq!(curve(0, |_| unreachable!()).unwrap(), [(0, 0.0)]);
    }
}
