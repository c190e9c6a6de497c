//! Post-training quantization of an optimized IR graph, one stage per module: calibration on the float
//! reference executor (`calibration`), int8 parameters (`parameters`), bias correction
//! (`bias_correction`), and the report (`report`); then every node is lowered to one runtime operator.
//!
//! Nodes in the ignored scope stay in f32 (the runtime's float kernels), with Quantize/Dequantize
//! inserted where int8 and f32 values meet (see [`crate::lower`]).

use anyhow::{ensure, Result};
use serde::Serialize;

use super::observer::RangeEstimator;
use super::params::QParams;
use crate::builder::{ArenaLayout, Built};
use crate::ir::float_exec::Tensor;
use crate::ir::{Graph, Node};
use crate::lower::{self, Precision, Quantization, Requantization};
pub use adaround::LayerRounding;
use bias_correction::correct_biases;
pub use calibration::check_finite;
use calibration::{calibrate, run_float, Calibration};
use parameters::{activation_params, quantize_weights};
pub(crate) use parameters::{fixed_output, keeps_input_quant};
use report::{layer_sqnr, SQNR_SAMPLES};
pub use report::{LayerReport, Report, ValueReport};

mod adaround;
mod bias_correction;
mod calibration;
mod parameters;
mod range_choice;
mod report;
mod sensitivity;

/// Activation quantization scheme. Serialized as `ferrite quantize --preset` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Zero points fixed: 0 for signed ranges, -128 for non-negative ones (one-sided ranges keep the
    /// full resolution).
    Performance,
    /// Asymmetric activations: any zero point.
    Mixed,
}

/// How biases are corrected for the error that weight quantization shifts into each channel's mean.
/// Serialized as `ferrite quantize --bias-correction` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BiasCorrection {
    Off,
    /// Each layer on float inputs: float weights vs quantized weights.
    Fast,
    /// Layer by layer on the already-quantized network's activations.
    Full,
}

/// How weights are rounded to their int8 levels. Serialized as `ferrite quantize --weight-rounding`
/// spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightRounding {
    /// To the nearest level.
    Nearest,
    /// Up or down, learned per layer on the calibration set (`adaround`).
    #[serde(rename = "adaround")]
    AdaRound,
}

/// Post-training quantization settings.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub preset: Preset,
    /// `range` in JSON, as the option `--range`.
    #[serde(rename = "range")]
    pub estimator: RangeEstimator,
    /// One weight scale per tensor instead of per output channel.
    pub per_tensor: bool,
    pub bias_correction: BiasCorrection,
    /// Cross-layer equalization before calibration (`quantize::cle`).
    pub cle: bool,
    pub weight_rounding: WeightRounding,
    /// Node names, ONNX op types or runtime op names kept in float.
    pub ignore: Vec<String>,
    /// Node names kept in float, matched exactly (accuracy control's moves).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub float_nodes: Vec<String>,
    /// Node names, ONNX op types or runtime op names run with int16 activations (int16x8), or
    /// `all` for every node whose operator runs int16x8 on calibrated ranges
    /// (`Op::int16_from_calibration`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub int16: Vec<String>,
    /// Node names run in int16x8, matched exactly (accuracy control's moves).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub int16_nodes: Vec<String>,
    /// Keep the output of an int8 layer that only a function table (Tanh, Sigmoid, GELU, ...)
    /// reads in int16 where int8's rounding of it would be the larger part of the function's
    /// output noise (a wide output); off: in int8.
    pub wide_function_inputs: bool,
    /// How the int8 filters of convolutions and fully connected layers are stored.
    pub weight_storage: WeightStorage,
    /// Whether operators may run in place over their dying input.
    pub arena: ArenaLayout,
    /// SHA-256 of the source model file, recorded in the output's metadata.
    #[serde(skip)]
    pub source_sha256: [u8; 32],
}

/// How a Conv2d's or FullyConnected's int8 filter is stored in the `.ferrite` file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WeightStorage {
    /// Every weight, zeros included (the fastest kernels on cores with `SMLAD`).
    #[default]
    Dense,
    /// Without its all-zero blocks (CONV_2D_SPARSE, FULLY_CONNECTED_SPARSE) wherever that takes
    /// fewer bytes: the flash of a pruned model.
    Sparse,
}

