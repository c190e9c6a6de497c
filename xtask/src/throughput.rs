//! `cargo xtask throughput [--runs N] [--write]`: single-thread host throughput of `ferrite eval` on the
//! largest real-data fixture (by MACs), beside onnxruntime running the same network's Q/DQ twin.
//!
//! Both sides run the same int8 network: the fixture's onnxruntime Q/DQ model
//! (`tests/fixtures/qdq/<name>_ort_s8.onnx`: per-channel int8 weights, int8 activations), which
//! onnxruntime runs as is and Ferrite runs after `ferrite convert` (same weights, scales and zero
//! points). Ferrite: `ferrite eval --threads 1 --json` on the fixture's test set, its `samples_per_second`
//! (one sample per invoke). onnxruntime: `tests/fixtures/ort_throughput.py` (one intra-op and one inter-op
//! thread, sequential execution, one sample per run). The two alternate, one pass each per round, so load
//! from other processes falls on both alike; the medians of the rounds are compared.

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args)]
pub struct Options {
    /// Rounds: one Ferrite pass and one onnxruntime pass over the test set each.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Rewrite the throughput section of BENCHMARKS.md.
    #[arg(long)]
    write: bool,
}

const BEGIN: &str = "<!-- cargo xtask throughput --write: begin -->";
const END: &str = "<!-- cargo xtask throughput --write: end -->";

/// The reference script, relative to `tests/fixtures/`.
const ORT_SCRIPT: &str = "ort_throughput.py";

/// Median, minimum and maximum.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// Runs `cmd`, failing with its stderr, and parses its stdout as JSON.
fn json_of(cmd: &mut Command, what: &str) -> Result<Value> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("{what}: output is not JSON"))
}

/// The fixture with the most MACs (`ferrite inspect --json` on each float model) and its MACs.
fn largest(tool: &Path, fixtures: &Path, manifest: &Value) -> Result<(Value, u64)> {
    let mut best: Option<(Value, u64)> = None;
    for m in manifest["models"].as_array().context("manifest: models")? {
        let model = fixtures.join(m["model"].as_str().context("manifest: model")?);
        let info = json_of(
            Command::new(tool).arg("inspect").arg(&model).arg("--json"),
            "ferrite inspect",
        )?;
        let macs = info["macs"].as_u64().context("inspect: macs")?;
        if best.as_ref().is_none_or(|b| macs > b.1) {
            best = Some((m.clone(), macs));
        }
    }
    best.context("no fixture in the manifest")
}

