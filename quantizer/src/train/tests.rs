use std::path::{Path, PathBuf};

use super::*;
use crate::quantize::ptq::Config as PtqConfig;
use crate::runtime_exec::Runner;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn array(path: &str) -> Array {
    Array::read(&fixtures().join(path)).unwrap()
}

/// A fixture model, its first `calib` calibration samples (NHWC) and its post-training quantization.
fn quantized(model: &str, data: &str, calib: usize) -> (Graph, ptq::Quantized) {
    let g = crate::cli::float_onnx::load(&fixtures().join(model).join("model.onnx")).unwrap();
    let x =
        crate::ir::io::input_tensor(&g, 0, &array(&format!("data/{data}_calib_x.npy"))).unwrap();
    let q = ptq::quantize(&g, &[x.slice_batch(0, calib)], &PtqConfig::default()).unwrap();
    (g, q)
}

fn labels(data: &str) -> Vec<usize> {
    let y = array(&format!("data/{data}_test_y.npy"));
    (0..y.len()).map(|i| y.get_f64(i) as usize).collect()
}

#[test]
fn fake_quantized_forward_matches_the_int8_runtime() {
    for (model, data) in [
        ("mlp_digits", "digits"),
        ("dscnn_fashion", "fashion"),
        ("resnet_fashion", "fashion"),
        ("mobilenetv2_mnist", "mnist"),
    ] {
        let (g, q) = quantized(model, data, 64);
        let test = array(&format!("data/{data}_test_x.npy"));
        let x = crate::ir::io::input_tensor(&g, 0, &test).unwrap();
        let qat = Qat::new(&q.decided).unwrap();
        let pass = qat.forward(&qat.quantized_ops(), &[x]).unwrap();
        let out = g.outputs[0];
        let simulated = &pass.value(out).unwrap().data;
        let device = Runner::new(&q.built.bytes)
            .unwrap()
            .run(&[test], 1)
            .unwrap()[0]
            .to_f32();
        let step = q.decided.params[out].unwrap().scale;
        let steps: Vec<f32> = simulated
            .iter()
            .zip(&device)
            .map(|(a, b)| ((a - b) / step).abs())
            .collect();
        let worst = steps.iter().fold(0f32, |a, &b| a.max(b));
        let within_one = steps.iter().filter(|&&s| s <= 1.001).count() as f64 / steps.len() as f64;
        eprintln!("{model}: {within_one:.4} of outputs within one step, worst {worst:.2} steps");
        assert!(
            within_one >= 0.99,
            "{model}: {within_one} within one step, worst {worst}"
        );
    }
}

fn digits() -> (Graph, ptq::Quantized, Tensor, Array, Vec<usize>) {
    let (g, q) = quantized("mlp_digits", "digits", 300);
    let test = array("data/digits_test_x.npy");
    let x = crate::ir::io::input_tensor(&g, 0, &test).unwrap();
    (g, q, x, test, labels("digits"))
}

fn config(epochs: usize, lr: f64, seed: u64) -> Config {
    Config {
        epochs,
        batch: 32,
        lr,
        optimizer: optim::Kind::Adam,
        seed,
    }
}

#[test]
fn training_with_labels_lowers_the_loss_and_scores_the_int8_model() {
    let (g, q, x, test, y) = digits();
    let val = Validation {
        x: &test,
        labels: Some(&y),
    };
    let t = train(
        &g,
        &q.decided,
        &x,
        Supervision::Labels(&y),
        Some(&val),
        &config(4, 1e-3, 1),
        |_| {},
    )
    .unwrap();
    assert!(t.failure.is_none());
    let loss: Vec<f64> = t.epochs[1..].iter().map(|e| e.loss.unwrap()).collect();
    assert!(loss[3] < loss[0], "epoch losses {loss:?}");
    // Epoch 0 is the post-training model as the runtime runs it.
    let bytes = ptq::build(&q.decided).unwrap().bytes;
    assert_eq!(bytes, q.built.bytes);
    let best = t.epochs[t.best_epoch].score.unwrap();
    assert!(best >= t.epochs[0].score.unwrap());
    // The kept model scores what its epoch recorded.
    assert_eq!(score(&t.decided, &val, None).unwrap(), best);
}

#[test]
fn distillation_without_labels_trains_towards_the_float_model() {
    let (g, q, x, test, _) = digits();
    let val = Validation {
        x: &test,
        labels: None,
    };
    let t = train(
        &g,
        &q.decided,
        &x,
        Supervision::Distill,
        Some(&val),
        &config(3, 1e-4, 1),
        |_| {},
    )
    .unwrap();
    assert!(t.failure.is_none());
    let loss: Vec<f64> = t.epochs[1..].iter().map(|e| e.loss.unwrap()).collect();
    assert!(loss[2] < loss[0], "epoch losses {loss:?}");
    for e in &t.epochs {
        eprintln!(
            "epoch {}: loss {:?}, SQNR {:?} dB",
            e.epoch, e.loss, e.score
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_model() {
    let (g, q, x, _, y) = digits();
    let run = |seed| {
        let t = train(
            &g,
            &q.decided,
            &x,
            Supervision::Labels(&y),
            None,
            &config(1, 1e-3, seed),
            |_| {},
        )
        .unwrap();
        ptq::build(&t.decided).unwrap().bytes
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    assert_ne!(a, q.built.bytes);
}

#[test]
fn bad_labels_are_refused_before_training() {
    let (g, q, x, _, y) = digits();
    let err = |labels: &[usize]| {
        train(
            &g,
            &q.decided,
            &x,
            Supervision::Labels(labels),
            None,
            &config(1, 1e-3, 0),
            |_| {},
        )
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap()
    };
    assert!(err(&y[..10]).contains("10 labels for 360 training samples"));
    let mut out_of_range = y.clone();
    out_of_range[5] = 10;
    assert!(err(&out_of_range).contains("label 5 is class 10, but the model has 10 outputs"));
}

#[test]
fn a_diverging_loss_stops_training_and_keeps_the_last_good_model() {
    let (g, q, x, _, y) = digits();
    let t = train(
        &g,
        &q.decided,
        &x,
        Supervision::Labels(&y),
        None,
        &config(2, 1e3, 0),
        |_| {},
    )
    .unwrap();
    let failure = t.failure.expect("training stops");
    assert!(failure.contains("epoch 1, step"), "{failure}");
    assert_eq!(t.best_epoch, 0);
    assert_eq!(ptq::build(&t.decided).unwrap().bytes, q.built.bytes);
}
