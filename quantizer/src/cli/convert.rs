//! `ferrite convert MODEL.tflite|MODEL.onnx -o OUT.ferrite [--json[=FILE]]`: converts a model
//! quantized elsewhere (TFLite int8, ONNX Q/DQ), as it is. The JSON document:
//! `{"model", "output", "format", "source_bytes", "ferrite_bytes", "arena_bytes"}`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use crate::builder::{ArenaLayout, Built};
use crate::import::tflite;

#[derive(clap::Args)]
pub struct Args {
    /// Pre-quantized model (.tflite int8, or ONNX with QuantizeLinear/DequantizeLinear).
    pub model: PathBuf,
    /// Output `.ferrite` file: written in full or not at all, through a symlink to its target, and
    /// directly to a device or FIFO such as `/dev/null`.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Where operators' outputs go: `separate` (each in bytes of its own: the fewest
    /// instructions) or `in-place` (convolutions, poolings and element-wise operators over their
    /// dying input, in bands of rows, where that makes the arena smaller: the least RAM).
    #[arg(long, value_enum, default_value = "separate")]
    pub arena: ArenaLayout,
    #[command(flatten)]
    pub json: super::JsonArgs,
}

pub fn run(args: &Args) -> Result<()> {
    let outputs: Vec<&Path> = [Some(args.output.as_path()), args.json.file()]
        .into_iter()
        .flatten()
        .collect();
    crate::output::check(&outputs)?;
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let built = convert_bytes(&args.model, &bytes, args.arena)?;
    let doc = serde_json::to_string_pretty(&serde_json::json!({
        "model": args.model.display().to_string(),
        "output": args.output.display().to_string(),
        "format": if crate::import::is_tflite(&bytes) { "TFLite" } else { "ONNX Q/DQ" },
        "source_bytes": bytes.len(),
        "ferrite_bytes": built.bytes.len(),
        "arena_bytes": built.plan.arena_size,
    }))?;
    let mut files = vec![(args.output.as_path(), built.bytes.as_slice())];
    if let Some(path) = args.json.file() {
        files.push((path, doc.as_bytes()));
    }
    crate::output::write_all(&files)?;
    if args.json.stdout() {
        outln!("{doc}");
        return Ok(());
    }
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

/// Converts a supported pre-quantized model's bytes to a `.ferrite` model planned with `arena`.
pub fn convert_bytes(path: &Path, bytes: &[u8], arena: ArenaLayout) -> Result<Built> {
    if crate::import::is_tflite(bytes) {
        return tflite::convert(bytes, arena)
            .with_context(|| format!("converting {}", path.display()));
    }
    if crate::import::onnx_qdq::is_qdq(bytes) {
        let inlined = crate::import::onnx::inline_external(bytes, path)
            .with_context(|| format!("converting {}", path.display()))?;
        let model = inlined.as_deref().unwrap_or(bytes);
        return crate::import::onnx_qdq::convert(model, crate::sha256::digest(bytes), arena)
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
    if let Err(e) = crate::import::onnx::decode(bytes) {
        return e.context(path.display().to_string());
    }
    // It decodes: a float model, unless it is broken (a dangling input, a garbled attribute) or uses
    // what the float importer lacks; say which.
    match crate::import::onnx::import(bytes) {
        Ok(_) => anyhow!(
            "{}: a float ONNX model (no QuantizeLinear/DequantizeLinear); use `ferrite quantize` with calibration data",
            path.display()
        ),
        Err(e) => anyhow!(
            "{}: no QuantizeLinear/DequantizeLinear nodes (not a quantized model to convert), and not a float model `ferrite quantize` takes either: {e:#}",
            path.display()
        ),
    }
}
