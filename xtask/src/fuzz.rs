//! `cargo xtask fuzz [--target T] [--runs N | --time SECS]`: the cargo-fuzz targets of the quantizer
//! (`quantizer/fuzz/`: every importer and `quantize`) and of the runtime (`runtime/fuzz/`), one after
//! the other, each on a corpus seeded from the repository's fixtures.
//!
//! Needs cargo-fuzz and a nightly toolchain. Each target runs with a 1 GiB RSS limit and a 10 s
//! per-input timeout, single process, built with AddressSanitizer unless `--sanitizer none` (about 5x
//! the executions per second: the safe code's bounds are checked anyway); a crash stops the step with libFuzzer's
//! report and the input saved under the crate's `artifacts/<target>/`. Corpora (`corpus/<target>/`)
//! are kept between runs and are not committed.

use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args)]
pub struct Options {
    /// Only this target (default: all of them, fastest first).
    #[arg(long)]
    target: Option<String>,
    /// Executions per target (libFuzzer's `-runs`).
    #[arg(long, conflicts_with = "time")]
    runs: Option<u64>,
    /// Seconds per target (libFuzzer's `-max_total_time`) [default: 60 when --runs is not given].
    #[arg(long)]
    time: Option<u64>,
    /// cargo-fuzz's sanitizer: `address`, or `none` for speed.
    #[arg(long, default_value = "address")]
    sanitizer: String,
}

/// Where a target's seeds come from.
enum Seeds {
    /// Files under `tests/` with this extension whose path (relative to `tests/`) passes the filter,
    /// up to this many bytes: larger ones are slow to mutate and run, and the smaller fixtures cover
    /// the same operators (for ONNX, the per-operator `tests/fixtures/ops/ops_opset*.onnx`).
    Files(&'static str, fn(&str) -> bool, u64),
    /// Calibration inputs for `quantize_calib`, generated.
    Calibration,
}

struct Target {
    /// The fuzz crate, relative to the repository root.
    crate_dir: &'static str,
    name: &'static str,
    seeds: Seeds,
}

/// Fastest first.
const TARGETS: [Target; 6] = [
    Target {
        crate_dir: "quantizer/fuzz",
        name: "npy_parse",
        seeds: Seeds::Files("npy", |_| true, 48 * 1024),
    },
    Target {
        crate_dir: "runtime/fuzz",
        name: "load_and_run",
        seeds: Seeds::Files("ferrite", |p| p.starts_with("golden/"), 64 * 1024),
    },
    Target {
        crate_dir: "quantizer/fuzz",
        name: "tflite_convert",
        seeds: Seeds::Files("tflite", |_| true, 64 * 1024),
    },
    Target {
        crate_dir: "quantizer/fuzz",
        name: "onnx_import",
        seeds: Seeds::Files("onnx", |p| !p.starts_with("fixtures/qdq/"), 16 * 1024),
    },
    Target {
        crate_dir: "quantizer/fuzz",
        name: "onnx_qdq_convert",
        seeds: Seeds::Files("onnx", |p| p.starts_with("fixtures/qdq/"), 40 * 1024),
    },
    Target {
        crate_dir: "quantizer/fuzz",
        name: "quantize_calib",
        seeds: Seeds::Calibration,
    },
];

pub fn run(root: &Path, options: &Options) -> Result<()> {
    crate::toolchain::ensure_nightly_tool("fuzz", "`cargo install cargo-fuzz`")?;
    let targets: Vec<&Target> = match &options.target {
        Some(t) => {
            let Some(found) = TARGETS.iter().find(|x| x.name == t) else {
                let names: Vec<&str> = TARGETS.iter().map(|x| x.name).collect();
                bail!("no fuzz target {t}; targets: {}", names.join(", "));
            };
            vec![found]
        }
        None => TARGETS.iter().collect(),
    };
    let limit = match (options.runs, options.time) {
        (Some(n), _) => format!("-runs={n}"),
        (None, t) => format!("-max_total_time={}", t.unwrap_or(60)),
    };
    for t in targets {
        let dir = root.join(t.crate_dir);
        let corpus = dir.join("corpus").join(t.name);
        let seeded = seed(root, t, &corpus)?;
        println!("== {} ({}): {seeded} seed(s), {limit}", t.name, t.crate_dir);
        let status = Command::new("cargo")
            .current_dir(&dir)
            .args(["+nightly", "fuzz", "run", "--debug-assertions"])
            .args(["--sanitizer", &options.sanitizer, t.name])
            .arg(&corpus)
            .args([
                "--",
                &limit,
                "-rss_limit_mb=1024",
                "-timeout=10",
                "-print_final_stats=1",
            ])
            .status()
            .with_context(|| format!("starting cargo fuzz run {}", t.name))?;
        ensure!(
            status.success(),
            "fuzz target {} failed (the input is under {}/artifacts/{}/)",
            t.name,
            t.crate_dir,
            t.name
        );
    }
    Ok(())
}

/// Copies (or writes) the target's seeds into `corpus`; returns how many.
fn seed(root: &Path, t: &Target, corpus: &Path) -> Result<usize> {
    std::fs::create_dir_all(corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let mut n = 0;
    match t.seeds {
        Seeds::Files(ext, keep, max_bytes) => {
            let tests = root.join("tests");
            let mut files = Vec::new();
            walk(&tests, ext, &mut files)?;
            for f in files {
                let rel = f.strip_prefix(&tests)?.to_string_lossy().replace('\\', "/");
                if !keep(&rel) || std::fs::metadata(&f)?.len() > max_bytes {
                    continue;
                }
                std::fs::copy(&f, corpus.join(rel.replace('/', "_")))
                    .with_context(|| format!("copying {}", f.display()))?;
                n += 1;
            }
        }
        Seeds::Calibration => {
            for (i, seed) in calibration_seeds().iter().enumerate() {
                std::fs::write(corpus.join(format!("seed{i}")), seed)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Files under `dir` (recursively) ending in `.ext`, sorted.
fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, ext, out)?;
        } else if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
    Ok(())
}

/// `quantize_calib` inputs: a settings byte, an encoding byte, then samples of the tiny model's 32
/// inputs (raw float32, or one byte per value from the target's table of edge values; encoding
/// 0x0f adds AdaRound).
fn calibration_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for settings in [0x00u8, 0x46, 0x5b, 0xff] {
        let mut raw = vec![settings, 0];
        for i in 0..64 {
            let v = ((i * 37) % 23) as f32 / 7.0 - 1.5;
            raw.extend_from_slice(&v.to_le_bytes());
        }
        seeds.push(raw);
        for encoding in [0x01, 0x0f] {
            let mut edge = vec![settings, encoding];
            edge.extend((0..96u8).map(|i| i.wrapping_mul(29) & 0x3f));
            seeds.push(edge);
        }
    }
    seeds
}
