//! `cargo xtask prune [--write]`: magnitude pruning with `ferrite train --sparsity` on the DS-CNN and
//! ResNet Fashion-MNIST fixtures at 50% and 75%: with labels for 3 epochs, distilling for 3 and 10
//! epochs, and (the evidence for pruning's default learning rate) with labels at 1e-5 and 1e-4. Each
//! model is trained on the 10,000 training images and scored by `ferrite eval` on the full test set;
//! zeros and file size come from the training report. PyTorch's pruning of the same models
//! (`tests/fixtures/prune_anchor.py`) is shown beside it when its results file is there.
//!
//! `cargo xtask prune --filters [--write]`: filter pruning (`ferrite train --prune-filters 0.3`) of
//! the same fixtures, per allocation and criterion, with MACs, arena, file size and the Cortex-M4F
//! instruction count of each model (QEMU, as `cargo xtask bench` counts them) beside top-1, and
//! Torch-Pruning's removal of the same share of channels (`tests/fixtures/filter_prune_anchor.py`)
//! when its results file is there.
//!
//! Needs `target/datasets/` (`python3 tests/fixtures/full_testsets.py`).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

#[derive(clap::Args)]
pub struct Options {
    /// Rewrite the pruning section of BENCHMARKS.md.
    #[arg(long)]
    write: bool,
    /// Keep the models an earlier run left in target/prune/ instead of training them again (only
    /// valid for the same commit: e.g. to redraw the tables once the PyTorch results are in).
    #[arg(long)]
    reuse: bool,
    /// Filter pruning instead of weight pruning (its own section of BENCHMARKS.md).
    #[arg(long)]
    filters: bool,
}

const BEGIN: &str = "<!-- cargo xtask prune --write: begin -->";
const END: &str = "<!-- cargo xtask prune --write: end -->";

const FIXTURES: [&str; 2] = ["dscnn_fashion", "resnet_fashion"];
const SPARSITIES: [&str; 2] = ["0.5", "0.75"];

/// One `ferrite train` run: epochs, distillation, learning rate (None: the default).
struct Run {
    epochs: &'static str,
    distill: bool,
    lr: Option<&'static str>,
}

const RUNS: [Run; 5] = [
    Run {
        epochs: "3",
        distill: false,
        lr: None,
    },
    Run {
        epochs: "3",
        distill: true,
        lr: None,
    },
    Run {
        epochs: "10",
        distill: true,
        lr: None,
    },
    Run {
        epochs: "3",
        distill: false,
        lr: Some("1e-4"),
    },
    Run {
        epochs: "3",
        distill: false,
        lr: Some("1e-5"),
    },
];

