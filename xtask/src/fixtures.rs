//! Golden cases made at test time from the quantizer's trained fixtures (`tests/fixtures/manifest.json`):
//! each float ONNX model is quantized by the library with the default settings on its calibration set,
//! fed its first test sample (quantized by the host runtime's `set_input_f32`, in the runtime's NHWC
//! layout), and the host runtime's output is the expected output. Written under
//! `target/fixture-cases/<name>/`; the case is named `fixture_<name>`. Four fixtures (`QAT_FIXTURES`: one
//! that fits the M0's RAM, one with depthwise convolutions, the residual one PTQ loses most on, and
//! the Tanh one, whose training keeps its wide outputs) also
//! give `fixture_<name>_qat`: the same model after one epoch of quantization-aware training
//! (distilled from the float model on the calibration set), so that a trained model's file runs on
//! every board. `PRUNED_FIXTURES` also give `fixture_<name>_pruned`: one epoch of the same training
//! pruning half the weights of the inner layers, whose filters the file stores sparsely
//! (CONV_2D_SPARSE, FULLY_CONNECTED_SPARSE): two fixtures in blocks of four, two weight by weight.
//! `FILTER_FIXTURES` give `fixture_<name>_filters`: 30% of the output channels removed (one epoch
//! zeroing them, one epoch training the smaller model). `IN_PLACE_FIXTURES` give
//! `fixture_<name>_in_place`: the default quantization planned with `--arena in-place`, so that the
//! operators running over their input or in bands run on every board without `../shared`.
//! `GRAPHS` are random-weight operator graphs (`tests/fixtures/ops/`), quantized on their own
//! inputs: `fixture_signal_1d` runs a 1-D CNN's operators (kernels of height 1) on every board,
//! `fixture_functions` the element-wise functions run by table (LOOKUP) and LOG_SOFTMAX,
//! `fixture_slices` SLICE, `fixture_upsampling` transposed convolutions (CONV_2D, DEPTH_TO_SPACE and
//! SLICE), DEPTH_TO_SPACE in both channel orders and RESIZE_BILINEAR in its three modes,
//! `fixture_padding` MIRROR_PAD in its reflect, edge and wrap modes, `fixture_wide` convolutions and
//! a fully connected layer with wide (int16) outputs and the int16-input tables that read them,
//! `fixture_shuffle` a ShuffleNetV2 unit's channel shuffle and a swap of rows and columns (TRANSPOSE),
//! `fixture_norms` layer, instance and group normalization (NORMALIZE), `fixture_arith` SUB,
//! MAXIMUM and MINIMUM of two activations.

use anyhow::{anyhow, ensure, Context, Result};
use ferrite_quantizer::builder::ArenaLayout;
use ferrite_quantizer::{ir, npy::Array, quantize::ptq, train};
use ferrite_runtime::{Interpreter, Model};
use serde_json::Value;
use std::path::Path;

use crate::cases::Case;

/// Prefix of the case names.
pub const PREFIX: &str = "fixture_";

/// The fixtures that also give a quantization-aware-trained case.
const QAT_FIXTURES: [&str; 4] = [
    "mlp_digits",
    "dscnn_fashion",
    "resnet_fashion_outliers",
    "mbv1_tanh_fashion",
];

/// The fixtures that also give a pruned case, with the block size their pruning uses.
const PRUNED_FIXTURES: [(&str, usize); 4] = [
    ("mlp_digits", 1),
    ("dscnn_fashion", 4),
    ("resnet_fashion", 4),
    ("resnet_fashion_outliers", 1),
];

/// The fixtures that also give a filter-pruned case.
const FILTER_FIXTURES: [&str; 2] = ["dscnn_fashion", "resnet_fashion"];

/// The fixtures that also give a case planned in place: depthwise and pointwise convolutions over
/// their input, expansions, strided layers, poolings and residual Adds in bands.
const IN_PLACE_FIXTURES: [&str; 2] = ["dscnn_fashion", "mobilenetv2_mnist"];

