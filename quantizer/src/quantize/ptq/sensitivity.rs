//! What an activation's quantization error costs at the model's outputs, element by element: the
//! weights of the weighted MSE range searches (`calibration`). Without them, a few large channels
//! that the readers scale down (the cross-layer range imbalance of real networks) decide the range
//! of every other channel.
//!
//! An error `e` in one element moves the outputs by about `J e` (`J`: that element's column of the
//! Jacobian), by `e^2 |J|^2` in squared size, errors of different elements taken as independent.
//! With random signs `g` at the output elements, `(J^T g)^2` has the expectation `|J|^2`: one
//! backward pass of the calibration batch estimates it for every element, and its mean over each
//! channel (the same channel in every sample and position) is a steadier estimate of the channel's.

use anyhow::{Context, Result};

use crate::ir::float_exec::Activations;
use crate::ir::Graph;
use crate::rng::Rng;
use crate::train::backward;

/// The estimated `|J|^2` of the elements of one value.
pub(super) struct Sensitivity {
    /// Each element's own estimate (batch first, like the value).
    pub per_element: Vec<f32>,
    /// Each channel's mean (the channel: the last axis).
    pub channel_mean: Vec<f32>,
}

/// Per value for which `keep` holds: its elements' sensitivities; `None` for the others, constants
/// and values the outputs do not depend on.
pub(super) fn sensitivities(
    graph: &Graph,
    acts: &Activations<'_>,
    keep: &dyn Fn(usize) -> bool,
) -> Result<Vec<Option<Sensitivity>>> {
    let mut rng = Rng::new(0x5eed);
    let mut d: Vec<Option<Vec<f32>>> = vec![None; graph.values.len()];
    for &o in &graph.outputs {
        let len = acts.get(o).map_or(0, |v| v.data.len());
        d[o] = Some((0..len).map(|_| [-1.0, 1.0][rng.below(2)]).collect());
    }
    let mut out: Vec<Option<Sensitivity>> = (0..graph.values.len()).map(|_| None).collect();
    for n in graph.nodes.iter().rev() {
        let Some(d_out) = d[n.output].take() else {
            continue;
        };
        let output = acts.get(n.output).context("activation not kept")?;
        let views = n
            .inputs
            .iter()
            .map(|&v| acts.get(v).context("activation not kept"))
            .collect::<Result<Vec<_>>>()?;
        let need: Vec<bool> = n.inputs.iter().map(|&v| !graph.is_const(v)).collect();
        let grads = backward::backward(&n.op, &views, output.data, &d_out, &need)
            .with_context(|| format!("sensitivity of node `{}` ({})", n.name, n.op.name()))?;
        if keep(n.output) {
            out[n.output] = Some(sensitivity(output.shape, &d_out));
        }
        for (&v, dv) in n.inputs.iter().zip(grads.inputs) {
            let Some(dv) = dv else { continue };
            match &mut d[v] {
                Some(acc) => acc.iter_mut().zip(&dv).for_each(|(a, b)| *a += b),
                slot => *slot = Some(dv),
            }
        }
    }
    for &v in &graph.inputs {
        if let (Some(dv), Some(x), true) = (d[v].take(), acts.get(v), keep(v)) {
            out[v] = Some(sensitivity(x.shape, &dv));
        }
    }
    Ok(out)
}

/// `d^2` per element, and its mean per channel (the last axis of `shape`).
fn sensitivity(shape: &[usize], d: &[f32]) -> Sensitivity {
    let channels = shape.last().copied().unwrap_or(1).max(1);
    let per_element: Vec<f32> = d.iter().map(|x| x * x).collect();
    let mut sum = vec![0.0f64; channels];
    for row in per_element.chunks_exact(channels) {
        for (s, &x) in sum.iter_mut().zip(row) {
            *s += x as f64;
        }
    }
    let rows = (d.len() / channels).max(1) as f64;
    Sensitivity {
        per_element,
        channel_mean: sum.iter().map(|s| (s / rows) as f32).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::float_exec::{self, Tensor};
    use crate::ir::{Clamp, Op, Param};

    /// For `y = W x`, an error in `x[c]` moves the outputs by `W[:, c]`: the estimate per channel
    /// is the squared norm of that column (within the sampling error of random signs), and zero for
    /// a channel no output reads.
    #[test]
    fn a_linear_layer_weighs_each_channel_by_its_column() {
        let w = [
            [1.0, 0.1, 0.0, -2.0],
            [0.5, -0.1, 0.0, 1.0],
            [-1.0, 0.2, 0.0, 0.5],
        ];
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 4]);
        g.inputs.push(x);
        let filter = Param::new(vec![3, 4], w.iter().flatten().copied().collect());
        let op = Op::FullyConnected {
            filter,
            bias: Param::new(vec![3], vec![0.0; 3]),
            clamp: Clamp::NONE,
        };
        let y = g.add_node("fc", "Gemm", op, vec![x], "y").unwrap();
        g.outputs.push(y);
        let n = 4000;
        let input = Tensor::new(vec![n, 4], (0..n * 4).map(|i| (i % 7) as f32).collect());
        let acts = float_exec::run_observed(&g, &[input], true, |_, _, _| {}).unwrap();
        let s = sensitivities(&g, &acts, &|_| true).unwrap();
        let per_channel = &s[x].as_ref().unwrap().channel_mean;
        for (c, &got) in per_channel.iter().enumerate() {
            let want: f32 = w.iter().map(|row| row[c] * row[c]).sum();
            assert!(
                (got - want).abs() <= 0.1 * want,
                "channel {c}: {got} vs {want}"
            );
        }
        // The output itself: every element counts 1 (the random signs squared).
        assert!(s[y].as_ref().unwrap().per_element.iter().all(|&e| e == 1.0));
    }
}
