//! `cargo xtask qat [--write]`: quantization-aware training of the QAT fixtures (the models in
//! `tests/fixtures/qat_anchor_results.json`) beside NNCF's QAT on the same model and data. For each:
//! Ferrite's post-training default, `ferrite train` with labels and `ferrite train` distilling the
//! float model (3 epochs on the 10,000 training samples each), evaluated by `ferrite eval` on the full
//! Fashion-MNIST test set: top-1, output SQNR, agreement; the time per epoch is the report's (training
//! steps only). NNCF's figures come from the JSON file, written by `tests/fixtures/qat_anchor.py` on
//! this machine; an NNCF run with one weight scale per tensor is beside Ferrite's with `--per-tensor
//! --no-cle` (a start post-training quantization cannot fix), trained at `--lr 1e-3`. A last table
//! gives top-1 and SQNR of every Fashion-MNIST fixture trained with a few learning rates (weights,
//! scales), with labels and distilling: the evidence for the defaults.
//!
//! Needs `target/datasets/` (`python3 tests/fixtures/full_testsets.py`).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args)]
pub struct Options {
    /// Rewrite the QAT section of BENCHMARKS.md.
    #[arg(long)]
    write: bool,
}

const BEGIN: &str = "<!-- cargo xtask qat --write: begin -->";
const END: &str = "<!-- cargo xtask qat --write: end -->";

/// Fixtures of the learning-rate table, and its (weights, scales) learning rates.
const SWEEP_FIXTURES: [&str; 5] = [
    "dscnn_fashion",
    "resnet_fashion",
    "mbv1_tanh_fashion",
    "dscnn_fashion_imbalanced",
    "resnet_fashion_outliers",
];
const SWEEP_RATES: [(&str, &str); 4] = [
    ("1e-5", "1e-5"),
    ("1e-5", "3e-3"),
    ("1e-5", "3e-2"),
    ("1e-4", "3e-2"),
];

/// How a run is supervised: with labels (and its options) or by distillation, and how the tables
/// name it.
struct Supervision {
    labels: bool,
    options: &'static [&'static str],
    row: &'static str,
    column: &'static str,
}

/// Labels blended with the float model (the default), the labels alone, and distillation.
const SUPERVISIONS: [Supervision; 3] = [
    Supervision {
        labels: true,
        options: &[],
        row: "labels (blended with the float model, the default)",
        column: "labels",
    },
    Supervision {
        labels: true,
        options: &["--distill-weight", "0"],
        row: "labels alone (`--distill-weight 0`)",
        column: "labels alone",
    },
    Supervision {
        labels: false,
        options: &[],
        row: "distillation (no labels)",
        column: "distillation",
    },
];

/// Epochs of every training run (the budget: at most 3 epochs on at most 10k samples).
const EPOCHS: &str = "3";

/// Ferrite's options for an NNCF run with one weight scale per tensor: the same weights, without the
/// equalization that would undo most of their loss (a model post-training quantization cannot fix),
/// and the learning rate such a model needs (the default is for fine-tuning a good start).
const PER_TENSOR_OPTIONS: [&str; 2] = ["--per-tensor", "--no-cle"];
const PER_TENSOR_LR: &str = "1e-3";

/// Whether an NNCF run quantized its weights with one scale per tensor.
fn per_tensor(anchor: &Value) -> bool {
    anchor["weights_granularity"].as_str() == Some("per tensor")
}

/// The Fashion-MNIST training and test sets of `target/datasets/`.
pub struct Data {
    pub train_x: PathBuf,
    pub train_y: PathBuf,
    pub test_x: PathBuf,
    pub test_y: PathBuf,
}

