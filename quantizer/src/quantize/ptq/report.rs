//! The quantization report: each value's range and parameters, the nodes kept in float, the bias
//! shifts, and each layer's error measured on the runtime.

use crate::lower::Precision;
use anyhow::Result;
use serde::Serialize;

use super::Config;
use crate::ir::float_exec::Tensor;
use crate::ir::Graph;
use crate::quantize::observer::Histogram;
use crate::quantize::params::QParams;
use crate::quantize::sqnr::Sqnr;

/// One value's calibration result.
#[derive(Clone, Debug, Serialize)]
pub struct ValueReport {
    pub name: String,
    pub min: f32,
    pub max: f32,
    pub scale: f32,
    pub zero_point: i32,
    pub dtype: &'static str,
    /// The calibration values seen, binned over their smallest to largest (`ferrite report` draws
    /// it with the range chosen, `min` to `max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// What quantization did: ranges, which nodes stayed in float, bias shifts.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub config: Config,
    pub calibration_samples: usize,
    pub values: Vec<ValueReport>,
    pub float_nodes: Vec<String>,
    /// Nodes run with int16 activations (int16x8).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub int16_nodes: Vec<String>,
    /// Layer pairs and residual streams rescaled by cross-layer equalization.
    pub equalized_pairs: usize,
    /// Per layer, what learned weight rounding did (empty with rounding to nearest).
    pub rounding: Vec<super::LayerRounding>,
    /// Per corrected layer, the largest absolute bias change (in float units).
    pub bias_shift: Vec<(String, f32)>,
    /// Calibration samples (the first ones) the per-layer SQNR is measured on.
    pub layer_sqnr_samples: usize,
    /// Per node, in execution order, the SQNR of its output computed by the runtime (int8 outputs
    /// dequantized) against the float model's on the first `layer_sqnr_samples` calibration samples.
    pub layers: Vec<LayerReport>,
}

impl Report {
    /// The `k` int8 layers with the lowest SQNR, lowest first (identical outputs never count).
    pub fn worst_layers(&self, k: usize) -> Vec<&LayerReport> {
        let mut measured: Vec<&LayerReport> = self
            .layers
            .iter()
            .filter(|l| l.dtype == "int8" && l.sqnr_db.is_some())
            .collect();
        measured.sort_by(|a, b| a.sqnr_db.unwrap().total_cmp(&b.sqnr_db.unwrap()));
        measured.truncate(k);
        measured
    }
}

/// One node's quantization error.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub op: &'static str,
    /// The output's type in the quantized model: `int8`, `int16` for an int16x8 node, `int8>16`
    /// for an int8 layer with a wide output, or `float32` for a node kept in float.
    pub dtype: &'static str,
    /// `None` when the outputs are identical (infinite, see [`crate::quantize::sqnr`]).
    pub sqnr_db: Option<f64>,
}

/// Each quantized value's range and parameters: int8's, or for a wide output (`wide_scales`)
/// its int16 scale and the symmetric range it spans.
pub(super) fn value_reports(
    graph: &Graph,
    qp: &[Option<QParams>],
    wide_scales: &[Option<f32>],
    ranges: &[Option<(f32, f32)>],
    histograms: &[Option<Histogram>],
) -> Vec<ValueReport> {
    graph
        .values
        .iter()
        .enumerate()
        .filter_map(|(v, val)| {
            let p = qp[v]?;
            let (min, max) = ranges[v].unwrap_or((0.0, 0.0));
            let report = ValueReport {
                name: val.name.clone(),
                min,
                max,
                scale: p.scale,
                zero_point: p.zero_point,
                dtype: "int8",
                histogram: histograms[v].clone(),
            };
            Some(match wide_scales.get(v).copied().flatten() {
                Some(scale) => ValueReport {
                    min: -32768.0 * scale,
                    max: 32767.0 * scale,
                    scale,
                    zero_point: 0,
                    dtype: "int16",
                    ..report
                },
                None => report,
            })
        })
        .collect()
}

/// Names of the nodes that run in `precision`.
pub(super) fn nodes_in(graph: &Graph, node: &[Precision], precision: Precision) -> Vec<String> {
    graph
        .nodes
        .iter()
        .zip(node)
        .filter(|(_, &p)| p == precision)
        .map(|(n, _)| n.name.clone())
        .collect()
}

/// Calibration samples the per-layer SQNR is measured on.
pub(super) const SQNR_SAMPLES: usize = 64;

/// Runs the model that exposes every node's output (output `k` is node `k`) on the runtime for the
/// first `samples` calibration samples and compares each with the float executor's activation:
/// signal-to-quantization-noise ratio in dB.
pub(super) fn layer_sqnr(
    graph: &Graph,
    precision: &[Precision],
    wide_scales: &[Option<f32>],
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
    let mut sqnr = vec![Sqnr::default(); graph.nodes.len()];
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
            let r = &reference.data[s * per..(s + 1) * per];
            sqnr[k].extend(r.iter().zip(&got).map(|(r, g)| (*r as f64, *g as f64)));
        }
    }
    Ok(graph
        .nodes
        .iter()
        .enumerate()
        .map(|(k, n)| LayerReport {
            name: n.name.clone(),
            op: n.op.name(),
            dtype: match precision[k] {
                Precision::Float => "float32",
                Precision::Int16 => "int16",
                // A wide output, clipped where its function saturates: compared before the
                // function, its SQNR says little.
                Precision::Int8 if wide_scales.get(n.output).is_some_and(Option::is_some) => {
                    "int8>16"
                }
                Precision::Int8 => "int8",
            },
            sqnr_db: sqnr[k].db(),
        })
        .collect())
}
