//! `ferrite convert`, and `inspect`/`run` on `.tflite` files (converted in memory).

use ferrite_quantizer::builder::ArenaLayout;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferrite_quantizer::import::tflite;
use ferrite_quantizer::npy::Array;

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

fn tflite_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/tflite")
        .join(rel)
}

#[test]
fn convert_writes_what_the_library_converts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.ferrite");
    let src = tflite_path("fixtures/small_cnn.tflite");
    let o = ferrite()
        .arg("convert")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = tflite::convert(&std::fs::read(&src).unwrap(), ArenaLayout::Separate)
        .unwrap()
        .bytes;
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

#[test]
fn convert_failure_is_one_line_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.ferrite");
    for (src, says) in [
        (
            "errors/unsupported_squared_difference.tflite",
            "operator 0 (SQUARED_DIFFERENCE)",
        ),
        ("errors/float_model.tflite", "ferrite quantize"),
    ] {
        let o = ferrite()
            .arg("convert")
            .arg(tflite_path(src))
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!out.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temporary file left"
        );
    }
}

#[test]
fn inspect_reads_tflite() {
    let o = ferrite()
        .args(["inspect", "--json"])
        .arg(tflite_path("fixtures/small_cnn.tflite"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ops: Vec<&str> = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        [
            "CONV_2D",
            "DEPTHWISE_CONV_2D",
            "AVERAGE_POOL_2D",
            "FULLY_CONNECTED",
            "SOFTMAX"
        ]
    );
    assert!(v["runtime_features"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f != "int16"));
}

#[test]
fn inspect_lists_int16_for_a_model_with_int16_tensors() {
    let o = ferrite()
        .args(["inspect", "--json"])
        .arg(tflite_path("fixtures/i16_relu.tflite"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["runtime_features"], serde_json::json!(["int16", "relu"]));
    let o = ferrite()
        .arg("inspect")
        .arg(tflite_path("fixtures/i16_relu.tflite"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("runtime features: int16,relu\n"), "{text}");
}

#[test]
fn run_on_tflite_equals_run_on_the_converted_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = tflite_path("fixtures/small_cnn.tflite");
    let converted = dir.path().join("m.ferrite");
    std::fs::write(
        &converted,
        tflite::convert(&std::fs::read(&src).unwrap(), ArenaLayout::Separate)
            .unwrap()
            .bytes,
    )
    .unwrap();
    let x = dir.path().join("x.npy");
    let values: Vec<i8> = (0..2 * 12 * 10)
        .map(|i| (i * 37 % 256 - 128) as i8)
        .collect();
    Array::from_i8(vec![2, 12, 10, 1], &values)
        .write(&x)
        .unwrap();
    let mut outputs = Vec::new();
    for (model, name) in [(&src, "a.npy"), (&converted, "b.npy")] {
        let y = dir.path().join(name);
        let o = ferrite()
            .arg("run")
            .arg(model)
            .arg("--data")
            .arg(&x)
            .arg("-o")
            .arg(&y)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outputs.push(Array::read(&y).unwrap().data);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0].len(), 2 * 5);
}