impl std::fmt::Display for WeightStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WeightStorage::Dense => "dense",
            WeightStorage::Sparse => "sparse",
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preset: Preset::Mixed,
            estimator: RangeEstimator::Mse,
            per_tensor: false,
            bias_correction: BiasCorrection::Full,
            cle: true,
            weight_rounding: WeightRounding::Nearest,
            ignore: Vec::new(),
            float_nodes: Vec::new(),
            int16: Vec::new(),
            int16_nodes: Vec::new(),
            wide_function_inputs: true,
            weight_storage: WeightStorage::Dense,
            arena: ArenaLayout::Separate,
            source_sha256: [0; 32],
        }
    }
}

/// A quantized model.
pub struct Quantized {
    pub built: Built,
    pub report: Report,
    pub seconds: StageSeconds,
    /// The decisions behind `built`, in the IR (quantization-aware training starts from them).
    pub decided: Decided,
}

/// What post-training quantization decided, before lowering: [`build`] turns it into the model.
#[derive(Clone, Debug)]
pub struct Decided {
    /// The graph as lowered: equalized, biases corrected.
    pub graph: Graph,
    /// Per node: kept in float (`--ignore`).
    pub float_node: Vec<bool>,
    /// Per node: run with int16 activations (int16x8); never with `float_node`.
    pub int16_node: Vec<bool>,
    /// Per value: int8 scale and zero point.
    pub params: Vec<Option<QParams>>,
    /// Per value: the int16 scale (zero point 0), for values int16x8 nodes write or read, and
    /// for wide values.
    pub int16_scales: Vec<Option<f32>>,
    /// Per value (may be shorter): the int16 scale of a wide output, int16 between an int8 layer
    /// and the function table that reads it (`None`: not wide).
    pub wide_scales: Vec<Option<f32>>,
    /// Per node: int8 weights and their scales.
    pub weights: Vec<Option<(Vec<i8>, Vec<f32>)>>,
    pub source_sha256: [u8; 32],
    pub weight_storage: WeightStorage,
    pub arena: ArenaLayout,
}

/// The `.ferrite` model of `decided` (biases quantized from the graph's with the input and weight
/// scales).
pub fn build(decided: &Decided) -> Result<Built> {
    lower(decided, false, decided.weight_storage, decided.arena)
}

/// Wall time of each stage of [`quantize`], in seconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct StageSeconds {
    /// The float runs (before and, when a pair was rescaled, after equalization) and the range search.
    pub calibration: f64,
    pub equalization: f64,
    /// The range choice, and the int8 parameters of the activations and the weights.
    pub parameters: f64,
    /// Learned weight rounding (`--weight-rounding adaround`; 0 otherwise).
    pub weight_rounding: f64,
    pub bias_correction: f64,
    /// Lowering and building (the model and the build exposing every layer).
    pub lowering: f64,
    pub layer_sqnr: f64,
}

/// Whether `node` matches one of `patterns`: `all`, its name, its source operator type or its
/// runtime operator name.
fn ignored(node: &Node, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        p == "all"
            || node.name == *p
            || node.source_op.eq_ignore_ascii_case(p)
            || node.op.name().eq_ignore_ascii_case(p)
    })
}

/// Per node, whether it runs in int16x8: matched by `--int16` (`all`, a name or an operator type;
/// `all` and operator types take only the nodes whose operator runs int16x8 on calibrated ranges,
/// `Op::int16_from_calibration`) or by
/// accuracy control's exact names, and not kept in float.
fn int16_nodes(graph: &Graph, config: &Config, float_node: &[bool]) -> Result<Vec<bool>> {
    for p in config.int16.iter().filter(|p| *p != "all") {
        let hit = graph
            .nodes
            .iter()
            .any(|n| ignored(n, std::slice::from_ref(p)));
        ensure!(hit, "--int16 {p}: no node has that name or operator type");
        if let Some(n) = graph.nodes.iter().find(|n| n.name == *p) {
            ensure!(
                n.op.int16_from_calibration(),
                "--int16 {p}: {} stays int8 (the runtime's int16x8 kernel has none, or needs its inputs quantized as its output, which calibrated int16 ranges are not)",
                n.op.name()
            );
        }
    }
    Ok(graph
        .nodes
        .iter()
        .zip(float_node)
        .map(|(n, &float)| {
            let chosen = ignored(n, &config.int16) || config.int16_nodes.contains(&n.name);
            !float && chosen && n.op.int16_from_calibration()
        })
        .collect())
}

