//! `ferrite run MODEL --data X.npy [-o Y.npy] [--json[=FILE]]`: runs a model over samples on the host.
//! Without `-o` a summary is printed: each output's type and shape and the first samples' values.
//! The JSON document: `{"model", "data", "samples", "outputs"}`, each output
//! `{"file", "dtype", "shape", "argmax"}` with `argmax` the position of each sample's largest value
//! (the first on ties) and `file` null without `-o`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::npy::{Array, Dtype};
use crate::runtime_exec;

#[derive(clap::Args)]
pub struct Args {
    /// Model file.
    pub model: PathBuf,
    /// Input samples (.npy, batch first, in the source model's layout); repeat for several inputs.
    #[arg(long, visible_alias = "input", required = true)]
    pub data: Vec<PathBuf>,
    /// Where to write the output (.npy); with several outputs, `-o` names the first and the others get
    /// `_1`, `_2`... suffixes. Without it, a summary is printed.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Threads to split the batch across (default: the available cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    #[command(flatten)]
    pub json: super::JsonArgs,
}

pub fn run(args: &Args) -> Result<()> {
    let inputs: Vec<Array> = args
        .data
        .iter()
        .map(|p| Array::read(p))
        .collect::<Result<_>>()?;
    let threads = args
        .threads
        .map_or_else(runtime_exec::available_threads, usize::from);
    // The output paths are checked once the model says how many there are, before running it.
    let paths = |n: usize| -> Vec<PathBuf> {
        let Some(path) = &args.output else {
            return Vec::new();
        };
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        (0..n)
            .map(|i| match i {
                0 => path.clone(),
                _ => path.with_file_name(format!("{stem}_{i}.npy")),
            })
            .collect()
    };
    let check = |n| -> Result<Vec<PathBuf>> {
        let p = paths(n);
        let all: Vec<&Path> = p
            .iter()
            .map(PathBuf::as_path)
            .chain(args.json.file())
            .collect();
        crate::output::check(&all)?;
        Ok(p)
    };
    let (outputs, paths) = if super::float_onnx::is_onnx(&args.model) {
        // Float ONNX: the float executor.
        let g = super::float_onnx::load(&args.model)?;
        let paths = check(g.outputs.len())?;
        (crate::ir::io::run_arrays(&g, &inputs, threads), paths)
    } else {
        let bytes = super::load_model(&args.model)?;
        let runner =
            runtime_exec::Runner::new(&bytes).with_context(|| args.model.display().to_string())?;
        let paths = check(runner.outputs())?;
        (runner.run(&inputs, threads), paths)
    };
    let outputs = outputs.with_context(|| {
        let inputs: Vec<String> = args.data.iter().map(|p| p.display().to_string()).collect();
        format!("running {} on {}", args.model.display(), inputs.join(", "))
    })?;
    let doc = serde_json::to_string_pretty(&Summary {
        model: args.model.display().to_string(),
        data: args.data.iter().map(|p| p.display().to_string()).collect(),
        samples: outputs
            .first()
            .and_then(|o| o.shape.first().copied())
            .unwrap_or(0),
        outputs: outputs
            .iter()
            .enumerate()
            .map(|(i, o)| OutputSummary {
                file: paths.get(i).map(|p| p.display().to_string()),
                dtype: o.dtype.to_string(),
                shape: o.shape.clone(),
                argmax: super::eval::argmax_rows(o),
            })
            .collect(),
    })?;
    let mut files: Vec<(&Path, Vec<u8>)> = paths
        .iter()
        .map(PathBuf::as_path)
        .zip(outputs.iter().map(Array::to_bytes))
        .collect();
    if let Some(path) = args.json.file() {
        files.push((path, doc.clone().into_bytes()));
    }
    crate::output::write_all(&files)?;
    let text = match &args.output {
        Some(_) => String::new(),
        None => outputs
            .iter()
            .enumerate()
            .map(|(i, o)| preview(i, o))
            .collect(),
    };
    super::emit_written(&args.json, &doc, &text)
}

/// The JSON document of `ferrite run`.
#[derive(Serialize)]
struct Summary {
    model: String,
    data: Vec<String>,
    samples: usize,
    outputs: Vec<OutputSummary>,
}

#[derive(Serialize)]
struct OutputSummary {
    file: Option<String>,
    dtype: String,
    shape: Vec<usize>,
    argmax: Vec<usize>,
}

/// Samples shown per output without `-o`, and values shown per sample.
const PREVIEW_SAMPLES: usize = 8;
const PREVIEW_VALUES: usize = 12;

/// Output `i`'s type and shape and its first samples' argmax and values.
fn preview(i: usize, out: &Array) -> String {
    let per = out.shape.iter().skip(1).product::<usize>().max(1);
    let mut text = format!("output {i}: {} {:?}\n", out.dtype, out.shape);
    let argmax = super::eval::argmax_rows(out);
    for (n, best) in argmax.iter().enumerate().take(PREVIEW_SAMPLES) {
        let shown: Vec<String> = (0..per.min(PREVIEW_VALUES))
            .map(|k| {
                let v = out.get_f64(n * per + k);
                if out.dtype == Dtype::F32 {
                    format!("{v:.4}")
                } else {
                    format!("{v}")
                }
            })
            .collect();
        text.push_str(&format!(
            "  sample {n}: argmax {best}  [{}{}]\n",
            shown.join(", "),
            if per > PREVIEW_VALUES { ", ..." } else { "" }
        ));
    }
    text
}
