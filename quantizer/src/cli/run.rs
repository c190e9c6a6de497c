//! `ferrite run MODEL --data X.npy [-o Y.npy] [--json[=FILE]]`: runs a model over samples on the host.
//! Without `-o` a summary is printed: each output's type and shape and the first samples' values.
//! The JSON document: `{"model", "data", "samples", "outputs"}`, each output
//! `{"file", "dtype", "shape", "argmax"}` with `argmax` the position of each sample's largest value
//! (the first on ties) and `file` null without `-o`.
//!
//! The samples are read and run a batch at a time and each output `.npy` is written as they come
//! (its header first: the sample count is known from the input's), into the temporary file that
//! [`crate::output`] renames into place at the end: memory is bounded by a batch, and a failure
//! leaves no partial file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::batches::{open_samples, Loaded};
use crate::npy::{Array, Dtype};
use crate::runtime_exec;

#[derive(clap::Args)]
pub struct Args {
    /// Model file.
    pub model: PathBuf,
    /// Input samples (.npy, batch first, in the source model's layout); repeat for several inputs.
    /// For a model with one input also a folder of PNG/JPEG images or mono WAV files, or one such
    /// file, read in sorted order through the preprocessing the model records (from `ferrite
    /// quantize|train` on such a folder) or the flags below state.
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
    // Last: its help heading holds the options after it.
    #[command(flatten)]
    pub prep: super::folder_data::PrepArgs,
}

pub fn run(args: &Args) -> Result<()> {
    let loaded = Loaded::read(&args.model)?;
    let (mut samples, _) = open_samples(&args.data, &args.prep, &loaded, &args.model)?;
    let threads = args
        .threads
        .map_or_else(runtime_exec::available_threads, usize::from);
    let exec = loaded.executor(&args.model)?;
    // The output paths are checked once the model says how many there are, before running it.
    let paths = output_paths(args.output.as_deref(), exec.outputs());
    let all: Vec<&Path> = paths
        .iter()
        .map(PathBuf::as_path)
        .chain(args.json.file())
        .collect();
    crate::output::check(&all)?;
    let running = || {
        let inputs: Vec<String> = args.data.iter().map(|p| p.display().to_string()).collect();
        format!("running {} on {}", args.model.display(), inputs.join(", "))
    };
    let mut files = paths
        .iter()
        .map(|p| crate::output::create(p))
        .collect::<Result<Vec<_>>>()?;
    let total = samples.len();
    // Per output: its type and shape, and each sample's argmax; the first batch for the preview.
    let mut outputs: Vec<OutputSummary> = Vec::new();
    let mut first_batch: Vec<Array> = Vec::new();
    let bar = super::progress::batches(samples.batches(), "running");
    while let Some((inputs, first)) = samples.next_batch()? {
        let outs = exec.run(&inputs, threads, first).with_context(running)?;
        let rows = inputs[0].shape.first().copied().unwrap_or(1);
        for (o, out) in outs.iter().enumerate() {
            anyhow::ensure!(
                out.shape.first() == Some(&rows),
                "{}: output {o} has shape {:?}, not batch first",
                args.model.display(),
                out.shape
            );
            if outputs.len() == o {
                let mut shape = out.shape.clone();
                shape[0] = total;
                if let Some(f) = files.get_mut(o) {
                    f.write(&crate::npy::header_bytes(&shape, out.dtype)?)?;
                }
                outputs.push(OutputSummary {
                    file: paths.get(o).map(|p| p.display().to_string()),
                    dtype: out.dtype.to_string(),
                    shape,
                    argmax: Vec::with_capacity(total),
                });
            }
            if let Some(f) = files.get_mut(o) {
                f.write(&out.data)?;
            }
            outputs[o].argmax.extend(crate::top1::argmax_rows(out));
        }
        if first_batch.is_empty() {
            first_batch = outs;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(w) = samples.non_finite_warning() {
        eprintln!("{w}");
    }
    let doc = serde_json::to_string_pretty(&Summary {
        model: args.model.display().to_string(),
        data: args.data.iter().map(|p| p.display().to_string()).collect(),
        samples: total,
        outputs,
    })?;
    if let Some(path) = args.json.file() {
        let mut f = crate::output::create(path)?;
        f.write(doc.as_bytes())?;
        files.push(f);
    }
    crate::output::finish_all(files)?;
    let text = match &args.output {
        Some(_) => String::new(),
        None => first_batch
            .iter()
            .enumerate()
            .map(|(i, o)| preview(i, o, total))
            .collect(),
    };
    super::emit_written(&args.json, &doc, &text)
}

/// Where output `i` of `n` is written with `-o path`: `path`, then `STEM_1.npy`, `STEM_2.npy`...
fn output_paths(path: Option<&Path>, n: usize) -> Vec<PathBuf> {
    let Some(path) = path else {
        return Vec::new();
    };
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    (0..n)
        .map(|i| match i {
            0 => path.to_path_buf(),
            _ => path.with_file_name(format!("{stem}_{i}.npy")),
        })
        .collect()
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

/// Output `i`'s type and shape (`total` samples) and the argmax and values of the first samples, in
/// `out`.
fn preview(i: usize, out: &Array, total: usize) -> String {
    let per = out.shape.iter().skip(1).product::<usize>().max(1);
    let mut shape = out.shape.clone();
    if let Some(n) = shape.first_mut() {
        *n = total;
    }
    let mut text = format!("output {i}: {} {:?}\n", out.dtype, shape);
    let argmax = crate::top1::argmax_rows(out);
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
