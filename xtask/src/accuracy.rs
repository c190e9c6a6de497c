//! `cargo xtask accuracy [--write]`: post-training quantization of the real-data fixtures
//! (`tests/fixtures/`) beside the anchors. Each float fixture is quantized by `ferrite quantize` on its
//! 300 calibration samples with the defaults and a few other settings, and every int8 model is
//! evaluated by `ferrite eval` against the float model on the full test set: top-1, output SQNR and
//! top-1 agreement. NNCF's and onnxruntime's figures on the same models and calibration samples come
//! from `tests/fixtures/anchors_results.json` (written by `tests/fixtures/anchors.py`).
//!
//! The full test sets are made by `python3 tests/fixtures/full_testsets.py` into `target/datasets/`;
//! without them the committed test subsets are used and the table says so.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Options {
    /// Rewrite the accuracy section of BENCHMARKS.md.
    #[arg(long)]
    write: bool,
}

const BEGIN: &str = "<!-- cargo xtask accuracy --write: begin -->";
const END: &str = "<!-- cargo xtask accuracy --write: end -->";

/// Ferrite settings, as `ferrite quantize` flags (the first is the default).
const SETTINGS: [&str; 9] = [
    "",
    "--range tensor-mse",
    "--weight-rounding adaround",
    "--no-cle",
    "--range minmax",
    "--range mean-minmax",
    "--bias-correction fast",
    "--preset performance",
    "--int8-function-inputs",
];

/// Builds the `ferrite` tool (release) and returns its path.
pub fn ferrite(root: &Path) -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-q", "-p", "ferrite-quantizer"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building the ferrite tool failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release/ferrite"))
}

/// One model's row of `ferrite eval --json`.
pub struct EvalRow {
    pub top1: f64,
    /// Output SQNR against the first model (`None` for the first, or identical outputs).
    pub sqnr_db: Option<f64>,
    pub agreement: Option<f64>,
}

/// `ferrite eval --json` of `models` (the first is the reference) on labelled data.
pub fn eval_rows(ferrite: &Path, models: &[PathBuf], x: &Path, y: &Path) -> Result<Vec<EvalRow>> {
    let out = Command::new(ferrite)
        .arg("eval")
        .args(models)
        .arg("--data")
        .arg(x)
        .arg("--labels")
        .arg(y)
        .arg("--json")
        .output()?;
    if !out.status.success() {
        bail!("ferrite eval: {}", String::from_utf8_lossy(&out.stderr));
    }
    let rows: Value = serde_json::from_slice(&out.stdout)?;
    Ok(rows
        .as_array()
        .context("eval output")?
        .iter()
        .map(|r| EvalRow {
            top1: r["top1"].as_f64().unwrap_or(f64::NAN),
            sqnr_db: r["sqnr_db"].as_f64(),
            agreement: r["agreement"].as_f64(),
        })
        .collect())
}

/// Top-1 accuracies of `models` from `ferrite eval --json`.
pub fn eval(ferrite: &Path, models: &[PathBuf], x: &Path, y: &Path) -> Result<Vec<f64>> {
    Ok(eval_rows(ferrite, models, x, y)?
        .into_iter()
        .map(|r| r.top1)
        .collect())
}

/// One line of a model's table.
struct Line {
    tool: String,
    setting: String,
    top1: f64,
    sqnr_db: Option<f64>,
    agreement: Option<f64>,
    seconds: f64,
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v))
}

/// An SQNR compared with the float model: `None` means outputs identical to it.
fn db(x: Option<f64>) -> String {
    x.map_or("inf".into(), |v| format!("{v:.2}"))
}

