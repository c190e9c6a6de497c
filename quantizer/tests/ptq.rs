//! Post-training quantization of the real-data fixtures: accuracy against the float model, an int8-only
//! result, the ignored scope, and every bad input giving one clear line and no output file.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrite_quantizer::npy::Array;
use ferrite_quantizer::top1::argmax;

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
    let calib = fixtures().join(format!("data/{data}_calib_x.npy"));
    quantize_on(model, &calib, out, extra)
}

/// `ferrite quantize` of a fixture model on the calibration data `calib`.
fn quantize_on(model: &str, calib: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    ferrite()
        .arg("quantize")
        .arg(fixtures().join(model).join("model.onnx"))
        .arg("--data")
        .arg(calib)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// The rows of `ferrite eval --json` for `models` on `x` (with labels `y`).
fn eval_rows(models: &[PathBuf], x: &Path, y: Option<&Path>) -> Vec<serde_json::Value> {
    let mut cmd = ferrite();
    cmd.arg("eval")
        .args(models)
        .arg("--data")
        .arg(x)
        .arg("--json");
    if let Some(y) = y {
        cmd.arg("--labels").arg(y);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array().unwrap().clone()
}

/// Top-1 accuracies of `models` on a data set, from `ferrite eval --json`.
fn accuracies(models: &[PathBuf], data: &str) -> Vec<f64> {
    let f = fixtures();
    eval_rows(
        models,
        &f.join(format!("data/{data}_test_x.npy")),
        Some(&f.join(format!("data/{data}_test_y.npy"))),
    )
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
        let r = quantize(
            model,
            data,
            &out,
            &[&format!("--json={}", report.display())],
        );
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

/// Layers kept in float leave the int8 tensors around them as accurate as in the int8 model: the
/// range choice rounds a float layer's output where an int8 layer reads it, and full bias correction
/// corrects a float layer for its rounded inputs. On the residual net with outliers (whose residual
/// streams stay int8), every convolution in float keeps the output SQNR at least the int8 model's
/// (before both: 6 dB below it).
#[test]
fn float_layers_cost_no_sqnr() {
    let dir = tempfile::tempdir().unwrap();
    let (int8, float) = (dir.path().join("a.ferrite"), dir.path().join("b.ferrite"));
    let model = "resnet_fashion_outliers";
    assert!(quantize(model, "fashion", &int8, &[]).status.success());
    let r = quantize(model, "fashion", &float, &["--ignore", "Conv"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let f = fixtures();
    let rows = eval_rows(
        &[f.join(model).join("model.onnx"), int8, float],
        &f.join("data/fashion_test_x.npy"),
        None,
    );
    let db = |i: usize| rows[i]["sqnr_db"].as_f64().unwrap();
    assert!(
        db(2) >= db(1),
        "float convolutions {} dB, int8 {} dB",
        db(2),
        db(1)
    );
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
    let run = |calib: &Path, out: &Path| quantize_on("mlp_digits", calib, out, &[]);
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
    fails_cleanly(
        quantize_on("dscnn_fashion", &wrong_layout, &out, &[]),
        &out,
        "NCHW",
    );
    let calib = f.join("data/digits_calib_x.npy");
    let unwritable = dir.path().join("no/such/dir/m.ferrite");
    fails_cleanly(run(&calib, &unwritable), &unwritable, "does not exist");
    let corrupt = dir.path().join("bad.onnx");
    std::fs::write(&corrupt, b"not a protobuf at all").unwrap();
    let r = ferrite()
        .arg("quantize")
        .arg(&corrupt)
        .arg("--data")
        .arg(&calib)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    fails_cleanly(r, &out, "bad.onnx");
}

/// `ferrite run MODEL --input x -o y` read back as f64 values, with the per-sample element count.
fn run_outputs(model: &Path, x: &Path, y: &Path) -> (Vec<f64>, usize) {
    let r = ferrite()
        .arg("run")
        .arg(model)
        .arg("--data")
        .arg(x)
        .arg("-o")
        .arg(y)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let a = Array::read(y).unwrap();
    let per = a.shape[1..].iter().product();
    ((0..a.len()).map(|i| a.get_f64(i)).collect(), per)
}

/// Writes the first `n` samples of the float32 array in `from` to `to`.
fn first_samples(from: &Path, n: usize, to: &Path) {
    let a = Array::read(from).unwrap();
    let per = a.len() / a.shape[0];
    let mut shape = a.shape.clone();
    shape[0] = n;
    Array::from_f32(shape, &a.to_f32()[..n * per])
        .write(to)
        .unwrap();
}

#[test]
fn eval_gives_sqnr_and_agreement_against_the_first_model() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    let float = f.join("mlp_digits/model.onnx");
    let int8 = dir.path().join("m.ferrite");
    let r = quantize("mlp_digits", "digits", &int8, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let x = f.join("data/digits_test_x.npy");
    let y = f.join("data/digits_test_y.npy");
    let models = [float.clone(), int8.clone(), float.clone(), int8.clone()];
    let rows = eval_rows(&models, &x, Some(&y));
    // The reference row compares with nothing; the float model against itself is identical.
    assert!(rows[0]["sqnr_db"].is_null() && rows[0]["agreement"].is_null());
    assert!(rows[2]["sqnr_db"].is_null(), "{}", rows[2]);
    assert_eq!(rows[2]["agreement"].as_f64(), Some(1.0));
    assert_eq!(rows[2]["top1"], rows[0]["top1"]);
    assert_eq!(rows[3], {
        let mut r = rows[1].clone();
        for k in ["seconds", "run_seconds", "samples_per_second"] {
            r[k] = rows[3][k].clone();
        }
        r
    });
    // The int8 model against outputs computed independently from `ferrite run`.
    let (reference, per) = run_outputs(&float, &x, &dir.path().join("yf.npy"));
    let (quantized, _) = run_outputs(&int8, &x, &dir.path().join("yq.npy"));
    let signal: f64 = reference.iter().map(|r| r * r).sum();
    let noise: f64 = reference
        .iter()
        .zip(&quantized)
        .map(|(r, q)| (q - r) * (q - r))
        .sum();
    let sqnr = 10.0 * (signal / noise).log10();
    let got = rows[1]["sqnr_db"].as_f64().unwrap();
    assert!(
        (got - sqnr).abs() < 1e-9,
        "eval {got} dB, computed {sqnr} dB"
    );
    assert!(sqnr > 20.0, "{sqnr} dB");
    let top1 = |v: &[f64]| -> Vec<usize> { v.chunks(per).map(argmax).collect() };
    let (pf, pq) = (top1(&reference), top1(&quantized));
    let same = pf.iter().zip(&pq).filter(|(a, b)| a == b).count();
    assert_eq!(
        rows[1]["agreement"].as_f64().unwrap(),
        same as f64 / pf.len() as f64
    );
    let labels = Array::read(&y).unwrap();
    let right = (0..labels.len())
        .filter(|&i| pq[i] == labels.get_f64(i) as usize)
        .count();
    assert_eq!(
        rows[1]["top1"].as_f64().unwrap(),
        right as f64 / labels.len() as f64
    );
    // The table has the columns, `inf` for identical outputs and `-` for the reference.
    let out = ferrite()
        .arg("eval")
        .args(&models[..3])
        .arg("--data")
        .arg(&x)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("SQNR (dB)") && lines[0].contains("agreement"),
        "{table}"
    );
    let cells = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(cells(lines[1])[1..4], ["-", "-", "-"], "{table}");
    assert_eq!(cells(lines[2])[2], format!("{got:.1}"), "{table}");
    assert_eq!(cells(lines[3])[2..4], ["inf", "100.00%"], "{table}");
}

#[test]
fn report_has_a_sqnr_per_layer_and_the_last_matches_eval() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    for (model, data) in [("mlp_digits", "digits"), ("dscnn_fashion", "fashion")] {
        let int8 = dir.path().join(format!("{model}.ferrite"));
        let report = dir.path().join(format!("{model}.json"));
        let r = quantize(
            model,
            data,
            &int8,
            &[&format!("--json={}", report.display())],
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let summary = String::from_utf8_lossy(&r.stdout);
        assert!(summary.contains("lowest per-layer SQNR"), "{summary}");
        let rep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let q = &rep["quantization"];
        let samples = q["layer_sqnr_samples"].as_u64().unwrap() as usize;
        assert_eq!(samples, 64);
        let layers = q["layers"].as_array().unwrap();
        assert!(!layers.is_empty());
        for l in layers {
            assert_eq!(l["dtype"], "int8", "{l}");
            let db = l["sqnr_db"].as_f64();
            assert!(db.is_some_and(f64::is_finite), "{model}: {l}");
        }
        // The same samples through `ferrite eval`: the last layer's output is the model's.
        let subset = dir.path().join("subset.npy");
        first_samples(
            &f.join(format!("data/{data}_calib_x.npy")),
            samples,
            &subset,
        );
        let rows = eval_rows(&[f.join(model).join("model.onnx"), int8], &subset, None);
        let eval_db = rows[1]["sqnr_db"].as_f64().unwrap();
        let last = layers.last().unwrap()["sqnr_db"].as_f64().unwrap();
        assert!(
            (eval_db - last).abs() < 0.5,
            "{model}: last layer {last} dB, eval {eval_db} dB"
        );
    }
}

#[test]
fn non_finite_calibration_values_name_the_sample_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    let calib = Array::read(&f.join("data/digits_calib_x.npy")).unwrap();
    let per = calib.len() / calib.shape[0];
    for (sample, value) in [(3, f32::NAN), (17, f32::INFINITY), (0, f32::NEG_INFINITY)] {
        let mut x = calib.to_f32();
        x[sample * per + 5] = value;
        let bad = dir.path().join("bad_calib.npy");
        Array::from_f32(calib.shape.clone(), &x)
            .write(&bad)
            .unwrap();
        let out = dir.path().join("m.ferrite");
        let report = dir.path().join("r.json");
        let r = quantize_on(
            "mlp_digits",
            &bad,
            &out,
            &[&format!("--json={}", report.display())],
        );
        fails_cleanly(r, &out, &format!("sample {sample} "));
        assert!(!report.exists());
    }
    // The message names the file too.
    let r = quantize_on(
        "mlp_digits",
        &dir.path().join("bad_calib.npy"),
        &dir.path().join("m.ferrite"),
        &[],
    );
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("bad_calib.npy") && err.contains("-inf"),
        "{err}"
    );
}

#[test]
fn constant_or_zero_calibration_data_quantizes_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    let cases: [(&str, &str, Vec<usize>, f32); 3] = [
        ("mlp_digits", "digits", vec![16, 64], 0.0),
        ("mlp_digits", "digits", vec![16, 64], 5.0),
        ("dscnn_fashion", "fashion", vec![16, 1, 28, 28], 0.0),
    ];
    for (model, data, shape, value) in cases {
        let calib = dir.path().join("constant.npy");
        let n: usize = shape.iter().product();
        Array::from_f32(shape, &vec![value; n])
            .write(&calib)
            .unwrap();
        for range in ["minmax", "mse", "percentile"] {
            for preset in ["mixed", "performance"] {
                let case = format!("{model} on {value}, {range}, {preset}");
                let out = dir.path().join("m.ferrite");
                let report = dir.path().join("r.json");
                let json = format!("--json={}", report.display());
                let options = ["--range", range, "--preset", preset, &json];
                let r = quantize_on(model, &calib, &out, &options);
                assert!(
                    r.status.success(),
                    "{case}: {}",
                    String::from_utf8_lossy(&r.stderr)
                );
                let rep: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
                for v in rep["quantization"]["values"].as_array().unwrap() {
                    let s = v["scale"].as_f64().unwrap();
                    // Not the 1e-8 floor: a usable scale, even for the all-zero input.
                    assert!(s.is_finite() && s > 1e-4, "{case}: {v}");
                }
                // Right on the data it was calibrated on.
                for l in rep["quantization"]["layers"].as_array().unwrap() {
                    let db = l["sqnr_db"].as_f64().unwrap_or(f64::INFINITY);
                    assert!(db > 25.0, "{case}: {l}");
                }
                // And it runs on real data.
                let (y, _) = run_outputs(
                    &out,
                    &f.join(format!("data/{data}_test_x.npy")),
                    &dir.path().join("y.npy"),
                );
                assert!(y.iter().all(|v| v.is_finite()), "{case}");
            }
        }
    }
}

#[test]
fn fewer_samples_than_the_subset_size_warns_and_uses_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.npy");
    first_samples(&fixtures().join("data/digits_calib_x.npy"), 20, &small);
    let out = dir.path().join("m.ferrite");
    let report = dir.path().join("r.json");
    let r = quantize_on(
        "mlp_digits",
        &small,
        &out,
        &[
            "--subset-size",
            "50",
            &format!("--json={}", report.display()),
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("warning: --subset-size 50") && err.contains("small.npy has 20 sample"),
        "{err}"
    );
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep["quantization"]["calibration_samples"], 20);
    assert!(out.exists());
    // Without --subset-size the default is no request: no warning.
    let r = quantize_on("mlp_digits", &small, &out, &[]);
    assert!(r.status.success());
    assert!(!String::from_utf8_lossy(&r.stderr).contains("warning"));
    // A subset smaller than the file: the first samples, no warning.
    let r = quantize_on(
        "mlp_digits",
        &small,
        &out,
        &[
            "--subset-size",
            "8",
            &format!("--json={}", report.display()),
        ],
    );
    assert!(r.status.success());
    assert!(!String::from_utf8_lossy(&r.stderr).contains("warning"));
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep["quantization"]["calibration_samples"], 8);
}