/// Why onnxruntime cannot be run here, if it cannot.
fn ort_missing(python: &str) -> Option<String> {
    match Command::new(python)
        .args(["-c", "import onnxruntime, numpy, onnx"])
        .output()
    {
        Err(e) => Some(format!("`{python}` not found ({e})")),
        Ok(o) if !o.status.success() => Some(format!(
            "`{python}` cannot import onnxruntime, numpy and onnx: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        )),
        Ok(_) => None,
    }
}

/// CPU model name and logical core count from /proc/cpuinfo, with the SIMD extensions that matter for
/// int8 kernels.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        info.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let cores = info.lines().filter(|l| l.starts_with("processor")).count();
    let flags = field("flags").unwrap_or_default();
    let simd: Vec<&str> = [
        "sse4_1",
        "avx2",
        "avx512f",
        "avx512bw",
        "avx512_vnni",
        "avx_vnni",
    ]
    .into_iter()
    .filter(|f| flags.split_whitespace().any(|x| x == *f))
    .collect();
    format!(
        "{}, {cores} logical core(s) in /proc/cpuinfo ({} available to this process); SIMD: {}",
        field("model name").unwrap_or_else(|| "unknown CPU".into()),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if simd.is_empty() {
            "-".to_string()
        } else {
            simd.join(", ")
        }
    )
}

/// The 1-minute load average.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

fn git(root: &Path, args: &[&str]) -> Result<std::process::Output> {
    Ok(Command::new("git").args(args).current_dir(root).output()?)
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let fixtures = root.join("tests/fixtures");
    let manifest: Value = serde_json::from_slice(&std::fs::read(fixtures.join("manifest.json"))?)?;
    let tool = crate::accuracy::ferrite(root)?;
    let (m, macs) = largest(&tool, &fixtures, &manifest)?;
    let name = m["model"]
        .as_str()
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let field = |k: &str| -> Result<PathBuf> {
        Ok(fixtures.join(m[k].as_str().with_context(|| format!("manifest: {k}"))?))
    };
    let (x, y) = (field("test_x")?, field("test_y")?);
    let qdq = fixtures.join(format!("qdq/{name}_ort_s8.onnx"));
    let dir = root.join("target/throughput");
    std::fs::create_dir_all(&dir)?;
    let converted = dir.join(format!("{name}_ort_s8.ferrite"));
    let c = Command::new(&tool)
        .arg("convert")
        .arg(&qdq)
        .arg("-o")
        .arg(&converted)
        .output()?;
    ensure!(
        c.status.success(),
        "ferrite convert {}: {}",
        qdq.display(),
        String::from_utf8_lossy(&c.stderr).trim()
    );

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let missing = ort_missing(&python);
    if let Some(why) = &missing {
        eprintln!("onnxruntime column skipped: {why}");
    }
    let load_before = load();
    let (mut ferrite, mut ort) = (Vec::new(), Vec::new());
    let (mut ferrite_top1, mut ort_info) = (f64::NAN, Value::Null);
    let mut samples = 0;
    for round in 0..options.runs {
        let rows = json_of(
            Command::new(&tool)
                .arg("eval")
                .arg(&converted)
                .arg("--data")
                .arg(&x)
                .arg("--labels")
                .arg(&y)
                .args(["--threads", "1", "--json"]),
            "ferrite eval",
        )?;
        let row = &rows[0];
        ensure!(
            row["threads"].as_u64() == Some(1),
            "ferrite eval: not one thread"
        );
        ferrite.push(
            row["samples_per_second"]
                .as_f64()
                .context("samples_per_second")?,
        );
        ferrite_top1 = row["top1"].as_f64().unwrap_or(f64::NAN);
        if missing.is_none() {
            let r = json_of(
                Command::new(&python)
                    .arg(fixtures.join(ORT_SCRIPT))
                    .arg(&qdq)
                    .arg(&x)
                    .arg(&y)
                    .args(["--runs", "1", "--warmup", "1"]),
                "onnxruntime",
            )?;
            ort.push(
                r["passes"][0]["samples_per_second"]
                    .as_f64()
                    .context("onnxruntime: samples_per_second")?,
            );
            samples = r["samples"].as_u64().unwrap_or(0);
            ort_info = r;
        }
        eprintln!(
            "round {}/{}: Ferrite {:.0} samples/s{}",
            round + 1,
            options.runs,
            ferrite[ferrite.len() - 1],
            ort.last()
                .map_or(String::new(), |v| format!(", onnxruntime {v:.0} samples/s"))
        );
    }
    let load_after = load();
    if samples == 0 {
        samples = ferrite_quantizer::npy::Array::read(&x)?
            .shape
            .first()
            .copied()
            .unwrap_or(0) as u64;
    }

    let (fm, fmin, fmax) = spread(&ferrite);
    let mut table = String::from(
        "| runtime | model run | samples/s (median) | min | max | top-1 |\n|---|---|---:|---:|---:|---:|\n",
    );
    table.push_str(&format!(
        "| Ferrite (`ferrite eval --threads 1`) | `{name}_ort_s8.onnx` after `ferrite convert` | {fm:.0} | {fmin:.0} | {fmax:.0} | {:.2}% |\n",
        100.0 * ferrite_top1
    ));
    let ratio = if let Some(why) = &missing {
        table.push_str(&format!(
            "| onnxruntime | not measured: {why} | - | - | - | - |\n"
        ));
        "not measured (onnxruntime missing)".to_string()
    } else {
        let (om, omin, omax) = spread(&ort);
        table.push_str(&format!(
            "| onnxruntime {} (CPU EP, 1 intra-op + 1 inter-op thread, sequential) | `{name}_ort_s8.onnx` | {om:.0} | {omin:.0} | {omax:.0} | {:.2}% |\n",
            ort_info["onnxruntime"].as_str().unwrap_or("?"),
            100.0 * ort_info["top1"].as_f64().unwrap_or(f64::NAN)
        ));
        let paired: Vec<f64> = ferrite.iter().zip(&ort).map(|(f, o)| f / o).collect();
        let (pm, pmin, pmax) = spread(&paired);
        format!(
            "**Ferrite / onnxruntime = {:.2}x** (ratio of the median samples/s; above 1 means Ferrite is \
             faster). Round by round (the two passes of a round run back to back, under the same load): \
             median {pm:.2}x, min {pmin:.2}x, max {pmax:.2}x",
            fm / om
        )
    };

    let ort_graph = match ort_info["optimized_ops"].as_object() {
        Some(ops) => {
            let list: Vec<String> = ops
                .iter()
                .map(|(k, v)| format!("{k} {}", v.as_u64().unwrap_or(0)))
                .collect();
            let float_convs = ops.get("Conv").and_then(Value::as_u64).unwrap_or(0);
            let qconvs = ops.get("QLinearConv").and_then(Value::as_u64).unwrap_or(0);
            format!(
                "\n- The graph onnxruntime runs after its optimizations: {}.{}",
                list.join(", "),
                if float_convs > 0 {
                    format!(
                        " {float_convs} of its {} convolutions are not fused into QLinearConv and run in \
                         float32 between DequantizeLinear and QuantizeLinear; Ferrite runs every layer \
                         in int8.",
                        float_convs + qconvs
                    )
                } else {
                    String::new()
                }
            )
        }
        None => String::new(),
    };
    let commit = git(root, &["rev-parse", "--short=12", "HEAD"])?;
    let dirty = !git(
        root,
        &["diff", "--quiet", "HEAD", "--", ".", ":!BENCHMARKS.md"],
    )?
    .status
    .success();
    let section = format!(
        "Measured at commit `{}`{} with `cargo xtask throughput --runs {}`.\n\n\
         - Model: `{name}`, the largest fixture ({} MACs per inference), as onnxruntime's Q/DQ twin \
         `tests/fixtures/qdq/{name}_ort_s8.onnx` (per-channel int8 weights, int8 activations): the same \
         int8 network on both sides; Ferrite runs it after `ferrite convert`.\n\
         - Data: the {samples} samples of `{}`, float32 in, float32 out on both sides (input quantization, \
         NCHW-to-NHWC reordering and output dequantization included), one sample per inference (batch 1) \
         on both sides. Ferrite's figure is `ferrite eval`'s own timing of its sample loop (process start and \
         model loading excluded, no warm-up); onnxruntime's is `tests/fixtures/{ORT_SCRIPT}` timing its loop \
         of `run` calls after one untimed warm-up pass (session creation excluded), with default graph \
         optimizations (which fuse Q/DQ groups into QLinear kernels).{ort_graph}\n\
         - {} rounds, each one Ferrite pass{}; min and max show the spread. Wall clock on a shared \
         machine: 1-minute load average {load_before} before, {load_after} after.\n\
         - Machine: {}; `ferrite` built with the release profile for the default x86-64 target (no \
         `target-cpu`), onnxruntime's wheel dispatches to the CPU's extensions at run time.\n\n\
         {table}\n{ratio}.\n\n",
        String::from_utf8_lossy(&commit.stdout).trim(),
        if dirty { " (with uncommitted changes)" } else { "" },
        options.runs,
        crate::bench::thousands(macs),
        x.strip_prefix(root).unwrap_or(&x).display(),
        options.runs,
        if missing.is_none() {
            " then one onnxruntime pass"
        } else {
            ""
        },
        machine(),
    );
    println!("\n{section}");
    if options.write {
        crate::bench::write_section(root, BEGIN, END, &section)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
    }
}
