//! `cargo xtask models [--write]`: the MLPerf Tiny int8 models of `../shared/models/mlperf-tiny/`
//! converted with the TFLite importer: `.tflite` and `.ferrite` bytes, Ferrite's planned arena and the
//! planner's lower bound (the largest total of buffers live at one step), beside TFLite Micro's arena
//! (head = planned activations, tail = persistent data) as published in `../shared/BASELINES.md`.

use crate::bench::thousands;
use anyhow::{Context, Result};
use std::{fmt::Write as _, path::Path};

#[derive(clap::Args)]
pub struct Options {
    /// Rewrite the models section of BENCHMARKS.md.
    #[arg(long)]
    write: bool,
}

const BEGIN: &str = "<!-- cargo xtask models --write: begin -->";
const END: &str = "<!-- cargo xtask models --write: end -->";

/// TFLite Micro's arena for each model: (file stem, total, head, tail) in bytes. Published figures
/// copied from `../shared/BASELINES.md`, section "TFLite Micro arena for the MLPerf Tiny int8 models
/// (measured here)": PyPI `tflite-micro` 0.dev20261023, reference kernels on x86-64,
/// `Interpreter.from_file(...).print_allocations()`. Its 64-bit structures make the tail larger than
/// on a 32-bit device; the head (activations) does not depend on pointer size.
const TFLM: [(&str, u64, u64, u64); 5] = [
    ("kws_dscnn_int8", 24_272, 16_000, 8_272),
    ("ic_resnet8_int8", 55_984, 49_152, 6_832),
    ("vww_mobilenet_int8", 103_680, 73_728, 29_952),
    ("ad_autoencoder_int8", 3_984, 768, 3_216),
    ("sww_int8", 16_640, 6_656, 9_984),
];

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let dir = root.join("../shared/models/mlperf-tiny");
    let mut table = String::from(
        "| model | .tflite | .ferrite | .ferrite / .tflite | Ferrite arena | lower bound | TFLM arena total | TFLM head | TFLM tail | Ferrite arena / TFLM head |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut found = 0;
    let mut notes = Vec::new();
    for (stem, total, head, tail) in TFLM {
        let path = dir.join(format!("{stem}.tflite"));
        if !path.is_file() {
            notes.push(format!("{} is absent: skipped", path.display()));
            continue;
        }
        let tflite = std::fs::read(&path)?;
        let built = ferrite_quantizer::import::tflite::convert(&tflite)
            .with_context(|| format!("converting {}", path.display()))?;
        found += 1;
        let (file, arena) = (built.bytes.len() as u64, built.plan.arena_size as u64);
        let _ = writeln!(
            table,
            "| {stem} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {:.2} |",
            thousands(tflite.len() as u64),
            thousands(file),
            file as f64 / tflite.len() as f64,
            thousands(arena),
            thousands(built.plan.lower_bound as u64),
            thousands(total),
            thousands(head),
            thousands(tail),
            arena as f64 / head as f64
        );
    }
    let mut section = format!(
        "Measured at commit `{}` with `cargo xtask models`. Ferrite: the model converted by \
         `ferrite_quantizer::import::tflite::convert` (what `ferrite convert` writes); its arena is the \
         whole RAM the interpreter needs besides the stack (no persistent data: multipliers, shifts and \
         operator parameters stay in the model file, in flash); the lower bound is the largest total of \
         the planned buffers live at one step (a tensor computed in place shares its source's buffer), \
         which no placement of those buffers can beat; above it is the greedy placement's fragmentation. TFLite Micro: the \
         figures of `../shared/BASELINES.md` (PyPI `tflite-micro`, `print_allocations()`, x86-64: its tail \
         of 64-bit structures is smaller on a 32-bit device, e.g. KWS arena 22,820 B on the M4F).\n\n",
        crate::bench::commit(root)
    );
    if found == 0 {
        section.push_str("No model found: `../shared/models/mlperf-tiny/` is absent.\n\n");
    } else {
        section.push_str(&table);
        section.push('\n');
    }
    for note in &notes {
        let _ = writeln!(section, "note: {note}\n");
    }
    print!("{section}");
    if options.write {
        crate::bench::write_section(root, BEGIN, END, &section)?;
        eprintln!("models: wrote BENCHMARKS.md");
    }
    Ok(())
}
