//! `ferrite train MODEL.onnx --data X.npy [--labels Y.npy] -o OUT.ferrite`: quantization-aware
//! training, starting from the default post-training quantization (calibrated on the first samples of
//! `--data`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::folder_data::{self, InputSpec, PrepArgs};
use crate::builder::ArenaLayout;
use crate::ir;
use crate::quantize::ptq::{self, Config as PtqConfig, WeightStorage};
use crate::train::filters::{self, Allocation, Criterion, FilterPruning};
use crate::train::sparsity::{self, Schedule, Scope, Sparsity};
use crate::train::{self, optim, Progress, Supervision, Validation};
use indicatif::ProgressBar;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum OptimizerArg {
    /// Adam (beta1 0.9, beta2 0.999).
    Adam,
    /// SGD with momentum 0.9.
    Sgd,
}

impl From<OptimizerArg> for optim::Kind {
    fn from(a: OptimizerArg) -> Self {
        match a {
            OptimizerArg::Adam => optim::Kind::Adam,
            OptimizerArg::Sgd => optim::Kind::Sgd,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Float model (.onnx).
    pub model: PathBuf,
    /// Training samples (.npy, float32, batch first, in the model's layout); the first 300 also
    /// calibrate the post-training quantization training starts from. Also a folder of PNG/JPEG
    /// images or mono WAV files read in sorted order through the preprocessing below, which the
    /// output model then records; a folder of class folders gives the labels.
    #[arg(long)]
    pub data: PathBuf,
    /// Class ids (.npy, integers), one per training sample: cross-entropy (or the class folders of a
    /// --data folder). Without them the float model's outputs are the targets (distillation; also
    /// with --distill).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Train towards the float model's outputs even when --labels are given (they then only score
    /// the validation set). Usually the better recipe for pruning (BENCHMARKS.md).
    #[arg(long)]
    pub distill: bool,
    /// With --labels: the weight, in [0, 1], of the float model's softened probabilities against
    /// the labels' cross-entropy (knowledge distillation); 0 trains on the labels alone
    #[arg(long, default_value_t = train::DEFAULT_LABEL_DISTILLATION.weight)]
    pub distill_weight: f32,
    /// With --labels: the temperature softening the float model's and the trained model's
    /// probabilities in that blend
    #[arg(long, default_value_t = train::DEFAULT_LABEL_DISTILLATION.temperature)]
    pub temperature: f32,
    /// Skip cross-layer equalization in the post-training quantization training starts from (as
    /// `ferrite quantize --no-cle`)
    #[arg(long)]
    pub no_cle: bool,
    /// One weight scale per tensor instead of per output channel, in the post-training quantization
    /// training starts from and in training (as `ferrite quantize --per-tensor`)
    #[arg(long)]
    pub per_tensor: bool,
    /// Keep the output of a layer that only a function (Tanh, Sigmoid, GELU, ...) reads in int8 (as
    /// `ferrite quantize --int8-function-inputs`). By default post-training quantization keeps such
    /// outputs in int16 where that lowers the function's noise, and training keeps them so (not
    /// with `--weight-storage sparse`, whose kernels write int8, nor with `--export-onnx`, whose
    /// Q/DQ model quantizes in int8)
    #[arg(long)]
    pub int8_function_inputs: bool,
    /// Output `.ferrite` file: written in full or not at all, through a symlink to its target, and
    /// directly to a device or FIFO such as `/dev/null`.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Passes over the training samples.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Samples per training step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Learning rate at the first step (cosine decay to 0) [default: 1e-5 with Adam, 1e-4 with SGD;
    /// with --sparsity or --prune-filters 1e-3 and 1e-2].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning rate of the quantization scales, in the log domain: about the fraction of itself a
    /// scale may move per step (same schedule; 0 freezes them) [default: 3e-2 with Adam, 30 with SGD].
    #[arg(long)]
    pub scale_lr: Option<f64>,
    /// Update rule of weights, biases and scales.
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerArg,
    /// Seeds the shuffling: the same seed and data give the same model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Validation samples: after each epoch the int8 model is scored on them and the best epoch is
    /// kept (top-1 with --val-labels, output SQNR against the float model without).
    #[arg(long, visible_alias = "val")]
    pub val_data: Option<PathBuf>,
    /// Class ids of the validation samples (.npy, integers; or the class folders of a --val-data
    /// folder).
    #[arg(long, requires = "val_data")]
    pub val_labels: Option<PathBuf>,
    /// Without --val-data, this fraction of --data (its last samples, with their labels) is held
    /// out of training as the validation set; 0 trains on everything and keeps the last epoch.
    #[arg(long, default_value_t = DEFAULT_VAL_SPLIT, value_parser = split_fraction)]
    pub val_split: f64,
    /// The JSON document is the training report: settings, per-epoch loss, score and time.
    #[command(flatten)]
    pub json: super::JsonArgs,
    /// Fraction of the pruned layers' weights to set to zero by magnitude during training, in
    /// [0, 1) (shared among them as `--sparsity-scope` says). The first and last weighted layers and
    /// depthwise layers stay dense unless `--sparsity-all-layers`.
    #[arg(long, value_parser = sparsity_fraction)]
    pub sparsity: Option<f64>,
    /// How the sparsity rises: `polynomial` reaches it after two thirds of the steps (Zhu & Gupta
    /// 2017), `constant` prunes to it at the first step.
    #[arg(long, value_enum, default_value = "polynomial", requires = "sparsity")]
    pub sparsity_schedule: Schedule,
    /// How the zeros are shared among the pruned layers: `sensitivity` takes each where it moves the
    /// float model's outputs least (measured layer by layer before training; the best top-1, but
    /// the layers of many output positions keep more weights, so sparse kernels skip fewer
    /// multiply-accumulates); `layer` gives every layer the sparsity (the most skipped); `global`
    /// ranks all their weights by one magnitude threshold.
    #[arg(long, value_enum, default_value = "sensitivity", requires = "sparsity")]
    pub sparsity_scope: Scope,
    /// Prune the first and last weighted layers and depthwise layers too.
    #[arg(long, requires = "sparsity")]
    pub sparsity_all_layers: bool,
    /// Prune blocks of this many consecutive weights along the input channels, ranked by their mean
    /// square (1: single weights).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64), requires = "sparsity")]
    pub sparsity_block: u16,
    /// How convolution and fully connected filters are stored: `sparse` leaves out their all-zero
    /// blocks where that is smaller (less flash for a pruned model; fewer instructions on Cortex-M4
    /// with `--sparsity-block 4`, more with single weights), `dense` keeps every weight.
    #[arg(long, value_enum, default_value = "dense")]
    pub weight_storage: WeightStorage,
    /// Where operators' outputs go: `separate` (each in bytes of its own: the fewest
    /// instructions) or `in-place` (convolutions, poolings and element-wise operators over their
    /// dying input, in bands of rows, where that makes the arena smaller: the least RAM).
    #[arg(long, value_enum, default_value = "separate")]
    pub arena: ArenaLayout,
    /// Keep this node dense (its name in the ONNX model; repeatable).
    #[arg(long, value_name = "NODE", requires = "sparsity")]
    pub sparsity_skip: Vec<String>,
    /// Fraction of the output channels of each convolution and fully connected layer to remove, in
    /// [0, 1): the model becomes smaller and dense (fewer MACs, a smaller arena). During the
    /// --epochs the lowest-ranked channels' filters are zeroed on the polynomial schedule; then the
    /// channels are removed, the smaller model is quantized again and trained for
    /// --recovery-epochs. Channels joined by an Add go from all their producers together;
    /// channels that reach the output stay.
    #[arg(long, value_parser = sparsity_fraction, conflicts_with = "sparsity")]
    pub prune_filters: Option<f64>,
    /// How the channels to remove are ranked: by their filter's L1 or L2 norm (smallest first), or
    /// by their distance to the layer's other filters (nearest the geometric median first).
    #[arg(long, value_enum, default_value = "l2", requires = "prune_filters")]
    pub prune_criterion: Criterion,
    /// `sensitivity`: the ratio of the channels in all, each from the layer where removing it
    /// moves the float model's outputs least (at most twice the ratio of any layer); `uniform`:
    /// every layer loses the ratio of its channels.
    #[arg(
        long,
        value_enum,
        default_value = "sensitivity",
        requires = "prune_filters"
    )]
    pub prune_allocation: Allocation,
    /// Keep every output channel of this node (its name in the ONNX model; repeatable).
    #[arg(long, value_name = "NODE", requires = "prune_filters")]
    pub prune_filters_skip: Vec<String>,
    /// Quantization-aware training of the model once its channels are removed (at the default
    /// learning rates of training without pruning).
    #[arg(long, default_value_t = 2, requires = "prune_filters")]
    pub recovery_epochs: usize,
    /// Also write the fine-tuned float model as ONNX to this path, and the trained int8 model as
    /// ONNX Q/DQ beside it (`NAME.qdq.onnx`), which onnxruntime runs and `ferrite convert` converts.
    #[arg(long)]
    pub export_onnx: Option<PathBuf>,
    // Last: its help heading holds the options after it.
    #[command(flatten)]
    pub prep: PrepArgs,
}

