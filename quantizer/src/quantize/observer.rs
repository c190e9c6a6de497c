//! Range estimators for activations, fed one calibration batch at a time.
//!
//! - `MinMax`: the smallest and largest value seen.
//! - `MeanMinMax`: the mean over batches of each batch's minimum and maximum.
//! - `Percentile(p)`: the mean over batches of each batch's `100 - p` and `p` percentiles.
//! - `Mse`: a histogram of all values; the range whose int8 quantization has the least squared error.

use serde::{Deserialize, Serialize};

/// How an activation's range is estimated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RangeEstimator {
    MinMax,
    MeanMinMax,
    /// Upper percentile, e.g. 99.99.
    Percentile(f64),
    Mse,
}

/// Histogram size of the MSE search.
const BINS: usize = 2048;

/// Collects statistics of one tensor over calibration batches.
#[derive(Clone, Debug)]
pub struct Observer {
    estimator: RangeEstimator,
    batches: usize,
    min: f32,
    max: f32,
    sum_min: f64,
    sum_max: f64,
    /// Values kept for the MSE search (bounded reservoir of every value seen, in order).
    values: Vec<f32>,
}

/// At most this many values are kept for the MSE search (a uniform stride sample beyond that).
const MAX_VALUES: usize = 1 << 20;

impl Observer {
    pub fn new(estimator: RangeEstimator) -> Self {
        Observer {
            estimator,
            batches: 0,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            sum_min: 0.0,
            sum_max: 0.0,
            values: Vec::new(),
        }
    }

    /// Records one batch of values (non-finite values are ignored).
    pub fn observe(&mut self, values: &[f32]) {
        let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return;
        }
        self.batches += 1;
        let (lo, hi) = match self.estimator {
            RangeEstimator::Percentile(p) => percentiles(&finite, p),
            _ => finite
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                }),
        };
        let (bmin, bmax) = finite
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        self.min = self.min.min(bmin);
        self.max = self.max.max(bmax);
        self.sum_min += lo as f64;
        self.sum_max += hi as f64;
        if self.estimator == RangeEstimator::Mse {
            let room = MAX_VALUES.saturating_sub(self.values.len());
            let stride = finite.len().div_ceil(room.max(1)).max(1);
            self.values.extend(finite.iter().step_by(stride).take(room));
        }
    }

    /// The smallest and largest value seen, whatever the estimator.
    pub fn full_range(&self) -> Option<(f32, f32)> {
        (self.batches > 0).then_some((self.min, self.max))
    }

    /// The estimated `(min, max)` range; `None` before any finite value was seen.
    /// `symmetric` asks the MSE search for a range symmetric around zero.
    pub fn range(&self, symmetric: bool) -> Option<(f32, f32)> {
        if self.batches == 0 {
            return None;
        }
        let n = self.batches as f64;
        Some(match self.estimator {
            RangeEstimator::MinMax => (self.min, self.max),
            RangeEstimator::MeanMinMax | RangeEstimator::Percentile(_) => {
                ((self.sum_min / n) as f32, (self.sum_max / n) as f32)
            }
            RangeEstimator::Mse => mse_range(&self.values, self.min, self.max, symmetric),
        })
    }
}

/// The `(100 - p)` and `p` percentiles of `values` (nearest rank).
fn percentiles(values: &[f32], p: f64) -> (f32, f32) {
    let mut v = values.to_vec();
    let n = v.len();
    let rank = |q: f64| ((q / 100.0) * (n - 1) as f64).round() as usize;
    let hi_at = rank(p.clamp(50.0, 100.0)).min(n - 1);
    let lo_at = rank(100.0 - p.clamp(50.0, 100.0)).min(n - 1);
    let hi = *v.select_nth_unstable_by(hi_at, f32::total_cmp).1;
    let lo = *v.select_nth_unstable_by(lo_at, f32::total_cmp).1;
    (lo, hi)
}