/// The `ferrite eval --json` rows on the Fashion-MNIST test samples of the float fixture `reference`
/// and of each `(fixture, extra quantize flags)` quantized.
fn fashion_rows(reference: &str, runs: &[(&str, &[&str])]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut models = vec![fixtures().join(reference).join("model.onnx")];
    for (i, (model, extra)) in runs.iter().enumerate() {
        let out = dir.path().join(format!("{i}.ferrite"));
        let r = quantize(model, "fashion", &out, extra);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        models.push(out);
    }
    let x = fixtures().join("data/fashion_test_x.npy");
    let y = fixtures().join("data/fashion_test_y.npy");
    eval_rows(&models, &x, Some(&y))
}

/// The imbalanced DS-CNN (a few ReLU channels 27-60x larger, compensated in the next layer's weights:
/// the same float function) quantizes as well as the balanced one with the defaults (cross-layer
/// equalization), and much worse without equalization.
#[test]
fn cross_layer_equalization_undoes_a_channel_range_imbalance() {
    let rows = fashion_rows(
        "dscnn_fashion",
        &[
            ("dscnn_fashion", &[]),
            ("dscnn_fashion_imbalanced", &[]),
            ("dscnn_fashion_imbalanced", &["--no-cle"]),
        ],
    );
    let top1 = |i: usize| rows[i]["top1"].as_f64().unwrap();
    let sqnr = |i: usize| rows[i]["sqnr_db"].as_f64().unwrap();
    assert!(
        (sqnr(1) - sqnr(2)).abs() <= 3.0,
        "balanced {} dB, imbalanced {} dB",
        sqnr(1),
        sqnr(2)
    );
    assert!(
        top1(0) - top1(2) <= 0.005,
        "float {}, imbalanced {}",
        top1(0),
        top1(2)
    );
    assert!(sqnr(3) < sqnr(2) - 10.0, "without CLE {} dB", sqnr(3));
}

