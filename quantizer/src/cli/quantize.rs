//! `ferrite quantize MODEL.onnx --data CALIB.npy -o OUT.ferrite [--json[=FILE]]`: post-training int8
//! quantization. The JSON document is the quantization report (see the crate's README).
//!
//! With `--max-drop D --val-data X.npy --val-labels Y.npy` (or `--min-sqnr S --val-data X.npy`),
//! accuracy control:
//! layers are kept in float, the most sensitive first, until the validation metric holds
//! ([`crate::quantize::accuracy_control`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};

use super::folder_data::{self, InputSpec, PrepArgs};
use crate::builder::ArenaLayout;
use crate::ir;
use crate::npy::Array;
use crate::quantize::accuracy_control::{self, Target};
use crate::quantize::observer::RangeEstimator;
use crate::quantize::ptq::{self, BiasCorrection, Config, Preset, WeightRounding, WeightStorage};
use crate::quantize::sqnr::format_db;

/// Calibration samples used when `--subset-size` is not given.
const DEFAULT_SUBSET_SIZE: usize = 300;

/// Layers listed in the summary, lowest SQNR first.
const WORST_LAYERS_SHOWN: usize = 3;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PresetArg {
    /// Zero points fixed (0, or -128 for non-negative ranges).
    Performance,
    /// Asymmetric activations.
    Mixed,
}

