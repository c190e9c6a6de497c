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
