//! `ferrite eval MODEL... --data X.npy [--labels Y.npy] [--threads N] [--json[=FILE]]`: each model's top-1
//! accuracy with labels, and every model after the first compared with the first (usually the float
//! model): the signal-to-quantization-noise ratio of its outputs and the agreement of its top-1
//! predictions; and each model's throughput.
//!
//! - `top1`: the fraction of samples whose argmax of the first output equals the label.
//! - `sqnr_db`: `10 * log10(sum(ref^2) / sum((out - ref)^2))` over every element of every output of
//!   every sample, int8 outputs dequantized ([`crate::quantize::sqnr`]). `null` on the first row (the
//!   reference) and when the outputs equal the reference's exactly (infinite; `inf` in the table).
//! - `agreement`: the fraction of samples whose argmax of the first output equals the first model's;
//!   `null` on the first row.
//!
//! Int8 models (`.ferrite`, `.tflite`, Q/DQ `.onnx`) run one sample per invoke (batch 1), the samples
//! split across `--threads` interpreters; float ONNX models run on the float executor, the batch split
//! across `--threads` threads. `run_seconds` and `samples_per_second` time running the samples only
//! (input quantization and layout, inference, output dequantization); `seconds` adds reading,
//! converting or importing the model and validating it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use crate::npy::Array;
use crate::quantize::sqnr::{format_db, Sqnr};
use crate::runtime_exec;

#[derive(clap::Args)]
pub struct Args {
    /// Models to compare (.onnx, .ferrite, .tflite); the first is the reference for SQNR and agreement.
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
    /// The JSON document: one array, one object per model.
    #[command(flatten)]
    pub json: super::JsonArgs,
}

#[derive(Serialize)]
struct Row {
    model: String,
    top1: Option<f64>,
    sqnr_db: Option<f64>,
    agreement: Option<f64>,
    seconds: f64,
    run_seconds: f64,
    samples_per_second: f64,
    threads: usize,
}

/// Outputs of `model` on `data`, as f32 (int8 outputs dequantized), and the seconds spent running the
/// samples. Load errors name the model's file; running errors get it as context here.
fn outputs(
    model: &Path,
    data: &Array,
    data_path: &Path,
    threads: usize,
) -> Result<(Vec<Array>, f64)> {
    let running = || format!("running {} on {}", model.display(), data_path.display());
    let (outs, seconds) = if super::float_onnx::is_onnx(model) {
        let g = super::float_onnx::load(model)?;
        let start = Instant::now();
        let outs = crate::ir::io::run_arrays(&g, std::slice::from_ref(data), threads)
            .with_context(running)?;
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
        let runner =
            runtime_exec::Runner::new(&bytes).with_context(|| model.display().to_string())?;
        let start = Instant::now();
        let outs = runner
            .run(std::slice::from_ref(input), threads)
            .with_context(running)?;
        (outs, start.elapsed().as_secs_f64())
    };
    ensure!(!outs.is_empty(), "{}: no output", model.display());
    Ok((outs, seconds))
}

/// Each row's position of its largest value; ties go to the first, as numpy's `argmax` (int8 outputs
/// often tie).
pub fn argmax_rows(a: &Array) -> Vec<usize> {
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

/// SQNR of `outs` against the reference model's outputs, over every element of every output.
fn sqnr_db(reference: &[Array], outs: &[Array]) -> Result<Option<f64>> {
    if reference.len() != outs.len() {
        bail!(
            "{} output(s), the reference model has {}",
            outs.len(),
            reference.len()
        );
    }
    let mut sqnr = Sqnr::default();
    for (k, (r, x)) in reference.iter().zip(outs).enumerate() {
        ensure!(
            r.len() == x.len(),
            "output {k} has shape {:?}, the reference model's {:?}",
            x.shape,
            r.shape
        );
        sqnr.extend((0..r.len()).map(|i| (r.get_f64(i), x.get_f64(i))));
    }
    Ok(sqnr.db())
}

/// Fraction of equal entries.
fn fraction_equal(a: &[usize], b: &[usize]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

pub fn run(args: &Args) -> Result<()> {
    if let Some(path) = args.json.file() {
        crate::output::check(&[path])?;
    }
    let data = Array::read(&args.data)?;
    let samples = data.shape.first().copied().unwrap_or(0);
    ensure!(
        samples > 0,
        "{}: the array holds no samples (shape {:?})",
        args.data.display(),
        data.shape
    );
    let labels = args
        .labels
        .as_ref()
        .map(|p| super::read_labels(p, samples))
        .transpose()?;
    let threads = args
        .threads
        .map_or_else(runtime_exec::available_threads, usize::from);
    let mut rows = Vec::new();
    // The first model's outputs and predictions.
    let mut reference: Option<(Vec<Array>, Vec<usize>)> = None;
    for m in &args.models {
        let start = Instant::now();
        let (outs, run_seconds) = outputs(m, &data, &args.data, threads)?;
        let seconds = start.elapsed().as_secs_f64();
        if let (Some(l), Some(path)) = (&labels, &args.labels) {
            let classes = outs[0].shape.iter().skip(1).product::<usize>();
            if let Some((i, c)) = l.iter().enumerate().find(|&(_, &c)| c >= classes) {
                bail!(
                    "{}: label {i} is {c}, but {} has {classes} classes (0 to {})",
                    path.display(),
                    m.display(),
                    classes.saturating_sub(1)
                );
            }
        }
        let predicted = argmax_rows(&outs[0]);
        let top1 = labels.as_ref().map(|l| fraction_equal(&predicted, l));
        let (sqnr, agreement) = match &reference {
            Some((ref_outs, ref_predicted)) => (
                sqnr_db(ref_outs, &outs).with_context(|| {
                    format!(
                        "comparing {} with {}",
                        m.display(),
                        args.models[0].display()
                    )
                })?,
                Some(fraction_equal(&predicted, ref_predicted)),
            ),
            None => {
                reference = Some((outs, predicted));
                (None, None)
            }
        };
        rows.push(Row {
            model: m.display().to_string(),
            top1,
            sqnr_db: sqnr,
            agreement,
            seconds,
            run_seconds,
            samples_per_second: samples as f64 / run_seconds,
            threads,
        });
    }
    let text = table(&rows, samples, threads, &args.models[0])?;
    super::emit(&args.json, &serde_json::to_string_pretty(&rows)?, &text)
}

/// The rows as a text table, with a closing line saying what was measured.
fn table(rows: &[Row], samples: usize, threads: usize, reference: &Path) -> Result<String> {
    use std::fmt::Write;
    let mut t = String::new();
    writeln!(
        t,
        "{:<48} {:>8} {:>10} {:>10} {:>9} {:>10}",
        "model", "top-1", "SQNR (dB)", "agreement", "seconds", "samples/s"
    )?;
    for (i, r) in rows.iter().enumerate() {
        let percent = |a: Option<f64>| a.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
        let sqnr = if i == 0 {
            "-".into()
        } else {
            format_db(r.sqnr_db)
        };
        writeln!(
            t,
            "{:<48} {:>8} {:>10} {:>10} {:>9.3} {:>10.1}",
            r.model,
            percent(r.top1),
            sqnr,
            percent(r.agreement),
            r.seconds,
            r.samples_per_second
        )?;
    }
    writeln!(
        t,
        "{samples} samples, {threads} thread{}; SQNR and agreement against {}; samples/s counts running the samples only",
        if threads == 1 { "" } else { "s" },
        reference.display()
    )?;
    Ok(t)
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
