//! Calibration: the float reference executor runs the calibration set, and an observer estimates
//! every activation's range.

use anyhow::Result;

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
