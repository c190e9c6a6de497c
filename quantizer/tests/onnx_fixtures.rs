//! Float ONNX fixtures (tests/fixtures): the importer, passes and float executor against onnxruntime's
//! outputs, directly and through `ferrite run`, plus the CLI's handling of bad ONNX files.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrite_quantizer::import::onnx::build::value_info;
use ferrite_quantizer::import::onnx::proto::*;
use ferrite_quantizer::ir::{self, Op};
use ferrite_quantizer::npy::Array;
use prost::Message;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn ferrite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
}

/// Largest `|got - want| / max(|want|, 1)`; panics on shape mismatch.
/// Runs a `ferrite` command that must succeed; its standard output.
fn ferrite_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?}: {err}");
    out.stdout
}

fn max_rel_err(got: &Array, want: &Array) -> f64 {
    assert_eq!(got.shape, want.shape, "output shape");
    let (g, w) = (got.to_f32(), want.to_f32());
    g.iter()
        .zip(&w)
        .map(|(&a, &b)| ((a - b).abs() / b.abs().max(1.0)) as f64)
        .fold(0.0, f64::max)
}

/// `got`'s signal-to-quantization-noise ratio against `want`, in dB.
fn sqnr_db(got: &Array, want: &Array) -> f64 {
    assert_eq!(got.shape, want.shape, "output shape");
    let (g, w) = (got.to_f32(), want.to_f32());
    let signal: f64 = w.iter().map(|&v| (v as f64).powi(2)).sum();
    let noise: f64 = g
        .iter()
        .zip(&w)
        .map(|(&a, &b)| ((a - b) as f64).powi(2))
        .sum();
    10.0 * (signal / noise).log10()
}

/// The first `n` samples of a batch-first array.
fn head(a: &Array, n: usize) -> Array {
    let n = n.min(a.shape[0]);
    let per = a.len() / a.shape[0] * a.dtype.size();
    let mut shape = a.shape.clone();
    shape[0] = n;
    Array {
        shape,
        dtype: a.dtype,
        data: a.data[..n * per].to_vec(),
    }
}

/// Samples checked per fixture: all of them in release builds, a prefix in (slow) debug builds.
const SAMPLES: usize = if cfg!(debug_assertions) {
    100
} else {
    usize::MAX
};

/// Imports, optimizes and runs `model` on `x`, comparing each output with its golden file.
fn check_model(model: &str, x: &str, goldens: &[&str]) -> f64 {
    let g = ferrite_quantizer::cli::float_onnx::load(&fixtures().join(model)).unwrap();
    let x = head(&Array::read(&fixtures().join(x)).unwrap(), SAMPLES);
    let outs = ir::io::run_arrays(
        &g,
        &[x],
        ferrite_quantizer::runtime_exec::available_threads(),
    )
    .unwrap();
    assert_eq!(outs.len(), goldens.len());
    let mut worst = 0.0f64;
    for (o, golden) in outs.iter().zip(goldens) {
        let want = head(&Array::read(&fixtures().join(golden)).unwrap(), SAMPLES);
        let e = max_rel_err(o, &want);
        eprintln!("{model} -> {golden}: max relative error {e:.2e}");
        assert!(
            e <= 1e-4,
            "{model}: {golden} differs from onnxruntime by {e:.2e} (relative)"
        );
        worst = worst.max(e);
    }
    worst
}

/// `ferrite run MODEL --data X -o Y`, which must succeed.
fn run_to(model: &Path, x: &Path, y: &Path) {
    ferrite_ok(
        ferrite()
            .arg("run")
            .arg(model)
            .arg("--data")
            .arg(x)
            .arg("-o")
            .arg(y),
    );
}

/// `ferrite quantize` of fixture `{base}.onnx` calibrated on `{base}_x.npy`, into `dir/m.ferrite`:
/// the model, inputs and int8 model's paths.
fn quantize_on_own_inputs(base: &str, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (model, x) = (
        fixtures().join(format!("{base}.onnx")),
        fixtures().join(format!("{base}_x.npy")),
    );
    let int8 = dir.join("m.ferrite");
    ferrite_ok(
        ferrite()
            .arg("quantize")
            .arg(&model)
            .arg("--data")
            .arg(&x)
            .arg("-o")
            .arg(&int8),
    );
    (model, x, int8)
}

