//! `cargo xtask models [--write]`: the MLPerf Tiny int8 models of `../shared/models/mlperf-tiny/`
//! converted with the TFLite importer: `.tflite` and `.ferrite` bytes, Ferrite's planned arena and the
//! planner's lower bound (the largest total of buffers live at one step), beside TFLite Micro's arena
//! (head = planned activations, tail = persistent data) as published in `../shared/BASELINES.md`
//! (copied into `xtask/baselines.json`).

use crate::{baselines, bench::thousands};
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

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let dir = root.join("../shared/models/mlperf-tiny");
    let mut table = String::from(
        "| model | .tflite | .ferrite | .ferrite / .tflite | Ferrite arena | lower bound | TFLM arena total | TFLM head | TFLM tail | Ferrite arena / TFLM head |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut found = 0;
    let mut notes = Vec::new();
    for arena in baselines::tflm_arenas() {
        let stem = &arena.model;
        let path = dir.join(format!("{stem}.tflite"));
        if !path.is_file() {
            notes.push(format!("{} is absent: skipped", path.display()));
            continue;
        }
        let tflite = std::fs::read(&path)?;
        let built = ferrite_quantizer::import::tflite::convert(&tflite)
            .with_context(|| format!("converting {}", path.display()))?;
        found += 1;
        let (file, ours) = (built.bytes.len() as u64, built.plan.arena_size as u64);
        let _ = writeln!(
            table,
            "| {stem} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {:.2} |",
            thousands(tflite.len() as u64),
            thousands(file),
            file as f64 / tflite.len() as f64,
            thousands(ours),
            thousands(built.plan.lower_bound as u64),
            thousands(arena.total),
            thousands(arena.head),
            thousands(arena.tail),
            ours as f64 / arena.head as f64
        );
    }
    let kws_arena_m4f = baselines::tflm_whole_stack("kws_dscnn")
        .and_then(|s| s.arena_m4f)
        .context("xtask/baselines.json: no TFLite Micro arena on the M4F for kws_dscnn")?;
    let mut section = format!(
        "Measured at commit `{}` with `cargo xtask models`. Ferrite: the model converted by \
         `ferrite_quantizer::import::tflite::convert` (what `ferrite convert` writes); its arena is the \
         whole RAM the interpreter needs besides the stack (no persistent data: multipliers, shifts and \
         operator parameters stay in the model file, in flash); the lower bound is the largest total of \
         the planned buffers live at one step (a tensor computed in place shares its source's buffer), \
         which no placement of those buffers can beat; above it is the greedy placement's fragmentation. TFLite Micro: the \
         figures of `../shared/BASELINES.md` (PyPI `tflite-micro`, `print_allocations()`, x86-64: its tail \
         of 64-bit structures is smaller on a 32-bit device, e.g. KWS arena {} B on the M4F).\n\n",
        crate::bench::commit(root),
        thousands(kws_arena_m4f)
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
