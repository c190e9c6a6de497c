//! Quantization-aware training (`ferrite train`): fine-tunes a post-training-quantized model with its
//! int8 arithmetic simulated in the forward pass, and writes the same `.ferrite` model.
//!
//! - `qat.rs`: the fake-quantized network, one forward and one backward pass per batch.
//! - `fake_quant.rs`: fake quantization with learned scales (LSQ) and its gradients.
//! - `backward.rs`: the gradient of every IR operator, checked by finite differences in its tests.
//! - `loss.rs`: cross-entropy (labels, or the float model's probabilities) and mean squared error.
//! - `optim.rs`: Adam, SGD with momentum, the cosine schedule.
//! - `sparsity.rs`: magnitude pruning on a schedule (`--sparsity`).
//! - `filters.rs`: removal of whole output channels before training (`--prune-filters`).
//! - `sensitivity.rs`: how far each layer's pruning moves the outputs, and the shares it decides.
//!
//! The engine is the float reference executor ([`crate::ir::float_exec`]) run forward, and one
//! hand-written backward function per operator walked in reverse: graphs are static and topologically
//! ordered, so no autograd library is needed (see quantizer/README.md for the decision).
//!
//! Training starts from post-training quantization's decisions (its equalized graph, corrected biases,
//! ranges and weight scales). Weights, biases, activation scales and weight scales are learned; the
//! scales in the log domain (an update moves a scale by a fraction of itself). Without labels the
//! float model teaches: cross-entropy against its probabilities when the model ends in Softmax, mean
//! squared error against its outputs otherwise. After each epoch the model is lowered and run on the
//! validation set with the runtime's own int8 kernels; the best epoch (the post-training model counts
//! as epoch 0) is kept.

pub mod backward;
pub mod fake_quant;
pub mod filters;
pub mod loss;
pub mod optim;
pub mod qat;
pub mod sensitivity;
pub mod sparsity;

use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use crate::ir::float_exec::{self, Tensor};
use crate::ir::{Graph, Op, ValueId};
use crate::npy::Array;
use crate::quantize::ptq::{self, Decided};
use crate::quantize::sqnr::Sqnr;
pub use loss::LabelDistillation;
use loss::Target;
use optim::{Optimizer, Slot};
use qat::{Grads, Qat};

/// Default learning rates of weights and biases: 100x below the usual rates for training from
/// scratch (1e-3 for Adam, 1e-2 for SGD). On the Fashion-MNIST fixtures' full test sets
/// (BENCHMARKS.md), with the scales' default rate, 1e-4 and 1e-5 give the same top-1 within the test
/// set's noise (1e-5 the better mean); 1e-4 gives about 1 dB more output SQNR when distilling.
pub const DEFAULT_LR_ADAM: f64 = 1e-5;
pub const DEFAULT_LR_SGD: f64 = 1e-4;
/// Default learning rates when pruning (`--sparsity`): the weights must move to make up for the ones
/// set to zero. Measured with Adam on the DS-CNN and ResNet fixtures at 50% and 75% (BENCHMARKS.md):
/// 1e-3 beats 1e-4 by 0.4-6 points of top-1, and 1e-5 does not recover at 75%. SGD keeps its 10x.
pub const DEFAULT_PRUNING_LR_ADAM: f64 = 1e-3;
pub const DEFAULT_PRUNING_LR_SGD: f64 = 1e-2;
/// Default learning rates of the log-domain scales (activations and weights). With Adam a step moves
/// a scale by up to about this fraction of itself, where the weights' rate above would leave the
/// scales where post-training quantization put them. Chosen on the five Fashion-MNIST fixtures' full
/// test sets (BENCHMARKS.md): against 1e-5 and 3e-3, 3e-2 gives the best mean top-1 over both
/// supervisions (by 0.01 points since residual-stream equalization left no fixture with a large
/// post-training loss; before it, on `resnet_fashion_outliers`, 3e-2 recovered 3.6 of the 4 points
/// post-training quantization lost, 1e-5 1.3). SGD's steps scale with the gradient, which is small in the log domain: 30
/// (measured against 0 to 300 on three fixtures; 300 drove a scale out of the lowering's range).
pub const DEFAULT_SCALE_LR_ADAM: f64 = 3e-2;
pub const DEFAULT_SCALE_LR_SGD: f64 = 30.0;

