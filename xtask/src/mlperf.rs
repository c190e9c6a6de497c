//! Golden cases made at test time from the MLPerf Tiny int8 models in `../shared` (never copied into
//! the repository): each model is converted with the TFLite importer, fed sample 0 of
//! `tests/tflite/goldens/mlperf_<model>.golden` (the seeded xorshift64* input) and must give the output
//! TFLite Micro's reference interpreter recorded there.

use anyhow::{Context, Result};
use ferrite_quantizer::builder::ArenaLayout;
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
        if only.is_some_and(|o| o != name && o != format!("{name}_in_place")) {
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
        let layouts: &[(ArenaLayout, &str)] = if IN_PLACE.contains(&name.as_str()) {
            &[
                (ArenaLayout::Separate, ""),
                (ArenaLayout::InPlace, "_in_place"),
            ]
        } else {
            &[(ArenaLayout::Separate, "")]
        };
        for &(layout, suffix) in layouts {
            let case = format!("{name}{suffix}");
            if only.is_some_and(|o| o != case) {
                continue;
            }
            let built = ferrite_quantizer::import::tflite::convert(&tflite, layout)
                .with_context(|| format!("converting {} ({layout})", model_path.display()))?;
            let dir = root.join("target/mlperf-cases").join(&case);
            tflite_cases::write_case(&dir, &built.bytes, &expected)?;
            out.push(Case {
                name: case,
                dir: Some(dir),
            });
        }
    }
    Ok(out)
}

/// Models also run converted with `--arena in-place` (`<case>_in_place`): every operator that can
/// runs in bands, on each machine, against TFLite Micro's output.
const IN_PLACE: [&str; 3] = [
    "mlperf_kws_dscnn_int8",
    "mlperf_ic_resnet8_int8",
    "mlperf_sww_int8",
];
