//! `ferrite inspect MODEL [--json[=FILE]]`: operators, shapes, quantization, MACs, weight bytes,
//! arena.

use std::path::PathBuf;

use anyhow::Result;
use ferrite_runtime::Model;

use crate::inspect;

#[derive(clap::Args)]
pub struct Args {
    /// Model file.
    pub model: PathBuf,
    #[command(flatten)]
    pub json: super::JsonArgs,
}

pub fn run(args: &Args) -> Result<()> {
    if let Some(path) = args.json.file() {
        crate::output::check(&[path])?;
    }
    let (text, doc) = if super::float_onnx::is_onnx(&args.model) {
        super::float_onnx::inspect(&args.model)?
    } else {
        let (bytes, source) = super::load_model_source(&args.model)?;
        let model = Model::from_bytes(&bytes).map_err(|e| {
            crate::runtime_exec::invalid_model(e).context(args.model.display().to_string())
        })?;
        let mut summary = inspect::summarize(&model, bytes.len());
        summary.converted_from = source;
        (
            inspect::render(&args.model.display().to_string(), &summary),
            serde_json::to_string_pretty(&summary)?,
        )
    };
    super::emit(&args.json, &doc, &text)
}
