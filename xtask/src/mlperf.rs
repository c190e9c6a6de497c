//! Golden cases made at test time from the MLPerf Tiny int8 models in `../shared` (never copied into
//! the repository): each model is converted with the TFLite importer, fed sample 0 of
//! `tests/tflite/goldens/mlperf_<model>.golden` (the seeded xorshift64* input) and must give the output
//! TFLite Micro's reference interpreter recorded there.

use anyhow::{Context, Result};
use std::path::Path;

use crate::{cases::Case, tflite_cases};

/// Writes one case per MLPerf model found under `target/mlperf-cases/`; none (with a note) when
/// `../shared` is absent.
pub fn cases(root: &Path, only: Option<&str>) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    let entries = tflite_cases::goldens(root, |stem| stem.starts_with("mlperf_"))?;
    for golden in entries {
        let name = golden
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let (model_rel, expected) = tflite_cases::first_sample(&golden)?;
        let model_path = root.join(&model_rel);
        if !model_path.is_file() {
            eprintln!(
                "note: {} is absent: skipping the MLPerf case {name}",
                model_path.display()
            );
            continue;
        }
        let tflite = std::fs::read(&model_path)?;
        let built = ferrite_quantizer::import::tflite::convert(&tflite)
            .with_context(|| format!("converting {}", model_path.display()))?;
        let dir = root.join("target/mlperf-cases").join(&name);
        tflite_cases::write_case(&dir, &built.bytes, &expected)?;
        out.push(Case {
            name,
            dir: Some(dir),
        });
    }
    Ok(out)
}