#[test]
fn trained_models_match_onnxruntime() {
    for (model, data) in [
        ("mlp_digits", "digits"),
        ("dscnn_fashion", "fashion"),
        ("resnet_fashion", "fashion"),
        ("mobilenetv2_mnist", "mnist"),
        ("dscnn_fashion_imbalanced", "fashion"),
        ("resnet_fashion_outliers", "fashion"),
    ] {
        check_model(
            &format!("{model}/model.onnx"),
            &format!("data/{data}_test_x.npy"),
            &[&format!("{model}/golden.npy")],
        );
    }
}

#[test]
fn operator_coverage_graphs_match_onnxruntime_at_opsets_11_17_21() {
    for opset in [11, 17, 21] {
        let base = format!("ops/ops_opset{opset}");
        check_model(
            &format!("{base}.onnx"),
            &format!("{base}_x.npy"),
            &[
                &format!("{base}_golden.npy"),
                &format!("{base}_golden_1.npy"),
                &format!("{base}_golden_2.npy"),
            ],
        );
    }
}

#[test]
fn dynamo_exports_match_onnxruntime() {
    for arch in ["mlp", "dscnn", "resnet", "mobilenetv2"] {
        let base = format!("ops/dynamo_{arch}");
        check_model(
            &format!("{base}.onnx"),
            &format!("{base}_x.npy"),
            &[&format!("{base}_golden.npy")],
        );
    }
}

/// PyTorch's flatten `x.view(x.size(0), -1)` (Shape, Gather, Cast, Unsqueeze, Concat into Reshape;
/// `make_view_flatten.py`) folds to a constant shape: the float model matches onnxruntime, and
/// `ferrite quantize` gives an int8 model that matches the float one.
#[test]
fn a_reshape_to_a_computed_shape_folds_and_quantizes() {
    let base = "ops/view_flatten";
    check_model(
        &format!("{base}.onnx"),
        &format!("{base}_x.npy"),
        &[&format!("{base}_golden.npy")],
    );
    let dir = tempfile::tempdir().unwrap();
    let (model, x, int8) = quantize_on_own_inputs(base, dir.path());
    let out = ferrite_ok(
        ferrite()
            .arg("eval")
            .arg(&model)
            .arg(&int8)
            .arg("--data")
            .arg(&x)
            .arg("--json"),
    );
    let rows: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let (sqnr, agreement) = (rows[1]["sqnr_db"].as_f64(), rows[1]["agreement"].as_f64());
    assert!(sqnr.unwrap() > 35.0, "{}", rows[1]);
    assert_eq!(agreement, Some(1.0), "{}", rows[1]);
}

/// Fixture graph `ops/<name>.onnx` with `outputs` onnxruntime goldens: matches them in float, and
/// quantized on its own inputs, each output's int8 SQNR against them is above `floor(output)` dB.
fn graph_matches_onnxruntime_and_quantizes(
    name: &str,
    outputs: usize,
    floor: impl Fn(usize) -> f64,
) {
    let base = format!("ops/{name}");
    let suffix = |i: usize| {
        if i == 0 {
            String::new()
        } else {
            format!("_{i}")
        }
    };
    let goldens: Vec<String> = (0..outputs)
        .map(|i| format!("{base}_golden{}.npy", suffix(i)))
        .collect();
    let golden_refs: Vec<&str> = goldens.iter().map(String::as_str).collect();
    check_model(
        &format!("{base}.onnx"),
        &format!("{base}_x.npy"),
        &golden_refs,
    );
    let dir = tempfile::tempdir().unwrap();
    let (_, x, int8) = quantize_on_own_inputs(&base, dir.path());
    run_to(&int8, &x, &dir.path().join("y.npy"));
    for (i, golden) in goldens.iter().enumerate() {
        let got = Array::read(&dir.path().join(format!("y{}.npy", suffix(i)))).unwrap();
        let want = Array::read(&fixtures().join(golden)).unwrap();
        let sqnr = sqnr_db(&got, &want);
        assert!(sqnr > floor(i), "{golden}: int8 SQNR {sqnr:.1} dB");
    }
}

