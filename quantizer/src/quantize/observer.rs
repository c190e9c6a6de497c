//! Range estimators for activations, fed one calibration batch at a time.
//!
//! - `MinMax`: the smallest and largest value seen.
//! - `MeanMinMax`: the mean over batches of each batch's minimum and maximum.
//! - `Percentile(p)`: the mean over batches of each batch's `100 - p` and `p` percentiles.
//! - `Mse` and `TensorMse`: a histogram of all values; the range whose int8 quantization has the
//!   least squared error. Values observed with weights ([`Observer::observe_weighted`]) count by
//!   their weight in the error. (Post-training quantization searches `Mse` ranges with weights too,
//!   what an error costs at the model's outputs, and chooses among them: `ptq::calibration`.)
//!
//! Whatever the estimator, [`Observer::histogram`] bins the values seen (the report's histograms),
//! with the binning of the MSE search.

use serde::{Deserialize, Serialize};

/// How an activation's range is estimated. Serialized as `ferrite quantize --range` spells it
/// (`"mse"`, `{"percentile": 99.99}`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RangeEstimator {
    #[serde(rename = "minmax")]
    MinMax,
    #[serde(rename = "mean-minmax")]
    MeanMinMax,
    /// Upper percentile, e.g. 99.99.
    Percentile(f64),
    /// The least squared int8 error at the model's outputs, among candidate ranges (see the module).
    Mse,
    /// The least squared int8 error of the tensor's own values.
    TensorMse,
}

/// Histogram size of the MSE search.
const BINS: usize = 2048;

/// Values counted in equal bins from `min` to `max` (the last bin closed): the report's view of a
/// tensor ([`Observer::histogram`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub min: f32,
    pub max: f32,
    pub counts: Vec<u64>,
}

/// Collects statistics of one tensor over calibration batches.
#[derive(Clone, Debug)]
pub struct Observer {
    estimator: RangeEstimator,
    batches: usize,
    min: f32,
    max: f32,
    sum_min: f64,
    sum_max: f64,
    /// Values kept for the MSE search and the histogram (bounded reservoir of every value seen, in
    /// order).
    values: Vec<f32>,
    /// The weight of each kept value (empty: all 1).
    value_weights: Vec<f32>,
}

