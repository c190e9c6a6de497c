//! `ferrite eval MODEL... --data X.npy [--labels Y.npy] [--json]`: top-1 accuracy with labels, otherwise
//! each model's signal-to-quantization-noise ratio against the first model.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use crate::execute;
use crate::npy::Array;

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
}

/// First output of `model` on `data`, as f32 (int8 outputs dequantized).
fn outputs(model: &std::path::Path, data: &Array) -> Result<Array> {
    let mut outs = if super::onnx::is_onnx(model) {
        super::onnx::run(model, std::slice::from_ref(data))?
    } else {
        let bytes = super::load_model(model)?;
        let input = if data.dtype == crate::npy::Dtype::F32 {
            data.clone()
        } else {
            Array::from_f32(data.shape.clone(), &data.to_f32())
        };
        execute::run(&bytes, &[input])?
    };
    ensure!(!outs.is_empty(), "{}: no output", model.display());
    Ok(outs.remove(0))
}

fn argmax_rows(a: &Array) -> Vec<usize> {
    let per = a.shape.iter().skip(1).product::<usize>().max(1);
    (0..a.len() / per)
        .map(|r| {
            (0..per)
                .max_by(|&i, &j| a.get_f64(r * per + i).total_cmp(&a.get_f64(r * per + j)))
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
    let mut rows = Vec::new();
    let mut reference: Option<Array> = None;
    for m in &args.models {
        let start = Instant::now();
        let out = outputs(m, &data).with_context(|| format!("evaluating {}", m.display()))?;
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
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<48} {:>8} {:>10} {:>9}",
        "model", "top-1", "SQNR (dB)", "seconds"
    );
    for r in rows {
        let top1 = r.top1.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a));
        let sqnr = r.sqnr_db.map_or("-".into(), |s| format!("{s:.1}"));
        println!(
            "{:<48} {:>8} {:>10} {:>9.3}",
            r.model, top1, sqnr, r.seconds
        );
    }
    Ok(())
}