/// A MobileNetV3- and EfficientNet-style network (`make_activations.py`: HardSwish, HardSigmoid
/// and Sigmoid gates of squeeze-and-excitation blocks, SiLU written as Sigmoid and Mul) matches
/// onnxruntime in float and stays close to it in int8, every HardSwish and SiLU by one table and no
/// int8 Sigmoid left to TFLite's LOGISTIC kernel.
#[test]
fn activation_functions_of_mobile_networks_match_onnxruntime_and_quantize() {
    graph_matches_onnxruntime_and_quantizes("activations", 1, |_| 35.0);
    let dir = tempfile::tempdir().unwrap();
    let (_, _, int8) = quantize_on_own_inputs("ops/activations", dir.path());
    let bytes = std::fs::read(&int8).unwrap();
    let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    let names: Vec<&str> = m.ops().map(|o| o.name()).collect();
    // Two HardSwish, two SiLU and one Sigmoid gate by table; the two gates' products stay MULs.
    assert_eq!(
        names.iter().filter(|&&n| n == "LOOKUP").count(),
        5,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|&&n| n == "MUL").count(),
        2,
        "{names:?}"
    );
    assert!(!names.contains(&"LOGISTIC"), "{names:?}");
}

/// Convolutions and a fully connected layer into Tanh and Sigmoid from wide pre-activations
/// (`make_wide.py`) match onnxruntime in float; quantized, each such layer keeps its output in
/// int16 for its function's table (a wide output): four layers with int16 outputs, four LOOKUPs
/// with int16 inputs.
#[test]
fn functions_after_layers_read_wide_outputs() {
    graph_matches_onnxruntime_and_quantizes("wide", 1, |_| 33.0);
    let dir = tempfile::tempdir().unwrap();
    let (_, _, int8) = quantize_on_own_inputs("ops/wide", dir.path());
    let bytes = std::fs::read(&int8).unwrap();
    let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    let wide = |o: &ferrite_runtime::ops::Op<'_>| match o {
        ferrite_runtime::ops::Op::Conv2d(c) | ferrite_runtime::ops::Op::DepthwiseConv2d(c) => {
            c.is_wide()
        }
        ferrite_runtime::ops::Op::FullyConnected(f) => {
            f.output.dtype == ferrite_runtime::format::DType::I16
        }
        _ => false,
    };
    let reads_wide = |o: &ferrite_runtime::ops::Op<'_>| matches!(o, ferrite_runtime::ops::Op::Lookup(u) if u.input.dtype == ferrite_runtime::format::DType::I16);
    assert_eq!(m.ops().filter(wide).count(), 4);
    assert_eq!(m.ops().filter(reads_wide).count(), 4);
}

/// A 1-D CNN over `[n, c, l]` (`make_signal_1d.py`: 1-D convolutions of every kind, pools, a
/// residual Add, Transpose to `[n, l, c]` and a mean over time) matches onnxruntime in float;
/// quantized, the `.ferrite` model takes and gives `[n, c, l]` arrays and stays close to float.
#[test]
fn one_d_signal_graph_matches_onnxruntime_and_quantizes() {
    graph_matches_onnxruntime_and_quantizes("signal_1d", 3, |_| 30.0);
}

/// Element-wise functions run by table (`make_functions.py`: Elu, Celu, Selu, Softplus, Softsign,
/// Exp, Erf, Gelu both ways, Mish, Abs, Neg, Sign, Sqrt, Sin, Cos, Shrink, ThresholdedRelu,
/// HardSwish, GELU written with Erf and SiLU written as Sigmoid and Mul) and LogSoftmax match
/// onnxruntime in float and stay close to it in int8 (Sign, which jumps at 0, the least).
#[test]
fn element_wise_functions_match_onnxruntime_and_quantize() {
    // Output 12 is Sign.
    graph_matches_onnxruntime_and_quantizes("functions", 22, |i| if i == 12 { 15.0 } else { 28.0 });
}

/// Slice and Split (`make_slices.py`: a crop with negative and open ends, a channel split into a
/// gated unit, an unequal split of the height, a slice of the logits, a shape sliced for a Reshape)
/// match onnxruntime in float and stay close to it in int8.
#[test]
fn slices_and_splits_match_onnxruntime_and_quantize() {
    graph_matches_onnxruntime_and_quantizes("slices", 2, |_| 30.0);
}

