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
//! The samples are read from the file and run a batch at a time (every model on one batch, then the
//! next), so memory is bounded by a batch whatever the number of samples; a progress bar counts the
//! batches on a terminal.
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

use super::batches::{open_samples, Executor, Loaded};
use crate::npy::Array;
use crate::quantize::sqnr::{format_db, Sqnr};
use crate::runtime_exec;

#[derive(clap::Args)]
pub struct Args {
    /// Models to compare (.onnx, .ferrite, .tflite); the first is the reference for SQNR and agreement.
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// Input samples: a .npy array (batch first, in the source model's layout), or a folder of
    /// PNG/JPEG images or mono WAV files (or one such file), read in sorted order through the
    /// preprocessing below (the first model's recorded one by default); a folder of class folders
    /// gives the labels (classes in sorted order).
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
    // Last: its help heading holds the options after it.
    #[command(flatten)]
    pub prep: super::folder_data::PrepArgs,
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

/// One model's counts, accumulated batch by batch.
#[derive(Default)]
struct Tally {
    /// Seconds reading, converting or importing the model and validating it.
    load_seconds: f64,
    /// Seconds running the samples.
    run_seconds: f64,
    /// Samples whose top-1 is the label.
    correct: usize,
    /// Samples whose top-1 is the reference model's.
    agreeing: usize,
    /// Against the reference model's outputs.
    sqnr: Sqnr,
}

/// A batch's outputs of `exec`, as f32 for int8 models (int8 outputs dequantized), and the seconds
/// spent running it. Int8 models take float32 samples (other types are converted); float models
/// check the type themselves.
fn outputs(
    exec: &Executor<'_>,
    data: &Array,
    threads: usize,
    first: usize,
) -> Result<(Vec<Array>, f64)> {
    let converted;
    let input = match exec {
        Executor::Int8(_) if data.dtype != crate::npy::Dtype::F32 => {
            converted = Array::from_f32(data.shape.clone(), &data.to_f32());
            &converted
        }
        _ => data,
    };
    let start = Instant::now();
    let outs = exec.run(std::slice::from_ref(input), threads, first)?;
    Ok((outs, start.elapsed().as_secs_f64()))
}

/// Adds the batch's outputs `outs` against the reference model's to `sqnr`, over every element of
/// every output.
fn add_sqnr(sqnr: &mut Sqnr, reference: &[Array], outs: &[Array]) -> Result<()> {
    if reference.len() != outs.len() {
        bail!(
            "{} output(s), the reference model has {}",
            outs.len(),
            reference.len()
        );
    }
    for (k, (r, x)) in reference.iter().zip(outs).enumerate() {
        ensure!(
            r.len() == x.len(),
            "output {k} has shape {:?}, the reference model's {:?}",
            x.shape,
            r.shape
        );
        sqnr.extend((0..r.len()).map(|i| (r.get_f64(i), x.get_f64(i))));
    }
    Ok(())
}

/// Entries equal in `a` and `b`.
fn count_equal(a: &[usize], b: &[usize]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

pub fn run(args: &Args) -> Result<()> {
    if let Some(path) = args.json.file() {
        crate::output::check(&[path])?;
    }
    let mut tallies: Vec<Tally> = args.models.iter().map(|_| Tally::default()).collect();
    let mut loaded = Vec::new();
    for (m, t) in args.models.iter().zip(&mut tallies) {
        let start = Instant::now();
        loaded.push(Loaded::read(m)?);
        t.load_seconds = start.elapsed().as_secs_f64();
    }
    // An image or WAV folder is read for the first model's input.
    let (mut data, folder_labels) = open_samples(
        std::slice::from_ref(&args.data),
        &args.prep,
        &loaded[0],
        &args.models[0],
    )?;
    let samples = data.len();
    ensure!(
        samples > 0 && !data.shapes()[0].is_empty(),
        "{}: the array holds no samples (shape {:?})",
        args.data.display(),
        data.shapes()[0]
    );
    let labels = super::folder_data::labels(args.labels.as_deref(), folder_labels, samples)?;
    // Where the labels come from, for messages: the labels file or the class folders.
    let labels_path = args.labels.as_ref().unwrap_or(&args.data);
    let threads = args
        .threads
        .map_or_else(runtime_exec::available_threads, usize::from);
    let mut execs = Vec::new();
    for ((m, l), t) in args.models.iter().zip(&loaded).zip(&mut tallies) {
        let start = Instant::now();
        execs.push(l.executor(m)?);
        t.load_seconds += start.elapsed().as_secs_f64();
    }
    let bar = super::progress::batches(data.batches(), "evaluating");
    while let Some((batch, first)) = data.next_batch()? {
        let batch = &batch[0];
        // The reference model's outputs and predictions on this batch.
        let mut reference: Option<(Vec<Array>, Vec<usize>)> = None;
        for ((m, exec), t) in args.models.iter().zip(&execs).zip(&mut tallies) {
            let running = || format!("running {} on {}", m.display(), args.data.display());
            let (outs, seconds) = outputs(exec, batch, threads, first).with_context(running)?;
            ensure!(!outs.is_empty(), "{}: no output", m.display());
            t.run_seconds += seconds;
            let predicted = crate::top1::argmax_rows(&outs[0]);
            if let Some(l) = &labels {
                if first == 0 {
                    let classes = outs[0].shape.iter().skip(1).product();
                    super::check_classes(l, classes, labels_path, m)?;
                }
                t.correct += count_equal(&predicted, &l[first..]);
            }
            match &reference {
                Some((ref_outs, ref_predicted)) => {
                    add_sqnr(&mut t.sqnr, ref_outs, &outs).with_context(|| {
                        format!(
                            "comparing {} with {}",
                            m.display(),
                            args.models[0].display()
                        )
                    })?;
                    t.agreeing += count_equal(&predicted, ref_predicted);
                }
                None => reference = Some((outs, predicted)),
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(w) = data.non_finite_warning() {
        eprintln!("{w}");
    }
    let fraction = |n: usize| n as f64 / samples as f64;
    let rows: Vec<Row> = args
        .models
        .iter()
        .zip(&tallies)
        .enumerate()
        .map(|(i, (m, t))| Row {
            model: m.display().to_string(),
            top1: labels.as_ref().map(|_| fraction(t.correct)),
            sqnr_db: if i == 0 { None } else { t.sqnr.db() },
            agreement: (i > 0).then(|| fraction(t.agreeing)),
            seconds: t.load_seconds + t.run_seconds,
            run_seconds: t.run_seconds,
            samples_per_second: samples as f64 / t.run_seconds,
            threads,
        })
        .collect();
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
