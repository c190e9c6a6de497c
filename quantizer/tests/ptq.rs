//! Post-training quantization of the real-data fixtures: accuracy against the float model, an int8-only
//! result, the ignored scope, and every bad input giving one clear line and no output file.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrite_quantizer::npy::Array;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

/// `(model, data set)` of each trained fixture.
const MODELS: [(&str, &str); 4] = [
    ("mlp_digits", "digits"),
    ("dscnn_fashion", "fashion"),
    ("resnet_fashion", "fashion"),
    ("mobilenetv2_mnist", "mnist"),
];

fn quantize(model: &str, data: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let f = fixtures();
    ferrite()
        .arg("quantize")
        .arg(f.join(model).join("model.onnx"))
        .arg("--calib")
        .arg(f.join(format!("data/{data}_calib_x.npy")))
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Top-1 accuracies of `models` on a data set, from `ferrite eval --json`.
fn accuracies(models: &[PathBuf], data: &str) -> Vec<f64> {
    let f = fixtures();
    let out = ferrite()
        .arg("eval")
        .args(models)
        .arg("--data")
        .arg(f.join(format!("data/{data}_test_x.npy")))
        .arg("--labels")
        .arg(f.join(format!("data/{data}_test_y.npy")))
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["top1"].as_f64().unwrap())
        .collect()
}

#[test]
fn default_quantization_keeps_accuracy_and_uses_only_int8_kernels() {
    let dir = tempfile::tempdir().unwrap();
    for (model, data) in MODELS {
        let out = dir.path().join(format!("{model}.ferrite"));
        let report = dir.path().join(format!("{model}.json"));
        let r = quantize(model, data, &out, &["--report", report.to_str().unwrap()]);
        assert!(
            r.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let bytes = std::fs::read(&out).unwrap();
        let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
        assert_eq!(
            m.header().flags & ferrite_runtime::format::FLAG_FLOAT,
            0,
            "{model}: f32 kernels in an int8 model"
        );
        let acc = accuracies(&[fixtures().join(model).join("model.onnx"), out], data);
        eprintln!(
            "{model}: float {:.2}%, int8 {:.2}%",
            100.0 * acc[0],
            100.0 * acc[1]
        );
        assert!(
            acc[1] >= acc[0] - 0.015,
            "{model}: int8 {} vs float {}",
            acc[1],
            acc[0]
        );
        let rep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(rep["ferrite_bytes"].as_u64().unwrap() as usize, bytes.len());
        assert!(rep["quantization"]["values"].as_array().unwrap().len() > 2);
        // Per-layer error measured on the runtime: every layer well above noise level.
        let layers = rep["quantization"]["layers"].as_array().unwrap();
        assert!(!layers.is_empty());
        for l in layers {
            let db = l["sqnr_db"].as_f64().unwrap_or(f64::INFINITY);
            assert!(db > 15.0, "{model}: layer {} at {db:.1} dB", l["name"]);
        }
    }
}

#[test]
fn ignored_nodes_run_in_float() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.ferrite");
    // The middle layer stays in float: Dequantize before it, Quantize after it.
    let r = quantize(
        "mlp_digits",
        "digits",
        &out,
        &["--ignore", "/net/net.3/Gemm"],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    assert_ne!(m.header().flags & ferrite_runtime::format::FLAG_FLOAT, 0);
    let names: Vec<&str> = m.ops().map(|o| o.name()).collect();
    assert!(
        names.contains(&"DEQUANTIZE") || names.contains(&"QUANTIZE"),
        "{names:?}"
    );
    let acc = accuracies(&[fixtures().join("mlp_digits/model.onnx"), out], "digits");
    assert!((acc[1] - acc[0]).abs() < 0.01, "{acc:?}");
    // An unknown name is an error, not a silent no-op.
    let r = quantize(
        "mlp_digits",
        "digits",
        &dir.path().join("x.ferrite"),
        &["--ignore", "NoSuchNode"],
    );
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("NoSuchNode"));
}

fn fails_cleanly(r: std::process::Output, out: &Path, needle: &str) {
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    let last = err.trim().lines().last().unwrap_or("");
    assert!(last.starts_with("error:") && last.contains(needle), "{err}");
    assert!(!out.exists(), "a partial output was left");
}

#[test]
fn bad_inputs_give_one_line_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.ferrite");
    let f = fixtures();
    let run = |calib: &Path, out: &Path| {
        ferrite()
            .arg("quantize")
            .arg(f.join("mlp_digits/model.onnx"))
            .arg("--calib")
            .arg(calib)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap()
    };
    let empty = dir.path().join("empty.npy");
    Array::from_f32(vec![0, 64], &[]).write(&empty).unwrap();
    fails_cleanly(run(&empty, &out), &out, "empty");
    let wrong_dtype = dir.path().join("i8.npy");
    Array::from_i8(vec![2, 64], &[0; 128])
        .write(&wrong_dtype)
        .unwrap();
    fails_cleanly(run(&wrong_dtype, &out), &out, "float32");
    let wrong_shape = dir.path().join("shape.npy");
    Array::from_f32(vec![2, 63], &[0.0; 126])
        .write(&wrong_shape)
        .unwrap();
    fails_cleanly(run(&wrong_shape, &out), &out, "does not match");
    // NHWC data for an NCHW model.
    let wrong_layout = dir.path().join("nhwc.npy");
    Array::from_f32(vec![1, 28, 28, 1], &[0.0; 784])
        .write(&wrong_layout)
        .unwrap();
    let r = ferrite()
        .arg("quantize")
        .arg(f.join("dscnn_fashion/model.onnx"))
        .arg("--calib")
        .arg(&wrong_layout)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    fails_cleanly(r, &out, "NCHW");
    let calib = f.join("data/digits_calib_x.npy");
    let unwritable = dir.path().join("no/such/dir/m.ferrite");
    fails_cleanly(run(&calib, &unwritable), &unwritable, "writing");
    let corrupt = dir.path().join("bad.onnx");
    std::fs::write(&corrupt, b"not a protobuf at all").unwrap();
    let r = ferrite()
        .arg("quantize")
        .arg(&corrupt)
        .arg("--calib")
        .arg(&calib)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    fails_cleanly(r, &out, "bad.onnx");
}