/// What a training report says of the trained model.
struct Trained {
    pruned_zeros: f64,
    all_zeros: f64,
    bytes: u64,
    seconds_per_epoch: f64,
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    if options.filters {
        return filters(root, options);
    }
    let fixtures = root.join("tests/fixtures");
    let data = crate::qat::Data::fashion(root)?;
    let (train_x, train_y, test_x, test_y) =
        (&data.train_x, &data.train_y, &data.test_x, &data.test_y);
    let anchors: Vec<Value> = match std::fs::read(fixtures.join("prune_anchor_results.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).context("prune_anchor_results.json")?,
        Err(_) => Vec::new(),
    };
    let tool = crate::accuracy::ferrite(root)?;
    let tmp = root.join("target/prune");
    std::fs::create_dir_all(&tmp)?;
    let commit = crate::bench::commit(root);
    let mut section = format!(
        "Measured at commit `{}` with `cargo xtask prune`. `ferrite train MODEL --data \
         fashion_train10k_x.npy --labels fashion_train10k_y.npy --sparsity S [--distill] [--epochs E]` \
         (defaults otherwise: without `--distill`, the labels' cross-entropy blended with the float \
         model's softened outputs, `--distill-weight {} --temperature {}`; Adam at pruning's learning \
         rate {} with cosine decay, batch 32, the polynomial schedule reaching S after two thirds of \
         the steps, S of the pruned layers' weights shared among them by measured sensitivity \
         (`--sparsity-scope sensitivity`), first/last/depthwise layers dense, QAT on, the last 10% of the \
         training file held out to keep the best epoch at S), \
         scored on the full 10,000-image Fashion-MNIST test set. \"Zeros\" are int8 weights equal to 0, \
         in the pruned layers and in all weighted layers. The `.ferrite` bytes are those of the default \
         `--weight-storage dense`, zeros stored; \"Sparse weights\" below measures the sparse \
         storage.\n\n",
        commit,
        ferrite_quantizer::train::DEFAULT_LABEL_DISTILLATION.weight,
        ferrite_quantizer::train::DEFAULT_LABEL_DISTILLATION.temperature,
        ferrite_quantizer::train::DEFAULT_PRUNING_LR_ADAM,
    );
    for name in FIXTURES {
        let model = fixtures.join(name).join("model.onnx");
        let ptq = tmp.join(format!("{name}-ptq.ferrite"));
        crate::qat::quantize(&tool, &fixtures, &model, &ptq, &[])?;
        let ptq_bytes = std::fs::metadata(&ptq)?.len();
        let mut models = vec![model.clone(), ptq];
        let mut trained = Vec::new();
        for s in SPARSITIES {
            for (k, r) in RUNS.iter().enumerate() {
                let out = tmp.join(format!("{name}-{s}-{k}.ferrite"));
                let mut cmd = Command::new(&tool);
                cmd.arg("train")
                    .arg(&model)
                    .arg("--data")
                    .arg(train_x)
                    .arg("--labels")
                    .arg(train_y)
                    .args(["--sparsity", s, "--epochs", r.epochs, "-o"])
                    .arg(&out)
                    .arg(format!("--json={}", out.with_extension("json").display()));
                if r.distill {
                    cmd.arg("--distill");
                }
                if let Some(lr) = r.lr {
                    cmd.args(["--lr", lr]);
                }
                let reused = options.reuse && out.exists() && out.with_extension("json").exists();
                let o = if reused { None } else { Some(cmd.output()?) };
                if let Some(o) = o.filter(|o| !o.status.success()) {
                    bail!(
                        "ferrite train {name} --sparsity {s}: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
                trained.push(report(&out.with_extension("json"))?);
                models.push(out);
            }
        }
        let rows = crate::accuracy::eval_rows(&tool, &models, test_x, test_y)?;
        let pct = |x: f64| format!("{:.2}%", 100.0 * x);
        let db = |x: Option<f64>| x.map_or("inf".into(), |v| format!("{v:.2}"));
        let float = rows[0].top1;
        write!(
            section,
            "`{name}`:\n\n\
             | tool | sparsity | training | top-1 | drop vs float (points) | SQNR (dB) | zeros, pruned layers | zeros, all weights | `.ferrite` bytes | seconds per epoch |\n\
             |---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n\
             | float | - | ONNX model | {} | - | - | - | - | - | - |\n\
             | Ferrite | 0 | post-training default | {} | {:.2} | {} | - | - | {ptq_bytes} | - |\n",
            pct(float),
            pct(rows[1].top1),
            100.0 * (float - rows[1].top1),
            db(rows[1].sqnr_db),
        )?;
        let settings = SPARSITIES
            .iter()
            .flat_map(|s| RUNS.iter().map(move |r| (s, r)));
        for (((s, r), row), t) in settings.zip(&rows[2..]).zip(&trained) {
            let how = format!(
                "{} epochs, {}{}",
                r.epochs,
                if r.distill { "distilling" } else { "labels" },
                r.lr.map_or(String::new(), |lr| format!(", lr {lr}"))
            );
            writeln!(
                section,
                "| Ferrite | {s} | {how} | {} | {:.2} | {} | {} | {} | {} | {:.1} |",
                pct(row.top1),
                100.0 * (float - row.top1),
                db(row.sqnr_db),
                pct(t.pruned_zeros),
                pct(t.all_zeros),
                t.bytes,
                t.seconds_per_epoch
            )?;
        }
        section.push_str(&anchor_rows(&anchors, name)?);
        section.push('\n');
    }
    println!("{section}");
    if options.write {
        crate::bench::write_section(root, BEGIN, END, &section)?;
    }
    Ok(())
}

/// Zeros, size and time per epoch from a `ferrite train --json` report.
fn report(path: &Path) -> Result<Trained> {
    let r: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let (mut pw, mut pz, mut aw, mut az) = (0u64, 0u64, 0u64, 0u64);
    for l in r["layers"].as_array().context("report layers")? {
        let (w, z) = (
            l["weights"].as_u64().unwrap_or(0),
            l["zeros"].as_u64().unwrap_or(0),
        );
        aw += w;
        az += z;
        if l["pruned"].as_bool() == Some(true) {
            pw += w;
            pz += z;
        }
    }
    let secs: Vec<f64> = r["epochs"]
        .as_array()
        .context("report epochs")?
        .iter()
        .skip(1)
        .filter_map(|e| e["seconds"].as_f64())
        .collect();
    Ok(Trained {
        pruned_zeros: pz as f64 / pw.max(1) as f64,
        all_zeros: az as f64 / aw.max(1) as f64,
        bytes: r["ferrite_bytes"].as_u64().unwrap_or(0),
        seconds_per_epoch: secs.iter().sum::<f64>() / secs.len().max(1) as f64,
    })
}

/// PyTorch's rows for `name` from `tests/fixtures/prune_anchor_results.json`.
fn anchor_rows(anchors: &[Value], name: &str) -> Result<String> {
    let mut rows = String::new();
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("-".into(), |x| format!("{:.2}%", 100.0 * x))
    };
    let model = format!("{name}/model.onnx");
    for a in anchors.iter().filter(|a| a["model"] == model.as_str()) {
        let secs: Vec<f64> = a["per_epoch"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["train_seconds"].as_f64())
            .collect();
        let per_epoch = if secs.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1}", secs.iter().sum::<f64>() / secs.len() as f64)
        };
        let zeros = pct(&a["pruned_layers_sparsity"]);
        writeln!(
            rows,
            "| PyTorch | {} | {} epochs, labels, float32 (`torch.nn.utils.prune`) | {} | {:.2} | - | {zeros} | - | - | {per_epoch} |",
            a["sparsity"],
            a["epochs"],
            pct(&a["pruned_top1"]),
            100.0 * (a["float_top1"].as_f64().unwrap_or(f64::NAN) - a["pruned_top1"].as_f64().unwrap_or(f64::NAN)),
        )?;
        writeln!(
            rows,
            "| PyTorch + NNCF | {} | the same, then `nncf.quantize` (int8) | {} | {:.2} | - | - | - | - | - |",
            a["sparsity"],
            pct(&a["int8"]["top1"]),
            100.0 * (a["float_top1"].as_f64().unwrap_or(f64::NAN) - a["int8"]["top1"].as_f64().unwrap_or(f64::NAN)),
        )?;
    }
    Ok(rows)
}