/// Operator graphs without a dataset: name, model and inputs (calibration and test sample alike).
const GRAPHS: [(&str, &str, &str); 10] = [
    ("signal_1d", "ops/signal_1d.onnx", "ops/signal_1d_x.npy"),
    ("functions", "ops/functions.onnx", "ops/functions_x.npy"),
    ("slices", "ops/slices.onnx", "ops/slices_x.npy"),
    ("upsampling", "ops/upsampling.onnx", "ops/upsampling_x.npy"),
    ("padding", "ops/padding.onnx", "ops/padding_x.npy"),
    (
        "activations",
        "ops/activations.onnx",
        "ops/activations_x.npy",
    ),
    ("wide", "ops/wide.onnx", "ops/wide_x.npy"),
    ("shuffle", "ops/shuffle.onnx", "ops/shuffle_x.npy"),
    ("norms", "ops/norms.onnx", "ops/norms_x.npy"),
    ("arith", "ops/arith.onnx", "ops/arith_x.npy"),
];

/// How a case's model is made.
#[derive(Clone, Copy)]
enum Training {
    /// Post-training quantization only.
    None,
    /// One epoch of quantization-aware training.
    Qat,
    /// One epoch of it pruning half the weights in blocks of this many.
    Pruned(usize),
    /// 30% of the output channels removed.
    Filters,
    /// Post-training quantization planned in place.
    InPlace,
}

/// Quantizes each fixture (or only the case `only`) and writes its case directory.
pub fn cases(root: &Path, only: Option<&str>) -> Result<Vec<Case>> {
    let fixtures = root.join("tests/fixtures");
    let manifest_path = fixtures.join("manifest.json");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?,
    )?;
    let mut out = Vec::new();
    for m in manifest["models"].as_array().context("manifest: models")? {
        let rel = m["model"].as_str().context("manifest: model")?;
        let fixture = rel.split('/').next().unwrap_or(rel);
        let field = |k: &str| -> Result<std::path::PathBuf> {
            Ok(fixtures.join(m[k].as_str().with_context(|| format!("manifest: {k}"))?))
        };
        let mut trainings = vec![(Training::None, "")];
        if QAT_FIXTURES.contains(&fixture) {
            trainings.push((Training::Qat, "_qat"));
        }
        if let Some(&(_, block)) = PRUNED_FIXTURES.iter().find(|(f, _)| *f == fixture) {
            trainings.push((Training::Pruned(block), "_pruned"));
        }
        if FILTER_FIXTURES.contains(&fixture) {
            trainings.push((Training::Filters, "_filters"));
        }
        if IN_PLACE_FIXTURES.contains(&fixture) {
            trainings.push((Training::InPlace, "_in_place"));
        }
        for (training, suffix) in trainings {
            let name = format!("{PREFIX}{fixture}{suffix}");
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let dir = root.join("target/fixture-cases").join(&name);
            make(
                &field("model")?,
                &field("calib")?,
                &field("test_x")?,
                training,
                &dir,
            )
            .with_context(|| format!("making the case {name}"))?;
            out.push(Case {
                name,
                dir: Some(dir),
            });
        }
    }
    for (graph, model, x) in GRAPHS {
        let name = format!("{PREFIX}{graph}");
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let dir = root.join("target/fixture-cases").join(&name);
        let x = fixtures.join(x);
        make(&fixtures.join(model), &x, &x, Training::None, &dir)
            .with_context(|| format!("making the case {name}"))?;
        out.push(Case {
            name,
            dir: Some(dir),
        });
    }
    if let Some(o) = only {
        ensure!(
            !out.is_empty(),
            "no fixture {o} in {}",
            manifest_path.display()
        );
    }
    Ok(out)
}

