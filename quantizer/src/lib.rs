//! Ferrite's host-side quantizer: importers, IR, calibration, post-training quantization, lowering to
//! runtime operators and export.

pub mod builder;
pub mod cli;
pub mod export;
pub mod import;
pub mod inspect;
pub mod ir;
pub mod lower;
pub mod npy;
pub mod plan;
pub mod quantize;
pub mod runtime_exec;
pub mod sha256;
pub mod train;

use std::path::Path;

use anyhow::{Context, Result};

/// Writes a file atomically: a temporary file in the same folder, then a rename, so a failure never
/// leaves a half-written output.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