const FILTERS_BEGIN: &str = "<!-- cargo xtask prune --filters --write: begin -->";
const FILTERS_END: &str = "<!-- cargo xtask prune --filters --write: end -->";

/// The share of channels `--filters` removes.
const FILTER_RATIO: &str = "0.3";
/// Epochs zeroing the channels, then epochs training the smaller model.
const FILTER_EPOCHS: (&str, &str) = ("10", "2");
/// The (allocation, criterion) settings measured.
const FILTER_RUNS: [(&str, &str); 4] = [
    ("uniform", "l2"),
    ("sensitivity", "l2"),
    ("sensitivity", "l1"),
    ("sensitivity", "geometric-median"),
];

/// Cortex-M4F instructions of one inference of a `.ferrite` file (None without the instruction
/// counter of `../shared`).
pub(crate) fn m4f_instructions(
    root: &Path,
    plugin: Option<&Path>,
    model: &Path,
) -> Result<Option<u64>> {
    let Some(plugin) = plugin else {
        return Ok(None);
    };
    let case = crate::cases::from_file(root, model)?;
    let machine = crate::bench::BenchMachine::An386;
    crate::toolchain::ensure_targets(root, &[machine.machine().target()])?;
    match crate::bench::measure(
        root,
        plugin,
        &case,
        machine,
        std::time::Duration::from_secs(300),
    )? {
        crate::bench::Outcome::Measured(m) if m.passed => Ok(Some(m.total)),
        crate::bench::Outcome::Measured(_) => bail!(
            "{}: the M4F output differs from the host's",
            model.display()
        ),
        crate::bench::Outcome::Skipped { why, .. } => bail!("{}: {why}", model.display()),
    }
}

