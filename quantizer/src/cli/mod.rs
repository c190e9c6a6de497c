//! The `ferrite` subcommands, one file each.

/// `println!` for the commands' results: a closed standard output (`ferrite inspect M | head -1`)
/// returns [`StdoutClosed`] from the enclosing function instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

pub mod batches;
pub mod convert;
pub mod eval;
pub mod export;
pub mod float_onnx;
pub mod folder_data;
pub mod inspect;
pub mod progress;
pub mod quantize;
pub mod report;
pub mod run;
pub mod train;

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use crate::inspect::Source;
use crate::npy::{Array, Dtype};

/// The `ferrite` command line.
#[derive(clap::Parser)]
#[command(
    name = "ferrite",
    version,
    about = "Quantize, convert, inspect and run models for microcontrollers",
    after_help = crate::npy::ARRAY_FILES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `ferrite`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Quantize a float ONNX model to int8 with a few hundred calibration samples (post-training).
    #[command(after_help = crate::npy::ARRAY_FILES_HELP)]
    Quantize(quantize::Args),
    /// Several models side by side: top-1 accuracy, SQNR and top-1 agreement against the first.
    #[command(after_help = crate::npy::ARRAY_FILES_HELP)]
    Eval(eval::Args),
    /// Convert a model quantized elsewhere (int8 TFLite, ONNX Q/DQ) to .ferrite as it is.
    Convert(convert::Args),
    /// Show operators, shapes, quantization, MACs, weight bytes and arena of a model.
    Inspect(inspect::Args),
    /// Run a model over samples on the host and write or show its outputs.
    #[command(after_help = crate::npy::ARRAY_FILES_HELP)]
    Run(run::Args),
    /// Quantization-aware training: fine-tune with int8 simulated, starting from post-training quantization.
    #[command(after_help = crate::npy::ARRAY_FILES_HELP)]
    Train(Box<train::Args>),
    /// Write a model as source to compile into firmware: a C array (--c-array) or a Rust static
    /// (--rust), with its length and arena size.
    Export(export::Args),
    /// Draw a quantization report (`quantize --json=R.json`) as one HTML page or SVG: per-layer
    /// SQNR by precision, activation histograms with their ranges, the accuracy-control search.
    Report(report::Args),
}

/// The `ferrite` command line as a [`clap::Command`] (for shell completions and manual pages).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

impl Command {
    /// Runs the subcommand.
    pub fn run(&self) -> Result<()> {
        match self {
            Command::Convert(a) => convert::run(a),
            Command::Quantize(a) => quantize::run(a),
            Command::Eval(a) => eval::run(a),
            Command::Inspect(a) => inspect::run(a),
            Command::Run(a) => run::run(a),
            Command::Train(a) => train::run(a),
            Command::Export(a) => export::run(a),
            Command::Report(a) => report::run(a),
        }
    }
}

/// The reader of standard output went away (a closed pipe): the command stops quietly.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes to standard output (see `outln!`).
pub fn print(text: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        r => r.context("writing to standard output"),
    }
}

/// The value `--json` takes when given without `=FILE`: the document goes to standard output.
const JSON_STDOUT: &str = "-";

/// `--json[=FILE]`, the same in every command. Without `=FILE` the JSON document is printed instead of
/// the text; with it the document is written to FILE (checked before the work, written all or none
/// with the command's other outputs) and the text is printed as usual. `=` is required so that
/// `--json MODEL` keeps reading MODEL as the model.
#[derive(clap::Args, Debug, Default)]
pub struct JsonArgs {
    /// Print one JSON document instead of the text; `--json=FILE` writes it to FILE and prints the
    /// text as usual.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = JSON_STDOUT
    )]
    json: Option<PathBuf>,
    /// Former name of `--json=FILE`.
    #[arg(long, value_name = "FILE", hide = true, conflicts_with = "json")]
    report: Option<PathBuf>,
}

impl JsonArgs {
    /// The file the document is written to, if any.
    pub fn file(&self) -> Option<&Path> {
        self.json
            .as_deref()
            .filter(|p| *p != Path::new(JSON_STDOUT))
            .or(self.report.as_deref())
    }

    /// Whether the document is printed on standard output instead of the text.
    pub fn stdout(&self) -> bool {
        self.json.as_deref() == Some(Path::new(JSON_STDOUT))
    }

    /// Whether a JSON document is asked for at all.
    pub fn wanted(&self) -> bool {
        self.json.is_some() || self.report.is_some()
    }
}

/// A command's result whose only output is its text and JSON document: the text (printed as it is),
/// or the document on standard output or into its file (see [`JsonArgs`]).
pub fn emit(json: &JsonArgs, doc: &str, text: &str) -> Result<()> {
    if let Some(path) = json.file() {
        crate::output::write(path, doc.as_bytes())?;
    }
    emit_written(json, doc, text)
}