/// Share of `--data` held out for validation when no validation set is given.
const DEFAULT_VAL_SPLIT: f64 = 0.1;

fn split_fraction(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=0.5).contains(&f) => Ok(f),
        Ok(f) => Err(format!("{f} is not between 0 and 0.5")),
        Err(e) => Err(e.to_string()),
    }
}

fn sparsity_fraction(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..1.0).contains(&f) => Ok(f),
        Ok(f) => Err(format!("{f} is not in [0, 1)")),
        Err(e) => Err(e.to_string()),
    }
}

/// `NAME.qdq.onnx` beside `NAME.onnx`.
fn qdq_path(float: &Path) -> PathBuf {
    float.with_extension("qdq.onnx")
}

pub fn run(args: &Args) -> Result<()> {
    let start = Instant::now();
    let (source, graph) = super::float_onnx::load_one_input(&args.model)?;
    let spec = InputSpec::of_graph(&graph);
    let data = folder_data::read_data(&args.data, &args.prep, &spec)?;
    let preprocessing = data.preprocessing.as_ref().map(|p| p.text());
    let (data, folder_labels) = (data.array, data.labels);
    let rows = ir::io::check_input(&graph, 0, &data)
        .with_context(|| format!("training data {}", args.data.display()))?;
    let held_out = if args.val_data.is_some() {
        0
    } else {
        (rows as f64 * args.val_split).round() as usize
    };
    if held_out > 0 && held_out >= rows {
        bail!(
            "{}: {rows} sample(s) leave none to train on after holding out {held_out} for validation \
             (--val-split {})",
            args.data.display(),
            args.val_split
        );
    }
    if held_out > 0 && folder_labels.is_some() {
        eprintln!(
            "warning: the {held_out} samples held out for validation are the last files of {}, \
             in its last classes; give --val-data for a fair score (or --val-split 0)",
            args.data.display()
        );
    }
    // Class ids are checked against the model's outputs before any work.
    let classes = graph.values[graph.outputs[0]].elements();
    let labels = folder_data::labels(args.labels.as_deref(), folder_labels, rows)?;
    if let Some(l) = &labels {
        let path = args.labels.as_ref().unwrap_or(&args.data);
        super::check_classes(l, classes, path, &args.model)?;
    }
    let (data, split_x) = data.split_rows(rows - held_out);
    let (labels, split_labels) = match labels {
        Some(mut l) => {
            let tail = l.split_off(rows - held_out);
            (Some(l), Some(tail))
        }
        None => (None, None),
    };
    let x = ir::io::input_tensor(&graph, 0, &data)
        .with_context(|| format!("training data {}", args.data.display()))?;
    ptq::check_finite(std::slice::from_ref(&x)).with_context(|| args.data.display().to_string())?;
    let samples = x.shape[0];
    let (val_x, val_labels) = if held_out > 0 {
        (Some(split_x), split_labels)
    } else {
        match &args.val_data {
            Some(path) => {
                let v = folder_data::read_data(path, &args.prep, &spec)?;
                let n = v.array.shape.first().copied().unwrap_or(0);
                let l = folder_data::labels(args.val_labels.as_deref(), v.labels, n)?;
                if let Some(l) = &l {
                    let at = args.val_labels.as_ref().unwrap_or(path);
                    super::check_classes(l, classes, at, &args.model)?;
                }
                (Some(v.array), l)
            }
            None => (None, None),
        }
    };
    let pruning = args.sparsity.is_some() || args.prune_filters.is_some();
    if let Some(s) = args.sparsity.filter(|&s| s > 0.0 && args.epochs == 0) {
        bail!("--sparsity {s} prunes during training: it needs --epochs 1 or more");
    }
    let config = train::Config {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr.unwrap_or(match (args.optimizer, pruning) {
            (OptimizerArg::Adam, false) => train::DEFAULT_LR_ADAM,
            (OptimizerArg::Sgd, false) => train::DEFAULT_LR_SGD,
            (OptimizerArg::Adam, true) => train::DEFAULT_PRUNING_LR_ADAM,
            (OptimizerArg::Sgd, true) => train::DEFAULT_PRUNING_LR_SGD,
        }),
        scale_lr: args.scale_lr.unwrap_or(match args.optimizer {
            OptimizerArg::Adam => train::DEFAULT_SCALE_LR_ADAM,
            OptimizerArg::Sgd => train::DEFAULT_SCALE_LR_SGD,
        }),
        optimizer: args.optimizer.into(),
        seed: args.seed,
        sparsity: args.sparsity.map(|target| Sparsity {
            target,
            scope: args.sparsity_scope,
            schedule: args.sparsity_schedule,
            all_layers: args.sparsity_all_layers,
            skip: args.sparsity_skip.clone(),
            block: usize::from(args.sparsity_block),
        }),
        filters: args.prune_filters.map(|ratio| FilterPruning {
            ratio,
            criterion: args.prune_criterion,
            allocation: args.prune_allocation,
            skip: args.prune_filters_skip.clone(),
            recovery_epochs: args.recovery_epochs,
        }),
        label_distillation: train::LabelDistillation {
            weight: args.distill_weight,
            temperature: args.temperature,
        },
    };
    // Every check of the output paths before the work.
    let exports = args
        .export_onnx
        .iter()
        .flat_map(|p| [p.clone(), qdq_path(p)]);
    let outputs: Vec<PathBuf> = [args.output.clone()]
        .into_iter()
        .chain(args.json.file().map(Path::to_path_buf))
        .chain(exports)
        .collect();
    crate::output::check(&outputs.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    if let Some(s) = &config.sparsity {
        s.layers(&graph)
            .with_context(|| format!("pruning {}", args.model.display()))?;
    }

    let calib = x.slice_batch(0, samples.min(train::CALIBRATION_SAMPLES));
    if let Some(f) = &config.filters {
        filters::plan(&graph, f).with_context(|| format!("pruning {}", args.model.display()))?;
    }
    eprintln!(
        "post-training quantization on {} samples...",
        calib.shape[0]
    );
    let ptq_config = PtqConfig {
        source_sha256: crate::sha256::digest(&source),
        cle: !args.no_cle,
        per_tensor: args.per_tensor,
        // The sparse kernels write int8, and a Q/DQ ONNX model quantizes in int8: sparse storage
        // and the ONNX export keep every function's input in int8.
        wide_function_inputs: !args.int8_function_inputs
            && args.weight_storage == WeightStorage::Dense
            && args.export_onnx.is_none(),
        ..PtqConfig::default()
    };
    let bar = super::progress::ptq_stages();
    let q = ptq::quantize_observed(&graph, std::slice::from_ref(&calib), &ptq_config, |p| {
        super::progress::ptq(&bar, p)
    });
    bar.finish_and_clear();
    let q = q.with_context(|| format!("quantizing {}", args.model.display()))?;
    let val = val_x.as_ref().map(|x| Validation {
        x,
        labels: val_labels.as_deref(),
    });
    let supervision = match &labels {
        Some(l) if !args.distill => Supervision::Labels(l),
        _ => Supervision::Distill,
    };
    let metric = match (&val, val_labels.is_some()) {
        (None, _) => "",
        (Some(_), true) => "validation top-1",
        (Some(_), false) => "validation SQNR (dB)",
    };
    if held_out > 0 {
        eprintln!(
            "holding out the last {held_out} of {rows} samples of {} for validation (--val-split {})",
            args.data.display(),
            args.val_split
        );
    }
    let blend = config.label_distillation;
    eprintln!(
        "training {} epoch(s) on {samples} samples, batch {}, {} ({})",
        config.epochs,
        config.batch,
        match supervision {
            Supervision::Labels(_) if blend.weight > 0.0 => format!(
                "cross-entropy with labels, blended with the float model at weight {} and temperature {}",
                blend.weight, blend.temperature
            ),
            Supervision::Labels(_) => "cross-entropy with labels".into(),
            Supervision::Distill => "distilling the float model".into(),
        },
        if metric.is_empty() {
            "no validation: the last epoch is kept"
        } else {
            metric
        },
    );
    // One bar per epoch, on stderr (indicatif draws nothing when it is not a terminal).
    let mut bar: Option<ProgressBar> = None;
    let mut show = |p: Progress<'_>| match p {
        Progress::Step {
            epoch,
            step,
            steps,
            loss,
        } => {
            let bar = bar.get_or_insert_with(|| super::progress::epoch(steps));
            bar.set_prefix(epoch.to_string());
            bar.set_position(step as u64);
            bar.set_message(format!("{loss:.5}"));
        }
        Progress::Epoch(e) => {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
            }
            let loss = e.loss.map_or("-".into(), |l| format!("{l:.5}"));
            let score = e
                .score
                .map_or(String::new(), |s| format!(", {metric} {s:.4}"));
            eprintln!("epoch {}: loss {loss}{score}, {:.1} s", e.epoch, e.seconds);
        }
    };
    let mut trained = train::train(
        &graph,
        &q.decided,
        &x,
        supervision,
        val.as_ref(),
        &config,
        &mut show,
    )
    .with_context(|| format!("training {}", args.model.display()))?;
    if let Some(f) = &trained.filters {
        let (before, after) = f
            .layers
            .iter()
            .fold((0, 0), |(b, a), l| (b + l.channels, a + l.kept));
        eprintln!(
            "filters: {after} of {before} output channels kept, MACs {} -> {} ({:.2}x)",
            f.macs_before,
            f.macs_after,
            f.macs_after as f64 / f.macs_before.max(1) as f64,
        );
        for l in &f.layers {
            if let Some(why) = &l.fixed {
                eprintln!(
                    "filters: `{}` keeps its {} channels: {why}",
                    l.name, l.channels
                );
            }
        }
    }
    trained.decided.weight_storage = args.weight_storage;
    trained.decided.arena = args.arena;
    let mut built = ptq::build(&trained.decided)?;
    // The model records how an image or WAV folder became its input.
    if let Some(text) = &preprocessing {
        built.bytes = folder_data::record(&built.bytes, text)?;
    }
    let layers = sparsity::densities(&trained.decided, &trained.pruned);
    if config.sparsity.is_some() {
        let count = |pruned: bool| {
            let ls = layers.iter().filter(|l| l.pruned == pruned);
            let (w, z) = ls.fold((0, 0), |(w, z), l| (w + l.weights, z + l.zeros));
            (w, z as f64 / w.max(1) as f64)
        };
        let ((pw, pz), (dw, dz)) = (count(true), count(false));
        eprintln!(
            "sparsity: {:.1}% zeros in the {} weights of {} pruned layer(s); {:.1}% in the other {} weights",
            100.0 * pz,
            pw,
            trained.pruned.len(),
            100.0 * dz,
            dw
        );
        for l in layers.iter().filter(|l| l.pruned) {
            eprintln!(
                "  {:.1}% of {} weights  {} `{}`",
                100.0 * l.zeros as f64 / l.weights.max(1) as f64,
                l.weights,
                l.op,
                l.node
            );
        }
    }
    // Everything is encoded before anything is written.
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![(args.output.clone(), built.bytes.clone())];
    if let Some(p) = &args.export_onnx {
        files.push((
            p.clone(),
            crate::export::float_onnx(&trained.decided.graph)?,
        ));
        files.push((qdq_path(p), crate::export::qdq_onnx(&trained.decided)?));
    }
    let mut report = None;
    if args.json.wanted() {
        let doc = serde_json::json!({
            "model": args.model.display().to_string(),
            "output": args.output.display().to_string(),
            "samples": samples,
            "held_out_for_validation": held_out,
            "labels": labels.is_some(),
            "preprocessing": preprocessing,
            "distill": matches!(supervision, Supervision::Distill),
            "config": config,
            "metric": metric,
            "best_epoch": trained.best_epoch,
            "epochs": trained.epochs,
            "failure": trained.failure,
            "layers": layers,
            "filters": trained.filters,
            "ferrite_bytes": built.bytes.len(),
            "arena_bytes": built.plan.arena_size,
            "seconds": start.elapsed().as_secs_f64(),
        });
        report = Some(serde_json::to_string_pretty(&doc)?);
    }
    if let (Some(path), Some(text)) = (args.json.file(), &report) {
        files.push((path.to_path_buf(), text.clone().into_bytes()));
    }
    crate::output::write_all(&files)?;
    if let (true, Some(text)) = (args.json.stdout(), &report) {
        outln!("{text}");
    } else {
        outln!(
            "{} -> {}: epoch {} kept, {} bytes, arena {} bytes, {:.1} s",
            args.model.display(),
            args.output.display(),
            trained.best_epoch,
            built.bytes.len(),
            built.plan.arena_size,
            start.elapsed().as_secs_f64()
        );
    }
    if let Some(f) = trained.failure {
        bail!(
            "training stopped at {f}; {} holds that model",
            args.output.display()
        );
    }
    Ok(())
}
