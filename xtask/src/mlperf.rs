//! Golden cases made at test time from the MLPerf Tiny int8 models in `../shared` (never copied into
//! the repository): each model is converted with the TFLite importer, fed sample 0 of
//! `tests/tflite/goldens/mlperf_<model>.golden` (the seeded xorshift64* input) and must give the output
//! TFLite Micro's reference interpreter recorded there.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

use crate::cases::Case;

/// xorshift64*, as `tests/tflite/make_fixtures.py` draws input bytes (sample k: seed k).
fn input_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// `(model path, first sample's output)` of a golden file.
fn first_sample(golden: &Path) -> Result<(String, Vec<u8>)> {
    let text =
        std::fs::read_to_string(golden).with_context(|| format!("reading {}", golden.display()))?;
    let mut model = None;
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(m) = line.strip_prefix("model ") {
            model = Some(m.to_string());
        } else if !line.contains(' ') {
            let bytes = (0..line.len() / 2)
                .map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .with_context(|| format!("{}: bad hex line", golden.display()))?;
            return Ok((model.context("no model line before the data")?, bytes));
        }
    }
    bail!("{}: no sample", golden.display())
}

/// Writes one case per MLPerf model found under `target/mlperf-cases/`; none (with a note) when
/// `../shared` is absent.
pub fn cases(root: &Path, only: Option<&str>) -> Result<Vec<Case>> {
    let goldens = root.join("tests/tflite/goldens");
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&goldens)
        .with_context(|| format!("reading {}", goldens.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("mlperf_"))
        })
        .collect();
    entries.sort();
    for golden in entries {
        let name = golden
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let (model_rel, expected) = first_sample(&golden)?;
        let model_path = root.join(&model_rel);
        if !model_path.is_file() {
            println!(
                "note: {} is absent: skipping the MLPerf case {name}",
                model_path.display()
            );
            continue;
        }
        let tflite = std::fs::read(&model_path)?;
        let built = ferrite_quantizer::import::tflite::convert(&tflite)
            .with_context(|| format!("converting {}", model_path.display()))?;
        let model =
            ferrite_runtime::Model::from_bytes(&built.bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let input_len: usize = (0..model.inputs())
            .map(|i| model.input(i).map(|t| t.byte_len().unwrap_or(0)))
            .sum::<Result<usize, _>>()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let dir = root.join("target/mlperf-cases").join(&name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("model.ferrite"), &built.bytes)?;
        std::fs::write(dir.join("input.bin"), input_bytes(0, input_len))?;
        std::fs::write(dir.join("expected.bin"), &expected)?;
        out.push(Case {
            name,
            dir: Some(dir),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn input_generator_matches_the_golden_script() {
        // Sample 0's first bytes, as make_fixtures.py draws them (xorshift64*, seed 0 -> state 1).
        let b = super::input_bytes(0, 3);
        let mut s: u64 = 1;
        let mut want = Vec::new();
        for _ in 0..3 {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            want.push((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8);
        }
        assert_eq!(b, want);
    }
}