impl Data {
    /// The 10,000 training images and the full test set, or what to run to make them.
    pub fn fashion(root: &Path) -> Result<Data> {
        let datasets = root.join("target/datasets");
        let need = |f: &str| -> Result<PathBuf> {
            let p = datasets.join(f);
            if !p.exists() {
                bail!(
                    "{} is missing: run `python3 tests/fixtures/full_testsets.py`",
                    p.display()
                );
            }
            Ok(p)
        };
        Ok(Data {
            train_x: need("fashion_train10k_x.npy")?,
            train_y: need("fashion_train10k_y.npy")?,
            test_x: need("fashion_full_test_x.npy")?,
            test_y: need("fashion_full_test_y.npy")?,
        })
    }
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let fixtures = root.join("tests/fixtures");
    let anchors: Vec<Value> = serde_json::from_slice(
        &std::fs::read(fixtures.join("qat_anchor_results.json"))
            .context("reading tests/fixtures/qat_anchor_results.json")?,
    )?;
    let data = Data::fashion(root)?;
    let tool = crate::accuracy::ferrite(root)?;
    let tmp = root.join("target/qat");
    std::fs::create_dir_all(&tmp)?;

    let commit = crate::bench::commit(root);
    let mut section = format!(
        "Measured at commit `{}` with `cargo xtask qat`. Each fixture (`tests/fixtures/README.md`) is \
         trained on `target/datasets/fashion_train10k_{{x,y}}.npy` (10,000 Fashion-MNIST training images, \
         disjoint from the 300 calibration samples) and scored on the full 10,000-image test set. Ferrite: \
         `ferrite train` with its defaults (Adam, learning rate {} for weights and biases and {} for the \
         log-domain scales, cosine decay, batch 32, the last 10% of the training file held out to choose the best epoch), \
         {EPOCHS} epochs; time per epoch is the training steps only, from `--json=FILE`. NNCF: \
         `tests/fixtures/qat_anchor.py` (recipe in `tests/fixtures/qat_anchor_results.json`), the same \
         model, calibration samples and training set, top-1 of the fake-quantized torch model; its float \
         top-1 is torch's.\n\n",
        commit,
        ferrite_quantizer::train::DEFAULT_LR_ADAM,
        ferrite_quantizer::train::DEFAULT_SCALE_LR_ADAM,
    );
    // One table per model and weight granularity, with every NNCF run on it (BatchNorm folded or
    // not, each learning rate).
    let mut groups: Vec<(&str, bool)> = Vec::new();
    for a in &anchors {
        let group = (a["model"].as_str().context("anchor: model")?, per_tensor(a));
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    for (m, tensor) in groups {
        let runs: Vec<&Value> = anchors
            .iter()
            .filter(|a| a["model"] == m && per_tensor(a) == tensor)
            .collect();
        section.push_str(&fixture_table(
            &tool, &fixtures, &tmp, &data, m, tensor, &runs,
        )?);
    }
    let sweep = lr_sweep(&tool, &fixtures, &tmp, &data)?;
    write!(
        section,
        "The default learning rates, from every Fashion-MNIST fixture: {EPOCHS} epochs of `ferrite train` \
         at each pair of rates (weights and biases / scales), top-1 / output SQNR on the full test set \
         (float and the post-training default first).\n\n{sweep}\n"
    )?;
    println!("{section}");
    if options.write {
        crate::bench::write_section(root, BEGIN, END, &section)?;
    }
    Ok(())
}

/// `ferrite quantize` of `model` on the Fashion-MNIST calibration set, into `out`, with `extra`
/// options (none: the defaults).
pub fn quantize(
    tool: &Path,
    fixtures: &Path,
    model: &Path,
    out: &Path,
    extra: &[&str],
) -> Result<()> {
    let o = Command::new(tool)
        .arg("quantize")
        .arg(model)
        .arg("--data")
        .arg(fixtures.join("data/fashion_calib_x.npy"))
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()?;
    if !o.status.success() {
        bail!(
            "ferrite quantize {} failed: {}",
            model.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(())
}

/// `ferrite train` of `model` for EPOCHS epochs (with labels or distilling, with `rates` or the
/// defaults) into `out`; the seconds per training epoch, from its report.
fn train(
    tool: &Path,
    model: &Path,
    data: &Data,
    labels: bool,
    rates: Option<(&str, &str)>,
    extra: &[&str],
    out: &Path,
) -> Result<f64> {
    let report = out.with_extension("json");
    let mut cmd = Command::new(tool);
    cmd.arg("train")
        .arg(model)
        .arg("--data")
        .arg(&data.train_x)
        .args(["--epochs", EPOCHS, "-o"])
        .arg(out)
        .arg(format!("--json={}", report.display()));
    if labels {
        cmd.arg("--labels").arg(&data.train_y);
    }
    if let Some((lr, scale_lr)) = rates {
        cmd.args(["--lr", lr, "--scale-lr", scale_lr]);
    }
    cmd.args(extra);
    let o = cmd.output()?;
    if !o.status.success() {
        bail!(
            "ferrite train {} failed: {}",
            model.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let r: Value = serde_json::from_slice(&std::fs::read(&report)?)?;
    let secs: Vec<f64> = r["epochs"]
        .as_array()
        .context("report epochs")?
        .iter()
        .skip(1)
        .filter_map(|e| e["seconds"].as_f64())
        .collect();
    Ok(secs.iter().sum::<f64>() / secs.len().max(1) as f64)
}

/// One anchored fixture's table: float, post-training, `ferrite train` with labels and distilling,
/// and NNCF's figures from each of its `anchors` runs. With `per_tensor`, Ferrite runs with
/// [`PER_TENSOR_OPTIONS`] (and its training at [`PER_TENSOR_LR`]), its defaults otherwise.
fn fixture_table(
    tool: &Path,
    fixtures: &Path,
    tmp: &Path,
    data: &Data,
    rel: &str,
    per_tensor: bool,
    anchors: &[&Value],
) -> Result<String> {
    let name = rel.split('/').next().unwrap_or(rel);
    let model = fixtures.join(rel);
    let (options, train_options): (&[&str], Vec<&str>) = if per_tensor {
        let mut t = PER_TENSOR_OPTIONS.to_vec();
        t.extend(["--lr", PER_TENSOR_LR]);
        (&PER_TENSOR_OPTIONS, t)
    } else {
        (&[], Vec::new())
    };
    let tag = if per_tensor { "-per-tensor" } else { "" };
    let ptq = tmp.join(format!("{name}{tag}-ptq.ferrite"));
    quantize(tool, fixtures, &model, &ptq, options)?;
    let mut models = vec![model.clone(), ptq];
    let mut per_epoch = Vec::new();
    for (k, s) in SUPERVISIONS.iter().enumerate() {
        let out = tmp.join(format!("{name}{tag}-qat{k}.ferrite"));
        let options = [&train_options[..], s.options].concat();
        per_epoch.push(train(tool, &model, data, s.labels, None, &options, &out)?);
        models.push(out);
    }
    let rows = crate::accuracy::eval_rows(tool, &models, &data.test_x, &data.test_y)?;
    let pct = |x: f64| format!("{:.2}%", 100.0 * x);
    let db = |x: Option<f64>| x.map_or("inf".into(), |v| format!("{v:.2}"));
    let float = rows[0].top1;
    let title = if per_tensor {
        format!(
            "`{name}` with one weight scale per tensor (Ferrite: `{}`, training at `--lr {PER_TENSOR_LR}`; NNCF: `--per-tensor-weights`)",
            PER_TENSOR_OPTIONS.join(" ")
        )
    } else {
        format!("`{name}`")
    };
    let mut table = format!(
        "{title}:\n\n\
         | tool | setting | top-1 | drop vs float (points) | SQNR (dB) | agreement | seconds per epoch |\n\
         |---|---|---:|---:|---:|---:|---:|\n\
         | float | ONNX model | {} | - | - | - | - |\n",
        pct(float)
    );
    let start = if per_tensor {
        format!("post-training, `{}`", PER_TENSOR_OPTIONS.join(" "))
    } else {
        "post-training default".to_string()
    };
    let settings = [start].into_iter().chain(
        SUPERVISIONS
            .iter()
            .map(|s| format!("`ferrite train`, {EPOCHS} epochs, {}", s.row)),
    );
    for (k, (setting, row)) in settings.zip(&rows[1..]).enumerate() {
        writeln!(
            table,
            "| Ferrite | {setting} | {} | {:.2} | {} | {} | {} |",
            pct(row.top1),
            100.0 * (float - row.top1),
            db(row.sqnr_db),
            row.agreement.map_or("-".into(), pct),
            if k == 0 {
                "-".into()
            } else {
                format!("{:.2}", per_epoch[k - 1])
            }
        )?;
    }
    for anchor in anchors {
        let bn = anchor["batchnorm"].as_str().unwrap_or("?");
        let nncf_float = anchor["float_top1"].as_f64().unwrap_or(f64::NAN);
        writeln!(
            table,
            "| NNCF | float torch model (BatchNorm: {bn}) | {} | - | - | - | - |",
            pct(nncf_float)
        )?;
        if let Some(p) = anchor["ptq_top1"].as_f64() {
            writeln!(
                table,
                "| NNCF | `nncf.quantize` (mixed, fast bias correction) | {} | {:.2} | - | - | - |",
                pct(p),
                100.0 * (nncf_float - p)
            )?;
        }
        let lr = anchor["recipe"]["optimizer"]
            .as_str()
            .and_then(|o| o.split_whitespace().nth(2))
            .unwrap_or("?");
        for e in anchor["epochs"].as_array().into_iter().flatten() {
            let top1 = e["top1"].as_f64().unwrap_or(f64::NAN);
            writeln!(
                table,
                "| NNCF | QAT in PyTorch (lr {lr}), epoch {}, labels | {} | {:.2} | - | - | {:.2} |",
                e["epoch"],
                pct(top1),
                100.0 * (nncf_float - top1),
                e["train_seconds"].as_f64().unwrap_or(f64::NAN)
            )?;
        }
    }
    table.push('\n');
    for anchor in anchors {
        writeln!(
            table,
            "NNCF (BatchNorm: {}; {}): torch {}, nncf {}, {} threads, load average {} before and {} after.",
            anchor["batchnorm"].as_str().unwrap_or("?"),
            anchor["recipe"]["optimizer"].as_str().unwrap_or("?"),
            anchor["versions"]["torch"].as_str().unwrap_or("?"),
            anchor["versions"]["nncf"].as_str().unwrap_or("?"),
            anchor["recipe"]["threads"],
            anchor["machine"]["loadavg_before"],
            anchor["machine"]["loadavg_after"],
        )?;
    }
    table.push('\n');
    Ok(table)
}

/// The learning-rate table: per Fashion-MNIST fixture and supervision, top-1 and SQNR at each pair
/// of rates.
fn lr_sweep(tool: &Path, fixtures: &Path, tmp: &Path, data: &Data) -> Result<String> {
    let mut table = String::from("| fixture | supervision | float | post-training |");
    for (lr, scale_lr) in SWEEP_RATES {
        write!(table, " {lr} / {scale_lr} |")?;
    }
    table.push_str("\n|---|---|---:|---:|");
    table.push_str(&"---:|".repeat(SWEEP_RATES.len()));
    table.push('\n');
    for name in SWEEP_FIXTURES {
        let model = fixtures.join(name).join("model.onnx");
        let ptq = tmp.join(format!("{name}-sweep-ptq.ferrite"));
        quantize(tool, fixtures, &model, &ptq, &[])?;
        for (k, s) in SUPERVISIONS.iter().enumerate() {
            let mut models = vec![model.clone(), ptq.clone()];
            for (lr, scale_lr) in SWEEP_RATES {
                let out = tmp.join(format!("{name}-sweep-{k}-{lr}-{scale_lr}.ferrite"));
                train(
                    tool,
                    &model,
                    data,
                    s.labels,
                    Some((lr, scale_lr)),
                    s.options,
                    &out,
                )?;
                models.push(out);
            }
            let rows = crate::accuracy::eval_rows(tool, &models, &data.test_x, &data.test_y)?;
            write!(
                table,
                "| {name} | {} | {:.2}% |",
                s.column,
                100.0 * rows[0].top1
            )?;
            for r in &rows[1..] {
                write!(
                    table,
                    " {:.2}% / {} dB |",
                    100.0 * r.top1,
                    r.sqnr_db.map_or("inf".into(), |d| format!("{d:.2}"))
                )?;
            }
            table.push('\n');
        }
    }
    Ok(table)
}