/// Squared error of quantizing `hist` (bin centres over `[lo, hi]` of the full range) to int8 over
/// `[qmin, qmax]`.
fn quant_error(centres: &[f32], counts: &[u64], qmin: f32, qmax: f32) -> f64 {
    let scale = ((qmax - qmin) / 255.0).max(f32::MIN_POSITIVE);
    let zp = (-128.0 - qmin / scale).round();
    centres
        .iter()
        .zip(counts)
        .filter(|(_, &c)| c > 0)
        .map(|(&x, &c)| {
            let q = ((x / scale).round() + zp).clamp(-128.0, 127.0);
            let back = (q - zp) * scale;
            c as f64 * ((back - x) as f64).powi(2)
        })
        .sum()
}

/// Searches shrunk ranges (each end from 100% down to 20%) for the least int8 quantization error.
fn mse_range(values: &[f32], min: f32, max: f32, symmetric: bool) -> (f32, f32) {
    let (lo, hi) = (min.min(0.0), max.max(0.0));
    if values.is_empty() || hi - lo <= 0.0 {
        return (lo, hi);
    }
    let width = (hi - lo) / BINS as f32;
    let mut counts = vec![0u64; BINS];
    for &v in values {
        let b = (((v - lo) / width) as usize).min(BINS - 1);
        counts[b] += 1;
    }
    let centres: Vec<f32> = (0..BINS).map(|b| lo + (b as f32 + 0.5) * width).collect();
    // Candidate ends: 100% down to 20% of each side, in 2% steps (both sides together when symmetric).
    let ratios: Vec<f32> = (0..=40).map(|k| 1.0 - k as f32 * 0.02).collect();
    let mut best = (f64::INFINITY, lo, hi);
    let mut consider = |qlo: f32, qhi: f32| {
        let e = quant_error(&centres, &counts, qlo, qhi);
        if e < best.0 {
            best = (e, qlo, qhi);
        }
    };
    if symmetric {
        let m = lo.abs().max(hi.abs());
        for &r in &ratios {
            consider(-m * r, m * r);
        }
    } else {
        for &rl in &ratios {
            for &rh in &ratios {
                consider(lo * rl, hi * rh);
            }
        }
    }
    (best.1, best.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_max_and_mean_min_max() {
        let mut a = Observer::new(RangeEstimator::MinMax);
        let mut b = Observer::new(RangeEstimator::MeanMinMax);
        for batch in [[-1.0, 2.0], [-3.0, 4.0]] {
            a.observe(&batch);
            b.observe(&batch);
        }
        assert_eq!(a.range(false), Some((-3.0, 4.0)));
        assert_eq!(b.range(false), Some((-2.0, 3.0)));
        assert_eq!(Observer::new(RangeEstimator::MinMax).range(false), None);
    }

    #[test]
    fn percentile_ignores_outliers() {
        let mut v: Vec<f32> = (0..10_000)
            .map(|i| (i as f32 / 10_000.0) * 2.0 - 1.0)
            .collect();
        v.push(1000.0);
        let mut o = Observer::new(RangeEstimator::Percentile(99.9));
        o.observe(&v);
        let (lo, hi) = o.range(false).unwrap();
        assert!(
            (-1.0..-0.99).contains(&lo) && (0.99..1.0).contains(&hi),
            "{lo} {hi}"
        );
    }

    /// The MSE range is never worse than min-max under the same error measure (computed here on the
    /// raw values, not the histogram).
    #[test]
    fn mse_range_minimizes_the_error() {
        let mut v: Vec<f32> = (0..20_000)
            .map(|i| (i as f32 / 20_000.0) * 2.0 - 1.0)
            .collect();
        v.extend((0..400).map(|i| 20.0 + i as f32 * 0.05));
        let mut o = Observer::new(RangeEstimator::Mse);
        o.observe(&v);
        let (lo, hi) = o.range(false).unwrap();
        let err = |qlo: f32, qhi: f32| -> f64 {
            let scale = (qhi - qlo) / 255.0;
            let zp = (-128.0 - qlo / scale).round();
            v.iter()
                .map(|&x| {
                    let q = ((x / scale).round() + zp).clamp(-128.0, 127.0);
                    (((q - zp) * scale - x) as f64).powi(2)
                })
                .sum()
        };
        assert!(err(lo, hi) <= err(-1.0, 39.95) * 1.01, "{lo} {hi}");
        let (slo, shi) = o.range(true).unwrap();
        assert_eq!(slo, -shi);
    }
}