/// Transposed convolutions, DepthToSpace and bilinear Resize (`make_upsampling.py`: strided
/// ConvTranspose with pads and output padding, grouped without bias, with SAME_UPPER, a 1-D one, a
/// PixelShuffle, and Resize by PyTorch's half pixels, aligned corners and a scale of 0.75) match
/// onnxruntime in float and stay close to it in int8.
#[test]
fn upsampling_layers_match_onnxruntime_and_quantize() {
    graph_matches_onnxruntime_and_quantizes("upsampling", 7, |_| 30.0);
}

/// Pad in reflect, edge and wrap modes (`make_padding.py`: around convolutions, a circular
/// depthwise one, on a 1-D signal and on the channels) match onnxruntime in float and stay close to
/// it in int8; the outputs that are not NCHW images (a signal, a flattened map, a map transposed to
/// channels last) come back in their own layouts.
#[test]
fn padding_modes_match_onnxruntime_and_quantize() {
    graph_matches_onnxruntime_and_quantizes("padding", 7, |_| 30.0);
}

/// A Keras network converted by tf2onnx (`make_keras.py`: a one-channel NHWC input rescaled and
/// reshaped to NCHW, swish, GELU's tanh form written out with Pow, a transposed convolution, the
/// output reshaped back to NHWC) matches onnxruntime in float and stays close to it in int8, taking
/// and giving NHWC arrays, with the swish and the GELU each one table (no TANH or MUL left).
#[test]
fn keras_models_converted_by_tf2onnx_match_onnxruntime_and_quantize() {
    graph_matches_onnxruntime_and_quantizes("keras_nhwc", 1, |_| 40.0);
    let dir = tempfile::tempdir().unwrap();
    let (_, _, int8) = quantize_on_own_inputs("ops/keras_nhwc", dir.path());
    let listing = String::from_utf8(ferrite_ok(ferrite().arg("inspect").arg(&int8))).unwrap();
    let ops: Vec<&str> = listing
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.next()?.parse::<usize>().ok()?;
            words.next()
        })
        .collect();
    assert_eq!(
        ops.iter().filter(|&&op| op == "LOOKUP").count(),
        3,
        "{listing}"
    );
    assert!(!ops.contains(&"TANH") && !ops.contains(&"MUL"), "{listing}");
    assert!(
        listing.contains("input 0: input i8 [1, 16, 16, 1]"),
        "{listing}"
    );
}

/// A Keras U-Net step converted by tf2onnx (`make_keras.py`: UpSampling2D written as Unsqueeze,
/// Tile, Transpose and Reshape through rank-5 tensors, then Concatenate with the skip connection)
/// matches onnxruntime in float and stays close to it in int8, each UpSampling2D one
/// RESIZE_NEAREST_NEIGHBOR, the input and output NHWC as in the Keras model.
#[test]
fn keras_upsampling_becomes_resize_and_matches_onnxruntime() {
    graph_matches_onnxruntime_and_quantizes("keras_unet", 1, |_| 35.0);
    let dir = tempfile::tempdir().unwrap();
    let (_, _, int8) = quantize_on_own_inputs("ops/keras_unet", dir.path());
    let listing = String::from_utf8(ferrite_ok(ferrite().arg("inspect").arg(&int8))).unwrap();
    assert_eq!(
        listing.matches("RESIZE_NEAREST_NEIGHBOR").count(),
        2,
        "{listing}"
    );
    assert!(
        listing.contains("input 0: input i8 [1, 16, 16, 3]")
            && listing.contains("i8 [1, 16, 32, 2]"),
        "{listing}"
    );
}

/// A ShuffleNetV2 unit (`make_shuffle.py`: a channel split, a branch of 1x1, depthwise and 1x1
/// convolutions, Concat, the channel shuffle through a rank-5 Transpose, then rows and columns
/// swapped) matches onnxruntime in float and stays close to it in int8; the shuffle and the swap,
/// which together are no transpose of three axes, are two TRANSPOSEs.
#[test]
fn channel_shuffles_become_transposes_and_match_onnxruntime() {
    graph_matches_onnxruntime_and_quantizes("shuffle", 1, |_| 38.0);
    let dir = tempfile::tempdir().unwrap();
    let (_, _, int8) = quantize_on_own_inputs("ops/shuffle", dir.path());
    let listing = String::from_utf8(ferrite_ok(ferrite().arg("inspect").arg(&int8))).unwrap();
    assert_eq!(listing.matches("TRANSPOSE").count(), 2, "{listing}");
}

