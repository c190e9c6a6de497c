//! The `ferrite` subcommands, one file each.

pub mod convert;
pub mod eval;
pub mod float_onnx;
pub mod inspect;
pub mod quantize;
pub mod run;
pub mod train;

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Reads a model file as `.ferrite` bytes, converting other formats in memory.
pub fn load_model(path: &Path) -> Result<Vec<u8>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "ferrite" => std::fs::read(path).with_context(|| format!("reading {}", path.display())),
        "tflite" => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(convert::convert_bytes(path, &bytes)?.bytes)
        }
        "onnx" => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            if crate::import::onnx_qdq::is_qdq(&bytes) {
                return Ok(convert::convert_bytes(path, &bytes)?.bytes);
            }
            bail!(
            "{}: a float ONNX model; quantize it to .ferrite first (`ferrite run` and `ferrite inspect` take it as is)",
            path.display()
            )
        }
        _ => bail!(
            "{}: unsupported model type `.{ext}` (supported: .ferrite, .tflite, .onnx)",
            path.display()
        ),
    }
}