/// The arena a `.ferrite` file plans, from `ferrite inspect --json`.
pub(crate) fn arena_bytes(tool: &Path, model: &Path) -> Result<u64> {
    let o = Command::new(tool)
        .args(["inspect", "--json"])
        .arg(model)
        .output()?;
    if !o.status.success() {
        bail!(
            "ferrite inspect {}: {}",
            model.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&o.stdout)?;
    v["arena_bytes"].as_u64().context("inspect: arena_bytes")
}

fn filters(root: &Path, options: &Options) -> Result<()> {
    let fixtures = root.join("tests/fixtures");
    let data = crate::qat::Data::fashion(root)?;
    let tool = crate::accuracy::ferrite(root)?;
    let plugin = crate::bench::build_plugin(root)?;
    let filter_anchors: Vec<Value> =
        match std::fs::read(fixtures.join("filter_prune_anchor_results.json")) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).context("filter_prune_anchor_results.json")?
            }
            Err(_) => Vec::new(),
        };
    let tmp = root.join("target/prune-filters");
    std::fs::create_dir_all(&tmp)?;
    let commit = crate::bench::commit(root);
    let mut section = format!(
        "Measured at commit `{}` with `cargo xtask prune --filters`. `ferrite train MODEL --data \
         fashion_train10k_x.npy --labels fashion_train10k_y.npy --distill --prune-filters {FILTER_RATIO} \
         --epochs {} --recovery-epochs {} --prune-allocation A --prune-criterion C`: the channels \
         are zeroed on the polynomial schedule during the epochs, then removed; the smaller model \
         is quantized again and trained for the recovery epochs. Top-1 on the full 10,000-image \
         Fashion-MNIST test set; MACs from the training report; Cortex-M4F instructions of one \
         inference counted in QEMU (mps2-an386) as `cargo xtask bench` counts them, with the \
         model's output checked against the host's; \"x dense\" divides by the post-training \
         model's figure.\n\n",
        commit,
        FILTER_EPOCHS.0,
        FILTER_EPOCHS.1,
    );
    for name in FIXTURES {
        let model = fixtures.join(name).join("model.onnx");
        let ptq = tmp.join(format!("{name}-ptq.ferrite"));
        crate::qat::quantize(&tool, &fixtures, &model, &ptq, &[])?;
        let mut models = vec![model.clone(), ptq.clone()];
        let mut reports = Vec::new();
        for (allocation, criterion) in FILTER_RUNS {
            let out = tmp.join(format!("{name}-{allocation}-{criterion}.ferrite"));
            let json = out.with_extension("json");
            if !(options.reuse && out.exists() && json.exists()) {
                let o = Command::new(&tool)
                    .arg("train")
                    .arg(&model)
                    .arg("--data")
                    .arg(&data.train_x)
                    .arg("--labels")
                    .arg(&data.train_y)
                    .args(["--distill", "--prune-filters", FILTER_RATIO])
                    .args([
                        "--epochs",
                        FILTER_EPOCHS.0,
                        "--recovery-epochs",
                        FILTER_EPOCHS.1,
                    ])
                    .args([
                        "--prune-allocation",
                        allocation,
                        "--prune-criterion",
                        criterion,
                    ])
                    .arg("-o")
                    .arg(&out)
                    .arg(format!("--json={}", json.display()))
                    .output()?;
                if !o.status.success() {
                    bail!(
                        "ferrite train {name} --prune-filters: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                }
            }
            let r: Value = serde_json::from_slice(&std::fs::read(&json)?)?;
            reports.push(r);
            models.push(out);
        }
        let rows = crate::accuracy::eval_rows(&tool, &models, &data.test_x, &data.test_y)?;
        let insns: Vec<Option<u64>> = models[1..]
            .iter()
            .map(|m| m4f_instructions(root, plugin.as_deref(), m))
            .collect::<Result<_>>()?;
        let ptq_bytes = std::fs::metadata(&ptq)?.len();
        let ptq_arena = arena_bytes(&tool, &ptq)?;
        let macs = reports[0]["filters"]["macs_before"].as_u64().unwrap_or(0);
        let float = rows[0].top1;
        let pct = |x: f64| format!("{:.2}%", 100.0 * x);
        let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
            _ => "-".into(),
        };
        let count = |x: Option<u64>| x.map_or("-".into(), |v| v.to_string());
        write!(
            section,
            "`{name}`:\n\n\
             | model | top-1 | drop vs float (points) | MACs | x dense | M4F instructions | x dense | arena bytes | `.ferrite` bytes | output channels kept |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n\
             | float | {} | - | {macs} | - | - | - | - | - | - |\n\
             | post-training int8 | {} | {:.2} | {macs} | 1.00 | {} | 1.00 | {ptq_arena} | {ptq_bytes} | all |\n",
            pct(float),
            pct(rows[1].top1),
            100.0 * (float - rows[1].top1),
            count(insns[0]),
        )?;
        for (((allocation, criterion), (row, r)), n) in FILTER_RUNS
            .iter()
            .zip(rows[2..].iter().zip(&reports))
            .zip(&insns[1..])
        {
            let after = r["filters"]["macs_after"].as_u64();
            let kept: Vec<String> = r["filters"]["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| l["kept"] != l["channels"])
                .map(|l| format!("{}/{}", l["kept"], l["channels"]))
                .collect();
            writeln!(
                section,
                "| {FILTER_RATIO} of the channels, {allocation}, {criterion} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
                pct(row.top1),
                100.0 * (float - row.top1),
                count(after),
                ratio(after, Some(macs)),
                count(*n),
                ratio(*n, insns[0]),
                count(r["arena_bytes"].as_u64()),
                count(r["ferrite_bytes"].as_u64()),
                kept.join(", "),
            )?;
        }
        section.push_str(&filter_anchor_rows(&filter_anchors, name, float)?);
        section.push('\n');
    }
    println!("{section}");
    if options.write {
        crate::bench::write_section(root, FILTERS_BEGIN, FILTERS_END, &section)?;
    }
    Ok(())
}

/// Torch-Pruning's rows for `name` from `tests/fixtures/filter_prune_anchor_results.json`; the drop
/// is against Ferrite's float top-1 `float` (the same model and test set).
fn filter_anchor_rows(anchors: &[Value], name: &str, float: f64) -> Result<String> {
    let mut rows = String::new();
    let model = format!("{name}/model.onnx");
    for a in anchors.iter().filter(|a| a["model"] == model.as_str()) {
        let macs = match (a["macs_before"].as_f64(), a["macs_after"].as_f64()) {
            (Some(b), Some(f)) if b > 0.0 => format!("{:.2}", f / b),
            _ => "-".into(),
        };
        let kept: Vec<String> = a["channels"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, c)| c[0] != c[1])
            .map(|(_, c)| format!("{}/{}", c[1], c[0]))
            .collect();
        let how = format!(
            "{} of the channels, Torch-Pruning {} (L2, uniform), {} epochs distilling",
            a["ratio"], a["versions"]["torch_pruning"], a["epochs"]
        );
        for (what, top1) in [
            ("float32", a["pruned_top1"].as_f64()),
            ("then `nncf.quantize` int8", a["int8"]["top1"].as_f64()),
        ] {
            let (t, d) = match top1 {
                Some(t) => (
                    format!("{:.2}%", 100.0 * t),
                    format!("{:.2}", 100.0 * (float - t)),
                ),
                None => ("-".into(), "-".into()),
            };
            writeln!(
                rows,
                "| {how}, {what} | {t} | {d} | - | {macs} | - | - | - | - | {} |",
                kept.join(", ")
            )?;
        }
    }
    Ok(rows)
}