impl From<PresetArg> for Preset {
    fn from(a: PresetArg) -> Self {
        match a {
            PresetArg::Performance => Preset::Performance,
            PresetArg::Mixed => Preset::Mixed,
        }
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum RangeArg {
    /// The smallest and largest value seen.
    Minmax,
    /// The mean over calibration batches of each batch's minimum and maximum.
    MeanMinmax,
    /// The 99.99th percentile (and 0.01th).
    Percentile,
    /// The least int8 error at the model's outputs, chosen among the least squared error ranges of
    /// the tensor's values, unweighted and weighted by each value's effect on the outputs.
    Mse,
    /// The least squared int8 error of the tensor's own values.
    TensorMse,
}

impl From<RangeArg> for RangeEstimator {
    fn from(a: RangeArg) -> Self {
        match a {
            RangeArg::Minmax => RangeEstimator::MinMax,
            RangeArg::MeanMinmax => RangeEstimator::MeanMinMax,
            RangeArg::Percentile => RangeEstimator::Percentile(99.99),
            RangeArg::Mse => RangeEstimator::Mse,
            RangeArg::TensorMse => RangeEstimator::TensorMse,
        }
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum RoundingArg {
    /// To the nearest int8 level.
    Nearest,
    /// Up or down, learned per layer on the calibration set (AdaRound; slower).
    Adaround,
}

impl From<RoundingArg> for WeightRounding {
    fn from(a: RoundingArg) -> Self {
        match a {
            RoundingArg::Nearest => WeightRounding::Nearest,
            RoundingArg::Adaround => WeightRounding::AdaRound,
        }
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BiasArg {
    /// Each layer on float inputs: float weights against quantized weights.
    Fast,
    /// Layer by layer on the quantized network's own activations.
    Full,
    /// No correction.
    Off,
}

impl From<BiasArg> for BiasCorrection {
    fn from(a: BiasArg) -> Self {
        match a {
            BiasArg::Fast => BiasCorrection::Fast,
            BiasArg::Full => BiasCorrection::Full,
            BiasArg::Off => BiasCorrection::Off,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Float model (.onnx).
    pub model: PathBuf,
    /// Calibration samples: a .npy array (float32, batch first, in the model's layout), or a folder
    /// of PNG/JPEG images or mono WAV files read in sorted order through the preprocessing below,
    /// which the output model then records (`ferrite run` applies it to such data).
    #[arg(long, visible_alias = "calib")]
    pub data: PathBuf,
    /// Output `.ferrite` file: written in full or not at all, through a symlink to its target, and
    /// directly to a device or FIFO such as `/dev/null`.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Activation quantization scheme.
    #[arg(long, value_enum, default_value = "mixed")]
    pub preset: PresetArg,
    /// Calibration samples used: the first N [default: 300]. A file with fewer samples than asked
    /// for is used whole, with a warning.
    #[arg(long)]
    pub subset_size: Option<usize>,
    /// Activation range estimator.
    #[arg(long, value_enum, default_value = "mse")]
    pub range: RangeArg,
    /// One weight scale per tensor instead of per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// How biases are corrected for the mean shift that weight quantization puts in each channel.
    #[arg(long, value_enum, default_value = "full")]
    pub bias_correction: BiasArg,
    /// Skip cross-layer equalization (on by default: rescales consecutive layers so that their
    /// per-channel weight ranges and the activation ranges between them balance).
    #[arg(long)]
    pub no_cle: bool,
    /// How weights are rounded to int8.
    #[arg(long, value_enum, default_value = "nearest")]
    pub weight_rounding: RoundingArg,
    /// Keep these nodes in float: node names, ONNX op types (e.g. `Softmax`), runtime op names, or
    /// `all`.
    #[arg(long, num_args = 1..)]
    pub ignore: Vec<String>,
    /// Run these nodes with int16 activations and int8 weights (TFLite's int16x8): node names, op
    /// types, or `all` (every node whose operator has an int16x8 kernel).
    #[arg(long, num_args = 1..)]
    pub int16: Vec<String>,
    /// Keep the output of a convolution or fully connected layer that only a function (Tanh,
    /// Sigmoid, GELU, SiLU, ...) reads in int8, as TFLite does. By default it stays in int16 (a
    /// wide output: twice its bytes in the arena) where int8's rounding of it would be the larger
    /// part of the function's output noise, so that the function's table reads it at int16's
    /// resolution
    #[arg(long)]
    pub int8_function_inputs: bool,
    /// How convolution and fully connected filters are stored: `sparse` leaves out their all-zero
    /// blocks where that is smaller (less flash for a model pruned before export), `dense` keeps
    /// every weight.
    #[arg(long, value_enum, default_value = "dense")]
    pub weight_storage: WeightStorage,
    /// Where operators' outputs go: `separate` (each in bytes of its own: the fewest
    /// instructions) or `in-place` (convolutions, poolings and element-wise operators over their
    /// dying input, in bands of rows, where that makes the arena smaller: the least RAM).
    #[arg(long, value_enum, default_value = "separate")]
    pub arena: ArenaLayout,
    /// Accuracy control: the largest top-1 drop from the float model, in points, on `--val-data`
    /// with `--val-labels`. Layers move to float, the most sensitive first, until it holds.
    #[arg(long)]
    pub max_drop: Option<f64>,
    /// Accuracy control without labels: the smallest output SQNR against the float model, in dB, on
    /// `--val-data`.
    #[arg(long, conflicts_with = "max_drop")]
    pub min_sqnr: Option<f64>,
    /// Validation samples for accuracy control (.npy or a folder, as `--data`; all are used). A
    /// folder of class folders gives the labels.
    #[arg(long, visible_alias = "val")]
    pub val_data: Option<PathBuf>,
    /// Integer class labels of `--val-data` (.npy), for `--max-drop` (or the class folders of a
    /// `--val-data` folder).
    #[arg(long, requires = "max_drop")]
    pub val_labels: Option<PathBuf>,
    /// With accuracy control, write the best model found and exit 0 even when the target is not met.
    #[arg(long)]
    pub best_effort: bool,
    /// The JSON document is the report: settings, ranges, scales, float nodes, bias shifts,
    /// per-layer SQNR, sizes and times (and the accuracy-control search).
    #[command(flatten)]
    pub json: super::JsonArgs,
    // Last: its help heading holds the options after it.
    #[command(flatten)]
    pub prep: PrepArgs,
}

/// The accuracy-control target and validation set the options ask for, read and checked.
fn control(args: &Args, graph: &ir::Graph) -> Result<Option<(Target, Array)>> {
    let target = match (args.max_drop, args.min_sqnr) {
        (None, None) => {
            ensure!(
                args.val_data.is_none(),
                "--val-data is for accuracy control: give --max-drop (with --val-labels) or --min-sqnr"
            );
            ensure!(
                !args.best_effort,
                "--best-effort is for accuracy control: give --max-drop or --min-sqnr"
            );
            return Ok(None);
        }
        (Some(d), _) => {
            ensure!(
                d.is_finite() && d >= 0.0,
                "--max-drop {d}: give a drop of at least 0 points"
            );
            Target::Top1 {
                labels: Vec::new(),
                max_drop: d,
            }
        }
        (None, Some(s)) => {
            ensure!(s.is_finite(), "--min-sqnr {s}: give a finite SQNR in dB");
            Target::Sqnr { min_db: s }
        }
    };
    let Some(val_path) = &args.val_data else {
        anyhow::bail!("accuracy control needs validation samples: give --val-data X.npy");
    };
    let val_data = folder_data::read_data(val_path, &args.prep, &InputSpec::of_graph(graph))?;
    let val = val_data.array;
    ir::io::check_input(graph, 0, &val)
        .with_context(|| format!("validation data {}", val_path.display()))?;
    let samples = val.shape.first().copied().unwrap_or(0);
    ensure!(
        samples > 0,
        "{}: the validation set is empty",
        val_path.display()
    );
    let values = val.to_f32();
    if let Some(at) = values.iter().position(|v| !v.is_finite()) {
        anyhow::bail!(
            "{}: validation sample {} has a non-finite value ({}); every value must be finite",
            val_path.display(),
            at / (values.len() / samples),
            values[at]
        );
    }
    let labels = folder_data::labels(args.val_labels.as_deref(), val_data.labels, samples)?;
    let target = match (target, labels) {
        (Target::Top1 { max_drop, .. }, Some(labels)) => {
            let classes = graph.values[graph.outputs[0]].shape[1..].iter().product();
            let path = args.val_labels.as_ref().unwrap_or(val_path);
            super::check_classes(&labels, classes, path, &args.model)?;
            Target::Top1 { labels, max_drop }
        }
        (Target::Top1 { .. }, None) => anyhow::bail!(
            "--max-drop needs validation labels: give --val-labels Y.npy, or a --val-data folder of class folders"
        ),
        (t, _) => t,
    };
    Ok(Some((target, val)))
}

/// A model quantized as the options ask, not yet written anywhere.
pub struct Quantized {
    /// The source model's bytes.
    pub source: Vec<u8>,
    pub quantized: ptq::Quantized,
    /// The accuracy-control search, when asked for; `search.met` false means the target was missed
    /// and `quantized` is the best model found.
    pub search: Option<accuracy_control::Search>,
    /// Seconds from `start` to the end of reading the model and the data.
    pub loaded: f64,
    /// How an image or WAV folder became the calibration samples (recorded in the model).
    pub preprocessing: Option<String>,
    /// The class folders' names, in label order (empty unless the data was class folders).
    pub classes: Vec<String>,
}

/// Quantizes `args.model` as `ferrite quantize` does, writing nothing: the calibration samples are
/// `calib`, or read from `args.data` when it is `None` (errors name `args.data` either way).
pub fn quantize(args: &Args, calib: Option<Array>, start: Instant) -> Result<Quantized> {
    let (source, graph) = super::float_onnx::load_one_input(&args.model)?;
    let control = control(args, &graph)?;
    // Samples given by the caller are taken as they are; a path may be an image or WAV folder.
    let (calib, preprocessing, classes) = match calib {
        Some(a) => (a, None, Vec::new()),
        None => {
            let data =
                folder_data::read_data(&args.data, &args.prep, &InputSpec::of_graph(&graph))?;
            let preprocessing = data.preprocessing.as_ref().map(|p| p.text());
            (data.array, preprocessing, data.classes)
        }
    };
    let subset_size = args.subset_size.unwrap_or(DEFAULT_SUBSET_SIZE);
    ensure!(subset_size > 0, "--subset-size must be at least 1");
    let x = ir::io::input_tensor(&graph, 0, &calib)
        .with_context(|| format!("calibration data {}", args.data.display()))?;
    ensure!(
        x.shape[0] > 0,
        "{}: the calibration set is empty",
        args.data.display()
    );
    if args.subset_size.is_some() && x.shape[0] < subset_size {
        eprintln!(
            "warning: --subset-size {subset_size}, but {} has {} sample(s): calibrating on all of them",
            args.data.display(),
            x.shape[0]
        );
    }
    let n = x.shape[0].min(subset_size);
    let x = x.slice_batch(0, n);
    // The sample index is the same in the file: the subset is its first samples.
    ptq::check_finite(std::slice::from_ref(&x)).with_context(|| args.data.display().to_string())?;
    let config = Config {
        preset: args.preset.into(),
        estimator: args.range.into(),
        per_tensor: args.per_tensor,
        bias_correction: args.bias_correction.into(),
        cle: !args.no_cle,
        weight_rounding: args.weight_rounding.into(),
        ignore: args.ignore.clone(),
        float_nodes: Vec::new(),
        int16: args.int16.clone(),
        int16_nodes: Vec::new(),
        wide_function_inputs: !args.int8_function_inputs,
        weight_storage: args.weight_storage,
        arena: args.arena,
        source_sha256: crate::sha256::digest(&source),
    };
    eprintln!("calibrating on {n} samples...");
    let loaded = start.elapsed().as_secs_f64();
    let (q, search) = match &control {
        None => {
            let bar = super::progress::ptq_stages();
            let q =
                ptq::quantize_observed(&graph, &[x], &config, |p| super::progress::ptq(&bar, p));
            bar.finish_and_clear();
            (q, None)
        }
        Some((target, val)) => {
            eprintln!("accuracy control on {} validation samples...", val.shape[0]);
            let threads = crate::runtime_exec::available_threads();
            match accuracy_control::quantize(&graph, &[x], &config, val, target, threads) {
                Ok(c) => (Ok(c.quantized), Some(c.search)),
                Err(e) => (Err(e), None),
            }
        }
    };
    let mut quantized = q.with_context(|| format!("quantizing {}", args.model.display()))?;
    // The model records how an image or WAV folder became its input.
    if let Some(text) = &preprocessing {
        quantized.built.bytes = folder_data::record(&quantized.built.bytes, text)?;
    }
    Ok(Quantized {
        source,
        quantized,
        search,
        loaded,
        preprocessing,
        classes,
    })
}

pub fn run(args: &Args) -> Result<()> {
    let start = Instant::now();
    let outputs: Vec<&Path> = [Some(args.output.as_path()), args.json.file()]
        .into_iter()
        .flatten()
        .collect();
    crate::output::check(&outputs)?;
    let Quantized {
        source,
        quantized: q,
        search,
        loaded,
        preprocessing,
        classes,
    } = quantize(args, None, start)?;
    if let Some(s) = &search {
        print_search(s);
    }
    let mut files = vec![(args.output.as_path(), q.built.bytes.clone())];
    let mut report = None;
    if args.json.wanted() {
        // Reading the model and the data, then each stage of `ptq::quantize`.
        let mut stages = serde_json::json!(q.seconds);
        stages["loading"] = loaded.into();
        let doc = serde_json::json!({
            "model": args.model.display().to_string(),
            "output": args.output.display().to_string(),
            "source_bytes": source.len(),
            "ferrite_bytes": q.built.bytes.len(),
            "arena_bytes": q.built.plan.arena_size,
            "arena_lower_bound": q.built.plan.lower_bound,
            "seconds": start.elapsed().as_secs_f64(),
            "stage_seconds": stages,
            "quantization": q.report,
            "preprocessing": preprocessing,
            "classes": classes,
            "accuracy_control": search,
        });
        report = Some(serde_json::to_string_pretty(&doc)?);
    }
    if let (Some(path), Some(text)) = (args.json.file(), &report) {
        files.push((path, text.clone().into_bytes()));
    }
    crate::output::write_all(&files)?;
    // The target missed: the best model and the report are written and shown, then the error.
    let missed = || -> Result<()> {
        match search.as_ref().filter(|s| !s.met) {
            Some(s) if !args.best_effort => anyhow::bail!(
                "{}: no model met the target, even with {} layer(s) in float; the best one found is written to {} (--best-effort exits 0)",
                args.model.display(),
                s.float_layers.len(),
                args.output.display()
            ),
            Some(_) => {
                eprintln!("warning: the target is not met; this is the best model found (--best-effort)");
                Ok(())
            }
            None => Ok(()),
        }
    };
    if let (true, Some(text)) = (args.json.stdout(), &report) {
        outln!("{text}");
        return missed();
    }
    outln!(
        "{} -> {}: {} bytes (source {} bytes), arena {} bytes (lower bound {}), {} float node(s), {:.2} s (calibration {:.2} s, bias correction {:.2} s)",
        args.model.display(),
        args.output.display(),
        q.built.bytes.len(),
        source.len(),
        q.built.plan.arena_size,
        q.built.plan.lower_bound,
        q.report.float_nodes.len(),
        start.elapsed().as_secs_f64(),
        q.seconds.calibration,
        q.seconds.bias_correction,
    );
    let worst = q.report.worst_layers(WORST_LAYERS_SHOWN);
    if !worst.is_empty() {
        outln!(
            "lowest per-layer SQNR (int8 runtime vs float, first {} calibration samples):",
            q.report.layer_sqnr_samples
        );
        for l in worst {
            outln!("  {:>6} dB  {:<18} {}", format_db(l.sqnr_db), l.op, l.name);
        }
    }
    missed()
}

/// The search, step by step, on stderr.
fn print_search(s: &accuracy_control::Search) {
    let show = |score: &accuracy_control::Score| {
        let top1 = score
            .top1
            .map_or(String::new(), |t| format!("top-1 {:.2}%, ", 100.0 * t));
        format!("{top1}SQNR {} dB", format_db(score.sqnr_db))
    };
    if let Some(f) = s.float_top1 {
        eprintln!(
            "float model: top-1 {:.2}% on {} samples",
            100.0 * f,
            s.validation_samples
        );
    }
    for step in &s.steps {
        let what = match (&step.moved, step.to) {
            (Some(name), Some(to)) => format!("+ `{name}` in {}", to.name()),
            _ => "int8".to_string(),
        };
        eprintln!(
            "  {:<40} {}; {} B, arena {} B, MACs int16 {} float {}, ~{} M4F instructions{}",
            what,
            show(&step.score),
            step.ferrite_bytes,
            step.arena_bytes,
            step.macs.int16,
            step.macs.float,
            step.estimated_m4f_instructions,
            if step.kept { "" } else { " (taken back)" }
        );
    }
    let target = match s.metric {
        "top1" => format!("a top-1 drop of at most {} points", s.target),
        _ => format!("an SQNR of at least {} dB", s.target),
    };
    eprintln!(
        "accuracy control: {} {target} with {} layer(s) in int16x8 and {} in float ({} and {} of {} MACs)",
        if s.met { "met" } else { "did not meet" },
        s.int16_layers.len(),
        s.float_layers.len(),
        s.chosen_macs.int16,
        s.chosen_macs.float,
        s.macs
    );
}
