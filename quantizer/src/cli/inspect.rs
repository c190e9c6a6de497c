//! `ferrite inspect MODEL [--json[=FILE]]`: operators, shapes, quantization, MACs, weight bytes,
//! arena.

use std::path::{Path, PathBuf};

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
    let (text, doc) = inspect(&args.model)?;
    super::emit(&args.json, &doc, &text)
}

/// What `ferrite inspect` shows of the model file `path`: the text and the JSON document.
pub fn inspect(path: &Path) -> Result<(String, String)> {
    if super::float_onnx::is_onnx(path) {
        return super::float_onnx::inspect(path);
    }
    let (bytes, source) = super::load_model_source(path)?;
    inspect_ferrite(&path.display().to_string(), &bytes, source)
}

/// [`inspect()`] of `.ferrite` bytes named `name` (converted from `source`, if set).
pub fn inspect_ferrite(
    name: &str,
    bytes: &[u8],
    source: Option<inspect::Source>,
) -> Result<(String, String)> {
    let model = Model::from_bytes(bytes)
        .map_err(|e| crate::runtime_exec::invalid_model(e).context(name.to_string()))?;
    let mut summary = inspect::summarize(&model, bytes.len());
    summary.converted_from = source;
    Ok((
        inspect::render(name, &summary),
        serde_json::to_string_pretty(&summary)?,
    ))
}