/// PyTorch networks as both of torch's exporters write them (`make_torch_exports.py`): a causal
/// TCN (pads reversed by a Slice of step -1, the last time step by Gather) and a ShuffleNetV2 unit
/// (`chunk` by integer shape arithmetic, the channel shuffle); the dynamo exporter's weights in
/// `<model>.onnx.data` beside the model. Each matches onnxruntime in float and quantizes.
#[test]
fn pytorch_exports_with_external_data_match_onnxruntime() {
    for name in ["tcn", "shufflenet"] {
        for exporter in ["dynamo", "legacy"] {
            graph_matches_onnxruntime_and_quantizes(&format!("torch_{name}_{exporter}"), 1, |_| {
                30.0
            });
        }
    }
    assert!(fixtures().join("ops/torch_tcn_dynamo.onnx.data").exists());
}

/// Normalization layers: LayerNormalization over the channels, InstanceNormalization and
/// GroupNormalization-18 (`make_norms.py`), layer normalization written out as tf2onnx writes
/// Keras's and PyTorch's exporters before opset 17 (`make_norms_decomposed.py`), and PyTorch's LayerNorm, GroupNorm (a Reshape to
/// groups, InstanceNormalization, a Reshape back, Mul and Add per channel) and InstanceNorm2d as
/// both exporters write them (`make_torch_exports.py`). Each matches onnxruntime in float and
/// quantizes, every normalization one NORMALIZE with nothing around it (a ReLU after it fused).
#[test]
fn normalization_layers_match_onnxruntime_and_become_one_operator_each() {
    let cases = [
        ("norms", 3),
        ("norms_decomposed", 2),
        ("torch_lnmlp_dynamo", 1),
        ("torch_lnmlp_legacy", 1),
        ("torch_groupnorm_dynamo", 2),
        ("torch_groupnorm_legacy", 2),
    ];
    for (name, count) in cases {
        graph_matches_onnxruntime_and_quantizes(name, 1, |_| 30.0);
        let dir = tempfile::tempdir().unwrap();
        let (_, _, int8) = quantize_on_own_inputs(&format!("ops/{name}"), dir.path());
        let bytes = std::fs::read(&int8).unwrap();
        let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
        let names: Vec<&str> = m.ops().map(|o| o.name()).collect();
        assert_eq!(
            names.iter().filter(|&&n| n == "NORMALIZE").count(),
            count,
            "{name}: {names:?}"
        );
        // The ReLU after each normalization (but the LayerNorm MLP's) is its fused clamp.
        for other in ["TRANSPOSE", "MUL", "DEPTHWISE_CONV_2D", "RELU"] {
            assert!(!names.contains(&other), "{name}: {names:?}");
        }
    }
}

/// Differences and extremes of two activations (`make_arith.py`: Sub, Max and Min of two
/// convolutions' outputs, a Sub with a constant first operand): the network matches onnxruntime in
/// float and quantizes to one SUB, MAXIMUM or MINIMUM each (a ReLU after a Sub fused), the constant's
/// Sub one per-channel affine layer.
#[test]
fn differences_and_extremes_of_activations_are_one_operator_each() {
    graph_matches_onnxruntime_and_quantizes("arith", 1, |_| 30.0);
    let dir = tempfile::tempdir().unwrap();
    let (_, _, int8) = quantize_on_own_inputs("ops/arith", dir.path());
    let bytes = std::fs::read(&int8).unwrap();
    let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    let names: Vec<&str> = m.ops().map(|o| o.name()).collect();
    assert_eq!(
        names,
        [
            "CONV_2D",
            "CONV_2D",
            "SUB",
            "MAXIMUM",
            "MINIMUM",
            "SUB",
            "DEPTHWISE_CONV_2D",
            "MEAN",
            "RESHAPE",
            "FULLY_CONNECTED"
        ]
    );
}

