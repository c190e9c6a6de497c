//! Round trips through the exported files on the trained fixtures: float export re-imported and run
//! by the float executor; Q/DQ export converted as `ferrite convert` does and run by the runtime next
//! to the `.ferrite` model post-training quantization built from the same decisions.

use std::path::{Path, PathBuf};

use super::*;
use crate::builder::ArenaLayout;
use crate::import::onnx::proto::ModelProto;
use crate::ir::{self, passes, Op, Param};
use crate::npy::Array;
use crate::quantize::ptq::{self, Config};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// `(model, data set)` of each trained fixture.
const MODELS: &[(&str, &str)] = &[
    ("mlp_digits", "digits"),
    ("dscnn_fashion", "fashion"),
    ("resnet_fashion", "fashion"),
    ("mobilenetv2_mnist", "mnist"),
    ("dscnn_fashion_imbalanced", "fashion"),
];

fn reimport(bytes: &[u8]) -> Graph {
    let mut g = crate::import::onnx::import(bytes).unwrap();
    passes::optimize(&mut g).unwrap();
    g
}

/// Largest `|a - b| / max(|a|, 1)` over the elements of every output.
fn max_rel(a: &[Array], b: &[Array]) -> f32 {
    assert_eq!(a.len(), b.len(), "output count");
    let mut worst = 0f32;
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.shape, b.shape, "output shape");
        for (x, y) in a.to_f32().iter().zip(b.to_f32()) {
            worst = worst.max((x - y).abs() / x.abs().max(1.0));
        }
    }
    worst
}

/// Exports `model`, imports the file again and runs both graphs on `x`.
fn float_round_trip(label: &str, model: &Path, x: &Path) {
    let g = crate::cli::float_onnx::load(model).unwrap();
    let bytes = float_onnx(&g).unwrap_or_else(|e| panic!("{label}: {e:#}"));
    let g2 = reimport(&bytes);
    // The operators, but for reshapes that keep the shape (the importer drops those it reads).
    let ops = |g: &Graph| {
        g.nodes
            .iter()
            .filter(|n| {
                !matches!(n.op, Op::Reshape { .. })
                    || g.values[n.inputs[0]].shape != g.values[n.output].shape
            })
            .map(|n| n.op.name())
            .collect::<Vec<_>>()
    };
    assert_eq!(ops(&g), ops(&g2), "{label}: operators after re-import");
    let x = Array::read(x).unwrap();
    let a = ir::io::run_arrays(&g, std::slice::from_ref(&x), 1).unwrap();
    let b = ir::io::run_arrays(&g2, std::slice::from_ref(&x), 1).unwrap();
    let err = max_rel(&a, &b);
    eprintln!(
        "{label}: float export {} bytes, {} nodes; max |a-b|/max(|a|,1) over {} samples = {err:e}",
        bytes.len(),
        g.nodes.len(),
        x.shape[0]
    );
    assert!(err <= 1e-5, "{label}: re-imported model differs by {err}");
}

#[test]
fn float_round_trip_trained_fixtures() {
    for (model, data) in MODELS {
        let dir = fixtures();
        float_round_trip(
            model,
            &dir.join(model).join("model.onnx"),
            &dir.join(format!("data/{data}_test_x.npy")),
        );
    }
}

/// The operator fixture (every imported operator), the 1-D signal graph and torch's dynamo exports
/// of the architectures.
#[test]
fn float_round_trip_ops_fixtures() {
    let dir = fixtures().join("ops");
    for m in [
        "ops_opset17",
        "signal_1d",
        "slices",
        "dynamo_mlp",
        "dynamo_dscnn",
        "dynamo_resnet",
        "dynamo_mobilenetv2",
    ] {
        float_round_trip(
            m,
            &dir.join(format!("{m}.onnx")),
            &dir.join(format!("{m}_x.npy")),
        );
    }
}

/// How two int8 models' dequantized outputs compare on a test set (output `[samples, classes]`).
struct Agreement {
    elements: usize,
    within_1lsb: usize,
    identical: usize,
    /// Largest difference, in LSB.
    max_lsb: f32,
    samples: usize,
    same_top1: usize,
}

