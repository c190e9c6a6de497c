//! Calibration: the float reference executor runs the calibration set, and an observer estimates
//! every activation's range.
//!
//! Samples with a NaN or an infinity are refused (observers would skip the value and the range would
//! silently come from the rest). A range that is zero everywhere is valid: its scale comes from
//! [`crate::quantize::params::activation`].

use anyhow::{bail, Result};

use super::parameters::own_range;
use super::sensitivity::sensitivities;
use super::Config;
use crate::ir::float_exec::{self, Activations, Tensor};
use crate::ir::Graph;
use crate::quantize::observer::{Histogram, Observer, RangeEstimator};

/// Bins of each activation's histogram in the report.
const HISTOGRAM_BINS: usize = 64;

/// Float activations of every computed value and their observed ranges.
pub(super) struct Calibration {
    /// Indexed by value; `None` for constants.
    pub float_acts: Vec<Option<Tensor>>,
    /// Indexed by value: the `(min, max)` the range estimator settled on.
    pub ranges: Vec<Option<(f32, f32)>>,
    /// Indexed by value: the ranges to choose from (`range_choice`), the first the estimator's;
    /// empty where there is no choice.
    pub candidates: Vec<Vec<(f32, f32)>>,
    /// Indexed by value: the values the range estimator saw, in [`HISTOGRAM_BINS`] bins (the
    /// report's histograms).
    pub histograms: Vec<Option<Histogram>>,
}

/// Refuses calibration inputs (batch first) with a value that is not finite, naming the first such
/// sample by its index in the batch.
pub fn check_finite(calib: &[Tensor]) -> Result<()> {
    for (i, t) in calib.iter().enumerate() {
        let per = t.data.len() / t.shape.first().copied().unwrap_or(1).max(1);
        let Some(at) = t.data.iter().position(|x| !x.is_finite()) else {
            continue;
        };
        let input = if calib.len() > 1 {
            format!(" (input {i})")
        } else {
            String::new()
        };
        bail!(
            "calibration sample {}{input} has a non-finite value ({}); every value must be finite",
            at / per.max(1),
            t.data[at]
        );
    }
    Ok(())
}

/// Runs `graph` on the calibration samples: every computed value and the inputs, indexed by value.
/// `on_node(i)` hears that node `i` is done.
pub(super) fn run_float(
    graph: &Graph,
    calib: &[Tensor],
    mut on_node: impl FnMut(usize),
) -> Result<Vec<Option<Tensor>>> {
    Ok(float_exec::run_observed(graph, calib, true, |i, _, _| on_node(i))?.into_values())
}

/// Estimates each activation's range from `float_acts` ([`run_float`] on the `samples` calibration
/// samples `calib`).
///
/// With the MSE estimator each activation has up to three candidate ranges: the least squared error
/// of its values, and the least error with each value weighted by what an error there costs at the
/// outputs (per channel, and per element; see [`super::sensitivity`]); `range_choice` picks one.
pub(super) fn calibrate(
    graph: &Graph,
    float_acts: Vec<Option<Tensor>>,
    samples: usize,
    config: &Config,
) -> Result<Calibration> {
    let acts = Activations::from_values(graph, float_acts);
    let searched = |v: usize| !graph.outputs.contains(&v) && own_range(graph, v);
    let sensitivity = if config.estimator == RangeEstimator::Mse {
        Some(sensitivities(graph, &acts, &searched)?)
    } else {
        None
    };
    let float_acts = acts.into_values();
    let symmetric = config.preset == super::Preset::Performance;
    let mut ranges: Vec<Option<(f32, f32)>> = vec![None; graph.values.len()];
    let mut candidates: Vec<Vec<(f32, f32)>> = vec![Vec::new(); graph.values.len()];
    let mut histograms: Vec<Option<Histogram>> = vec![None; graph.values.len()];
    for (v, t) in float_acts.iter().enumerate() {
        let Some(t) = t else { continue };
        let per = t.data.len() / samples;
        // `weights`: one per element of the whole batch, or (`each_sample`) of one sample.
        let observe = |weights: &[f32], each_sample: bool| {
            let mut o = Observer::new(config.estimator);
            for s in 0..samples {
                let at = s * per..(s + 1) * per;
                let w = match (weights.is_empty(), each_sample) {
                    (true, _) => &[][..],
                    (false, true) => weights,
                    (false, false) => &weights[at.clone()],
                };
                o.observe_weighted(&t.data[at], w);
            }
            o
        };
        let o = observe(&[], false);
        histograms[v] = o.histogram(HISTOGRAM_BINS);
        // Graph outputs keep their whole range: clipping the model's answer costs more than the
        // resolution it buys (logits, regression values).
        if graph.outputs.contains(&v) {
            ranges[v] = o.full_range();
            continue;
        }
        ranges[v] = o.range(symmetric);
        let weighted = sensitivity.as_ref().and_then(|s| s[v].as_ref());
        if let (Some(first), Some(weights)) = (ranges[v], weighted) {
            let c = weights.channel_mean.len().max(1);
            let tiled: Vec<f32> = (0..per).map(|i| weights.channel_mean[i % c]).collect();
            let mut cands = vec![first];
            for r in [
                observe(&tiled, true).range(symmetric),
                observe(&weights.per_element, false).range(symmetric),
            ]
            .into_iter()
            .flatten()
            {
                if !cands.contains(&r) {
                    cands.push(r);
                }
            }
            candidates[v] = cands;
        }
    }
    Ok(Calibration {
        float_acts,
        ranges,
        candidates,
        histograms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_name_their_sample() {
        let ok = Tensor::new(vec![2, 3], vec![0.0; 6]);
        assert!(check_finite(std::slice::from_ref(&ok)).is_ok());
        let mut bad = ok.clone();
        bad.data[4] = f32::NEG_INFINITY;
        let e = check_finite(&[bad]).unwrap_err().to_string();
        assert!(e.contains("sample 1 ") && e.contains("-inf"), "{e}");
        let mut nan = ok.clone();
        nan.data[2] = f32::NAN;
        let e = check_finite(&[ok, nan]).unwrap_err().to_string();
        assert!(e.contains("sample 0 (input 1)") && e.contains("NaN"), "{e}");
    }
}