/// A ConvNeXt stage as both PyTorch exporters write it (`make_torch_exports.py`): LayerNorm after
/// `permute` to channels-last, Linear layers on the rank-4 channels-last tensor, `permute` back into
/// the residual add. Each matches onnxruntime in float and quantizes to the layers alone: no
/// TRANSPOSE, every LayerNorm one NORMALIZE, GELU one LOOKUP.
#[test]
fn a_convnext_stage_imports_without_moving_data() {
    for exporter in ["dynamo", "legacy"] {
        let name = format!("torch_convnext_{exporter}");
        graph_matches_onnxruntime_and_quantizes(&name, 1, |_| 30.0);
        let dir = tempfile::tempdir().unwrap();
        let (_, _, int8) = quantize_on_own_inputs(&format!("ops/{name}"), dir.path());
        let bytes = std::fs::read(&int8).unwrap();
        let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
        let names: Vec<&str> = m.ops().map(|o| o.name()).collect();
        assert_eq!(
            names,
            [
                "CONV_2D",
                "NORMALIZE",
                "DEPTHWISE_CONV_2D",
                "NORMALIZE",
                "FULLY_CONNECTED",
                "LOOKUP",
                "FULLY_CONNECTED",
                "ADD",
                "MEAN",
                "NORMALIZE",
                "FULLY_CONNECTED"
            ],
            "{name}"
        );
    }
}

/// LOOKUP has no f32 form: `--ignore all` keeps the functions in int8 (the fully connected layer
/// runs in f32, with conversions around it), and naming a function's node is an error.
#[test]
fn table_functions_stay_int8_when_layers_are_kept_in_float() {
    let dir = tempfile::tempdir().unwrap();
    let (model, x) = (
        fixtures().join("ops/functions.onnx"),
        fixtures().join("ops/functions_x.npy"),
    );
    let out = dir.path().join("m.ferrite");
    let quantize = |extra: &[&str], out: &Path| {
        ferrite()
            .arg("quantize")
            .arg(&model)
            .arg("--data")
            .arg(&x)
            .arg("-o")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let r = quantize(&["--ignore", "all"], &out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let m = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    let names: Vec<&str> = m.ops().map(|o| o.name()).collect();
    // The 19 functions, the GELU written with Erf and the SiLU, one table each.
    assert_eq!(names.iter().filter(|&&n| n == "LOOKUP").count(), 21);
    assert!(names.contains(&"QUANTIZE"), "{names:?}");
    // Node #1 is the Elu (the file's nodes are unnamed).
    let refused = dir.path().join("refused.ferrite");
    let r = quantize(&["--ignore", "#1"], &refused);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && !refused.exists());
    assert!(
        err.contains(
            "--ignore #1: the runtime has no f32 kernel for Elu (LOOKUP runs in int8 only)"
        ),
        "{err}"
    );
}

#[test]
fn passes_leave_only_runtime_operators() {
    for model in [
        "dscnn_fashion",
        "resnet_fashion",
        "mobilenetv2_mnist",
        "mlp_digits",
    ] {
        let path = fixtures().join(format!("{model}/model.onnx"));
        let raw = ferrite_quantizer::import::onnx::load(&path).unwrap();
        assert!(raw
            .nodes
            .iter()
            .any(|n| matches!(n.op, Op::BatchNorm { .. } | Op::Identity | Op::Relu { .. })));
        let g = ferrite_quantizer::cli::float_onnx::load(&path).unwrap();
        for n in &g.nodes {
            assert!(
                !matches!(n.op, Op::BatchNorm { .. } | Op::Identity | Op::Relu { .. }),
                "{model}: {} `{}` left after the passes",
                n.op.name(),
                n.name
            );
            for &v in &n.inputs {
                assert!(
                    !g.is_const(v),
                    "{model}: `{}` reads a constant operand",
                    n.name
                );
            }
        }
    }
}

#[test]
fn cli_run_on_onnx_writes_onnxruntime_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    head(
        &Array::read(&fixtures().join("data/fashion_test_x.npy")).unwrap(),
        32,
    )
    .write(&x)
    .unwrap();
    let y = dir.path().join("y.npy");
    let model = fixtures().join("resnet_fashion/model.onnx");
    ferrite_ok(
        ferrite()
            .arg("run")
            .arg(model)
            .arg("--data")
            .arg(&x)
            .arg("-o")
            .arg(&y),
    );
    let got = Array::read(&y).unwrap();
    let want = head(
        &Array::read(&fixtures().join("resnet_fashion/golden.npy")).unwrap(),
        32,
    );
    assert!(max_rel_err(&got, &want) <= 1e-4);
    // inspect takes the ONNX model too.
    let out = ferrite()
        .args(["inspect", "--json"])
        .arg(fixtures().join("mobilenetv2_mnist/model.onnx"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["inputs"][0][1], serde_json::json!([1, 1, 28, 28]));
    assert!(v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["op"] == "DEPTHWISE_CONV_2D" && o["activation"] == "relu6"));
}

