//! `ferrite eval MODEL... --data X.npy [--labels Y.npy] [--threads N] [--json]`: top-1 accuracy with
//! labels, otherwise each model's signal-to-quantization-noise ratio against the first model, and each
//! model's throughput.
//!
//! Int8 models (`.ferrite`, `.tflite`, Q/DQ `.onnx`) run one sample per invoke (batch 1), the samples
//! split across `--threads` interpreters; float ONNX models run on the float executor, the batch split
//! across `--threads` threads. `run_seconds` and `samples_per_second` time running the samples only
//! (input quantization and layout, inference, output dequantization); `seconds` adds reading,
//! converting or importing the model and validating it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use crate::npy::Array;
use crate::runtime_exec;

#[derive(clap::Args)]
pub struct Args {
    /// Models to compare (.onnx, .ferrite, .tflite); the first is the reference for SQNR.
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// Input samples (.npy, batch first, in the source model's layout).
    #[arg(long)]
    pub data: PathBuf,
    /// Integer class labels (.npy), one per sample: report top-1 accuracy.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Threads to split the samples across (default: the available cores); 1 runs everything on the
    /// calling thread.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Row {
    model: String,
    top1: Option<f64>,
    sqnr_db: Option<f64>,
    seconds: f64,
    run_seconds: f64,
    samples_per_second: f64,
    threads: usize,
}

/// First output of `model` on `data`, as f32 (int8 outputs dequantized), and the seconds spent running
/// the samples.
fn outputs(model: &std::path::Path, data: &Array, threads: usize) -> Result<(Array, f64)> {
    let (mut outs, seconds) = if super::float_onnx::is_onnx(model) {
        let g = super::float_onnx::load(model)?;
        let start = Instant::now();
        let outs = crate::ir::io::run_arrays(&g, std::slice::from_ref(data), threads)?;
        (outs, start.elapsed().as_secs_f64())
    } else {
        let bytes = super::load_model(model)?;
        let converted;
        let input = if data.dtype == crate::npy::Dtype::F32 {
            data
        } else {
            converted = Array::from_f32(data.shape.clone(), &data.to_f32());
            &converted
        };
        let runner = runtime_exec::Runner::new(&bytes)?;
        let start = Instant::now();
        let outs = runner.run(std::slice::from_ref(input), threads)?;
        (outs, start.elapsed().as_secs_f64())
    };
    ensure!(!outs.is_empty(), "{}: no output", model.display());
    Ok((outs.remove(0), seconds))
}

/// Each row's position of its largest value; ties go to the first, as numpy's `argmax` (int8 outputs
/// often tie).
fn argmax_rows(a: &Array) -> Vec<usize> {
    let per = a.shape.iter().skip(1).product::<usize>().max(1);
    (0..a.len() / per)
        .map(|r| {
            (0..per)
                .max_by(|&i, &j| {
                    a.get_f64(r * per + i)
                        .total_cmp(&a.get_f64(r * per + j))
                        .then(j.cmp(&i))
                })
                .unwrap_or(0)
        })
        .collect()
}

fn sqnr_db(reference: &Array, x: &Array) -> f64 {
    let (mut signal, mut noise) = (0f64, 0f64);
    for i in 0..reference.len().min(x.len()) {
        let r = reference.get_f64(i);
        signal += r * r;
        noise += (r - x.get_f64(i)).powi(2);
    }
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

pub fn run(args: &Args) -> Result<()> {
    let data = Array::read(&args.data)?;
    let labels = match &args.labels {
        Some(p) => {
            let l = Array::read(p)?;
            ensure!(
                l.len() == data.shape[0],
                "{}: {} labels for {} samples",
                p.display(),
                l.len(),
                data.shape[0]
            );
            Some(
                (0..l.len())
                    .map(|i| l.get_f64(i) as usize)
                    .collect::<Vec<_>>(),
            )
        }
        None => None,
    };
    let threads = args
        .threads
        .map_or_else(runtime_exec::available_threads, usize::from);
    let samples = data.shape.first().copied().unwrap_or(1);
    let mut rows = Vec::new();
    let mut reference: Option<Array> = None;
    for m in &args.models {
        let start = Instant::now();
        let (out, run_seconds) =
            outputs(m, &data, threads).with_context(|| format!("evaluating {}", m.display()))?;
        let seconds = start.elapsed().as_secs_f64();
        let top1 = labels.as_ref().map(|l| {
            let p = argmax_rows(&out);
            p.iter().zip(l).filter(|(a, b)| a == b).count() as f64 / l.len() as f64
        });
        let sqnr = reference.as_ref().map(|r| sqnr_db(r, &out));
        if reference.is_none() {
            reference = Some(out);
        }
        rows.push(Row {
            model: m.display().to_string(),
            top1,
            sqnr_db: sqnr,
            seconds,
            run_seconds,
            samples_per_second: samples as f64 / run_seconds,
            threads,
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<48} {:>8} {:>10} {:>9} {:>10}",
        "model", "top-1", "SQNR (dB)", "seconds", "samples/s"
    );
    for r in rows {
        let top1 = r.top1.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
        let sqnr = r.sqnr_db.map_or("-".into(), |s| format!("{s:.1}"));
        println!(
            "{:<48} {:>8} {:>10} {:>9.3} {:>10.1}",
            r.model, top1, sqnr, r.seconds, r.samples_per_second
        );
    }
    println!(
        "{samples} samples, {threads} thread{}; samples/s counts running the samples only",
        if threads == 1 { "" } else { "s" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_ties_go_to_the_first() {
        let a = Array::from_f32(vec![2, 4], &[0.5, 2.0, 2.0, 1.0, 3.0, 3.0, 3.0, 3.0]);
        assert_eq!(argmax_rows(&a), [1, 0]);
    }
}
