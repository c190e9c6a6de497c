//! The quantization report: each value's range and parameters, the nodes kept in float, the bias
//! shifts, and each layer's error measured on the runtime.

use anyhow::Result;
use serde::Serialize;

use super::Config;
use crate::ir::float_exec::Tensor;
use crate::ir::Graph;
use crate::quantize::params::QParams;

/// One value's calibration result.
#[derive(Clone, Debug, Serialize)]
pub struct ValueReport {
    pub name: String,
    pub min: f32,
    pub max: f32,
    pub scale: f32,
    pub zero_point: i32,
    pub dtype: &'static str,
}

/// What quantization did: ranges, which nodes stayed in float, bias shifts.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub config: Config,
    pub calibration_samples: usize,
    pub values: Vec<ValueReport>,
    pub float_nodes: Vec<String>,
    /// Per corrected layer, the largest absolute bias change (in float units).
    pub bias_shift: Vec<(String, f32)>,
    /// Per node, the SQNR of its int8 output (computed by the runtime) against the float model's.
    pub layers: Vec<LayerReport>,
}

/// One node's quantization error.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub op: &'static str,
    /// `None` when the outputs are identical.
    pub sqnr_db: Option<f64>,
}

/// Each quantized value's range and parameters.
pub(super) fn value_reports(
    graph: &Graph,
    qp: &[Option<QParams>],
    ranges: &[Option<(f32, f32)>],
) -> Vec<ValueReport> {
    graph
        .values
        .iter()
        .enumerate()
        .filter_map(|(v, val)| {
            let p = qp[v]?;
            let (min, max) = ranges[v].unwrap_or((0.0, 0.0));
            Some(ValueReport {
                name: val.name.clone(),
                min,
                max,
                scale: p.scale,
                zero_point: p.zero_point,
                dtype: "int8",
            })
        })
        .collect()
}

/// Names of the nodes kept in float.
pub(super) fn float_nodes(graph: &Graph, float_node: &[bool]) -> Vec<String> {
    graph
        .nodes
        .iter()
        .zip(float_node)
        .filter(|(_, &f)| f)
        .map(|(n, _)| n.name.clone())
        .collect()
}

/// Calibration samples the per-layer SQNR is measured on.
pub(super) const SQNR_SAMPLES: usize = 64;

/// Runs the model that exposes every node's output (output `k` is node `k`) on the runtime and
/// compares each with the float executor's activation: signal-to-quantization-noise ratio in dB.
pub(super) fn layer_sqnr(
    graph: &Graph,
    debug_model: &[u8],
    calib: &[Tensor],
    float_acts: &[Option<Tensor>],
    samples: usize,
) -> Result<Vec<LayerReport>> {
    let model =
        ferrite_runtime::Model::from_bytes(debug_model).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut arena = vec![0u8; model.arena_size() + 16];
    let mut it = ferrite_runtime::Interpreter::new(&model, &mut arena)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut signal = vec![0f64; graph.nodes.len()];
    let mut noise = vec![0f64; graph.nodes.len()];
    for s in 0..samples {
        for (i, t) in calib.iter().enumerate() {
            let per = t.data.len() / t.shape[0];
            it.set_input_f32(i, &t.data[s * per..(s + 1) * per])
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        it.invoke().map_err(|e| anyhow::anyhow!("{e}"))?;
        for (k, n) in graph.nodes.iter().enumerate() {
            let Some(reference) = &float_acts[n.output] else {
                continue;
            };
            let per = reference.data.len() / reference.shape[0];
            let mut got = vec![0f32; per];
            it.output_to_f32(k, &mut got)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for (r, g) in reference.data[s * per..(s + 1) * per].iter().zip(&got) {
                signal[k] += (*r as f64).powi(2);
                noise[k] += (*r as f64 - *g as f64).powi(2);
            }
        }
    }
    Ok(graph
        .nodes
        .iter()
        .enumerate()
        .map(|(k, n)| LayerReport {
            name: n.name.clone(),
            op: n.op.name(),
            sqnr_db: if noise[k] == 0.0 {
                None
            } else {
                Some(10.0 * (signal[k] / noise[k]).log10())
            },
        })
        .collect())
}
