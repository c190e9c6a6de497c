//! `cargo xtask accuracy [--write]`: post-training quantization of the real-data fixtures
//! (`tests/fixtures/`): float and int8 top-1 accuracy and quantization wall time, with Ferrite's default
//! settings and the best of a few others, beside NNCF's figures recorded by
//! `tests/fixtures/nncf_baseline.py` in `tests/fixtures/nncf_results.json` on the same data.

use anyhow::{bail, Context, Result};
use serde_json::Value;
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

/// Settings tried besides the default, as `ferrite quantize` flags.
const SETTINGS: [&str; 7] = [
    "",
    "--preset performance",
    "--bias-correction fast",
    "--bias-correction off",
    "--range minmax",
    "--range mse",
    "--range percentile",
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

/// Top-1 accuracies of `models` from `ferrite eval --json`.
pub fn eval(ferrite: &Path, models: &[PathBuf], x: &Path, y: &Path) -> Result<Vec<f64>> {
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
        .map(|r| r["top1"].as_f64().unwrap_or(f64::NAN))
        .collect())
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let fixtures = root.join("tests/fixtures");
    let manifest: Value = serde_json::from_slice(&std::fs::read(fixtures.join("manifest.json"))?)?;
    let nncf: Value = serde_json::from_slice(&std::fs::read(fixtures.join("nncf_results.json"))?)?;
    let tool = ferrite(root)?;
    let tmp = root.join("target/accuracy");
    std::fs::create_dir_all(&tmp)?;
    let mut table = String::from(
        "| model | test samples | float | Ferrite default | time | Ferrite best (setting) | NNCF best (setting) | NNCF time |\n|---|---:|---:|---:|---:|---|---|---:|\n",
    );
    for m in manifest["models"].as_array().context("manifest models")? {
        let model = fixtures.join(m["model"].as_str().context("model")?);
        let name = m["model"]
            .as_str()
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let calib = fixtures.join(m["calib"].as_str().context("calib")?);
        let (x, y) = (
            fixtures.join(m["test_x"].as_str().context("test_x")?),
            fixtures.join(m["test_y"].as_str().context("test_y")?),
        );
        let mut results = Vec::new();
        for (k, setting) in SETTINGS.iter().enumerate() {
            let out = tmp.join(format!("{name}-{k}.ferrite"));
            let start = Instant::now();
            let q = Command::new(&tool)
                .arg("quantize")
                .arg(&model)
                .arg("--calib")
                .arg(&calib)
                .arg("-o")
                .arg(&out)
                .args(setting.split_whitespace())
                .output()?;
            let seconds = start.elapsed().as_secs_f64();
            if !q.status.success() {
                bail!("{name} {setting}: {}", String::from_utf8_lossy(&q.stderr));
            }
            results.push((setting, seconds, out));
        }
        let mut models = vec![model.clone()];
        models.extend(results.iter().map(|r| r.2.clone()));
        let acc = eval(&tool, &models, &x, &y)?;
        let float = acc[0];
        let best = (1..acc.len())
            .max_by(|&a, &b| acc[a].total_cmp(&acc[b]).then(b.cmp(&a)))
            .unwrap_or(1);
        let label = |s: &str| {
            if s.is_empty() {
                "default".to_string()
            } else {
                s.trim_start_matches("--").to_string()
            }
        };
        let n = &nncf["models"][&name];
        let mut nncf_best: Option<(String, f64, f64)> = None;
        if let Some(settings) = n["settings"].as_object() {
            for (k, v) in settings {
                if let (Some(a), Some(t)) = (v["int8_accuracy"].as_f64(), v["seconds"].as_f64()) {
                    if nncf_best.as_ref().is_none_or(|b| a > b.1) {
                        nncf_best = Some((k.clone(), a, t));
                    }
                }
            }
        }
        let (nb_label, nb_acc, nb_time) = nncf_best.unwrap_or(("-".into(), f64::NAN, f64::NAN));
        let row = format!(
            "| {name} | {} | {:.2}% | {:.2}% | {:.2} s | {:.2}% ({}) | {:.2}% ({nb_label}) | {nb_time:.2} s |\n",
            n["test_samples"].as_u64().unwrap_or(0),
            100.0 * float,
            100.0 * acc[1],
            results[0].1,
            100.0 * acc[best],
            label(results[best - 1].0),
            100.0 * nb_acc,
        );
        print!("{row}");
        table.push_str(&row);
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()?;
    let section = format!(
        "Measured at commit `{}` with `cargo xtask accuracy`. Ferrite's time is the wall time of one `ferrite quantize` \
         process (import, calibration on 300 samples, bias correction, planning, writing); NNCF's is the median of three \
         `nncf.quantize` calls from `tests/fixtures/nncf_results.json` (its load and export not included). Accuracy is \
         top-1 on the committed test subsets: one sample is 0.2 points (0.28 for digits), so differences of a sample \
         or two are noise.\n\n{table}\n",
        String::from_utf8_lossy(&commit.stdout).trim()
    );
    println!("\n{section}");
    if options.write {
        crate::bench::write_section(root, BEGIN, END, &section)?;
    }
    Ok(())
}
