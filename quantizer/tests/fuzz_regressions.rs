//! Inputs the fuzz targets (`quantizer/fuzz/`) once crashed on, fed through the same API as their
//! target: each must give its expected result, never a panic. The files are under
//! `tests/data/fuzz/<target>/`; a name starting with `ok_` is an input that is valid once the bug is
//! fixed (it must convert), any other must be refused with an error.

use ferrite_quantizer::builder::ArenaLayout;
use std::path::{Path, PathBuf};

use anyhow::Result;
use ferrite_quantizer::cli::convert::convert_bytes;
use ferrite_quantizer::import::{onnx, onnx_qdq};
use ferrite_quantizer::ir;
use ferrite_quantizer::npy::Array;

/// Runs `f` on each saved input of `target` and checks its result against the file's name.
fn check(target: &str, f: impl Fn(&[u8]) -> Result<()>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let valid = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("ok_"));
        match f(&bytes) {
            Ok(()) => assert!(valid, "{}: accepted", path.display()),
            Err(e) => assert!(!valid, "{}: {e:#}", path.display()),
        }
    }
}

#[test]
fn npy_parse() {
    check("npy_parse", |b| Array::parse(b).map(drop));
}

#[test]
fn onnx_import() {
    check("onnx_import", |b| {
        onnx::import(b).and_then(|mut g| ir::passes::optimize(&mut g).map(drop))
    });
}

#[test]
fn onnx_qdq_convert() {
    check("onnx_qdq_convert", |b| {
        let via_cli = convert_bytes(Path::new("fuzz.onnx"), b, ArenaLayout::Separate).map(drop);
        let direct = onnx_qdq::convert(b, [0; 32], ArenaLayout::Separate).map(drop);
        assert_eq!(via_cli.is_ok(), direct.is_ok());
        via_cli
    });
}

#[test]
fn tflite_convert() {
    check("tflite_convert", |b| {
        convert_bytes(Path::new("fuzz.tflite"), b, ArenaLayout::Separate).map(drop)
    });
}