/// Quantizes `graph` (already optimized) with calibration inputs (NHWC tensors, batch first).
pub fn quantize(graph: &Graph, calib: &[Tensor], config: &Config) -> Result<Quantized> {
    quantize_observed(graph, calib, config, |_| {})
}

/// Where [`quantize_observed`] is: stage [`STAGES`]`[stage]` (past the last: finished), and within
/// it `done` of `total` nodes (`total` 0 for a stage that does not count them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub stage: usize,
    pub done: usize,
    pub total: usize,
}

/// The stages of [`quantize`], in order, as [`quantize_observed`] reports them.
pub const STAGES: [&str; 7] = [
    "calibration",
    "equalization",
    "parameters",
    "weight rounding",
    "bias correction",
    "lowering",
    "layer SQNR",
];

/// [`quantize`], telling `on_progress` as each stage starts and as calibration and bias correction
/// get through the graph's nodes (for a progress display).
pub fn quantize_observed(
    graph: &Graph,
    calib: &[Tensor],
    config: &Config,
    on_progress: impl FnMut(Progress),
) -> Result<Quantized> {
    let on_progress = std::cell::RefCell::new(on_progress);
    let report = |stage: usize, done: usize, total: usize| {
        (on_progress.borrow_mut())(Progress { stage, done, total })
    };
    let calibrated = calibrate_observed(graph, calib, config, &report)?;
    decide_observed(&calibrated, calib, config, &report)
}

/// What calibration gives, the same for every choice of layers kept in float or run in int16x8
/// (accuracy control calibrates once and decides many times).
pub struct Calibrated {
    /// The graph after cross-layer equalization.
    graph: Graph,
    float_acts: Vec<Option<Tensor>>,
    ranges: Vec<Option<(f32, f32)>>,
    candidates: Vec<Vec<(f32, f32)>>,
    histograms: Vec<Option<super::observer::Histogram>>,
    equalized_pairs: usize,
    samples: usize,
    calibration_seconds: f64,
    equalization_seconds: f64,
}

/// The calibration stages of [`quantize`]: the float activations of every value, cross-layer
/// equalization (function-preserving) where their statistics predict a gain, the activations
/// again, then each value's range and candidates. `config`'s estimator, preset and `cle` count;
/// its ignored and int16 layers do not.
pub fn calibrate_graph(graph: &Graph, calib: &[Tensor], config: &Config) -> Result<Calibrated> {
    calibrate_observed(graph, calib, config, &|_, _, _| {})
}

fn calibrate_observed(
    graph: &Graph,
    calib: &[Tensor],
    config: &Config,
    report: &dyn Fn(usize, usize, usize),
) -> Result<Calibrated> {
    let nodes = graph.nodes.len();
    let node_done = |stage: usize| move |i: usize| report(stage, i + 1, nodes);
    let samples = calib.first().map_or(0, |t| t.shape[0]);
    ensure!(samples > 0, "the calibration set is empty");
    check_finite(calib)?;
    let mut graph = graph.clone();
    report(0, 0, 0);
    let clock = std::time::Instant::now();
    let mut float_acts = run_float(&graph, calib, node_done(0))?;
    let mut calibration_seconds = clock.elapsed().as_secs_f64();
    report(1, 0, 0);
    let clock = std::time::Instant::now();
    let equalized_pairs = if config.cle {
        let stats = |v: usize| {
            let t = float_acts[v].as_ref()?;
            Some(crate::quantize::cle::channel_stats(
                &t.data,
                *t.shape.last()?,
            ))
        };
        crate::quantize::cle::equalize(&mut graph, &stats)
    } else {
        0
    };
    let equalization_seconds = clock.elapsed().as_secs_f64();
    report(0, 0, 0);
    let clock = std::time::Instant::now();
    if equalized_pairs > 0 {
        float_acts = run_float(&graph, calib, node_done(0))?;
    }
    let Calibration {
        float_acts,
        ranges,
        candidates,
        histograms,
    } = calibrate(&graph, float_acts, samples, config)?;
    calibration_seconds += clock.elapsed().as_secs_f64();
    Ok(Calibrated {
        graph,
        float_acts,
        ranges,
        candidates,
        histograms,
        equalized_pairs,
        samples,
        calibration_seconds,
        equalization_seconds,
    })
}