fn agreement(a: &[f32], b: &[f32], lsb: f32, samples: usize) -> Agreement {
    assert_eq!(a.len(), b.len(), "output size");
    let classes = a.len() / samples;
    let pairs = || a.iter().zip(b);
    Agreement {
        elements: a.len(),
        within_1lsb: pairs()
            .filter(|(x, y)| (*x - *y).abs() <= lsb * 1.001)
            .count(),
        identical: pairs().filter(|(x, y)| x == y).count(),
        max_lsb: pairs()
            .map(|(x, y)| (x - y).abs() / lsb)
            .fold(0.0, f32::max),
        samples,
        same_top1: (0..samples)
            .filter(|&s| {
                let r = s * classes..(s + 1) * classes;
                crate::top1::argmax(&a[r.clone()]) == crate::top1::argmax(&b[r])
            })
            .count(),
    }
}

impl std::fmt::Display for Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |k: usize, n: usize| k as f64 / n as f64 * 100.0;
        write!(
            f,
            "{}/{} elements ({:.2}%) within 1 LSB, {} ({:.2}%) identical, max {:.0} LSB; same top-1 on {}/{} ({:.2}%)",
            self.within_1lsb,
            self.elements,
            pct(self.within_1lsb, self.elements),
            self.identical,
            pct(self.identical, self.elements),
            self.max_lsb,
            self.same_top1,
            self.samples,
            pct(self.same_top1, self.samples)
        )
    }
}

/// The model lowered from `d` with ONNX's requantization, as the Q/DQ converter lowers.
fn lower_onnx_requant(d: &ptq::Decided) -> crate::builder::Built {
    use crate::lower::{self, Options, Precision, Quantization, Requantization};
    let node: Vec<Precision> = d
        .float_node
        .iter()
        .map(|&f| Precision::int8_or_float(f))
        .collect();
    let precision = lower::value_precisions(&d.graph, &node);
    lower::lower(
        &d.graph,
        &Quantization {
            precision: &precision,
            params: &d.params,
            int16_scales: &[],
            wide: &[],
            weights: &d.weights,
            biases: &[],
        },
        Options {
            source_sha256: d.source_sha256,
            expose_all: false,
            requantization: Requantization::Onnx,
            sparse_weights: false,
            arena: ArenaLayout::Separate,
            tflite_functions: false,
        },
    )
    .unwrap()
}

/// PTQ on each trained fixture, its decisions exported as Q/DQ and converted as `ferrite convert`
/// does, run by the runtime on the test set next to two models lowered from the same decisions:
///
/// - with ONNX's requantization (what the converter writes for any Q/DQ model): the converted model
///   must compute exactly the same outputs, so nothing was lost or changed in the file;
/// - with TFLite's (PTQ's own `.ferrite`): not bit-identical, because TFLite's requantization
///   rounds twice where ONNX's rounds once (see `import::onnx_qdq`); measured, the outputs stay
///   within 2 LSB and the same top-1 class on at least 99% of samples.
#[test]
fn qdq_round_trip_trained_fixtures() {
    let mut failures = Vec::new();
    for (model, data) in MODELS {
        let dir = fixtures();
        let g = crate::cli::float_onnx::load(&dir.join(model).join("model.onnx")).unwrap();
        let calib = Array::read(&dir.join(format!("data/{data}_calib_x.npy"))).unwrap();
        let calib = ir::io::input_tensor(&g, 0, &calib).unwrap();
        let calib = calib.slice_batch(0, calib.shape[0].min(300));
        let q = ptq::quantize(&g, &[calib], &Config::default()).unwrap();
        let bytes = qdq_onnx(&q.decided).unwrap_or_else(|e| panic!("{model}: {e:#}"));
        let converted = crate::cli::convert::convert_bytes(
            Path::new("qdq.onnx"),
            &bytes,
            ArenaLayout::Separate,
        )
        .unwrap_or_else(|e| panic!("{model}: {e:#}"));
        let onnx_requant = lower_onnx_requant(&q.decided);

        let x = Array::read(&dir.join(format!("data/{data}_test_x.npy"))).unwrap();
        let run = |m: &[u8]| {
            crate::runtime_exec::Runner::new(m)
                .unwrap()
                .run(std::slice::from_ref(&x), 1)
                .unwrap()[0]
                .to_f32()
        };
        let built = ferrite_runtime::Model::from_bytes(&q.built.bytes).unwrap();
        let t = built.output(0).unwrap();
        assert_eq!(t.dtype, ferrite_runtime::format::DType::I8, "{model}");
        let (lsb, samples) = (t.scale, x.shape[0]);
        let ours = run(&converted.bytes);
        let exact = agreement(&run(&onnx_requant.bytes), &ours, lsb, samples);
        let ptq = agreement(&run(&q.built.bytes), &ours, lsb, samples);
        eprintln!(
            "{model}: Q/DQ export {} bytes, output LSB {lsb:.5}\n  converted vs decisions lowered with ONNX requantization: {exact}\n  converted vs PTQ's .ferrite (TFLite requantization): {ptq}",
            bytes.len()
        );
        if exact.identical != exact.elements
            || ptq.max_lsb > 2.001
            || ptq.same_top1 * 100 < ptq.samples * 99
        {
            failures.push(*model);
        }
    }
    assert!(failures.is_empty(), "Q/DQ round trip differs: {failures:?}");
}

