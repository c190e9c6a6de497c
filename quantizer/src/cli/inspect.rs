//! `ferrite inspect MODEL [--json]`: operators, shapes, quantization, MACs, weight bytes, arena.

use std::path::PathBuf;

use anyhow::{anyhow, Result};
use ferrite_runtime::Model;

use crate::inspect;

#[derive(clap::Args)]
pub struct Args {
    /// Model file.
    pub model: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> Result<()> {
    if super::float_onnx::is_onnx(&args.model) {
        return super::float_onnx::inspect(&args.model, args.json);
    }
    let (bytes, source) = super::load_model_source(&args.model)?;
    let model = Model::from_bytes(&bytes)
        .map_err(|e| anyhow!("{}: invalid model: {e}", args.model.display()))?;
    let mut summary = inspect::summarize(&model, bytes.len());
    summary.converted_from = source;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let text = inspect::render(&args.model.display().to_string(), &summary);
        super::print(format_args!("{text}"))?;
    }
    Ok(())
}
