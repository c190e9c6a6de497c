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
        crate::output::check(&p.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
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
        let inputs: Vec<String> = args.input.iter().map(|p| p.display().to_string()).collect();
        format!("running {} on {}", args.model.display(), inputs.join(", "))
    })?;
    match &args.output {
        Some(_) => {
            let files: Vec<(&PathBuf, Vec<u8>)> = paths
                .iter()
                .zip(outputs.iter().map(Array::to_bytes))
                .collect();
            crate::output::write_all(&files)?;
        }
        None => {
            for (i, out) in outputs.iter().enumerate() {
                let per = out.shape.iter().skip(1).product::<usize>().max(1);
                outln!("output {i}: {} {:?}", out.dtype, out.shape);
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
                    outln!(
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
