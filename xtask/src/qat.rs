//! `cargo xtask qat [--write]`: quantization-aware training of the QAT fixture (the model named in
//! `tests/fixtures/qat_anchor_results.json`, on which post-training quantization loses accuracy) beside
//! NNCF's QAT on the same model and data. Ferrite's post-training default, `ferrite train` with labels
//! and `ferrite train` distilling the float model (3 epochs on the 10,000 training samples each) are
//! evaluated by `ferrite eval` on the full Fashion-MNIST test set: top-1, output SQNR, agreement; the
//! time per epoch is the report's (training steps only). NNCF's figures come from the JSON file,
//! written by `tests/fixtures/qat_anchor.py` on this machine. A second table gives top-1 and SQNR of
//! every Fashion-MNIST fixture trained at a few learning rates, with labels and distilling: the
//! evidence for the default rate.
//!
//! Needs `target/datasets/` (`python3 tests/fixtures/full_testsets.py`).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

#[derive(clap::Args)]
pub struct Options {
    /// Rewrite the QAT section of BENCHMARKS.md.
    #[arg(long)]
    write: bool,
}

const BEGIN: &str = "<!-- cargo xtask qat --write: begin -->";
const END: &str = "<!-- cargo xtask qat --write: end -->";

/// Fixtures and learning rates of the learning-rate table, and its epochs.
const SWEEP_FIXTURES: [&str; 3] = ["dscnn_fashion", "resnet_fashion", "mbv1_tanh_fashion"];
const SWEEP_RATES: [&str; 3] = ["1e-4", "3e-5", "1e-5"];
const SWEEP_EPOCHS: &str = "2";

