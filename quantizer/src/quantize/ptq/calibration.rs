//! Calibration: the float reference executor runs the calibration set, and an observer estimates
//! every activation's range.
//!
//! Samples with a NaN or an infinity are refused (observers would skip the value and the range would
//! silently come from the rest). A range that is zero everywhere is valid: its scale comes from
//! [`crate::quantize::params::activation`].

use anyhow::{bail, Result};

use super::Config;
use crate::ir::float_exec::{self, Tensor, View};
use crate::ir::Graph;
use crate::quantize::observer::Observer;

/// Float activations of every computed value and their observed ranges.
pub(super) struct Calibration {
    /// Indexed by value; `None` for constants.
    pub float_acts: Vec<Option<Tensor>>,
    /// Indexed by value: the `(min, max)` the range estimator settled on.
    pub ranges: Vec<Option<(f32, f32)>>,
}

fn tensor_of(v: View<'_>) -> Tensor {
    Tensor::new(v.shape.to_vec(), v.data.to_vec())
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

/// Runs `graph` on the `samples` calibration samples and estimates each activation's range.
pub(super) fn calibrate(
    graph: &Graph,
    calib: &[Tensor],
    samples: usize,
    config: &Config,
) -> Result<Calibration> {
    let mut float_acts: Vec<Option<Tensor>> = vec![None; graph.values.len()];
    {
        let acts = float_exec::run_observed(graph, calib, true, |_, _, _| {})?;
        for (v, slot) in float_acts.iter_mut().enumerate() {
            if !graph.is_const(v) {
                *slot = acts.get(v).map(tensor_of);
            }
        }
    }
    let symmetric = config.preset == super::Preset::Performance;
    let mut ranges: Vec<Option<(f32, f32)>> = vec![None; graph.values.len()];
    for (v, t) in float_acts.iter().enumerate() {
        let Some(t) = t else { continue };
        let mut o = Observer::new(config.estimator);
        let per = t.data.len() / samples;
        for s in 0..samples {
            o.observe(&t.data[s * per..(s + 1) * per]);
        }
        // Graph outputs keep their whole range: clipping the model's answer costs more than the
        // resolution it buys (logits, regression values).
        ranges[v] = if graph.outputs.contains(&v) {
            o.full_range()
        } else {
            o.range(symmetric)
        };
    }
    Ok(Calibration { float_acts, ranges })
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