/// The operator fixture through PTQ (calibrated on its own inputs) and Q/DQ: Pad, Concat, Mul,
/// Sigmoid, Tanh, Softmax, pools, means and a spatial flatten into Gemm, all three outputs exactly as
/// the decisions lowered with ONNX's requantization compute them; the same for the 1-D signal graph
/// (its input and feature-map output `[n, c, l]`) and the element-wise functions run by table
/// (Gelu at opset 20, Mish at 18: the file takes the newer opset).
#[test]
fn qdq_round_trip_ops_graphs() {
    let dir = fixtures().join("ops");
    for m in [
        "ops_opset17",
        "signal_1d",
        "functions",
        "slices",
        "upsampling",
        "padding",
    ] {
        let g = crate::cli::float_onnx::load(&dir.join(format!("{m}.onnx"))).unwrap();
        let x = Array::read(&dir.join(format!("{m}_x.npy"))).unwrap();
        let calib = ir::io::input_tensor(&g, 0, &x).unwrap();
        let q = ptq::quantize(&g, &[calib], &Config::default()).unwrap();
        let bytes = qdq_onnx(&q.decided).unwrap();
        let converted = crate::cli::convert::convert_bytes(
            Path::new("qdq.onnx"),
            &bytes,
            ArenaLayout::Separate,
        )
        .unwrap();
        let run = |m: &[u8]| {
            crate::runtime_exec::Runner::new(m)
                .unwrap()
                .run(std::slice::from_ref(&x), 1)
                .unwrap()
        };
        let (a, b) = (
            run(&converted.bytes),
            run(&lower_onnx_requant(&q.decided).bytes),
        );
        assert_eq!(a.len(), b.len());
        assert_eq!(a.len(), g.outputs.len());
        for (o, (a, b)) in a.iter().zip(&b).enumerate() {
            assert_eq!(a.shape, b.shape, "{m} output {o}");
            let (a, b) = (a.to_f32(), b.to_f32());
            let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
            assert_eq!(
                differ,
                0,
                "{m} output {o}: {differ} of {} values differ",
                a.len()
            );
        }
    }
}