/// Training with labels blends in the float model's probabilities softened at temperature 4, half and
/// half with the labels' cross-entropy (Hinton et al. 2015's usual setting, not tuned here). On the
/// five Fashion-MNIST fixtures' full test sets, three epochs at the default rates (BENCHMARKS.md):
/// the labels alone's top-1 within the test set's noise (-0.20 to +0.12 points) and 0 to 11 dB more
/// output SQNR; from a start 2.75 points below float (`dscnn_fashion --per-tensor --no-cle --lr
/// 1e-3`), 0.13 to 0.24 points below float over three seeds, where the labels alone stay about 0.5
/// below.
pub const DEFAULT_LABEL_DISTILLATION: LabelDistillation = LabelDistillation {
    weight: 0.5,
    temperature: 4.0,
};

/// The loss's running mean over this many steps is compared with its first such mean.
const DIVERGENCE_WINDOW: usize = 10;
/// A running mean this many times the first one is divergence.
const DIVERGENCE_FACTOR: f64 = 100.0;
/// The first running mean counts as at least this: a loss that starts near 0 (distilling from a
/// good start) may grow a hundredfold by noise without diverging.
const DIVERGENCE_FLOOR: f64 = 0.01;

/// Training settings.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub epochs: usize,
    pub batch: usize,
    /// Learning rate of weights and biases at the first step (cosine decay to 0).
    pub lr: f64,
    /// Learning rate of the log-domain scales (about the fraction by which a step may move a scale),
    /// with the same schedule.
    pub scale_lr: f64,
    pub optimizer: optim::Kind,
    /// Seeds the shuffling: the same seed and data give the same model.
    pub seed: u64,
    /// Magnitude pruning during training.
    pub sparsity: Option<sparsity::Sparsity>,
    /// Whole output channels zeroed during training on the polynomial schedule (removed afterwards
    /// by [`filters::remove`]).
    pub filters: Option<filters::FilterPruning>,
    /// How training with labels blends in the float model (weight 0: the labels alone).
    pub label_distillation: LabelDistillation,
}

/// What the outputs are trained towards.
#[derive(Clone, Copy, Debug)]
pub enum Supervision<'a> {
    /// One class id per training sample.
    Labels(&'a [usize]),
    /// The float model's outputs (distillation).
    Distill,
}

/// Held-out data scored after each epoch with the runtime's int8 kernels.
pub struct Validation<'a> {
    /// Inputs in the source model's layout, batch first.
    pub x: &'a Array,
    /// Class ids: the score is top-1 accuracy; without them, the output SQNR (dB) against the float
    /// model.
    pub labels: Option<&'a [usize]>,
}

/// One epoch's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Epoch {
    /// 0 is the post-training model, before any step.
    pub epoch: usize,
    /// Mean training loss over the epoch's steps (none for epoch 0).
    pub loss: Option<f64>,
    /// Validation score (top-1 in [0, 1], or SQNR in dB).
    pub score: Option<f64>,
    /// Wall time of the epoch's training steps.
    pub seconds: f64,
}

/// What [`train`] reports while it runs.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// A training step done: `step` of `steps` in `epoch`, with the epoch's mean loss so far.
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f64,
    },
    /// An epoch done (epoch 0: the post-training model, scored before any step).
    Epoch(&'a Epoch),
}

/// A training run's result.
pub struct Trained {
    /// The kept model's decisions (the best validated epoch, or the last).
    pub decided: Decided,
    pub best_epoch: usize,
    pub epochs: Vec<Epoch>,
    /// The pruned nodes (empty without `sparsity`).
    pub pruned: Vec<usize>,
    /// Why training stopped early (a NaN or diverging loss); the model kept is the last good one.
    pub failure: Option<String>,
    /// With filter pruning: the channels removed, and the epochs before their removal (`epochs`
    /// are then those of the smaller model).
    pub filters: Option<FiltersRemoved>,
}

/// What filter pruning removed.
#[derive(Clone, Debug, Serialize)]
pub struct FiltersRemoved {
    pub layers: Vec<filters::LayerChannels>,
    pub macs_before: usize,
    pub macs_after: usize,
    pub epochs_before_removal: Vec<Epoch>,
}

/// Samples of the training data that calibrate post-training quantization (the start of training,
/// and the smaller model after filter pruning).
pub const CALIBRATION_SAMPLES: usize = 300;

/// Where the loss is taken and how: the logits before a final Softmax (with its beta), or the output.
struct LossSite {
    at: ValueId,
    beta: f32,
    /// The model ends in Softmax: distillation compares probabilities.
    softmax: bool,
}

