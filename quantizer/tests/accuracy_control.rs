//! `ferrite quantize --max-drop / --min-sqnr`: accuracy-controlled quantization on the digits MLP,
//! its result checked with `ferrite eval`, and its bad settings refused before any work.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

fn fixture(rel: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "tests", "fixtures", rel]
        .iter()
        .collect();
    p.to_str().unwrap().to_string()
}

fn quantize(out: &Path, extra: &[&str]) -> Output {
    ferrite()
        .arg("quantize")
        .arg(fixture("mlp_digits/model.onnx"))
        .args(["--data", &fixture("data/digits_calib_x.npy"), "-o"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `ferrite eval --json` of the float model against `model` on the digits test set: (top-1, SQNR).
fn eval(model: &Path) -> (f64, f64) {
    let o = ferrite()
        .arg("eval")
        .arg(fixture("mlp_digits/model.onnx"))
        .arg(model)
        .args(["--data", &fixture("data/digits_test_x.npy")])
        .args(["--labels", &fixture("data/digits_test_y.npy"), "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (
        rows[1]["top1"].as_f64().unwrap(),
        rows[1]["sqnr_db"].as_f64().unwrap_or(f64::INFINITY),
    )
}

/// An SQNR target above the int8 model's is met by moving tensors to float, as `ferrite eval`
/// confirms on the written model; every kept move raised the SQNR; a target the int8 model meets
/// moves nothing.
#[test]
fn an_sqnr_target_moves_tensors_to_float_until_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.ferrite");
    assert!(quantize(&plain, &[]).status.success());
    let (_, int8_sqnr) = eval(&plain);

    let (out, report) = (dir.path().join("ac.ferrite"), dir.path().join("ac.json"));
    let target = int8_sqnr + 3.0;
    let o = quantize(
        &out,
        &[
            "--min-sqnr",
            &target.to_string(),
            "--val-data",
            &fixture("data/digits_test_x.npy"),
            &format!("--json={}", report.display()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("accuracy control: met"),
        "{}",
        stderr(&o)
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let search = &doc["accuracy_control"];
    assert_eq!(search["met"], true);
    let float_layers = search["float_layers"].as_array().unwrap();
    assert!(!float_layers.is_empty());
    assert_eq!(
        doc["quantization"]["float_nodes"].as_array().unwrap().len(),
        float_layers.len()
    );
    // Measured on the written file by `eval`, as the search measured it.
    let (_, sqnr) = eval(&out);
    assert!(sqnr >= target, "{sqnr} dB for a target of {target} dB");
    let steps = search["steps"].as_array().unwrap();
    let db = |s: &serde_json::Value| s["score"]["sqnr_db"].as_f64().unwrap_or(f64::INFINITY);
    let mut best = db(&steps[0]);
    assert!((best - int8_sqnr).abs() < 1e-6);
    for s in &steps[1..] {
        if s["kept"] == true {
            assert!(db(s) > best);
            best = db(s);
        }
    }
    assert!(
        (best - sqnr).abs() < 1e-6 || sqnr.is_infinite(),
        "{best} vs {sqnr}"
    );

    // A target the plain model meets: nothing moves, and the file is the plain one.
    let easy = dir.path().join("easy.ferrite");
    let o = quantize(
        &easy,
        &[
            "--max-drop",
            "100",
            "--val-data",
            &fixture("data/digits_test_x.npy"),
            "--val-labels",
            &fixture("data/digits_test_y.npy"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&easy).unwrap(),
        std::fs::read(&plain).unwrap()
    );
}

/// A target a little above the int8 model's is met by widening tensors to int16x8 only: no layer
/// goes to float, the written model has int16 tensors, and `ferrite eval` confirms the SQNR.
#[test]
fn a_small_sqnr_gap_is_closed_with_int16_before_float() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.ferrite");
    assert!(quantize(&plain, &[]).status.success());
    let (_, int8_sqnr) = eval(&plain);
    let (out, report) = (dir.path().join("ac.ferrite"), dir.path().join("ac.json"));
    let target = int8_sqnr + 1.0;
    let o = quantize(
        &out,
        &[
            "--min-sqnr",
            &target.to_string(),
            "--val-data",
            &fixture("data/digits_test_x.npy"),
            &format!("--json={}", report.display()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let search = &doc["accuracy_control"];
    assert_eq!(search["met"], true, "{search}");
    assert!(search["float_layers"].as_array().unwrap().is_empty());
    let int16 = search["int16_layers"].as_array().unwrap();
    assert!(!int16.is_empty());
    assert_eq!(doc["quantization"]["int16_nodes"], search["int16_layers"]);
    let steps = search["steps"].as_array().unwrap();
    assert!(steps[1..].iter().all(|s| s["to"] == "int16"), "{steps:?}");
    let int16_macs = search["chosen_macs"]["int16"].as_u64().unwrap();
    assert!(int16_macs > 0);
    let (_, sqnr) = eval(&out);
    assert!(sqnr >= target, "{sqnr} dB for a target of {target} dB");
    let bytes = std::fs::read(&out).unwrap();
    let model = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    let int16_tensors = model
        .graph()
        .tensors
        .iter()
        .filter(|t| t.as_ref().unwrap().dtype == ferrite_runtime::format::DType::I16)
        .count();
    assert!(int16_tensors > 0);
}

/// `--int16` names nodes or operator types that exist, or `all`; all-int16x8 beats int8.
#[test]
fn int16_selects_nodes_by_name_type_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.ferrite");
    let o = quantize(&out, &["--int16", "NoSuchNode"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--int16 NoSuchNode: no node has that name or operator type"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    let plain = dir.path().join("plain.ferrite");
    assert!(quantize(&plain, &[]).status.success());
    let (_, int8_sqnr) = eval(&plain);
    for flags in [&["--int16", "all"][..], &["--int16", "Gemm"]] {
        let o = quantize(&out, flags);
        assert!(o.status.success(), "{flags:?}: {}", stderr(&o));
        let (_, sqnr) = eval(&out);
        assert!(sqnr > int8_sqnr, "{flags:?}: {sqnr} vs int8 {int8_sqnr}");
    }
}

/// `--int16 all` on graphs with a Concatenation (a ShuffleNet unit) and with Maximum and Minimum:
/// those operators, whose int16 kernels need inputs quantized as the output, stay int8 between
/// conversions; the rest is int16.
#[test]
fn int16_everywhere_keeps_concatenation_maximum_and_minimum_in_int8() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.ferrite");
    for (name, kept) in [
        ("shuffle", &["CONCATENATION"][..]),
        ("arith", &["MAXIMUM", "MINIMUM"]),
    ] {
        let o = ferrite()
            .arg("quantize")
            .arg(fixture(&format!("ops/{name}.onnx")))
            .args(["--data", &fixture(&format!("ops/{name}_x.npy")), "-o"])
            .arg(&out)
            .args(["--int16", "all"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let bytes = std::fs::read(&out).unwrap();
        let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
        let mut int16 = 0;
        for op in m.ops() {
            let dtype = op.output().dtype;
            if kept.contains(&op.name()) {
                assert_eq!(
                    dtype,
                    ferrite_runtime::format::DType::I8,
                    "{name}: {}",
                    op.name()
                );
            } else if dtype == ferrite_runtime::format::DType::I16 {
                int16 += 1;
            }
        }
        assert!(int16 > 0, "{name}: nothing in int16");
    }
}

/// Settings that cannot work are refused before calibration, and nothing is written.
#[test]
fn bad_accuracy_control_settings_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.ferrite");
    let (x, y) = (
        fixture("data/digits_test_x.npy"),
        fixture("data/digits_test_y.npy"),
    );
    // 300 labels for 360 samples; a class the model does not have.
    let short = dir.path().join("short.npy");
    let labels = ferrite_quantizer::npy::Array::read(Path::new(&y)).unwrap();
    let (head, _) = labels.clone().split_rows(300);
    head.write(&short).unwrap();
    let mut wide = labels;
    wide.data[..8].copy_from_slice(&12i64.to_le_bytes());
    let bad_class = dir.path().join("wide.npy");
    wide.write(&bad_class).unwrap();
    // A NaN in the validation samples' second sample.
    let mut nan = ferrite_quantizer::npy::Array::read(Path::new(&x)).unwrap();
    nan.data[64 * 4..64 * 4 + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan_x = dir.path().join("nan.npy");
    nan.write(&nan_x).unwrap();
    let nan_x = nan_x.to_str().unwrap();
    let (short, bad_class) = (short.to_str().unwrap(), bad_class.to_str().unwrap());
    let cases: [(&[&str], &str); 8] = [
        (&["--max-drop", "1", "--val-data", &x], "--val-labels"),
        (&["--max-drop", "1", "--val-labels", &y], "give --val-data"),
        (&["--val", &x], "--val-data is for accuracy control"),
        (&["--best-effort"], "--best-effort is for accuracy control"),
        (
            &["--max-drop=-1", "--val-data", &x, "--val-labels", &y],
            "at least 0",
        ),
        (
            &["--max-drop", "1", "--val-data", &x, "--val-labels", short],
            "300 labels",
        ),
        (
            &[
                "--max-drop",
                "1",
                "--val-data",
                &x,
                "--val-labels",
                bad_class,
            ],
            "label 0 is 12",
        ),
        (
            &["--min-sqnr", "30", "--val-data", nan_x],
            "validation sample 1 has a non-finite value",
        ),
    ];
    for (flags, says) in cases {
        let o = quantize(&out, flags);
        let e = stderr(&o);
        assert!(!o.status.success(), "{flags:?}");
        assert!(e.contains(says), "{flags:?}: {e}");
        assert!(!e.contains("calibrating"), "{flags:?}: {e}");
        assert!(!out.exists(), "{flags:?} wrote a model");
    }
}

/// On a network whose activations run by table (HardSwish, SiLU) or with a clamp no f32 kernel has
/// (a HardSigmoid gate), the search widens the other layers and leaves those in int8.
#[test]
fn tables_and_hard_sigmoid_stay_int8_while_the_search_widens_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.ferrite");
    let x = fixture("ops/activations_x.npy");
    let o = ferrite()
        .arg("quantize")
        .arg(fixture("ops/activations.onnx"))
        .args([
            "--data",
            &x,
            "--val-data",
            &x,
            "--min-sqnr",
            "80",
            "--best-effort",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    let names: Vec<&str> = m.ops().map(|o| o.name()).collect();
    // The two HardSwish and two SiLU tables (the Sigmoid gate may go to float).
    assert!(
        names.iter().filter(|&&n| n == "LOOKUP").count() >= 4,
        "{names:?}"
    );
    assert!(names.contains(&"DEQUANTIZE"), "{names:?}");
}
