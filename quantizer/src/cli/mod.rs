//! The `ferrite` subcommands, one file each.

/// `println!` for the commands' results: a closed standard output (`ferrite inspect M | head -1`)
/// returns [`StdoutClosed`] from the enclosing function instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

pub mod convert;
pub mod eval;
pub mod float_onnx;
pub mod inspect;
pub mod quantize;
pub mod run;
pub mod train;

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

use crate::inspect::Source;
use crate::npy::{Array, Dtype};

/// The reader of standard output went away (a closed pipe): the command stops quietly.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes to standard output (see [`outln!`]).
pub fn print(text: std::fmt::Arguments<'_>) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        r => r.context("writing to standard output"),
    }
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
            convert::convert_bytes(path, &bytes)?.bytes,
            Some(Source {
                format,
                bytes: bytes.len(),
            }),
        ),
    })
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