/// Writes `model.ferrite`, `input.bin` and `expected.bin` of one fixture into `dir`; trained, the
/// model after one epoch of distillation on the calibration set.
fn make(onnx: &Path, calib: &Path, test_x: &Path, training: Training, dir: &Path) -> Result<()> {
    let graph = ferrite_quantizer::cli::float_onnx::load(onnx)?;
    ensure!(graph.inputs.len() == 1, "one input expected");
    let calib_x = ir::io::input_tensor(&graph, 0, &Array::read(calib)?)?;
    let arena = match training {
        Training::InPlace => ArenaLayout::InPlace,
        _ => ArenaLayout::Separate,
    };
    let q = ptq::quantize(
        &graph,
        std::slice::from_ref(&calib_x),
        &ptq::Config {
            arena,
            ..ptq::Config::default()
        },
    )?;
    if let Training::InPlace = training {
        let model = Model::from_bytes(&q.built.bytes).map_err(|e| anyhow!("{e}"))?;
        let over_input = model
            .graph()
            .ops
            .iter()
            .filter_map(Result::ok)
            .filter(|op| {
                let over = |i: &ferrite_runtime::format::Operand| i.offset == op.output().offset;
                op.runs_over_input() && op.in_place_sources()[0].is_some_and(over)
            })
            .count();
        ensure!(over_input > 0, "no operator runs over its input");
    }
    let bytes = if let Training::Qat | Training::Pruned(_) | Training::Filters = training {
        let sparsity = match training {
            Training::Pruned(block) => Some(train::sparsity::Sparsity {
                target: 0.5,
                scope: train::sparsity::Scope::Layer,
                schedule: train::sparsity::Schedule::Polynomial,
                all_layers: false,
                skip: Vec::new(),
                block,
            }),
            _ => None,
        };
        let filters = match training {
            Training::Filters => Some(train::filters::FilterPruning {
                ratio: 0.3,
                criterion: train::filters::Criterion::L2,
                allocation: train::filters::Allocation::Uniform,
                skip: Vec::new(),
                recovery_epochs: 1,
            }),
            _ => None,
        };
        let config = train::Config {
            epochs: 1,
            batch: 32,
            lr: if sparsity.is_some() || filters.is_some() {
                train::DEFAULT_PRUNING_LR_ADAM
            } else {
                train::DEFAULT_LR_ADAM
            },
            scale_lr: train::DEFAULT_SCALE_LR_ADAM,
            optimizer: train::optim::Kind::Adam,
            seed: 0,
            sparsity,
            filters,
            label_distillation: train::DEFAULT_LABEL_DISTILLATION,
        };
        let t = train::train(
            &graph,
            &q.decided,
            &calib_x,
            train::Supervision::Distill,
            None,
            &config,
            |_| {},
        )?;
        ensure!(t.failure.is_none(), "training failed: {:?}", t.failure);
        ensure!(t.best_epoch == 1, "the trained epoch is kept");
        if let Some(f) = &t.filters {
            ensure!(
                f.macs_after < f.macs_before,
                "filter pruning removed nothing"
            );
        }
        let mut decided = t.decided;
        if let Training::Pruned(_) = training {
            decided.weight_storage = ptq::WeightStorage::Sparse;
        }
        let bytes = ptq::build(&decided)?.bytes;
        ensure!(bytes != q.built.bytes, "training changed nothing");
        if let Training::Pruned(_) = training {
            let model = Model::from_bytes(&bytes).map_err(|e| anyhow!("{e}"))?;
            let sparse = model
                .graph()
                .ops
                .iter()
                .filter_map(Result::ok)
                .filter(|op| op.name().ends_with("_SPARSE"))
                .count();
            ensure!(sparse > 0, "the pruned model stores no filter sparsely");
        }
        bytes
    } else {
        q.built.bytes
    };

    // The first test sample, in the runtime's layout (NCHW -> NHWC where the source is NCHW).
    let tests = Array::read(test_x)?;
    let per: usize = tests.shape[1..].iter().product();
    let mut shape = tests.shape.clone();
    shape[0] = 1;
    let first = Array::from_f32(shape, &tests.to_f32()[..per]);
    let sample = ir::io::input_tensor(&graph, 0, &first)?;

    let model = Model::from_bytes(&bytes).map_err(|e| anyhow!("{e}"))?;
    let mut arena = vec![0u8; model.arena_size() + 16];
    let mut it = Interpreter::new(&model, &mut arena).map_err(|e| anyhow!("{e}"))?;
    it.set_input_f32(0, &sample.data)
        .map_err(|e| anyhow!("{e}"))?;
    let input = it.input_bytes_mut(0).map_err(|e| anyhow!("{e}"))?.to_vec();
    it.invoke().map_err(|e| anyhow!("{e}"))?;
    let mut expected = Vec::new();
    for o in 0..it.outputs() {
        expected.extend_from_slice(it.output_bytes(o).map_err(|e| anyhow!("{e}"))?);
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("model.ferrite"), &bytes)?;
    std::fs::write(dir.join("input.bin"), input)?;
    std::fs::write(dir.join("expected.bin"), expected)?;
    Ok(())
}
