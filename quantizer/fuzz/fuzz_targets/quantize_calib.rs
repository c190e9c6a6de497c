//! `ferrite quantize` of a tiny float model (Conv, Relu, 1x1 Conv, global average pool, Gemm, Softmax;
//! built in code) on fuzzed calibration data, under fuzzed settings. The first byte picks the
//! settings; the second how the rest becomes float32 samples: raw little-endian floats, or one byte
//! per value from a table of edge values (NaN, infinities, the largest and smallest floats, zero),
//! whether AdaRound runs (one input in eight: its fixed step count makes it the slowest stage), and
//! whether filters are stored sparsely.
//! Everything runs on one rayon thread: on a model this small, handing work to other threads costs
//! more than the work.
#![no_main]

use std::sync::OnceLock;

use ferrite_quantizer::builder::ArenaLayout;
use ferrite_quantizer::import::onnx::build::{int, ints, model as onnx_bytes, node, tensor};
use ferrite_quantizer::import::onnx::{self, proto::TensorProto};
use ferrite_quantizer::ir::{self, Graph};
use ferrite_quantizer::npy::Array;
use ferrite_quantizer::quantize::observer::RangeEstimator;
use ferrite_quantizer::quantize::ptq::{
    self, BiasCorrection, Config, Preset, WeightRounding, WeightStorage,
};
use libfuzzer_sys::fuzz_target;

/// The model's input, NCHW.
const INPUT: [usize; 4] = [1, 2, 4, 4];
const ELEMENTS: usize = INPUT[1] * INPUT[2] * INPUT[3];
/// Calibration samples at most.
const MAX_SAMPLES: usize = 8;

const EDGE: [f32; 16] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    3.0,
    -7.0,
    100.0,
    1e-30,
    1.0e-45,
    1e30,
    f32::MAX,
    f32::MIN,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
];

fuzz_target!(|data: &[u8]| {
    let [settings, encoding, payload @ ..] = data else {
        return;
    };
    let values: Vec<f32> = if encoding & 1 == 0 {
        payload
            .chunks(4)
            .map(|c| {
                let mut b = [0u8; 4];
                b[..c.len()].copy_from_slice(c);
                f32::from_le_bytes(b)
            })
            .collect()
    } else {
        payload
            .iter()
            .map(|&b| EDGE[usize::from(b & 15)] * f32::from(b >> 4).max(1.0))
            .collect()
    };
    let n = values.len().div_ceil(ELEMENTS).clamp(1, MAX_SAMPLES);
    let mut samples = vec![0.0; n * ELEMENTS];
    let used = values.len().min(samples.len());
    samples[..used].copy_from_slice(&values[..used]);
    let calib = Array::from_f32(vec![n, INPUT[1], INPUT[2], INPUT[3]], &samples);

    let graph = model();
    let Ok(x) = ir::io::input_tensor(graph, 0, &calib) else {
        return;
    };
    let config = Config {
        preset: if settings & 1 == 0 {
            Preset::Mixed
        } else {
            Preset::Performance
        },
        estimator: match (settings >> 1) & 3 {
            0 => RangeEstimator::MinMax,
            1 => RangeEstimator::MeanMinMax,
            2 => RangeEstimator::Percentile(99.99),
            _ => RangeEstimator::Mse,
        },
        per_tensor: settings & 8 != 0,
        bias_correction: match (settings >> 4) & 3 {
            0 => BiasCorrection::Fast,
            1 => BiasCorrection::Full,
            _ => BiasCorrection::Off,
        },
        cle: settings & 64 != 0,
        weight_rounding: if (encoding >> 1) & 7 == 7 {
            WeightRounding::AdaRound
        } else {
            WeightRounding::Nearest
        },
        ignore: if settings & 128 != 0 {
            vec!["Softmax".into()]
        } else {
            Vec::new()
        },
        weight_storage: if encoding & 16 != 0 {
            WeightStorage::Sparse
        } else {
            WeightStorage::Dense
        },
        arena: if encoding & 32 != 0 {
            ArenaLayout::InPlace
        } else {
            ArenaLayout::Separate
        },
        ..Config::default()
    };
    let _ = pool().install(|| ptq::quantize(graph, &[x], &config));
});

/// One worker thread, on which the whole quantization runs.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a one-thread pool")
    })
}

/// The tiny model, imported and optimized once.
fn model() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(|| {
        let bytes = onnx_model();
        let mut g = onnx::import(&bytes).expect("the tiny model imports");
        ir::passes::optimize(&mut g).expect("the tiny model optimizes");
        g
    })
}

/// Deterministic weights in [-1, 1).
fn weights(name: &str, dims: &[i64], seed: usize) -> TensorProto {
    let n = dims.iter().product::<i64>() as usize;
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 37 + seed * 11) % 29) as f32 / 14.5 - 1.0)
        .collect();
    tensor(name, dims, &data)
}

fn onnx_model() -> Vec<u8> {
    let nodes = vec![
        node(
            "Conv",
            &["x", "w1", "b1"],
            "c1",
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        ),
        node("Relu", &["c1"], "r1", vec![]),
        node(
            "Conv",
            &["r1", "w2", "b2"],
            "c2",
            vec![ints("kernel_shape", &[1, 1])],
        ),
        node("Relu", &["c2"], "r2", vec![]),
        node("GlobalAveragePool", &["r2"], "p", vec![]),
        node("Flatten", &["p"], "f", vec![int("axis", 1)]),
        node("Gemm", &["f", "w3", "b3"], "g", vec![int("transB", 1)]),
        node("Softmax", &["g"], "y", vec![int("axis", 1)]),
    ];
    let inits = vec![
        weights("w1", &[3, 2, 3, 3], 1),
        weights("b1", &[3], 2),
        weights("w2", &[4, 3, 1, 1], 3),
        weights("b2", &[4], 4),
        weights("w3", &[3, 4], 5),
        weights("b3", &[3], 6),
    ];
    let x = INPUT.map(|d| d as i64);
    onnx_bytes(13, nodes, inits, &x, "y")
}