/// The Q/DQ file's structure: int8 per-channel weights and int32 biases behind DequantizeLinear, and
/// every QuantizeLinear followed by a DequantizeLinear with the same parameters.
#[test]
fn qdq_structure() {
    let dir = fixtures();
    let g = crate::cli::float_onnx::load(&dir.join("dscnn_fashion/model.onnx")).unwrap();
    let calib = Array::read(&dir.join("data/fashion_calib_x.npy")).unwrap();
    let calib = ir::io::input_tensor(&g, 0, &calib)
        .unwrap()
        .slice_batch(0, 32);
    let config = Config {
        bias_correction: ptq::BiasCorrection::Off,
        ..Config::default()
    };
    let q = ptq::quantize(&g, &[calib], &config).unwrap();
    let bytes = qdq_onnx(&q.decided).unwrap();
    let m = ModelProto::decode(&bytes[..]).unwrap();
    let graph = m.graph.unwrap();
    assert_eq!(m.opset_import[0].version, OPSET);
    let init = |name: &str| graph.initializer.iter().find(|t| t.name == name);
    let convs: Vec<&NodeProto> = graph.node.iter().filter(|n| n.op_type == "Conv").collect();
    assert!(!convs.is_empty());
    for c in &convs {
        let dq = |i: usize| {
            graph
                .node
                .iter()
                .find(|n| n.output[0] == c.input[i] && n.op_type == "DequantizeLinear")
                .unwrap_or_else(|| panic!("{}: input {i} not dequantized", c.name))
        };
        let (w, b) = (dq(1), dq(2));
        assert_eq!(init(&w.input[0]).unwrap().data_type, dt::INT8);
        assert_eq!(init(&b.input[0]).unwrap().data_type, dt::INT32);
        let out_c = init(&w.input[0]).unwrap().dims[0];
        assert_eq!(init(&w.input[1]).unwrap().dims, [out_c], "per-channel");
        assert!(w.attribute.iter().any(|a| a.name == "axis" && a.i == 0));
    }
    for q in graph.node.iter().filter(|n| n.op_type == "QuantizeLinear") {
        let readers: Vec<&NodeProto> = graph
            .node
            .iter()
            .filter(|n| n.input.contains(&q.output[0]))
            .collect();
        assert_eq!(readers.len(), 1);
        assert_eq!(readers[0].op_type, "DequantizeLinear");
        assert_eq!(readers[0].input[1..], q.input[1..]);
    }
    // The graph output keeps its name and is dequantized.
    let out = &graph.output[0].name;
    let last = graph.node.iter().find(|n| &n.output[0] == out).unwrap();
    assert_eq!(last.op_type, "DequantizeLinear");
    assert_eq!(out, &g.values[g.outputs[0]].name);
}

/// Operators without an ONNX form are refused by name.
#[test]
fn refuses_by_name() {
    let mut g = Graph::default();
    let x = g.add_value("x", vec![1, 4]);
    g.inputs.push(x);
    let y = g
        .add_node("sm", "Softmax", Op::Softmax { beta: 2.0 }, vec![x], "y")
        .unwrap();
    g.outputs.push(y);
    let e = format!("{:#}", float_onnx(&g).unwrap_err());
    assert!(
        e.contains("node `sm` (SOFTMAX)") && e.contains("beta"),
        "{e}"
    );

    g.nodes[0].op = Op::MirrorPad {
        before: vec![0, 1],
        after: vec![0, 1],
        mode: ferrite_runtime::ops::PadMode::Symmetric,
    };
    g.values[y].shape = vec![1, 6];
    let e = format!("{:#}", float_onnx(&g).unwrap_err());
    assert!(
        e.contains("node `sm` (MIRROR_PAD)")
            && e.contains("symmetric padding has no ONNX Pad mode"),
        "{e}"
    );
}

/// LeakyRelu is written with its slope and reads back as itself.
#[test]
fn leaky_relu_round_trips() {
    let mut g = Graph::default();
    let x = g.add_value("x", vec![1, 12]);
    g.inputs.push(x);
    let op = Op::LeakyRelu { alpha: 0.25 };
    let y = g.add_node("lr", "LeakyRelu", op, vec![x], "y").unwrap();
    g.outputs.push(y);
    let g2 = reimport(&float_onnx(&g).unwrap());
    assert!(
        matches!(g2.nodes[..], [ref n] if matches!(n.op, Op::LeakyRelu { alpha } if alpha == 0.25))
    );
    let values: Vec<f32> = (0..12).map(|i| i as f32 - 6.0).collect();
    let x = Array::from_f32(vec![1, 12], &values);
    let a = ir::io::run_arrays(&g, std::slice::from_ref(&x), 1).unwrap();
    let b = ir::io::run_arrays(&g2, std::slice::from_ref(&x), 1).unwrap();
    assert_eq!(a[0].to_f32(), b[0].to_f32());
    assert_eq!(a[0].to_f32()[..2], [-1.5, -1.25]);
}