/// Runs `ferrite run model --input x` and returns stderr, asserting failure with a one-line message.
fn run_fails(model: &Path, x: &Path) -> String {
    let out = ferrite()
        .arg("run")
        .arg(model)
        .arg("--data")
        .arg(x)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "ferrite run {} succeeded",
        model.display()
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn one_node_model(op: &str, dims: &[Result<i64, &str>]) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        producer_name: "test".into(),
        producer_version: String::new(),
        graph: Some(GraphProto {
            node: vec![NodeProto {
                input: vec!["x".into()],
                output: vec!["y".into()],
                name: "the_node".into(),
                op_type: op.into(),
                attribute: vec![],
                domain: String::new(),
            }],
            name: "g".into(),
            initializer: vec![],
            input: vec![value_info("x", dims)],
            output: vec![value_info("y", dims)],
            value_info: vec![],
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
    }
    .encode_to_vec()
}

#[test]
fn bad_onnx_files_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    Array::from_f32(vec![2, 1, 4, 4], &[0.5; 32])
        .write(&x)
        .unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // A valid file runs.
    let ok = write(
        "ok.onnx",
        &one_node_model("Relu", &[Err("batch"), Ok(1), Ok(4), Ok(4)]),
    );
    let out = ferrite()
        .arg("run")
        .arg(&ok)
        .arg("--data")
        .arg(&x)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let real = std::fs::read(fixtures().join("dscnn_fashion/model.onnx")).unwrap();
    let truncated = write("truncated.onnx", &real[..real.len() / 2]);
    let err = run_fails(&truncated, &x);
    assert!(
        err.contains("truncated.onnx") && err.contains("not a valid ONNX file"),
        "{err}"
    );

    let mut corrupt = real.clone();
    for b in corrupt.iter_mut().take(64) {
        *b = 0xff;
    }
    let corrupt = write("corrupt.onnx", &corrupt);
    let err = run_fails(&corrupt, &x);
    assert!(err.contains("not a valid ONNX file"), "{err}");

    let garbage = write("text.onnx", b"this is not protobuf at all\n");
    run_fails(&garbage, &x);

    let unsupported = write(
        "hardmax.onnx",
        &one_node_model("Hardmax", &[Err("batch"), Ok(1), Ok(4), Ok(4)]),
    );
    let err = run_fails(&unsupported, &x);
    assert!(
        err.contains("the_node")
            && err.contains("`Hardmax`")
            && err.contains("supported: Abs, Add, AveragePool"),
        "{err}"
    );

    // Gather of an activation (not a shape): refused, saying what folds.
    let gather = write(
        "gather.onnx",
        &one_node_model("Gather", &[Err("batch"), Ok(1), Ok(4), Ok(4)]),
    );
    let err = run_fails(&gather, &x);
    assert!(
        err.contains("Gather of a value computed at run time is not supported"),
        "{err}"
    );

    let dynamic = write(
        "dynamic.onnx",
        &one_node_model("Relu", &[Err("batch"), Ok(1), Err("height"), Ok(4)]),
    );
    let err = run_fails(&dynamic, &x);
    assert!(
        err.contains("`height`") && err.contains("axis 2") && err.contains("only the batch"),
        "{err}"
    );

    // Wrong input shape and dtype for a valid model.
    let bad_shape = dir.path().join("bad_shape.npy");
    Array::from_f32(vec![2, 4, 4, 1], &[0.5; 32])
        .write(&bad_shape)
        .unwrap();
    let err = run_fails(&fixtures().join("dscnn_fashion/model.onnx"), &bad_shape);
    assert!(err.contains("[batch, 1, 28, 28] (NCHW)"), "{err}");
    let bad_dtype = dir.path().join("bad_dtype.npy");
    Array::from_i8(vec![1, 1, 28, 28], &[1; 784])
        .write(&bad_dtype)
        .unwrap();
    let err = run_fails(&fixtures().join("dscnn_fashion/model.onnx"), &bad_dtype);
    assert!(err.contains("float32"), "{err}");
}
