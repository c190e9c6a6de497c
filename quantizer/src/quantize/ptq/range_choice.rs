//! The choice among each activation's candidate ranges (`calibration`): one value at a time, in
//! graph order, the candidate with which the int8 model, simulated on the first calibration samples
//! (rounded weights and activations, bias correction applied), comes closest to the float model's
//! outputs. A candidate replaces the current one only if it does strictly better, so the result is
//! never worse than the estimator's own ranges on those samples.

use anyhow::{Context, Result};

use super::bias_correction::{Precisions, Simulation};
use super::parameters::activation_params;
use super::{BiasCorrection, Config};
use crate::ir::float_exec::Tensor;
use crate::ir::Graph;

/// Samples the candidates are compared on.
const CHOICE_SAMPLES: usize = 64;

/// Sets `ranges` to the chosen candidates (see the module's documentation).
#[allow(clippy::too_many_arguments)]
pub(super) fn choose_ranges(
    graph: &Graph,
    float_node: &[bool],
    int16_node: &[bool],
    wide_value: &[bool],
    weights: &[Option<(Vec<i8>, Vec<f32>)>],
    float_acts: &[Option<Tensor>],
    samples: usize,
    config: &Config,
    candidates: &[Vec<(f32, f32)>],
    ranges: &mut [Option<(f32, f32)>],
) -> Result<()> {
    if candidates.iter().all(|c| c.len() < 2) {
        return Ok(());
    }
    let precisions = Precisions {
        float_node,
        int16_node,
        wide_value,
    };
    let sim = Simulation::new(
        graph,
        precisions,
        weights,
        float_acts,
        samples.min(CHOICE_SAMPLES),
    )?;
    let symmetric = config.preset == super::Preset::Performance;
    let correct = config.bias_correction != BiasCorrection::Off;
    let references = sim.float_outputs();
    // The squared error of the simulated outputs, each read from `suffix` if set there, else `base`.
    let error = |base: &[Option<Tensor>], suffix: &[Option<Tensor>]| -> Result<f64> {
        let mut sum = 0.0f64;
        for (&o, reference) in graph.outputs.iter().zip(&references) {
            let simulated = suffix
                .get(o)
                .and_then(Option::as_ref)
                .or(base[o].as_ref())
                .context("output not simulated")?;
            let reference = reference.context("output not computed")?;
            sum += reference
                .data
                .iter()
                .zip(&simulated.data)
                .map(|(&a, &b)| ((a - b) as f64).powi(2))
                .sum::<f64>();
        }
        Ok(sum)
    };
    // The accepted state: its parameters and simulated values. A candidate changes the parameters
    // of a few values; only the nodes from the first one that reads or writes such a value are
    // simulated again (the nodes are in topological order).
    let mut qp = activation_params(graph, ranges, symmetric);
    let mut values = sim.run(&qp, true, correct)?.values;
    let mut best = error(&values, &[])?;
    for (v, cands) in candidates.iter().enumerate() {
        for &r in cands.iter().skip(1) {
            let kept = ranges[v].replace(r);
            let tried = activation_params(graph, ranges, symmetric);
            let changed: Vec<bool> = tried.iter().zip(&qp).map(|(a, b)| a != b).collect();
            let from = if graph.inputs.iter().any(|&i| changed[i]) {
                Some(0)
            } else {
                graph
                    .nodes
                    .iter()
                    .position(|n| changed[n.output] || n.inputs.iter().any(|&i| changed[i]))
            };
            let Some(from) = from else {
                // The same parameters: the same error, not strictly better.
                ranges[v] = kept;
                continue;
            };
            let suffix = sim.run_from(&tried, correct, &values, from)?;
            let e = error(&values, &suffix)?;
            if e < best {
                best = e;
                qp = tried;
                for (slot, t) in values.iter_mut().zip(suffix) {
                    if t.is_some() {
                        *slot = t;
                    }
                }
            } else {
                ranges[v] = kept;
            }
        }
    }
    Ok(())
}