/// A transpose is written as ONNX Transpose of the IR's order and reads back computing the same.
#[test]
fn transpose_round_trips() {
    let mut g = Graph::default();
    let x = g.add_value("x", vec![1, 4, 2, 3]);
    g.inputs.push(x);
    let op = Op::Transpose {
        perm: vec![0, 1, 3, 2],
    };
    let y = g.add_node("t", "Transpose", op, vec![x], "y").unwrap();
    g.outputs.push(y);
    let g2 = reimport(&float_onnx(&g).unwrap());
    let values: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let x = Array::from_f32(vec![1, 4, 2, 3], &values);
    let a = ir::io::run_arrays(&g, std::slice::from_ref(&x), 1).unwrap();
    let b = ir::io::run_arrays(&g2, std::slice::from_ref(&x), 1).unwrap();
    assert_eq!(a[0].to_f32(), b[0].to_f32());
    // Each row of [2, 3] becomes a column: 0 3 1 4 2 5.
    assert_eq!(a[0].to_f32()[..6], [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
}

/// Normalizations are written as ONNX LayerNormalization over reshaped sets, then Mul and Add per
/// channel, and read back computing the same.
#[test]
fn normalize_round_trips() {
    for (groups, across) in [(1, false), (2, false), (2, true), (4, true)] {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 3, 2, 4]);
        g.inputs.push(x);
        let op = Op::Normalize {
            groups,
            across_positions: across,
            epsilon: 1e-5,
            gamma: Param::new(vec![4], vec![1.5, -0.5, 2.0, 0.25]),
            beta: Param::new(vec![4], vec![0.1, 0.2, -0.3, 0.0]),
            clamp: Clamp::RELU,
        };
        let y = g.add_node("n", "Normalize", op, vec![x], "y").unwrap();
        g.outputs.push(y);
        let g2 = reimport(&float_onnx(&g).unwrap());
        let values: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 * 0.3).collect();
        let x = Array::from_f32(vec![1, 3, 2, 4], &values);
        let a = ir::io::run_arrays(&g, std::slice::from_ref(&x), 1).unwrap();
        let b = ir::io::run_arrays(&g2, std::slice::from_ref(&x), 1).unwrap();
        let (a, b) = (a[0].to_f32(), b[0].to_f32());
        let worst = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(
            worst < 1e-5,
            "groups {groups} across {across}: {a:?} vs {b:?}"
        );
    }
}

/// A nearest resize by whole factors is written as ONNX Resize and reads back as itself.
#[test]
fn resize_nearest_round_trips() {
    use crate::import::onnx::build::{model, node, tensor};
    let m = model(
        17,
        vec![node("Resize", &["x", "", "scales"], "y", vec![])],
        vec![tensor("scales", &[4], &[1.0, 1.0, 3.0, 2.0])],
        &[1, 2, 2, 3],
        "y",
    );
    let g = reimport(&m);
    let g2 = reimport(&float_onnx(&g).unwrap());
    assert!(matches!(g2.nodes[..], [ref n] if matches!(n.op, Op::ResizeNearest { size: [6, 6] })));
    let values: Vec<f32> = (0..12).map(|i| i as f32).collect();
    let x = Array::from_f32(vec![1, 2, 2, 3], &values);
    let a = ir::io::run_arrays(&g, std::slice::from_ref(&x), 1).unwrap();
    let b = ir::io::run_arrays(&g2, std::slice::from_ref(&x), 1).unwrap();
    assert_eq!(a[0].shape, [1, 2, 6, 6]);
    assert_eq!(a[0].to_f32(), b[0].to_f32());
}