/// [`emit`] once the document's file, if any, is written.
pub fn emit_written(json: &JsonArgs, doc: &str, text: &str) -> Result<()> {
    if json.stdout() {
        outln!("{doc}");
        return Ok(());
    }
    print(format_args!("{text}"))
}

/// Reads a model file as `.ferrite` bytes, converting other formats in memory.
pub fn load_model(path: &Path) -> Result<Vec<u8>> {
    Ok(load_model_source(path)?.0)
}

/// Reads a model file as `.ferrite` bytes, converting other formats in memory, and says what was
/// converted: the source format's name and the file's size. The format is told by the file's
/// contents (magic, TFLite identifier, ONNX Q/DQ nodes); the extension only chooses the error.
pub fn load_model_source(path: &Path) -> Result<(Vec<u8>, Option<Source>)> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !["ferrite", "tflite", "onnx"].contains(&ext.as_str()) {
        bail!(
            "{}: unsupported model type `.{ext}` (supported: .ferrite, .tflite, .onnx)",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let format = if bytes.starts_with(&ferrite_runtime::format::MAGIC) {
        None
    } else if crate::import::is_tflite(&bytes) {
        Some("TFLite")
    } else if crate::import::onnx_qdq::is_qdq(&bytes) {
        Some("ONNX Q/DQ")
    } else if ext != "ferrite" {
        return Err(convert::not_convertible(path, &bytes));
    } else {
        // A `.ferrite` file that is not one: the runtime's loader says what is wrong (bad magic...).
        None
    };
    Ok(match format {
        None => (bytes, None),
        Some(format) => (
            convert::convert_bytes(path, &bytes, crate::builder::ArenaLayout::Separate)?.bytes,
            Some(Source {
                format,
                bytes: bytes.len(),
            }),
        ),
    })
}

/// Refuses labels that are not below `classes`, the size of `model`'s first output.
pub(crate) fn check_classes(
    labels: &[usize],
    classes: usize,
    path: &Path,
    model: &Path,
) -> Result<()> {
    if let Some((i, c)) = labels.iter().enumerate().find(|&(_, &c)| c >= classes) {
        bail!(
            "{}: label {i} is {c}, but {} has {classes} classes (0 to {})",
            path.display(),
            model.display(),
            classes.saturating_sub(1)
        );
    }
    Ok(())
}

/// Class ids from an integer `.npy` with one entry per sample.
pub fn read_labels(path: &Path, samples: usize) -> Result<Vec<usize>> {
    let a = Array::read(path)?;
    let at = || path.display().to_string();
    ensure!(
        matches!(
            a.dtype,
            Dtype::I8 | Dtype::U8 | Dtype::I16 | Dtype::I32 | Dtype::I64
        ),
        "{}: labels must be integers, the array is {}",
        at(),
        a.dtype
    );
    ensure!(
        a.len() == samples && a.shape.first() == Some(&samples),
        "{}: {} labels (shape {:?}) for {samples} samples",
        at(),
        a.len(),
        a.shape
    );
    (0..a.len())
        .map(|i| {
            let v = a.get_f64(i);
            if v < 0.0 {
                bail!("{}: label {i} is {v}; class ids start at 0", at());
            }
            Ok(v as usize)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;
    use serde::Serialize;

    use super::quantize::{BiasArg, PresetArg, RangeArg, RoundingArg};
    use super::train::OptimizerArg;
    use crate::quantize::observer::RangeEstimator;
    use crate::quantize::ptq::{BiasCorrection, Preset, WeightRounding};
    use crate::train::optim;

    /// The name a setting has in JSON: a string, or the key of a one-entry object
    /// (`{"percentile": 99.99}`).
    fn json_name(setting: impl Serialize) -> String {
        match serde_json::to_value(setting).unwrap() {
            serde_json::Value::String(s) => s,
            serde_json::Value::Object(o) => o.keys().next().unwrap().clone(),
            v => panic!("unexpected {v}"),
        }
    }

    /// Every value of a `--option`, as the CLI spells it and as the report does.
    fn spellings<A: ValueEnum, S: Serialize + From<A>>() -> Vec<(String, String)> {
        A::value_variants()
            .iter()
            .map(|v| {
                let cli = v.to_possible_value().unwrap().get_name().to_string();
                (cli, json_name(S::from(v.clone())))
            })
            .collect()
    }

    #[test]
    fn the_report_spells_settings_as_the_cli() {
        for (cli, json) in spellings::<PresetArg, Preset>()
            .into_iter()
            .chain(spellings::<RangeArg, RangeEstimator>())
            .chain(spellings::<RoundingArg, WeightRounding>())
            .chain(spellings::<BiasArg, BiasCorrection>())
            .chain(spellings::<OptimizerArg, optim::Kind>())
        {
            assert_eq!(cli, json);
        }
    }
}