/// The anchors' lines of `model` from `anchors_results.json`.
fn anchor_lines(anchors: &Value, model: &str) -> Vec<Line> {
    let Some(settings) = anchors["models"][model]["settings"].as_object() else {
        return Vec::new();
    };
    settings
        .iter()
        .filter_map(|(name, s)| {
            let (tool, setting) = name.split_once('_').unwrap_or((name, ""));
            Some(Line {
                tool: if tool == "ort" { "onnxruntime" } else { tool }.into(),
                setting: setting.replace('_', " "),
                top1: s["top1"].as_f64()?,
                sqnr_db: s["sqnr_db"].as_f64(),
                agreement: s["agreement"].as_f64(),
                seconds: s["seconds"].as_f64().unwrap_or(f64::NAN),
            })
        })
        .collect()
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let fixtures = root.join("tests/fixtures");
    let manifest: Value = serde_json::from_slice(&std::fs::read(fixtures.join("manifest.json"))?)?;
    let anchors: Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("anchors_results.json"))?)?;
    let tool = ferrite(root)?;
    let tmp = root.join("target/accuracy");
    std::fs::create_dir_all(&tmp)?;
    let datasets = root.join("target/datasets");
    let mut summary = String::from(
        "| model | test samples | float top-1 | Ferrite default: top-1 / SQNR / time | best anchor by SQNR: top-1 / SQNR / time | SQNR margin | time / NNCF's fastest |\n\
         |---|---:|---:|---|---|---:|---:|\n",
    );
    let mut details = String::new();
    let mut subsets = false;
    for m in manifest["models"].as_array().context("manifest models")? {
        let path = m["model"].as_str().context("model")?;
        let name = path.split('/').next().unwrap_or_default().to_string();
        let model = fixtures.join(path);
        let calib = fixtures.join(m["calib"].as_str().context("calib")?);
        let set = m["dataset"].as_str().context("dataset")?;
        let full = (
            datasets.join(format!("{set}_full_test_x.npy")),
            datasets.join(format!("{set}_full_test_y.npy")),
        );
        let (x, y) = if full.0.exists() && full.1.exists() {
            full
        } else {
            subsets = true;
            (
                fixtures.join(m["test_x"].as_str().context("test_x")?),
                fixtures.join(m["test_y"].as_str().context("test_y")?),
            )
        };
        let mut models = vec![model.clone()];
        let mut seconds = Vec::new();
        for (k, setting) in SETTINGS.iter().enumerate() {
            let out = tmp.join(format!("{name}-{k}.ferrite"));
            let start = Instant::now();
            let q = Command::new(&tool)
                .arg("quantize")
                .arg(&model)
                .arg("--data")
                .arg(&calib)
                .arg("-o")
                .arg(&out)
                .args(setting.split_whitespace())
                .output()?;
            seconds.push(start.elapsed().as_secs_f64());
            if !q.status.success() {
                bail!("{name} {setting}: {}", String::from_utf8_lossy(&q.stderr));
            }
            models.push(out);
        }
        let rows = eval_rows(&tool, &models, &x, &y)?;
        let samples = ferrite_quantizer::npy::Array::read(&y)?.len();
        let mut lines: Vec<Line> = SETTINGS
            .iter()
            .zip(&rows[1..])
            .zip(&seconds)
            .map(|((s, r), &t)| Line {
                tool: "Ferrite".into(),
                setting: if s.is_empty() {
                    "default".into()
                } else {
                    s.trim_start_matches("--").into()
                },
                top1: r.top1,
                sqnr_db: r.sqnr_db,
                agreement: r.agreement,
                seconds: t,
            })
            .collect();
        let anchor = anchor_lines(&anchors, &name);
        let best = anchor
            .iter()
            .filter(|l| l.sqnr_db.is_some())
            .max_by(|a, b| a.sqnr_db.unwrap().total_cmp(&b.sqnr_db.unwrap()));
        let nncf_fastest = anchor
            .iter()
            .filter(|l| l.tool == "nncf")
            .map(|l| l.seconds)
            .fold(f64::INFINITY, f64::min);
        let d = &lines[0];
        let row = format!(
            "| {name} | {samples} | {} | {} / {} dB / {:.2} s | {} | {} | {} |\n",
            pct(Some(rows[0].top1)),
            pct(Some(d.top1)),
            db(d.sqnr_db),
            d.seconds,
            best.map_or("-".into(), |b| format!(
                "{} {}: {} / {} dB / {:.2} s",
                b.tool,
                b.setting,
                pct(Some(b.top1)),
                db(b.sqnr_db),
                b.seconds
            )),
            match (d.sqnr_db, best.and_then(|b| b.sqnr_db)) {
                (Some(a), Some(b)) => format!("{:+.2} dB", a - b),
                (None, Some(_)) => "inf".into(),
                _ => "-".into(),
            },
            if nncf_fastest.is_finite() {
                format!("{:.2}x", d.seconds / nncf_fastest)
            } else {
                "-".into()
            },
        );
        print!("{row}");
        summary.push_str(&row);
        lines.extend(anchor);
        writeln!(
            details,
            "\n`{name}` ({samples} test samples, float top-1 {}):\n\n\
             | tool | setting | top-1 | SQNR (dB) | agreement | seconds |\n|---|---|---:|---:|---:|---:|",
            pct(Some(rows[0].top1))
        )?;
        for l in &lines {
            writeln!(
                details,
                "| {} | {} | {} | {} | {} | {:.2} |",
                l.tool,
                l.setting,
                pct(Some(l.top1)),
                db(l.sqnr_db),
                pct(l.agreement),
                l.seconds
            )?;
        }
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()?;
    let data = if subsets {
        "the committed test subsets (`target/datasets/` was missing: run `python3 tests/fixtures/full_testsets.py` \
         for the full test sets)"
    } else {
        "the full test sets (`python3 tests/fixtures/full_testsets.py`: Fashion-MNIST's 10,000, the 2,000 MNIST \
         digits not used in training, scikit-learn digits' 360)"
    };
    let section = format!(
        "Measured at commit `{}` with `cargo xtask accuracy`, on {data}. SQNR is the output's signal-to-quantization-noise \
         ratio against the float model over every output element of every test sample (Ferrite's against \
         the float model run by `ferrite eval`, the anchors' against onnxruntime's float run); agreement is the share of \
         samples whose top class is the float model's. Ferrite's time is the wall time of one `ferrite quantize` \
         process (import, equalization, calibration on 300 samples, bias correction, planning, writing); NNCF's and \
         onnxruntime's are the median of three in-process quantize calls from `tests/fixtures/anchors_results.json` \
         (model loading and export not included). The margin is Ferrite's default SQNR minus the best anchor's.\n\n\
         {summary}{details}\n",
        String::from_utf8_lossy(&commit.stdout).trim()
    );
    println!("\n{section}");
    if options.write {
        crate::bench::write_section(root, BEGIN, END, &section)?;
    }
    Ok(())
}
