//! `ferrite run MODEL --input X.npy [-o Y.npy]`: runs a model over a batch on the host.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::npy::{Array, Dtype};
use crate::runtime_exec;

#[derive(clap::Args)]
pub struct Args {
    /// Model file.
    pub model: PathBuf,
    /// Input array (.npy, batch first, in the source model's layout); repeat for several inputs.
    #[arg(long, required = true)]
    pub input: Vec<PathBuf>,
    /// Where to write the output (.npy); with several outputs, `-o` names the first and the others get
    /// `_1`, `_2`... suffixes. Without it, a summary is printed.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Threads to split the batch across (default: the available cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

pub fn run(args: &Args) -> Result<()> {
    let inputs: Vec<Array> = args
        .input
        .iter()
        .map(|p| Array::read(p))
        .collect::<Result<_>>()?;
    let threads = args
        .threads
        .map_or_else(runtime_exec::available_threads, usize::from);
    let outputs = if super::float_onnx::is_onnx(&args.model) {
        // Float ONNX: the float executor.
        super::float_onnx::run(&args.model, &inputs, threads)
    } else {
        let bytes = super::load_model(&args.model)?;
        runtime_exec::Runner::new(&bytes).and_then(|r| r.run(&inputs, threads))
    }
    .with_context(|| format!("running {}", args.model.display()))?;
    match &args.output {
        Some(path) => {
            for (i, out) in outputs.iter().enumerate() {
                let p = if i == 0 {
                    path.clone()
                } else {
                    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                    path.with_file_name(format!("{stem}_{i}.npy"))
                };
                out.write(&p)?;
            }
        }
        None => {
            for (i, out) in outputs.iter().enumerate() {
                let per = out.shape.iter().skip(1).product::<usize>().max(1);
                println!("output {i}: {:?} {:?}", out.dtype, out.shape);
                for n in 0..out.shape.first().copied().unwrap_or(1).min(8) {
                    let row: Vec<f64> = (0..per).map(|k| out.get_f64(n * per + k)).collect();
                    let best = row
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map_or(0, |(k, _)| k);
                    let shown: Vec<String> = row
                        .iter()
                        .take(12)
                        .map(|v| {
                            if out.dtype == Dtype::F32 {
                                format!("{v:.4}")
                            } else {
                                format!("{v}")
                            }
                        })
                        .collect();
                    println!(
                        "  sample {n}: argmax {best}  [{}{}]",
                        shown.join(", "),
                        if per > 12 { ", ..." } else { "" }
                    );
                }
            }
        }
    }
    Ok(())
}