/// Epochs of every training run (the budget: at most 3 epochs on at most 10k samples).
const EPOCHS: &str = "3";

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let fixtures = root.join("tests/fixtures");
    let anchor: Value = serde_json::from_slice(
        &std::fs::read(fixtures.join("qat_anchor_results.json"))
            .context("reading tests/fixtures/qat_anchor_results.json")?,
    )?;
    let rel = anchor["model"].as_str().context("anchor: model")?;
    let name = rel.split('/').next().unwrap_or(rel);
    let model = fixtures.join(rel);
    let datasets = root.join("target/datasets");
    let need = |f: &str| -> Result<std::path::PathBuf> {
        let p = datasets.join(f);
        if !p.exists() {
            bail!(
                "{} is missing: run `python3 tests/fixtures/full_testsets.py`",
                p.display()
            );
        }
        Ok(p)
    };
    let (train_x, train_y) = (
        need("fashion_train10k_x.npy")?,
        need("fashion_train10k_y.npy")?,
    );
    let (test_x, test_y) = (
        need("fashion_full_test_x.npy")?,
        need("fashion_full_test_y.npy")?,
    );
    let tool = crate::accuracy::ferrite(root)?;
    let tmp = root.join("target/qat");
    std::fs::create_dir_all(&tmp)?;

    let ptq = tmp.join(format!("{name}-ptq.ferrite"));
    let status = Command::new(&tool)
        .arg("quantize")
        .arg(&model)
        .arg("--calib")
        .arg(fixtures.join("data/fashion_calib_x.npy"))
        .arg("-o")
        .arg(&ptq)
        .status()?;
    if !status.success() {
        bail!("ferrite quantize failed");
    }
    // (setting, extra flags, output)
    let runs = [
        (
            "labels",
            vec!["--labels".to_string(), train_y.display().to_string()],
        ),
        ("distillation (no labels)", vec![]),
    ];
    let mut models = vec![model.clone(), ptq];
    let mut per_epoch = Vec::new();
    for (k, (setting, flags)) in runs.iter().enumerate() {
        let out = tmp.join(format!("{name}-qat{k}.ferrite"));
        let report = tmp.join(format!("{name}-qat{k}.json"));
        let o = Command::new(&tool)
            .arg("train")
            .arg(&model)
            .arg("--data")
            .arg(&train_x)
            .args(flags)
            .args(["--epochs", EPOCHS, "-o"])
            .arg(&out)
            .arg("--report")
            .arg(&report)
            .status()?;
        if !o.success() {
            bail!("ferrite train ({setting}) failed");
        }
        let r: Value = serde_json::from_slice(&std::fs::read(&report)?)?;
        let secs: Vec<f64> = r["epochs"]
            .as_array()
            .context("report epochs")?
            .iter()
            .skip(1)
            .filter_map(|e| e["seconds"].as_f64())
            .collect();
        per_epoch.push(secs.iter().sum::<f64>() / secs.len().max(1) as f64);
        models.push(out);
    }
    let rows = crate::accuracy::eval_rows(&tool, &models, &test_x, &test_y)?;
    let pct = |x: f64| format!("{:.2}%", 100.0 * x);
    let db = |x: Option<f64>| x.map_or("inf".into(), |v| format!("{v:.2}"));
    let float = rows[0].top1;
    let mut table = String::from(
        "| tool | setting | top-1 | drop vs float (points) | SQNR (dB) | agreement | seconds per epoch |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    writeln!(
        table,
        "| float | ONNX model | {} | - | - | - | - |",
        pct(float)
    )?;
    let settings = ["post-training default"]
        .into_iter()
        .chain(runs.iter().map(|r| r.0));
    for (k, (setting, row)) in settings.zip(&rows[1..]).enumerate() {
        let (tool_name, setting) = if k == 0 {
            ("Ferrite", setting.to_string())
        } else {
            (
                "Ferrite",
                format!("`ferrite train`, {EPOCHS} epochs, {setting}"),
            )
        };
        writeln!(
            table,
            "| {tool_name} | {setting} | {} | {:.2} | {} | {} | {} |",
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
    let nncf_float = anchor["float_top1"].as_f64().unwrap_or(f64::NAN);
    if let Some(p) = anchor["ptq_top1"].as_f64() {
        writeln!(
            table,
            "| NNCF | `nncf.quantize` (mixed, fast bias correction) | {} | {:.2} | - | - | - |",
            pct(p),
            100.0 * (nncf_float - p)
        )?;
    }
    for e in anchor["epochs"].as_array().into_iter().flatten() {
        writeln!(
            table,
            "| NNCF | QAT in PyTorch, epoch {}, labels | {} | {:.2} | - | - | {:.2} |",
            e["epoch"],
            pct(e["top1"].as_f64().unwrap_or(f64::NAN)),
            100.0 * (nncf_float - e["top1"].as_f64().unwrap_or(f64::NAN)),
            e["train_seconds"].as_f64().unwrap_or(f64::NAN)
        )?;
    }
    let sweep = lr_sweep(
        &tool,
        &fixtures,
        &tmp,
        [&train_x, &train_y, &test_x, &test_y],
    )?;
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()?;
    let section = format!(
        "Measured at commit `{}` with `cargo xtask qat`: the fixture `{name}` (`tests/fixtures/README.md`), \
         trained on `target/datasets/fashion_train10k_{{x,y}}.npy` (10,000 Fashion-MNIST training images, \
         disjoint from the 300 calibration samples), scored on the full 10,000-image test set. Ferrite: \
         `ferrite train` with its defaults (Adam, learning rate {} with cosine decay, batch 32, no \
         validation set: the last epoch is kept), {EPOCHS} epochs; time per epoch is the training steps \
         only, from `--report`. NNCF: `tests/fixtures/qat_anchor.py` (torch {}, nncf {}, {} threads; \
         recipe in `tests/fixtures/qat_anchor_results.json`), the same model, calibration samples and \
         training set, top-1 of the fake-quantized torch model; float top-1 there is torch's, {}.\n\n{table}\n\
         The default learning rate, from every Fashion-MNIST fixture: {SWEEP_EPOCHS} epochs of `ferrite train` \
         at each rate, top-1 / output SQNR on the full test set (post-training default first).\n\n{sweep}\n",
        String::from_utf8_lossy(&commit.stdout).trim(),
        ferrite_quantizer::train::DEFAULT_LR_ADAM,
        anchor["versions"]["torch"].as_str().unwrap_or("?"),
        anchor["versions"]["nncf"].as_str().unwrap_or("?"),
        anchor["recipe"]["threads"],
        pct(nncf_float),
    );
    println!("{section}");
    if options.write {
        crate::bench::write_section(root, BEGIN, END, &section)?;
    }
    Ok(())
}

/// The learning-rate table: per Fashion-MNIST fixture and supervision, top-1 and SQNR at each rate.
fn lr_sweep(tool: &Path, fixtures: &Path, tmp: &Path, data: [&Path; 4]) -> Result<String> {
    let [train_x, train_y, test_x, test_y] = data;
    let mut table = String::from("| fixture | supervision | post-training |");
    for r in SWEEP_RATES {
        write!(table, " lr {r} |")?;
    }
    table.push_str("\n|---|---|---:|");
    table.push_str(&"---:|".repeat(SWEEP_RATES.len()));
    table.push('\n');
    for name in SWEEP_FIXTURES {
        let model = fixtures.join(name).join("model.onnx");
        let ptq = tmp.join(format!("{name}-sweep-ptq.ferrite"));
        let status = Command::new(tool)
            .arg("quantize")
            .arg(&model)
            .arg("--calib")
            .arg(fixtures.join("data/fashion_calib_x.npy"))
            .arg("-o")
            .arg(&ptq)
            .output()?
            .status;
        if !status.success() {
            bail!("ferrite quantize {name} failed");
        }
        for labels in [true, false] {
            let mut models = vec![model.clone(), ptq.clone()];
            for r in SWEEP_RATES {
                let out = tmp.join(format!("{name}-sweep-{labels}-{r}.ferrite"));
                let mut cmd = Command::new(tool);
                cmd.arg("train")
                    .arg(&model)
                    .arg("--data")
                    .arg(train_x)
                    .args(["--epochs", SWEEP_EPOCHS, "--lr", r, "-o"])
                    .arg(&out);
                if labels {
                    cmd.arg("--labels").arg(train_y);
                }
                if !cmd.output()?.status.success() {
                    bail!("ferrite train {name} --lr {r} failed");
                }
                models.push(out);
            }
            let rows = crate::accuracy::eval_rows(tool, &models, test_x, test_y)?;
            write!(
                table,
                "| {name} | {} |",
                if labels { "labels" } else { "distillation" }
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