/// The stages of [`quantize`] after calibration, for the layers `config` keeps in float or runs in
/// int16x8: `calibrated` must come from [`calibrate_graph`] on the same graph, samples and
/// estimator settings.
pub fn quantize_calibrated(
    calibrated: &Calibrated,
    calib: &[Tensor],
    config: &Config,
) -> Result<Quantized> {
    decide_observed(calibrated, calib, config, &|_, _, _| {})
}

fn decide_observed(
    calibrated: &Calibrated,
    calib: &[Tensor],
    config: &Config,
    report: &dyn Fn(usize, usize, usize),
) -> Result<Quantized> {
    let Calibrated {
        graph,
        float_acts,
        ranges,
        candidates,
        histograms,
        equalized_pairs,
        samples,
        ..
    } = calibrated;
    let (equalized_pairs, samples) = (*equalized_pairs, *samples);
    let mut graph = graph.clone();
    let mut ranges = ranges.clone();
    let nodes = graph.nodes.len();
    let node_done = |stage: usize| move |i: usize| report(stage, i + 1, nodes);
    // Operators without an f32 form (LOOKUP) stay int8 whatever `--ignore all` or an operator
    // type asks; naming such a node is an error.
    let float_node: Vec<bool> = graph
        .nodes
        .iter()
        .map(|n| {
            n.op.has_float() && (ignored(n, &config.ignore) || config.float_nodes.contains(&n.name))
        })
        .collect();
    for p in config.ignore.iter().filter(|p| *p != "all") {
        let hit = graph
            .nodes
            .iter()
            .any(|n| ignored(n, std::slice::from_ref(p)));
        ensure!(hit, "--ignore {p}: no node has that name or operator type");
        if let Some(n) = graph.nodes.iter().find(|n| n.name == *p) {
            ensure!(
                n.op.has_float(),
                "--ignore {p}: the runtime has no f32 kernel for {} ({} runs in int8 only)",
                n.source_op,
                n.op.name()
            );
        }
    }
    let int16_node = int16_nodes(&graph, config, &float_node)?;
    // Weight rounding leaves int16x8 nodes as it leaves float ones; range choice and bias
    // correction simulate them with int8 weights and unrounded activations (their rounding is 256
    // times finer than int8's).
    let wide_node: Vec<bool> = float_node
        .iter()
        .zip(&int16_node)
        .map(|(&f, &w)| f || w)
        .collect();
    let int8_node: Vec<bool> = wide_node.iter().map(|&w| !w).collect();
    let wide_value = if config.wide_function_inputs {
        let symmetric = config.preset == Preset::Performance;
        parameters::wide_values(&graph, &int8_node, &ranges, float_acts, symmetric)
    } else {
        vec![false; graph.values.len()]
    };

    let mut seconds = StageSeconds {
        calibration: calibrated.calibration_seconds,
        equalization: calibrated.equalization_seconds,
        ..StageSeconds::default()
    };
    let mut clock = std::time::Instant::now();
    // Ends a stage and starts stage `next`.
    let mut lap = |stage: &mut f64, next: usize| {
        *stage = clock.elapsed().as_secs_f64();
        clock = std::time::Instant::now();
        report(next, 0, 0);
    };
    lap(&mut 0.0, 2);

    // 2. The weights, each activation's range among its candidates, and its int8 parameters.
    let mut weights: Vec<Option<(Vec<i8>, Vec<f32>)>> = graph
        .nodes
        .iter()
        .map(|n| quantize_weights(&n.op, config.per_tensor))
        .collect();
    range_choice::choose_ranges(
        &graph,
        &float_node,
        &int16_node,
        &wide_value,
        &weights,
        float_acts,
        samples,
        config,
        candidates,
        &mut ranges,
    )?;
    let qp = activation_params(&graph, &ranges, config.preset == Preset::Performance);
    lap(&mut seconds.parameters, 3);

    let rounding = match config.weight_rounding {
        WeightRounding::Nearest => Vec::new(),
        WeightRounding::AdaRound => {
            adaround::adaround(&graph, &wide_node, float_acts, &qp, &mut weights)?
        }
    };
    lap(&mut seconds.weight_rounding, 4);

    // 3. Bias correction.
    let bias_shift = correct_biases(
        &mut graph,
        config.bias_correction,
        &float_node,
        &int16_node,
        &wide_value,
        &qp,
        &weights,
        float_acts,
        samples,
        node_done(4),
    )?;
    lap(&mut seconds.bias_correction, 5);

    // 4. Lowering, and each layer's output compared with the float model's on the runtime itself.
    let int16_scales = parameters::int16_scales(&graph, float_acts);
    let wide_scales = parameters::wide_scales(&graph, &wide_value, float_acts, &qp, &weights);
    let decided = Decided {
        graph,
        float_node,
        int16_node,
        params: qp,
        int16_scales,
        wide_scales,
        weights,
        source_sha256: config.source_sha256,
        weight_storage: config.weight_storage,
        arena: config.arena,
    };
    let built = lower(&decided, false, config.weight_storage, config.arena)?;
    let debug = lower(&decided, true, WeightStorage::Dense, ArenaLayout::Separate)?;
    lap(&mut seconds.lowering, 6);
    let layer_sqnr_samples = samples.min(SQNR_SAMPLES);
    let precision = decided.node_precision();
    let layers = layer_sqnr(
        &decided.graph,
        &precision,
        &decided.wide_scales,
        &debug.bytes,
        calib,
        float_acts,
        layer_sqnr_samples,
    )?;
    lap(&mut seconds.layer_sqnr, STAGES.len());
    let values = report::value_reports(
        &decided.graph,
        &decided.params,
        &decided.wide_scales,
        &ranges,
        histograms,
    );
    let float_nodes = report::nodes_in(&decided.graph, &precision, Precision::Float);
    let int16_nodes = report::nodes_in(&decided.graph, &precision, Precision::Int16);
    Ok(Quantized {
        built,
        seconds,
        decided,
        report: Report {
            config: config.clone(),
            calibration_samples: samples,
            values,
            float_nodes,
            int16_nodes,
            bias_shift,
            equalized_pairs,
            rounding,
            layer_sqnr_samples,
            layers,
        },
    })
}

