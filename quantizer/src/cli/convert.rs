//! `ferrite convert MODEL.tflite|MODEL.onnx -o OUT.ferrite`: converts a model quantized elsewhere
//! (TFLite int8, ONNX Q/DQ), as it is.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use crate::import::tflite;

#[derive(clap::Args)]
pub struct Args {
    /// Pre-quantized model (.tflite int8, or ONNX with QuantizeLinear/DequantizeLinear).
    pub model: PathBuf,
    /// Output `.ferrite` file: written in full or not at all, through a symlink to its target, and
    /// directly to a device or FIFO such as `/dev/null`.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

pub fn run(args: &Args) -> Result<()> {
    crate::output::check(&[&args.output])?;
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let built = convert_bytes(&args.model, &bytes)?;
    crate::output::write(&args.output, &built.bytes)?;
    outln!(
        "{} -> {}: {} bytes (source {} bytes), arena {} bytes",
        args.model.display(),
        args.output.display(),
        built.bytes.len(),
        bytes.len(),
        built.plan.arena_size
    );
    Ok(())
}

/// Converts a supported pre-quantized model's bytes to a planned `.ferrite` model.
pub fn convert_bytes(path: &Path, bytes: &[u8]) -> Result<crate::builder::Built> {
    if crate::import::is_tflite(bytes) {
        return tflite::convert(bytes).with_context(|| format!("converting {}", path.display()));
    }
    if crate::import::onnx_qdq::is_qdq(bytes) {
        return crate::import::onnx_qdq::convert(bytes, crate::sha256::digest(bytes))
            .with_context(|| format!("converting {}", path.display()));
    }
    Err(not_convertible(path, bytes))
}

/// Why `bytes` (neither TFLite nor ONNX Q/DQ) do not convert: a float ONNX model, a file that is not
/// a valid ONNX model, or another format.
pub fn not_convertible(path: &Path, bytes: &[u8]) -> anyhow::Error {
    let onnx = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    if !onnx {
        return anyhow!(
            "{}: not a TFLite model (no TFL3 identifier) nor an ONNX Q/DQ model; `ferrite convert` takes int8 .tflite and quantized .onnx files",
            path.display()
        );
    }
    match crate::import::onnx::decode(bytes) {
        Ok(_) => anyhow!(
            "{}: a float ONNX model (no QuantizeLinear/DequantizeLinear); use `ferrite quantize` with calibration data",
            path.display()
        ),
        Err(e) => e.context(path.display().to_string()),
    }
}
