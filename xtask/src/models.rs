//! `cargo xtask models [--write]`: the MLPerf Tiny int8 models of `../shared/models/mlperf-tiny/`
//! converted with the TFLite importer: `.tflite` and `.ferrite` bytes, Ferrite's planned arena and the
//! planner's lower bound (the largest total of buffers live at one step), beside TFLite Micro's arena
//! (head = planned activations, tail = persistent data) as published in `../shared/BASELINES.md`
//! (copied into `xtask/baselines.json`).

use crate::{
    baselines::{self, TflmArena},
    bench::thousands,
};
use anyhow::{Context, Result};
use ferrite_quantizer::builder::ArenaLayout;
use serde_json::{json, Value};
use std::{fmt::Write as _, path::Path};

#[derive(clap::Args)]
pub struct Options {
    /// Rewrite the models section of BENCHMARKS.md.
    #[arg(long)]
    write: bool,
    /// Print one JSON list instead of the section: per model `model`, `tflite_bytes`,
    /// `ferrite_bytes`, `arena`, `arena_in_place`, `lower_bound`, `tflm_arena_total`, `tflm_head`,
    /// `tflm_tail`
    /// (notes go to stderr).
    #[arg(long)]
    json: bool,
}

/// One converted model beside TFLite Micro's arena.
struct Row<'a> {
    tflm: &'a TflmArena,
    tflite_bytes: u64,
    ferrite_bytes: u64,
    arena: u64,
    /// The arena converted with `--arena in-place`.
    arena_in_place: u64,
    lower_bound: u64,
}

fn to_json(rows: &[Row<'_>]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "model": r.tflm.model,
                    "tflite_bytes": r.tflite_bytes,
                    "ferrite_bytes": r.ferrite_bytes,
                    "arena": r.arena,
                    "arena_in_place": r.arena_in_place,
                    "lower_bound": r.lower_bound,
                    "tflm_arena_total": r.tflm.total,
                    "tflm_head": r.tflm.head,
                    "tflm_tail": r.tflm.tail,
                })
            })
            .collect(),
    )
}

const BEGIN: &str = "<!-- cargo xtask models --write: begin -->";
const END: &str = "<!-- cargo xtask models --write: end -->";

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let dir = root.join("../shared/models/mlperf-tiny");
    let mut table = String::from(
        "| model | .tflite | .ferrite | .ferrite / .tflite | Ferrite arena | lower bound | Ferrite arena, in place | TFLM arena total | TFLM head | TFLM tail | Ferrite arena / TFLM head | in place / TFLM total |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for arena in baselines::tflm_arenas() {
        let stem = &arena.model;
        let path = dir.join(format!("{stem}.tflite"));
        if !path.is_file() {
            notes.push(format!("{} is absent: skipped", path.display()));
            continue;
        }
        let tflite = std::fs::read(&path)?;
        let built = ferrite_quantizer::import::tflite::convert(&tflite, ArenaLayout::Separate)
            .with_context(|| format!("converting {}", path.display()))?;
        let in_place = ferrite_quantizer::import::tflite::convert(&tflite, ArenaLayout::InPlace)
            .with_context(|| format!("converting {} in place", path.display()))?;
        rows.push(Row {
            tflm: arena,
            tflite_bytes: tflite.len() as u64,
            ferrite_bytes: built.bytes.len() as u64,
            arena: built.plan.arena_size as u64,
            arena_in_place: in_place.plan.arena_size as u64,
            lower_bound: built.plan.lower_bound as u64,
        });
    }
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {:.2} | {:.3} |",
            r.tflm.model,
            thousands(r.tflite_bytes),
            thousands(r.ferrite_bytes),
            r.ferrite_bytes as f64 / r.tflite_bytes as f64,
            thousands(r.arena),
            thousands(r.lower_bound),
            thousands(r.arena_in_place),
            thousands(r.tflm.total),
            thousands(r.tflm.head),
            thousands(r.tflm.tail),
            r.arena as f64 / r.tflm.head as f64,
            r.arena_in_place as f64 / r.tflm.total as f64
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
         the tensors live at one step (an in-place Reshape shares its input's bytes), which no placement \
         of separate buffers can beat. \"In place\": converted with `--arena in-place`, where \
         convolutions, poolings and element-wise operators whose input dies there write over it in bands \
         of rows, shifted against it by the room the bands need (`runtime/src/in_place.rs`), or, \
         depthwise and pointwise convolutions of no larger output, exactly over it (their kernels read \
         each input before they write over it). TFLite Micro: the \
         figures of `../shared/BASELINES.md` (PyPI `tflite-micro`, `print_allocations()`, x86-64: its tail \
         of 64-bit structures is smaller on a 32-bit device, e.g. KWS arena {} B on the M4F).\n\n",
        crate::bench::commit(root),
        thousands(kws_arena_m4f)
    );
    if rows.is_empty() {
        section.push_str("No model found: `../shared/models/mlperf-tiny/` is absent.\n\n");
    } else {
        section.push_str(&table);
        section.push('\n');
    }
    for note in &notes {
        let _ = writeln!(section, "note: {note}\n");
    }
    if options.json {
        for note in &notes {
            eprintln!("models: note: {note}");
        }
        println!("{}", serde_json::to_string_pretty(&to_json(&rows))?);
    } else {
        print!("{section}");
    }
    if options.write {
        crate::bench::write_section(root, BEGIN, END, &section)?;
        eprintln!("models: wrote BENCHMARKS.md");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of a synthetic row parses back as one list whose object has every key, with the
    /// row's figures.
    #[test]
    fn json_has_every_key() {
        let tflm = TflmArena {
            model: "tiny_int8".into(),
            total: 300,
            head: 200,
            tail: 100,
        };
        let rows = [Row {
            tflm: &tflm,
            tflite_bytes: 1_000,
            ferrite_bytes: 800,
            arena: 192,
            arena_in_place: 128,
            lower_bound: 160,
        }];
        let text = serde_json::to_string_pretty(&to_json(&rows)).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let list = value.as_array().unwrap();
        assert_eq!(list.len(), 1);
        let object = list[0].as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = [
            "model",
            "tflite_bytes",
            "ferrite_bytes",
            "arena",
            "arena_in_place",
            "lower_bound",
            "tflm_arena_total",
            "tflm_head",
            "tflm_tail",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(object["model"], "tiny_int8");
        assert_eq!(object["ferrite_bytes"], 800);
        assert_eq!(object["tflm_tail"], 100);
    }
}