fn loss_site(g: &Graph) -> Result<LossSite> {
    ensure!(
        g.outputs.len() == 1,
        "training needs a model with one output, this one has {}",
        g.outputs.len()
    );
    let out = g.outputs[0];
    let node = g.nodes.iter().find(|n| n.output == out);
    Ok(match node.map(|n| (&n.op, n)) {
        Some((Op::Softmax { beta }, n)) => LossSite {
            at: n.inputs[0],
            beta: *beta,
            softmax: true,
        },
        _ => LossSite {
            at: out,
            beta: 1.0,
            softmax: false,
        },
    })
}

/// A seeded permutation of `0..n` (SplitMix64 and Fisher-Yates).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

/// Samples `rows` of `t` (batch first).
fn gather(t: &Tensor, rows: &[usize]) -> Tensor {
    let per: usize = t.shape[1..].iter().product();
    let mut shape = t.shape.clone();
    shape[0] = rows.len();
    let mut data = Vec::with_capacity(rows.len() * per);
    for &r in rows {
        data.extend_from_slice(&t.data[r * per..(r + 1) * per]);
    }
    Tensor::new(shape, data)
}

/// The learned state's optimizer slots.
#[derive(Default)]
struct Slots {
    params: Vec<Vec<Slot>>,
    act_scales: Slot,
    weight_scales: Vec<Slot>,
}

/// One optimizer step on `qat` with `grads`: weights and biases at `lr`, scales in the log domain at
/// `scale_lr`.
fn apply(
    qat: &mut Qat,
    grads: &Grads,
    opt: &Optimizer,
    slots: &mut Slots,
    (lr, scale_lr): (f64, f64),
) {
    let nodes = qat.graph.nodes.len();
    slots.params.resize_with(nodes, Vec::new);
    slots.weight_scales.resize_with(nodes, Slot::default);
    for (i, node) in qat.graph.nodes.iter_mut().enumerate() {
        let params = node.op.params_mut();
        slots.params[i].resize_with(params.len(), Slot::default);
        for ((p, g), slot) in params
            .into_iter()
            .zip(&grads.params[i])
            .zip(&mut slots.params[i])
        {
            opt.update(slot, lr, &mut p.data, g);
        }
    }
    let in_log = |scales: &[f32], g: &[f64]| -> (Vec<f32>, Vec<f64>) {
        (
            scales.iter().map(|s| s.ln()).collect(),
            scales.iter().zip(g).map(|(&s, &g)| s as f64 * g).collect(),
        )
    };
    let scales: Vec<f32> = qat.acts.iter().map(|a| a.scale).collect();
    let (mut log, g) = in_log(&scales, &grads.act_scales);
    opt.update(&mut slots.act_scales, scale_lr, &mut log, &g);
    for (a, l) in qat.acts.iter_mut().zip(log) {
        if a.learnable {
            a.scale = l.exp();
        }
    }
    for (i, wq) in qat.weights.iter_mut().enumerate() {
        if let Some(wq) = wq {
            let (mut log, g) = in_log(&wq.scales, &grads.weight_scales[i]);
            opt.update(&mut slots.weight_scales[i], scale_lr, &mut log, &g);
            wq.scales = log.into_iter().map(f32::exp).collect();
        }
    }
}

/// The `.ferrite` model's score on the validation set, run by the runtime: top-1 or SQNR.
fn score(model: &[u8], val: &Validation<'_>, reference: Option<&[f32]>) -> Result<f64> {
    let runner = crate::runtime_exec::Runner::new(model)?;
    let threads = crate::runtime_exec::available_threads();
    let out = runner.run(std::slice::from_ref(val.x), threads)?;
    let y = out[0].to_f32();
    if let Some(labels) = val.labels {
        let per = y.len() / labels.len().max(1);
        let right = y
            .chunks(per)
            .zip(labels)
            .filter(|(row, &l)| crate::top1::argmax(row) == l)
            .count();
        return Ok(right as f64 / labels.len().max(1) as f64);
    }
    let r = reference.context("no float reference outputs")?;
    let mut s = Sqnr::default();
    s.extend(r.iter().zip(&y).map(|(&a, &b)| (a as f64, b as f64)));
    Ok(s.db().unwrap_or(f64::INFINITY))
}

