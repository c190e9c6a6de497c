//! Golden cases: directories `tests/golden/<case>/` holding `model.ferrite`,
//! `input.bin` and `expected.bin`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Files every case directory must hold.
pub const FILES: [&str; 3] = ["model.ferrite", "input.bin", "expected.bin"];

/// Name of the built-in smoke test (no case directory, no `case` feature).
pub const SMOKE: &str = "smoke";

#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    /// `None` for the smoke test.
    pub dir: Option<PathBuf>,
}

impl Case {
    pub fn smoke() -> Case {
        Case {
            name: SMOKE.to_string(),
            dir: None,
        }
    }
}

/// The cases to run: all of `tests/golden/` (the smoke test if it has none),
/// or only `only` (`smoke` names the smoke test).
pub fn discover(root: &Path, only: Option<&str>) -> Result<Vec<Case>> {
    if only == Some(SMOKE) {
        return Ok(vec![Case::smoke()]);
    }
    let golden = root.join("tests").join("golden");
    let mut cases = Vec::new();
    if golden.is_dir() {
        for entry in
            std::fs::read_dir(&golden).with_context(|| format!("reading {}", golden.display()))?
        {
            let dir = entry?.path();
            if !dir.is_dir() {
                continue;
            }
            let name = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let missing: Vec<_> = FILES.iter().filter(|f| !dir.join(f).is_file()).collect();
            if !missing.is_empty() {
                bail!("case {} lacks {:?} in {}", name, missing, dir.display());
            }
            cases.push(Case {
                name,
                dir: Some(dir),
            });
        }
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    match only {
        Some(name) if cases.is_empty() => bail!("no case {name} under {}", golden.display()),
        None if cases.is_empty() => Ok(vec![Case::smoke()]),
        _ => Ok(cases),
    }
}

/// A case made from any `.ferrite` file: its inputs are seeded pseudo-random bytes (int8 or int16
/// values, or the bytes of f32 ones in [-1, 1)), and the host runtime's output is the expected
/// output. Written
/// under `target/file-cases/<file stem>/`.
pub fn from_file(root: &Path, model: &Path) -> Result<Case> {
    use ferrite_runtime::{Interpreter, Model};
    let bytes = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let parsed =
        Model::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", model.display()))?;
    let mut arena = vec![0u8; parsed.arena_size() + 16];
    let mut it = Interpreter::new(&parsed, &mut arena).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state
    };
    let mut input = Vec::new();
    for i in 0..it.inputs() {
        let dtype = parsed.input(i).map_err(|e| anyhow::anyhow!("{e}"))?.dtype;
        let fail = |e: ferrite_runtime::Error| anyhow::anyhow!("{e}");
        match dtype {
            ferrite_runtime::format::DType::I8 => {
                let x = it.input_i8_mut(i).map_err(fail)?;
                x.iter_mut().for_each(|v| *v = (next() >> 56) as i8);
            }
            ferrite_runtime::format::DType::I16 => {
                let x = it.input_i16_mut(i).map_err(fail)?;
                x.iter_mut().for_each(|v| *v = (next() >> 48) as i16);
            }
            _ => {
                let x = it.input_f32_mut(i).map_err(fail)?;
                let unit = |r: u64| (r >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
                x.iter_mut().for_each(|v| *v = unit(next()));
            }
        }
        input.extend_from_slice(it.input_bytes_mut(i).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    it.invoke().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut expected = Vec::new();
    for o in 0..it.outputs() {
        expected.extend_from_slice(it.output_bytes(o).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let name = model
        .file_stem()
        .and_then(|s| s.to_str())
        .context("the model file's name")?
        .to_string();
    let dir = root.join("target/file-cases").join(&name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("model.ferrite"), &bytes)?;
    std::fs::write(dir.join("input.bin"), input)?;
    std::fs::write(dir.join("expected.bin"), expected)?;
    Ok(Case {
        name,
        dir: Some(dir),
    })
}
