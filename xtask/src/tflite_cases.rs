//! Golden cases made at test time from the TFLite fixtures of `tests/tflite/fixtures/` that have a
//! golden in `tests/tflite/goldens/` (found by listing that folder, so new fixtures are picked up as
//! they land): each `.tflite` is converted with the TFLite importer, fed sample 0 of the golden
//! generator (xorshift64* seeded with 0; int8 elements the top byte of a draw, int16 elements its top
//! two bytes, f32 elements an int8 draw / 32), and must give the output TFLite Micro's reference
//! interpreter recorded on the golden file's first data line, so the device is compared with TFLite
//! Micro directly, not with the host runtime. The case of `fixtures/<name>.tflite` is `tflite_<name>`,
//! written under `target/tflite-cases/<case>/`.
//!
//! The generator and the golden file's parser also serve the MLPerf Tiny cases (`crate::mlperf`).

use anyhow::{anyhow, bail, ensure, Context, Result};
use ferrite_quantizer::builder::ArenaLayout;
use ferrite_runtime::{format::DType, Model};
use std::path::{Path, PathBuf};

use crate::cases::Case;

/// Prefix of the case names.
pub const PREFIX: &str = "tflite_";

/// `--case` value selecting every TFLite fixture case (int8 ones included).
pub const ALL: &str = "tflite";

/// Prefix of the int16x8 fixtures, the ones a full `qemu-test` runs (the int8 fixtures are covered by
/// `tests/golden/` there; `--case tflite` runs them all).
const INT16_PREFIX: &str = "i16_";

/// xorshift64*, as `tests/tflite/make_fixtures.py` draws inputs (sample k: seed k).
pub struct Draws(u64);

impl Draws {
    pub fn new(seed: u64) -> Self {
        Draws(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The top 16 bits of the next draw (an int16 element).
    pub fn next_u16(&mut self) -> u16 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 48) as u16
    }

    /// The top byte of the next draw (an int8 element).
    pub fn next_u8(&mut self) -> u8 {
        (self.next_u16() >> 8) as u8
    }
}

/// Sample `seed`'s input bytes for `model`: its inputs in order, concatenated, each element drawn by
/// its type (little-endian).
pub fn sample_input(model: &Model<'_>, seed: u64) -> Result<Vec<u8>> {
    let mut draws = Draws::new(seed);
    let mut bytes = Vec::new();
    for i in 0..model.inputs() {
        let tensor = model.input(i).map_err(|e| anyhow!("input {i}: {e}"))?;
        let elements = tensor
            .byte_len()
            .context("input size")?
            .checked_div(tensor.dtype.size())
            .unwrap_or(0);
        for _ in 0..elements {
            match tensor.dtype {
                DType::I8 => bytes.push(draws.next_u8()),
                DType::I16 => bytes.extend_from_slice(&draws.next_u16().to_le_bytes()),
                DType::F32 => {
                    let v = (draws.next_u8() as i8) as f32 / 32.0;
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
                other => bail!("input {i}: no golden generator for {other:?} inputs"),
            }
        }
    }
    Ok(bytes)
}

/// `(model path relative to tests/tflite/, first sample's output)` of a golden file.
pub fn first_sample(golden: &Path) -> Result<(String, Vec<u8>)> {
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

/// The golden files of `tests/tflite/goldens/` whose stem passes `keep`, sorted.
pub fn goldens(root: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let dir = root.join("tests/tflite/goldens");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "golden"))
        .filter(|p| p.file_stem().and_then(|s| s.to_str()).is_some_and(&keep))
        .collect();
    out.sort();
    Ok(out)
}

/// Writes a case from converted model bytes: `model.ferrite`, sample 0's input, `expected`.
pub fn write_case(dir: &Path, ferrite: &[u8], expected: &[u8]) -> Result<()> {
    let model = Model::from_bytes(ferrite).map_err(|e| anyhow!("{e}"))?;
    let input = sample_input(&model, 0)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("model.ferrite"), ferrite)?;
    std::fs::write(dir.join("input.bin"), input)?;
    std::fs::write(dir.join("expected.bin"), expected)?;
    Ok(())
}

/// The cases: `only` one (`tflite_<fixture>`), those whose name starts with a prefix
/// (`tflite_i16_*`), every fixture with a golden (`only == Some("tflite")`), or the int16x8
/// fixtures (`None`).
pub fn cases(root: &Path, only: Option<&str>) -> Result<Vec<Case>> {
    let wanted = |fixture: &str| match only.map(|o| (o, o.strip_prefix(PREFIX))) {
        Some((ALL, _)) => true,
        Some((_, Some(pattern))) => match pattern.strip_suffix('*') {
            Some(prefix) => fixture.starts_with(prefix),
            None => pattern == fixture,
        },
        Some((_, None)) => false,
        None => fixture.starts_with(INT16_PREFIX),
    };
    let tflite = root.join("tests/tflite");
    let mut out = Vec::new();
    for golden in goldens(root, |stem| !stem.starts_with("mlperf_") && wanted(stem))? {
        let fixture = golden
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let name = format!("{PREFIX}{fixture}");
        let (model_rel, expected) = first_sample(&golden)?;
        let model_path = tflite.join(&model_rel);
        let bytes = std::fs::read(&model_path).with_context(|| {
            format!(
                "reading {} (named by {})",
                model_path.display(),
                golden.display()
            )
        })?;
        let built = ferrite_quantizer::import::tflite::convert(&bytes, ArenaLayout::Separate)
            .with_context(|| format!("converting {}", model_path.display()))?;
        let dir = root.join("target/tflite-cases").join(&name);
        write_case(&dir, &built.bytes, &expected)
            .with_context(|| format!("making the case {name}"))?;
        out.push(Case {
            name,
            dir: Some(dir),
        });
    }
    if let Some(o) = only {
        ensure!(
            !out.is_empty(),
            "no case {o}: no golden tests/tflite/goldens/{}.golden",
            o.strip_prefix(PREFIX).unwrap_or(o)
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Draws;

    #[test]
    fn draws_match_the_golden_script() {
        // Sample 0's first draws, as make_fixtures.py makes them (xorshift64*, seed 0 -> state 1).
        let mut d = Draws::new(0);
        let got: Vec<u16> = (0..3).map(|_| d.next_u16()).collect();
        let mut s: u64 = 1;
        let mut want = Vec::new();
        for _ in 0..3 {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            want.push((s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 48) as u16);
        }
        assert_eq!(got, want);
        let mut d = Draws::new(0);
        assert_eq!(d.next_u8(), (want[0] >> 8) as u8);
    }

    #[test]
    fn every_int16_fixture_with_a_golden_is_a_case() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let fixtures = super::goldens(&root, |s| s.starts_with(super::INT16_PREFIX)).unwrap();
        assert!(fixtures.len() >= 10, "the committed int16x8 goldens");
        let cases = super::cases(&root, None).unwrap();
        assert_eq!(cases.len(), fixtures.len());
        for case in &cases {
            let dir = case.dir.as_ref().unwrap();
            let model = std::fs::read(dir.join("model.ferrite")).unwrap();
            let model = ferrite_runtime::Model::from_bytes(&model).unwrap();
            let input_len: usize = (0..model.inputs())
                .map(|i| model.input(i).unwrap().byte_len().unwrap())
                .sum();
            assert_eq!(
                std::fs::read(dir.join("input.bin")).unwrap().len(),
                input_len
            );
        }
    }
}
