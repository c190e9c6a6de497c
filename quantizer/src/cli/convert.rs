//! `ferrite convert MODEL.tflite|MODEL.onnx -o OUT.ferrite`: converts a model quantized elsewhere
//! (TFLite int8, ONNX Q/DQ), as it is.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

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
pub fn convert_bytes(path: &std::path::Path, bytes: &[u8]) -> Result<crate::builder::Built> {
    if crate::import::is_tflite(bytes) {
        return tflite::convert(bytes).with_context(|| format!("converting {}", path.display()));
    }
    if crate::import::onnx_qdq::is_qdq(bytes) {
        return crate::import::onnx_qdq::convert(bytes, crate::sha256::digest(bytes))
            .with_context(|| format!("converting {}", path.display()));
    }
    if crate::cli::float_onnx::is_onnx(path) {
        bail!(
            "{}: a float ONNX model (no QuantizeLinear/DequantizeLinear); use `ferrite quantize` with calibration data",
            path.display()
        );
    }
    bail!(
        "{}: not a TFLite model (no TFL3 identifier) nor an ONNX Q/DQ model; `ferrite convert` takes int8 .tflite and quantized .onnx files",
        path.display()
    )
}