/// Trains from `decided` (post-training quantization of `source`, the float graph, with the default
/// settings) on `x` (NHWC, batch first). `on_progress` hears of each step and each epoch (epoch 0
/// included).
///
/// With `config.filters`, the channels are zeroed during the epochs, then removed; the smaller model
/// is quantized again (calibrated on the first [`CALIBRATION_SAMPLES`] of `x`) and trained for the
/// filter pruning's recovery epochs at the learning rate of training without pruning.
pub fn train(
    source: &Graph,
    decided: &Decided,
    x: &Tensor,
    supervision: Supervision<'_>,
    val: Option<&Validation<'_>>,
    config: &Config,
    mut on_progress: impl FnMut(Progress<'_>),
) -> Result<Trained> {
    ensure!(
        config.sparsity.is_none() || config.filters.is_none(),
        "weight pruning (--sparsity) and filter pruning (--prune-filters) do not combine in one run"
    );
    let mut trained = fit(
        source,
        decided,
        x,
        supervision,
        val,
        config,
        &mut on_progress,
    )?;
    let Some(f) = &config.filters else {
        return Ok(trained);
    };
    if trained.failure.is_some() {
        return Ok(trained);
    }
    let zeroed = &trained.decided.graph;
    let calib = x.slice_batch(0, x.shape[0].min(CALIBRATION_SAMPLES));
    let mut plan = filters::plan(zeroed, f)?;
    // Without training steps nothing was zeroed: the channels go at once.
    let units = if config.epochs == 0 {
        if f.allocation == filters::Allocation::Sensitivity {
            plan.allocate_by_sensitivity(zeroed, &calib, f.criterion, f.ratio)?;
        }
        plan.by_criterion(zeroed, f.criterion)
    } else {
        plan.zeroed(zeroed)
    };
    let pruned =
        filters::remove(zeroed, &calib, &plan, &units).context("removing the pruned channels")?;
    let ptq_config = ptq::Config {
        source_sha256: decided.source_sha256,
        // Wide outputs as training started: the channels removed change no layer's reader.
        wide_function_inputs: decided.wide_scales.iter().any(Option::is_some),
        ..ptq::Config::default()
    };
    let q = ptq::quantize(&pruned.graph, std::slice::from_ref(&calib), &ptq_config)
        .context("quantizing the model without the pruned channels")?;
    let recovery = Config {
        epochs: f.recovery_epochs,
        lr: match config.optimizer {
            optim::Kind::Adam => DEFAULT_LR_ADAM,
            optim::Kind::Sgd => DEFAULT_LR_SGD,
        },
        filters: None,
        ..config.clone()
    };
    let epochs_before_removal = std::mem::take(&mut trained.epochs);
    let mut smaller = fit(
        source,
        &q.decided,
        x,
        supervision,
        val,
        &recovery,
        &mut on_progress,
    )
    .context("training the model without the pruned channels")?;
    smaller.filters = Some(FiltersRemoved {
        layers: pruned.layers,
        macs_before: pruned.macs_before,
        macs_after: pruned.macs_after,
        epochs_before_removal,
    });
    Ok(smaller)
}

/// One training run from `decided` (see [`train`]), zeroing filters on the schedule without removing
/// them.
fn fit(
    source: &Graph,
    decided: &Decided,
    x: &Tensor,
    supervision: Supervision<'_>,
    val: Option<&Validation<'_>>,
    config: &Config,
    on_progress: &mut impl FnMut(Progress<'_>),
) -> Result<Trained> {
    let samples = x.shape[0];
    ensure!(samples > 0, "the training set is empty");
    ensure!(config.batch > 0, "the batch size must be at least 1");
    ensure!(
        config.lr > 0.0 && config.lr.is_finite(),
        "the learning rate must be positive"
    );
    ensure!(
        config.scale_lr >= 0.0 && config.scale_lr.is_finite(),
        "the scales' learning rate must be zero (frozen scales) or positive"
    );
    ptq::check_finite(std::slice::from_ref(x))?;
    let site = loss_site(&decided.graph)?;
    let threads = crate::runtime_exec::available_threads();
    let classes = decided.graph.values[site.at].elements();
    if let Supervision::Labels(l) = supervision {
        ensure!(
            l.len() == samples,
            "{} labels for {samples} training samples",
            l.len()
        );
        if let Some((i, &c)) = l.iter().enumerate().find(|(_, &c)| c >= classes) {
            bail!("label {i} is class {c}, but the model has {classes} outputs");
        }
    }
    // The float model's outputs: what distillation aims at, and what validation SQNR compares with.
    let blend = config.label_distillation;
    ensure!(
        (0.0..=1.0).contains(&blend.weight),
        "the distillation weight must be in [0, 1], not {}",
        blend.weight
    );
    ensure!(
        blend.temperature > 0.0 && blend.temperature.is_finite(),
        "the distillation temperature must be positive, not {}",
        blend.temperature
    );
    let blended = matches!(supervision, Supervision::Labels(_)) && blend.weight > 0.0;
    let teacher = if matches!(supervision, Supervision::Distill) || blended {
        let t = float_exec::run(source, std::slice::from_ref(x), threads)?.remove(0);
        Some(if blended {
            // The float model's probabilities at the blend's temperature, once for every sample.
            let data = loss::tempered(&t.data, samples, site.beta, blend.temperature, site.softmax);
            Tensor { data, ..t }
        } else {
            t
        })
    } else {
        None
    };
    let reference = match val {
        Some(v) if v.labels.is_none() => Some(
            crate::ir::io::run_arrays(source, std::slice::from_ref(v.x), threads)?
                .remove(0)
                .to_f32(),
        ),
        _ => None,
    };
    if let (Some(v), Some(l)) = (val, val.and_then(|v| v.labels)) {
        let n = v.x.shape.first().copied().unwrap_or(0);
        ensure!(
            l.len() == n,
            "{} validation labels for {n} validation samples",
            l.len()
        );
        if let Some((i, &c)) = l.iter().enumerate().find(|(_, &c)| c >= classes) {
            bail!("validation label {i} is class {c}, but the model has {classes} outputs");
        }
    }

    let mut qat = Qat::new(decided)?;
    let pruned = match &config.sparsity {
        Some(s) => s.layers(&qat.graph)?,
        None => Vec::new(),
    };
    // Each pruned layer's sparsity under `--sparsity-scope sensitivity`.
    let shares = match &config.sparsity {
        Some(s) if s.scope == sparsity::Scope::Sensitivity && config.epochs > 0 => Some(
            sparsity::allocate_by_sensitivity(&qat.graph, &pruned, x, s.target, s.block)?,
        ),
        _ => None,
    };
    let filter_plan = match &config.filters {
        Some(f) => {
            let mut plan = filters::plan(&qat.graph, f)?;
            if f.allocation == filters::Allocation::Sensitivity && config.epochs > 0 {
                plan.allocate_by_sensitivity(&qat.graph, x, f.criterion, f.ratio)?;
            }
            Some((plan, f.criterion))
        }
        None => None,
    };
    let mut zeroed_units = Vec::new();
    let mut epochs = Vec::new();
    let start_score = match val {
        Some(v) => Some(score(&ptq::build(decided)?.bytes, v, reference.as_deref())?),
        None => None,
    };
    let first = Epoch {
        epoch: 0,
        loss: None,
        score: start_score,
        seconds: 0.0,
    };
    on_progress(Progress::Epoch(&first));
    epochs.push(first);
    let steps_per_epoch = samples.div_ceil(config.batch);
    let total_steps = steps_per_epoch * config.epochs;
    // With pruning (weights or filters), only epochs that end at the target sparsity may be kept; the dense post-training
    // model is kept only if training stops before any does.
    let ramp = config
        .sparsity
        .as_ref()
        .map_or(0, |s| s.ramp_steps(total_steps))
        .max(
            filter_plan
                .as_ref()
                .map_or(0, |_| sparsity::polynomial_ramp(total_steps)),
        );
    let mut best = (0usize, start_score, decided.clone());
    let mut best_at_target = ramp == 0;
    let mut opt = Optimizer::new(config.optimizer);
    let mut slots = Slots::default();
    let mut step = 0usize;
    let mut history: Vec<f64> = Vec::new();
    let mut failure = None;
    let mut seen = qat.covered();
    'epochs: for epoch in 1..=config.epochs {
        let clock = Instant::now();
        let order = shuffled(samples, config.seed.wrapping_add(epoch as u64));
        let mut sum = 0f64;
        for (k, rows) in order.chunks(config.batch).enumerate() {
            let xb = gather(x, rows);
            let ops = qat.quantized_ops();
            let pass = qat.forward(&ops, std::slice::from_ref(&xb))?;
            qat.observe(&pass, &mut seen);
            let out = pass.value(site.at).context("loss value not computed")?;
            let taught: Vec<f32>;
            let labels: Vec<usize>;
            let target = match (supervision, &teacher) {
                (Supervision::Labels(l), _) => {
                    labels = rows.iter().map(|&r| l[r]).collect();
                    Target::Labels(&labels)
                }
                (Supervision::Distill, Some(t)) => {
                    taught = gather(t, rows).data;
                    if site.softmax {
                        Target::Probabilities(&taught)
                    } else {
                        Target::Values(&taught)
                    }
                }
                (Supervision::Distill, None) => unreachable!("teacher outputs are computed"),
            };
            let (l, d) = match (target, &teacher) {
                (Target::Labels(labels), Some(t)) => {
                    let tempered = gather(t, rows).data;
                    loss::labels_and_teacher(
                        &out.data,
                        rows.len(),
                        site.beta,
                        labels,
                        &tempered,
                        blend,
                    )
                }
                _ => loss::loss(&out.data, rows.len(), site.beta, target),
            };
            history.push(l);
            let diverged = history.len() >= 2 * DIVERGENCE_WINDOW && {
                let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
                let first = mean(&history[..DIVERGENCE_WINDOW]);
                let last = mean(&history[history.len() - DIVERGENCE_WINDOW..]);
                last > DIVERGENCE_FACTOR * first.max(DIVERGENCE_FLOOR)
            };
            if !l.is_finite() || diverged {
                failure = Some(format!(
                    "epoch {epoch}, step {}: the loss {}; kept epoch {}",
                    k + 1,
                    if l.is_finite() {
                        format!("diverged (running mean over {DIVERGENCE_WINDOW} steps above {DIVERGENCE_FACTOR}x its first)")
                    } else {
                        format!("is {l}")
                    },
                    best.0
                ));
                break 'epochs;
            }
            sum += l;
            on_progress(Progress::Step {
                epoch,
                step: k + 1,
                steps: steps_per_epoch,
                loss: sum / (k + 1) as f64,
            });
            let grads = qat.backward(&ops, &pass, site.at, d)?;
            opt.begin_step();
            let rates = (
                optim::cosine(config.lr, step, total_steps),
                optim::cosine(config.scale_lr, step, total_steps),
            );
            let zeros = config
                .sparsity
                .as_ref()
                .map(|_| sparsity::Mask::of(&qat.graph, &pruned));
            apply(&mut qat, &grads, &opt, &mut slots, rates);
            if let (Some(s), Some(zeros)) = (&config.sparsity, zeros) {
                zeros.restore(&mut qat.graph, &pruned);
                let progress = s.progress(step, total_steps);
                match &shares {
                    Some(shares) => {
                        let now: Vec<f64> = shares.iter().map(|f| f * progress).collect();
                        sparsity::prune_each(&mut qat.graph, &pruned, &now, s.block);
                    }
                    None => sparsity::prune(
                        &mut qat.graph,
                        &pruned,
                        s.at_step(step, total_steps),
                        s.scope,
                        s.block,
                    ),
                }
            }
            if let Some((plan, criterion)) = &filter_plan {
                let progress = sparsity::polynomial(step, total_steps);
                plan.zero_towards(&mut qat.graph, *criterion, progress, &mut zeroed_units);
            }
            qat.cap_scales(&seen);
            step += 1;
        }
        let seconds = clock.elapsed().as_secs_f64();
        let now = qat.decided(decided);
        // A model the runtime would refuse (e.g. a scale so small that a requantization multiplier
        // leaves its range) ends training like a diverging loss.
        let built = match ptq::build(&now) {
            Ok(b) => b,
            Err(e) => {
                failure = Some(format!(
                    "epoch {epoch}: the trained model cannot be lowered ({e:#}); kept epoch {}",
                    best.0
                ));
                break;
            }
        };
        let s = val
            .map(|v| score(&built.bytes, v, reference.as_deref()))
            .transpose()?;
        let e = Epoch {
            epoch,
            loss: Some(sum / steps_per_epoch as f64),
            score: s,
            seconds,
        };
        on_progress(Progress::Epoch(&e));
        epochs.push(e);
        // Without validation the last epoch is kept; with it, the best (ties: the earlier) of those
        // at the target sparsity.
        let at_target = epoch * steps_per_epoch >= ramp;
        if at_target && (s.is_none() || s > best.1 || !best_at_target) {
            best = (epoch, s, now);
            best_at_target = true;
        }
    }
    Ok(Trained {
        decided: best.2,
        best_epoch: best.0,
        epochs,
        pruned,
        failure,
        filters: None,
    })
}

#[cfg(test)]
mod tests;