/// Learned rounding reconstructs every layer's output better than rounding to nearest on the
/// calibration positions it samples, and the report says so layer by layer.
#[test]
fn adaround_lowers_each_layers_reconstruction_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.ferrite");
    let report = dir.path().join("r.json");
    let r = quantize(
        "mlp_digits",
        "digits",
        &out,
        &[
            "--weight-rounding",
            "adaround",
            &format!("--json={}", report.display()),
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let layers = json["quantization"]["rounding"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "three fully connected layers");
    for l in layers {
        let (near, learned) = (
            l["nearest_error"].as_f64().unwrap(),
            l["adaround_error"].as_f64().unwrap(),
        );
        assert!(learned < near, "{l}");
        assert_eq!(l["kept"], l["groups"], "{l}");
        assert!(l["flipped"].as_u64().unwrap() > 0);
    }
}

/// A residual net whose residual streams carry a few channels 20-60x larger than the rest,
/// compensated in every reader. With equalization off (pairwise equalization cannot undo it: several
/// writers and readers are tied by the Add), choosing each range by its effect on the outputs
/// recovers much of what the tensor-only MSE range loses.
#[test]
fn ranges_chosen_by_their_effect_on_the_outputs_recover_residual_outliers() {
    let rows = fashion_rows(
        "resnet_fashion_outliers",
        &[
            ("resnet_fashion_outliers", &["--no-cle"]),
            (
                "resnet_fashion_outliers",
                &["--no-cle", "--range", "tensor-mse"],
            ),
        ],
    );
    let top1 = |i: usize| rows[i]["top1"].as_f64().unwrap();
    let sqnr = |i: usize| rows[i]["sqnr_db"].as_f64().unwrap();
    assert!(
        sqnr(1) > sqnr(2) + 3.0,
        "output-aware {} dB, tensor MSE {} dB",
        sqnr(1),
        sqnr(2)
    );
    assert!(top1(1) > top1(2), "{} vs {}", top1(1), top1(2));
}

/// The same residual outliers, and 50-150x ones, with the default equalization: the residual streams
/// are rescaled as a whole, and the output SQNR comes within 3 dB of the balanced model's (the
/// outlier-free `resnet_fashion`, the same float function), 10 dB above equalization off.
#[test]
fn equalizing_residual_streams_undoes_their_outlier_channels() {
    let balanced = fashion_rows("resnet_fashion", &[("resnet_fashion", &[])]);
    let balanced = balanced[1]["sqnr_db"].as_f64().unwrap();
    for model in ["resnet_fashion_outliers", "resnet_fashion_outliers_wide"] {
        let rows = fashion_rows(model, &[(model, &[]), (model, &["--no-cle"])]);
        let sqnr = |i: usize| rows[i]["sqnr_db"].as_f64().unwrap();
        assert!(
            sqnr(1) > balanced - 3.0,
            "{model}: {} dB, the balanced model {balanced} dB",
            sqnr(1)
        );
        assert!(
            sqnr(1) > sqnr(2) + 10.0,
            "{model}: {} dB, without equalization {} dB",
            sqnr(1),
            sqnr(2)
        );
    }
}

/// A MobileNet-style net with Tanh after every convolution: by default each convolution's output
/// stays in int16 for its Tanh's table (a wide output), which the runtime runs as CONV_2D int8>16
/// and LOOKUP int16>8; with `--int8-function-inputs` it is int8, as TFLite stores it, several dB
/// lower on the same test images.
#[test]
fn wide_function_inputs_lift_a_tanh_network() {
    let rows = fashion_rows(
        "mbv1_tanh_fashion",
        &[
            ("mbv1_tanh_fashion", &[]),
            ("mbv1_tanh_fashion", &["--int8-function-inputs"]),
        ],
    );
    let sqnr = |i: usize| rows[i]["sqnr_db"].as_f64().unwrap();
    let top1 = |i: usize| rows[i]["top1"].as_f64().unwrap();
    assert!(
        sqnr(1) > sqnr(2) + 4.0,
        "wide {} dB, int8 {} dB",
        sqnr(1),
        sqnr(2)
    );
    assert!(
        top1(0) - top1(1) <= 0.01,
        "float {}, wide {}",
        top1(0),
        top1(1)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.ferrite");
    let r = quantize("mbv1_tanh_fashion", "fashion", &out, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let inspect = ferrite().arg("inspect").arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert_eq!(text.matches("int8>16").count(), 7, "{text}");
    assert_eq!(text.matches("int16>8").count(), 7, "{text}");
    assert!(
        text.contains("runtime features: ") && text.contains("int16"),
        "{text}"
    );
}