/// At most this many values are kept for the MSE search and the histogram (a uniform stride sample
/// beyond that).
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
            value_weights: Vec::new(),
        }
    }

    /// Records one batch of values (non-finite values are ignored).
    pub fn observe(&mut self, values: &[f32]) {
        self.observe_weighted(values, &[]);
    }

    /// Records one batch of values, each with the weight of its error in the MSE search (`weights`
    /// parallel to `values`; empty: all 1). Observe all batches with weights or none.
    pub fn observe_weighted(&mut self, values: &[f32], weights: &[f32]) {
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
        {
            let room = MAX_VALUES.saturating_sub(self.values.len());
            let stride = finite.len().div_ceil(room.max(1)).max(1);
            self.values.extend(finite.iter().step_by(stride).take(room));
            if !weights.is_empty() {
                let kept = values
                    .iter()
                    .zip(weights)
                    .filter(|(v, _)| v.is_finite())
                    .map(|(_, &w)| w);
                self.value_weights.extend(kept.step_by(stride).take(room));
            }
        }
    }

    /// The values seen (those kept: every one up to 2^20, a uniform stride sample beyond), counted in
    /// `bins` equal bins over the smallest to the largest value seen, unweighted; `None` before any
    /// finite value was seen.
    pub fn histogram(&self, bins: usize) -> Option<Histogram> {
        let (min, max) = self.full_range()?;
        let counts = if max > min {
            bin_counts(&self.values, &[], min, max, bins)
        } else {
            // A constant tensor: every value in the one bin that holds it.
            let mut c = vec![0.0; bins];
            c[0] = self.values.len() as f64;
            c
        };
        Some(Histogram {
            min,
            max,
            counts: counts.into_iter().map(|c| c as u64).collect(),
        })
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
            RangeEstimator::Mse | RangeEstimator::TensorMse => mse_range(
                &self.values,
                &self.value_weights,
                self.min,
                self.max,
                symmetric,
            ),
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

/// `v.round()` (half away from zero) in float operations only, so that loops over it vectorize: below
/// 2^23, adding and subtracting 2^23 rounds `|v|` to the nearest integer, ties to even (exactly),
/// and a tie rounded down is moved up; larger values (and NaN, infinities) are what they are.
#[inline]
fn round_half_away(v: f32) -> f32 {
    const TWO_23: f32 = 8_388_608.0;
    let a = v.abs();
    let even = (a + TWO_23) - TWO_23;
    let away = even + if a - even == 0.5 { 1.0 } else { 0.0 };
    if a < TWO_23 {
        away.copysign(v)
    } else {
        v
    }
}

/// Squared error of quantizing the histogram's non-empty bins (their centres and counts) to int8
/// over `[qmin, qmax]`, summed in bin order. `terms` is scratch space.
fn quant_error(centres: &[f32], counts: &[f64], qmin: f32, qmax: f32, terms: &mut Vec<f64>) -> f64 {
    let scale = ((qmax - qmin) / 255.0).max(f32::MIN_POSITIVE);
    let zp = (-128.0 - qmin / scale).round();
    // Every bin's term first (this loop vectorizes), then their sum in order.
    terms.clear();
    terms.extend(centres.iter().zip(counts).map(|(&x, &c)| {
        let q = (round_half_away(x / scale) + zp).clamp(-128.0, 127.0);
        let back = (q - zp) * scale;
        c * ((back - x) as f64).powi(2)
    }));
    terms.iter().sum()
}

/// `values` (each counting its weight, `weights` parallel to them; empty: all 1) in `bins` equal
/// bins from `lo` to `hi` (`lo < hi`); values outside go to the end bins.
fn bin_counts(values: &[f32], weights: &[f32], lo: f32, hi: f32, bins: usize) -> Vec<f64> {
    let width = (hi - lo) / bins as f32;
    let mut counts = vec![0f64; bins];
    let weight = |i: usize| weights.get(i).map_or(1.0, |&w| w as f64);
    for (i, &v) in values.iter().enumerate() {
        let b = (((v - lo) / width) as usize).min(bins - 1);
        counts[b] += weight(i);
    }
    counts
}

/// Searches shrunk ranges (each end from 100% down to 20%) for the least int8 quantization error,
/// each value's error times its weight (`weights`, parallel to `values`; empty: all 1).
/// The candidates' errors are computed in parallel; the first least one (in the order below) wins.
fn mse_range(values: &[f32], weights: &[f32], min: f32, max: f32, symmetric: bool) -> (f32, f32) {
    use rayon::prelude::*;

    let (lo, hi) = (min.min(0.0), max.max(0.0));
    if values.is_empty() || hi - lo <= 0.0 {
        return (lo, hi);
    }
    let counts = bin_counts(values, weights, lo, hi, BINS);
    let width = (hi - lo) / BINS as f32;
    // The non-empty bins only: empty ones add nothing to an error.
    let (centres, counts): (Vec<f32>, Vec<f64>) = (0..BINS)
        .filter(|&b| counts[b] > 0.0)
        .map(|b| (lo + (b as f32 + 0.5) * width, counts[b]))
        .unzip();
    // Candidate ends: 100% down to 20% of each side, in 2% steps (both sides together when symmetric).
    let ratios: Vec<f32> = (0..=40).map(|k| 1.0 - k as f32 * 0.02).collect();
    let candidates: Vec<(f32, f32)> = if symmetric {
        let m = lo.abs().max(hi.abs());
        ratios.iter().map(|&r| (-m * r, m * r)).collect()
    } else if lo == 0.0 {
        // One-sided: only the upper end moves (every lower ratio gives the same candidates).
        ratios.iter().map(|&rh| (lo, hi * rh)).collect()
    } else {
        ratios
            .iter()
            .flat_map(|&rl| ratios.iter().map(move |&rh| (lo * rl, hi * rh)))
            .collect()
    };
    let errors: Vec<f64> = candidates
        .par_iter()
        .map_init(Vec::new, |terms, &(qlo, qhi)| {
            quant_error(&centres, &counts, qlo, qhi, terms)
        })
        .collect();
    let mut best = (f64::INFINITY, lo, hi);
    for (&e, &(qlo, qhi)) in errors.iter().zip(&candidates) {
        if e < best.0 {
            best = (e, qlo, qhi);
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

    /// Every estimator's histogram counts every value seen, over the smallest to the largest, the
    /// largest in the last bin; a constant tensor is one bin.
    #[test]
    fn the_histogram_counts_every_value() {
        for e in [
            RangeEstimator::MinMax,
            RangeEstimator::Percentile(99.0),
            RangeEstimator::Mse,
        ] {
            let mut o = Observer::new(e);
            assert_eq!(o.histogram(4), None);
            o.observe(&[-1.0, 0.0, 0.5, f32::NAN]);
            o.observe(&[0.9, 3.0, 2.9]);
            let h = o.histogram(4).unwrap();
            assert_eq!((h.min, h.max), (-1.0, 3.0));
            assert_eq!(h.counts, [1, 3, 0, 2], "{e:?}");
        }
        let mut o = Observer::new(RangeEstimator::MinMax);
        o.observe(&[2.0; 5]);
        assert_eq!(o.histogram(3).unwrap().counts, [5, 0, 0]);
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

    #[test]
    fn round_half_away_is_round() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let check = |v: f32| {
            let (a, b) = (round_half_away(v), v.round());
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{v}: {a} {b}"
            );
        };
        for i in -4096..=4096 {
            // Halves, their neighbours and the integers around zero.
            let h = i as f32 * 0.5;
            for v in [
                h,
                f32::from_bits(h.to_bits() + 1),
                f32::from_bits(h.to_bits().max(1) - 1),
            ] {
                check(v);
            }
        }
        for v in [
            0.0,
            -0.0,
            8_388_607.5,
            8_388_608.0,
            -8_388_609.0,
            1e30,
            f32::NAN,
            f32::INFINITY,
        ] {
            check(v);
        }
        for _ in 0..1_000_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            check(f32::from_bits(s as u32));
        }
    }
}