impl Decided {
    /// Per node: the type it runs in.
    pub fn node_precision(&self) -> Vec<Precision> {
        self.float_node
            .iter()
            .zip(&self.int16_node)
            .map(|(&float, &int16)| match (float, int16) {
                (true, _) => Precision::Float,
                (false, true) => Precision::Int16,
                (false, false) => Precision::Int8,
            })
            .collect()
    }
}

/// Builds the `.ferrite` model of `d`; `expose_all`: every node's output is a model output.
fn lower(
    d: &Decided,
    expose_all: bool,
    weight_storage: WeightStorage,
    arena: ArenaLayout,
) -> Result<Built> {
    let node_precision = d.node_precision();
    let mut precision = lower::value_precisions(&d.graph, &node_precision);
    // A wide value stays so while its layer and its function run in int8 (accuracy control may
    // have moved either since).
    let int8_node: Vec<bool> = node_precision
        .iter()
        .map(|&p| p == Precision::Int8)
        .collect();
    let wide_scale = |v: usize| d.wide_scales.get(v).copied().flatten();
    let wide: Vec<bool> = parameters::wide_candidates(&d.graph, &int8_node)
        .into_iter()
        .enumerate()
        .map(|(v, w)| w && wide_scale(v).is_some())
        .collect();
    // Wide values take their own int16 scales (an int16x8 reading of the same value keeps the
    // whole range).
    let mut int16_scales = d.int16_scales.clone();
    int16_scales.resize(d.graph.values.len().max(int16_scales.len()), None);
    for v in (0..wide.len()).filter(|&v| wide[v]) {
        precision[v] = Precision::Int16;
        int16_scales[v] = wide_scale(v);
    }
    lower::lower(
        &d.graph,
        &Quantization {
            precision: &precision,
            params: &d.params,
            int16_scales: &int16_scales,
            wide: &wide,
            weights: &d.weights,
            biases: &[],
        },
        lower::Options {
            source_sha256: d.source_sha256,
            expose_all,
            requantization: Requantization::TfLite,
            sparse_weights: weight_storage == WeightStorage::Sparse,
            arena,
            tflite_functions: false,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ferrite's own int8 Tanh and Sigmoid run by table (LOOKUP); in int16x8 they keep the
    /// runtime's int16 kernels.
    #[test]
    fn int8_tanh_and_sigmoid_lower_to_tables() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let g = crate::cli::float_onnx::load(&dir.join("ops/ops_opset17.onnx")).unwrap();
        let x = crate::npy::Array::read(&dir.join("ops/ops_opset17_x.npy")).unwrap();
        let x = crate::ir::io::input_tensor(&g, 0, &x).unwrap();
        let ops = |config: &Config| {
            let q = quantize(&g, std::slice::from_ref(&x), config).unwrap();
            let m = ferrite_runtime::Model::from_bytes(&q.built.bytes).unwrap();
            m.ops().map(|o| o.name()).collect::<Vec<_>>()
        };
        let int8 = ops(&Config::default());
        assert!(
            !int8.iter().any(|&o| o == "TANH" || o == "LOGISTIC"),
            "{int8:?}"
        );
        assert_eq!(
            int8.iter().filter(|&&o| o == "LOOKUP").count(),
            2,
            "{int8:?}"
        );
        let int16 = ops(&Config {
            int16: vec!["Tanh".into(), "Sigmoid".into()],
            ..Config::default()
        });
        assert!(
            int16.contains(&"TANH") && int16.contains(&"LOGISTIC"),
            "{int16:?}"
        );
        assert!(!int16.contains(&"LOOKUP"), "{int16:?}");
    }

    /// Every layer with a wide output requantizes by a factor of at most 1 (no left shift of its
    /// accumulators), even before a step function (Sign), whose int8 output changes at one input
    /// only; `wide_function_inputs` off leaves no wide output.
    #[test]
    fn wide_outputs_never_shift_accumulators_left() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let mut g = crate::cli::float_onnx::load(&dir.join("ops/wide.onnx")).unwrap();
        let x = crate::npy::Array::read(&dir.join("ops/wide_x.npy")).unwrap();
        let x = crate::ir::io::input_tensor(&g, 0, &x).unwrap();
        let first = g
            .nodes
            .iter()
            .position(|n| n.op == crate::ir::Op::Tanh)
            .unwrap();
        g.nodes[first].op = crate::ir::Op::Lookup {
            f: crate::ops::UnaryFn::Sign,
        };
        let wide_shifts = |config: &Config| {
            let q = quantize(&g, std::slice::from_ref(&x), config).unwrap();
            let m = ferrite_runtime::Model::from_bytes(&q.built.bytes).unwrap();
            let mut shifts = Vec::new();
            for op in m.ops() {
                let (output, shift) = match op {
                    ferrite_runtime::ops::Op::Conv2d(c)
                    | ferrite_runtime::ops::Op::DepthwiseConv2d(c) => (c.output, c.shift),
                    ferrite_runtime::ops::Op::FullyConnected(f) => (f.output, f.shift),
                    _ => continue,
                };
                if output.dtype == ferrite_runtime::format::DType::I16 {
                    let s = ferrite_runtime::kernels::LeI32::new(shift).unwrap();
                    shifts.push((0..s.len()).map(|c| s.get(c)).max().unwrap());
                }
            }
            shifts
        };
        let shifts = wide_shifts(&Config::default());
        assert_eq!(shifts.len(), 4, "{shifts:?}");
        assert!(shifts.iter().all(|&s| s <= 0), "{shifts:?}");
        let narrow = wide_shifts(&Config {
            wide_function_inputs: false,
            ..Config::default()
        });
        assert!(narrow.is_empty(), "{narrow:?}");
    }

    /// The observer hears every stage in order, and calibration and bias correction count the
    /// graph's nodes up to all of them.
    #[test]
    fn progress_counts_calibration_and_bias_correction_nodes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let g = crate::cli::float_onnx::load(&dir.join("mlp_digits/model.onnx")).unwrap();
        let x = crate::npy::Array::read(&dir.join("data/digits_calib_x.npy")).unwrap();
        let x = crate::ir::io::input_tensor(&g, 0, &x)
            .unwrap()
            .slice_batch(0, 32);
        let config = Config {
            bias_correction: BiasCorrection::Full,
            ..Config::default()
        };
        let mut heard = Vec::new();
        quantize_observed(&g, &[x], &config, |p| heard.push(p)).unwrap();
        let nodes = g.nodes.len();
        let counted = |stage: usize| {
            heard
                .iter()
                .filter(|p| p.stage == stage && p.total > 0)
                .map(|p| (p.done, p.total))
                .collect::<Vec<_>>()
        };
        let all: Vec<_> = (1..=nodes).map(|d| (d, nodes)).collect();
        assert_eq!(counted(0)[..nodes], all[..]);
        assert_eq!(counted(4), all);
        let stages: Vec<usize> = heard.iter().map(|p| p.stage).collect();
        assert!(
            stages.windows(2).all(|w| w[0] <= w[1] || w[1] == 0),
            "{stages:?}"
        );
        assert_eq!(heard.last().map(|p| p.stage), Some(STAGES.len()));
    }
}
