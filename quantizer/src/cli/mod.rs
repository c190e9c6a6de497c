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

use anyhow::{bail, Context, Result};

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
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "ferrite" => std::fs::read(path).with_context(|| format!("reading {}", path.display())),
        "tflite" => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(convert::convert_bytes(path, &bytes)?.bytes)
        }
        "onnx" => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            if crate::import::onnx_qdq::is_qdq(&bytes) {
                return Ok(convert::convert_bytes(path, &bytes)?.bytes);
            }
            bail!(
            "{}: a float ONNX model; quantize it to .ferrite first (`ferrite run` and `ferrite inspect` take it as is)",
            path.display()
            )
        }
        _ => bail!(
            "{}: unsupported model type `.{ext}` (supported: .ferrite, .tflite, .onnx)",
            path.display()
        ),
    }
}
