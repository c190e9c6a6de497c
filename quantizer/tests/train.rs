//! `ferrite train` end to end on the digits fixture: a trained model that runs, its report, and every
//! bad input giving one clear line, a non-zero exit and no output file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferrite_quantizer::npy::Array;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// `ferrite train` of the digits MLP on the digits test samples (360), with `extra` flags.
fn train(out: &Path, extra: &[&str]) -> Output {
    let f = fixtures();
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .arg("train")
        .arg(f.join("mlp_digits/model.onnx"))
        .arg("--data")
        .arg(f.join("data/digits_test_x.npy"))
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Each `(flags, message)`: training fails with `message`, before post-training quantization, and
/// writes nothing.
fn refused_before_any_work(out: &Path, cases: &[(&[&str], &str)]) {
    for (flags, message) in cases {
        let o = train(out, flags);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(e.contains(message), "{flags:?}: {e}");
        assert!(
            !e.contains("post-training quantization on"),
            "{flags:?}: {e}"
        );
        assert!(!out.exists(), "{flags:?} wrote a model");
    }
}

#[test]
fn training_writes_a_model_and_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = (dir.path().join("t.ferrite"), dir.path().join("r.json"));
    let y = fixtures().join("data/digits_test_y.npy");
    let x = fixtures().join("data/digits_test_x.npy");
    let o = train(
        &out,
        &[
            "--labels",
            y.to_str().unwrap(),
            "--epochs",
            "2",
            "--val-data",
            x.to_str().unwrap(),
            "--val-labels",
            y.to_str().unwrap(),
            &format!("--json={}", report.display()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("epoch 2: loss"), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let epochs = r["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 3);
    let best = r["best_epoch"].as_u64().unwrap() as usize;
    let kept = epochs[best]["score"].as_f64().unwrap();
    assert!(kept >= epochs[0]["score"].as_f64().unwrap());
    // The file is a model the runtime runs, scoring what the report says.
    let e = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .arg("eval")
        .arg(&out)
        .arg("--data")
        .arg(&x)
        .arg("--labels")
        .arg(&y)
        .arg("--json")
        .output()
        .unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let rows: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert_eq!(rows[0]["top1"].as_f64().unwrap(), kept);
}

/// Without a validation set, the last 10% of `--data` (with their labels) are held out and choose the
/// best epoch; `--val-split 0` trains on everything and keeps the last epoch; a split above one half
/// is refused.
#[test]
fn a_share_of_the_data_is_held_out_for_validation_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let y = fixtures().join("data/digits_test_y.npy");
    let y = y.to_str().unwrap();
    let report = |extra: &[&str]| -> serde_json::Value {
        let (out, r) = (dir.path().join("t.ferrite"), dir.path().join("r.json"));
        let mut args = vec!["--labels", y, "--epochs", "1"];
        args.extend_from_slice(extra);
        let json = format!("--json={}", r.display());
        args.push(&json);
        let o = train(&out, &args);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&std::fs::read(&r).unwrap()).unwrap()
    };
    let r = report(&[]);
    assert_eq!(r["held_out_for_validation"], 36);
    assert_eq!(r["samples"], 324);
    assert_eq!(r["metric"], "validation top-1");
    assert!(r["epochs"][0]["score"].as_f64().is_some());
    let r = report(&["--val-split", "0"]);
    assert_eq!(r["held_out_for_validation"], 0);
    assert_eq!(r["samples"], 360);
    assert_eq!(r["metric"], "");
    let o = train(&dir.path().join("u.ferrite"), &["--val-split", "0.7"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("0.7 is not between 0 and 0.5"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("u.ferrite").exists());
}

#[test]
fn bad_labels_and_paths_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.ferrite");
    let write = |name: &str, a: Array| {
        let p = dir.path().join(name);
        a.write(&p).unwrap();
        p.to_str().unwrap().to_string()
    };
    let ints = |v: &[i32]| Array {
        shape: vec![v.len()],
        dtype: ferrite_quantizer::npy::Dtype::I32,
        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    let short = write("short.npy", ints(&[1, 2, 3]));
    let mut labels = vec![0i32; 360];
    labels[7] = -1;
    let negative = write("negative.npy", ints(&labels));
    labels[7] = 10;
    let too_big = write("too_big.npy", ints(&labels));
    let float = write("float.npy", Array::from_f32(vec![360], &[0.0; 360]));
    let cases: [(&[&str], &str); 4] = [
        (
            &["--labels", &short],
            "3 labels (shape [3]) for 360 samples",
        ),
        (
            &["--labels", &negative],
            "label 7 is -1; class ids start at 0",
        ),
        (&["--labels", &too_big], "too_big.npy: label 7 is 10, but"),
        (&["--labels", &float], "labels must be integers"),
    ];
    for (flags, message) in cases {
        let o = train(&out, flags);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(message), "{flags:?}: {}", stderr(&o));
        assert!(
            !stderr(&o).contains("post-training quantization on"),
            "{flags:?}: checked before the work"
        );
        assert!(!out.exists(), "{flags:?} wrote a model");
    }
    // One sample without its batch dimension is named as such (not as a wrong shape after holding
    // out a share of its values for validation).
    let nobatch = write("nobatch.npy", Array::from_f32(vec![64], &[0.0; 64]));
    let o = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .arg("train")
        .arg(fixtures().join("mlp_digits/model.onnx"))
        .args(["--data", &nobatch, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("array shape [64] has no batch dimension"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
    let x = fixtures().join("data/digits_test_x.npy");
    let o = train(
        &out,
        &["--val-data", x.to_str().unwrap(), "--val-labels", &too_big],
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("too_big.npy: label 7 is 10, but") && e.contains("has 10 classes (0 to 9)"),
        "{e}"
    );
    assert!(
        !e.contains("post-training quantization on"),
        "checked before the work"
    );
    assert!(!out.exists());
    let o = train(&dir.path().join("missing/t.ferrite"), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("post-training quantization on"),
        "checked before the work"
    );
}

#[test]
fn pruning_zeros_the_middle_layer_and_bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.ferrite");
    let cases: [(&[&str], &str); 5] = [
        (&["--sparsity", "1"], "1 is not in [0, 1)"),
        (
            &["--sparsity", "0.5", "--epochs", "0"],
            "prunes during training: it needs --epochs 1 or more",
        ),
        (&["--sparsity=-0.1"], "-0.1 is not in [0, 1)"),
        (
            &["--sparsity", "0.5", "--sparsity-skip", "nope"],
            "the model has no node `nope`",
        ),
        (&["--sparsity-block", "4"], "--sparsity <SPARSITY>"),
    ];
    refused_before_any_work(&out, &cases);
    let y = fixtures().join("data/digits_test_y.npy");
    let report = dir.path().join("r.json");
    let o = train(
        &out,
        &[
            "--labels",
            y.to_str().unwrap(),
            "--epochs",
            "1",
            "--sparsity",
            "0.6",
            "--distill",
            "--weight-storage",
            "sparse",
            &format!("--json={}", report.display()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("sparsity: ") && e.contains("distilling the float model (validation top-1)"),
        "{e}"
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["distill"], true);
    assert_eq!(r["config"]["lr"], 1e-3, "pruning's default learning rate");
    let pruned: Vec<bool> = r["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["pruned"].as_bool().unwrap())
        .collect();
    assert_eq!(pruned, [false, true, false]);
    // `inspect` reads the density from the file itself.
    let i = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["inspect", "--json"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(i.status.success(), "{}", stderr(&i));
    let s: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
    let density: Vec<f64> = s["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["density"].as_f64())
        .collect();
    assert_eq!(density.len(), 3, "{density:?}");
    assert!(density[1] <= 0.401, "{density:?}");
    assert!(density[0] > 0.8 && density[2] > 0.8, "{density:?}");
    // The pruned layer alone is stored sparsely, in fewer bytes than dense.
    let ops = s["ops"].as_array().unwrap();
    let weighted: Vec<&serde_json::Value> =
        ops.iter().filter(|o| o["encoding"].is_string()).collect();
    let names: Vec<&str> = weighted.iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "FULLY_CONNECTED",
            "FULLY_CONNECTED_SPARSE",
            "FULLY_CONNECTED"
        ]
    );
    let (dense, stored) = (
        weighted[1]["filter_bytes_dense"].as_u64().unwrap(),
        weighted[1]["filter_bytes_stored"].as_u64().unwrap(),
    );
    assert!(stored * 10 < dense * 7, "{stored} of {dense} bytes");
    assert_eq!(weighted[1]["encoding"], "sparse/1");
}

#[test]
fn a_diverging_run_keeps_the_last_good_model_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.ferrite");
    let y = fixtures().join("data/digits_test_y.npy");
    let o = train(
        &out,
        &[
            "--labels",
            y.to_str().unwrap(),
            "--lr",
            "1000",
            "--scale-lr",
            "1000",
        ],
    );
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("training stopped at epoch 1, step"), "{e}");
    assert!(e.contains("holds that model"), "{e}");
    assert!(out.exists(), "the last good model is written");
}

#[test]
fn the_exported_qdq_model_converts_to_the_trained_int8_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.ferrite");
    let float = dir.path().join("ft.onnx");
    let y = fixtures().join("data/digits_test_y.npy");
    let o = train(
        &out,
        &[
            "--labels",
            y.to_str().unwrap(),
            "--export-onnx",
            float.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let qdq = dir.path().join("ft.qdq.onnx");
    let converted = dir.path().join("c.ferrite");
    let c = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .arg("convert")
        .arg(&qdq)
        .arg("-o")
        .arg(&converted)
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", stderr(&c));
    let x = Array::read(&fixtures().join("data/digits_test_x.npy")).unwrap();
    let run = |p: &Path| {
        let bytes = std::fs::read(p).unwrap();
        let r = ferrite_quantizer::runtime_exec::Runner::new(&bytes).unwrap();
        r.run(std::slice::from_ref(&x), 1)
            .unwrap()
            .remove(0)
            .to_f32()
    };
    let bytes = std::fs::read(&out).unwrap();
    let model = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    let step = model.output(0).unwrap().scale;
    // The converter requantizes as onnxruntime does (one rounding), the trained model as TFLite does:
    // outputs may differ by a step where the two roundings part.
    let (trained, back) = (run(&out), run(&converted));
    let off: Vec<f32> = trained
        .iter()
        .zip(&back)
        .map(|(a, b)| (a - b).abs() / step)
        .collect();
    let within_one = off.iter().filter(|&&d| d <= 1.001).count() as f64 / off.len() as f64;
    assert!(
        within_one >= 0.99,
        "{within_one} of outputs within one step"
    );
    // The fine-tuned float model is an ONNX model Ferrite reads and runs.
    let e = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .arg("eval")
        .arg(&float)
        .arg(&out)
        .arg("--data")
        .arg(fixtures().join("data/digits_test_x.npy"))
        .arg("--labels")
        .arg(&y)
        .arg("--json")
        .output()
        .unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let rows: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert!(rows[1]["sqnr_db"].as_f64().unwrap() > 25.0, "{rows}");
}

/// Layer, instance and group normalization (NORMALIZE) train, gamma and beta with the rest, and
/// their Q/DQ export converts back to the same int8 model.
#[test]
fn normalization_layers_train_and_their_qdq_export_converts() {
    for name in ["norms", "torch_groupnorm_legacy", "torch_lnmlp_dynamo"] {
        let dir = tempfile::tempdir().unwrap();
        let (out, float) = (dir.path().join("t.ferrite"), dir.path().join("ft.onnx"));
        let (model, x) = (
            fixtures().join(format!("ops/{name}.onnx")),
            fixtures().join(format!("ops/{name}_x.npy")),
        );
        let o = Command::new(env!("CARGO_BIN_EXE_ferrite"))
            .arg("train")
            .arg(&model)
            .arg("--data")
            .arg(&x)
            .args(["--epochs", "2", "--val-split", "0", "--export-onnx"])
            .arg(&float)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let converted = dir.path().join("c.ferrite");
        let c = Command::new(env!("CARGO_BIN_EXE_ferrite"))
            .arg("convert")
            .arg(dir.path().join("ft.qdq.onnx"))
            .arg("-o")
            .arg(&converted)
            .output()
            .unwrap();
        assert!(c.status.success(), "{name}: {}", stderr(&c));
        let x = Array::read(&x).unwrap();
        let run = |p: &Path| {
            let bytes = std::fs::read(p).unwrap();
            let ops = ferrite_runtime::Model::from_bytes(&bytes)
                .unwrap()
                .ops()
                .filter(|o| o.name() == "NORMALIZE")
                .count();
            let r = ferrite_quantizer::runtime_exec::Runner::new(&bytes).unwrap();
            let y = r
                .run(std::slice::from_ref(&x), 1)
                .unwrap()
                .remove(0)
                .to_f32();
            (ops, y)
        };
        let ((n_trained, trained), (n_back, back)) = (run(&out), run(&converted));
        assert!(
            n_trained > 0 && n_trained == n_back,
            "{name}: {n_trained} vs {n_back}"
        );
        let bytes = std::fs::read(&out).unwrap();
        let step = ferrite_runtime::Model::from_bytes(&bytes)
            .unwrap()
            .output(0)
            .unwrap()
            .scale;
        // The converter requantizes as onnxruntime does (one rounding), the trained model as TFLite
        // does; each normalization rescales the step where they part, so three in a row leave
        // outputs up to two steps apart.
        let off: Vec<f32> = trained
            .iter()
            .zip(&back)
            .map(|(a, b)| (a - b).abs() / step)
            .collect();
        let far = off.iter().filter(|&&d| d > 1.001).count();
        let worst = off.iter().copied().fold(0.0, f32::max);
        assert!(
            far * 20 <= off.len() && worst <= 2.001,
            "{name}: {far} of {} outputs more than a step apart, worst {worst}",
            off.len()
        );
    }
}

/// `--val` and `--report FILE`, the former names of `--val-data` and `--json=FILE`.
#[test]
fn former_option_names_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = (dir.path().join("t.ferrite"), dir.path().join("r.json"));
    let x = fixtures().join("data/digits_test_x.npy");
    let o = train(
        &out,
        &[
            "--epochs",
            "1",
            "--val",
            x.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["metric"], "validation SQNR (dB)");
    assert_eq!(r["config"]["optimizer"], "adam");
}

#[test]
fn filter_pruning_removes_channels_and_bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.ferrite");
    let cases: [(&[&str], &str); 4] = [
        (&["--prune-filters", "1"], "1 is not in [0, 1)"),
        (
            &["--prune-filters", "0.3", "--prune-filters-skip", "nope"],
            "the model has no node `nope`",
        ),
        (
            &["--prune-filters", "0.3", "--sparsity", "0.5"],
            "cannot be used with",
        ),
        (
            &["--recovery-epochs", "1"],
            "--prune-filters <PRUNE_FILTERS>",
        ),
    ];
    refused_before_any_work(&out, &cases);
    let y = fixtures().join("data/digits_test_y.npy");
    let report = dir.path().join("r.json");
    let o = train(
        &out,
        &[
            "--labels",
            y.to_str().unwrap(),
            "--epochs",
            "2",
            "--recovery-epochs",
            "1",
            "--prune-filters",
            "0.3",
            "--prune-allocation",
            "uniform",
            &format!("--json={}", report.display()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("filters: 77 of 106 output channels kept"), "{e}");
    assert!(e.contains("keeps its 10 channels: the graph output"), "{e}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let f = &r["filters"];
    let kept: Vec<(u64, u64)> = f["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["channels"].as_u64().unwrap(), l["kept"].as_u64().unwrap()))
        .collect();
    // 30% of 64 and of 32 rounded; the logits stay.
    assert_eq!(kept, [(64, 45), (32, 22), (10, 10)]);
    assert_eq!(f["macs_before"], 64 * 64 + 64 * 32 + 32 * 10);
    assert_eq!(f["macs_after"], 64 * 45 + 45 * 22 + 22 * 10);
    assert_eq!(f["epochs_before_removal"].as_array().unwrap().len(), 3);
    assert_eq!(
        r["epochs"].as_array().unwrap().len(),
        2,
        "recovery: epoch 0 and 1"
    );
    // The file holds the smaller layers, and it still classifies the digits.
    let i = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["inspect", "--json"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(i.status.success(), "{}", stderr(&i));
    let s: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
    assert_eq!(s["macs"], 64 * 45 + 45 * 22 + 22 * 10);
    let ev = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["eval", "--json"])
        .arg(&out)
        .arg("--data")
        .arg(fixtures().join("data/digits_test_x.npy"))
        .arg("--labels")
        .arg(&y)
        .output()
        .unwrap();
    assert!(ev.status.success(), "{}", stderr(&ev));
    let v: serde_json::Value = serde_json::from_slice(&ev.stdout).unwrap();
    let top1 = v[0]["top1"].as_f64().unwrap();
    assert!(
        top1 > 0.85,
        "top-1 {top1} after removing 30% of the channels"
    );
    // Without epochs the channels go at once, allocated by sensitivity (the default): as many in
    // all, not as many per layer.
    let json = format!("--json={}", report.display());
    let flags = [
        "--epochs",
        "0",
        "--recovery-epochs",
        "0",
        "--prune-filters",
        "0.3",
    ];
    let o = train(&out, &[&flags[..], &[json.as_str()]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let kept: Vec<u64> = r["filters"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kept"].as_u64().unwrap())
        .collect();
    assert_eq!(kept.iter().sum::<u64>(), 45 + 22 + 10);
    assert_ne!(
        kept,
        [45, 22, 10],
        "the sensitivity allocation was not applied"
    );
}

/// `--per-tensor`: one weight scale per layer, in the post-training start and in training (each
/// fully connected layer one multiplier); without it, one per output channel.
#[test]
fn per_tensor_training_keeps_one_weight_scale_per_layer() {
    let dir = tempfile::tempdir().unwrap();
    let y = fixtures().join("data/digits_test_y.npy");
    let multipliers = |flags: &[&str]| -> Vec<usize> {
        let out = dir.path().join("t.ferrite");
        let mut args = vec!["--labels", y.to_str().unwrap(), "--epochs", "1"];
        args.extend_from_slice(flags);
        let o = train(&out, &args);
        assert!(o.status.success(), "{}", stderr(&o));
        let bytes = std::fs::read(&out).unwrap();
        let model = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
        let counts = model
            .ops()
            .filter_map(|op| match op {
                ferrite_runtime::ops::Op::FullyConnected(f) => Some(f.multiplier.len() / 4),
                _ => None,
            })
            .collect();
        std::fs::remove_file(&out).unwrap();
        counts
    };
    let per_tensor = multipliers(&["--per-tensor"]);
    assert!(
        !per_tensor.is_empty() && per_tensor.iter().all(|&n| n == 1),
        "{per_tensor:?}"
    );
    let per_channel = multipliers(&[]);
    assert!(per_channel.iter().all(|&n| n > 1), "{per_channel:?}");
}
