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
        // Tanh after every layer: wide outputs, fake-quantized on their int16 grids.
        ("mbv1_tanh_fashion", "fashion"),
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

/// Training keeps post-training quantization's wide outputs: their quantizers are int16 grids with
/// the fixed wide scales, and the decisions of the untrained state give the same wide scales.
#[test]
fn training_keeps_wide_outputs() {
    let (_, q) = quantized("mbv1_tanh_fashion", "fashion", 64);
    let wide: Vec<usize> = (0..q.decided.wide_scales.len())
        .filter(|&v| q.decided.wide_scales[v].is_some())
        .collect();
    assert_eq!(wide.len(), 7);
    let qat = Qat::new(&q.decided).unwrap();
    for &v in &wide {
        let a = &qat.acts[qat.act_of[v].unwrap()];
        assert_eq!(a.grid, fake_quant::Grid::INT16);
        assert!(!a.learnable);
        assert_eq!(Some(a.scale), q.decided.wide_scales[v]);
    }
    let decided = qat.decided(&q.decided);
    assert_eq!(decided.wide_scales, q.decided.wide_scales);
    assert_eq!(decided.params, q.decided.params);
    // Weight scales learned upwards past the floor: training fake-quantizes with the int16 step
    // that the trained decisions give the lowering.
    let mut qat = qat;
    let i = qat
        .graph
        .nodes
        .iter()
        .position(|n| n.output == wide[0])
        .unwrap();
    let s_in = qat.acts[qat.act_of[qat.graph.nodes[i].inputs[0]].unwrap()].scale;
    let raised = 3.0 * q.decided.wide_scales[wide[0]].unwrap() / s_in;
    qat.weights[i].as_mut().unwrap().scales.fill(raised);
    let step = qat.decided(&q.decided).wide_scales[wide[0]].unwrap();
    assert!((step / q.decided.wide_scales[wide[0]].unwrap() - 3.0).abs() < 1e-4);
    let x = crate::ir::io::input_tensor(&qat.graph, 0, &array("data/fashion_calib_x.npy")).unwrap();
    let pass = qat
        .forward(&qat.quantized_ops(), &[x.slice_batch(0, 2)])
        .unwrap();
    let off_grid = pass.value(wide[0]).unwrap().data.iter().filter(|&&y| {
        let k = y / step;
        (k - k.round()).abs() > 1e-3
    });
    assert_eq!(off_grid.count(), 0);
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
        scale_lr: DEFAULT_SCALE_LR_ADAM,
        optimizer: optim::Kind::Adam,
        seed,
        sparsity: None,
        filters: None,
        label_distillation: DEFAULT_LABEL_DISTILLATION,
    }
}

#[test]
fn pruning_during_training_zeros_the_middle_layers_int8_weights() {
    let (g, q, x, test, y) = digits();
    let val = Validation {
        x: &test,
        labels: Some(&y),
    };
    let mut c = config(3, 1e-4, 1);
    c.sparsity = Some(sparsity::Sparsity {
        target: 0.75,
        scope: sparsity::Scope::Layer,
        schedule: sparsity::Schedule::Polynomial,
        all_layers: false,
        skip: Vec::new(),
        block: 1,
    });
    let t = train(
        &g,
        &q.decided,
        &x,
        Supervision::Labels(&y),
        Some(&val),
        &c,
        |_| {},
    )
    .unwrap();
    assert!(t.failure.is_none());
    // The schedule reaches 75% after two of the three epochs: epoch 0 (dense) and 1 are not kept.
    assert!(t.best_epoch >= 2, "kept epoch {}", t.best_epoch);
    let layers = sparsity::densities(&t.decided, &t.pruned);
    let zeros: Vec<(bool, f64)> = layers
        .iter()
        .map(|l| (l.pruned, l.zeros as f64 / l.weights as f64))
        .collect();
    // Three Gemm layers: only the middle one is pruned, to at least the target (an int8 weight may
    // also round to zero).
    assert_eq!(zeros.len(), 3);
    assert!(!zeros[0].0 && zeros[1].0 && !zeros[2].0, "{zeros:?}");
    assert!(
        zeros[1].1 >= 0.75 && zeros[0].1 < 0.2 && zeros[2].1 < 0.2,
        "{zeros:?}"
    );
    let dense = t.epochs[0].score.unwrap();
    let kept = t.epochs[t.best_epoch].score.unwrap();
    eprintln!("top-1 dense {dense:.4}, 75% of the middle layer pruned {kept:.4}");
    assert!(kept > dense - 0.03, "dense {dense}, pruned {kept}");
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
    assert_eq!(
        score(&ptq::build(&t.decided).unwrap().bytes, &val, None).unwrap(),
        best
    );
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
    // Absurd rates for weights and scales alike (the scales bound the logits the loss sees).
    let absurd = Config {
        scale_lr: 1e3,
        ..config(2, 1e3, 0)
    };
    let t = train(
        &g,
        &q.decided,
        &x,
        Supervision::Labels(&y),
        None,
        &absurd,
        |_| {},
    )
    .unwrap();
    let failure = t.failure.expect("training stops");
    assert!(failure.contains("epoch 1, step"), "{failure}");
    assert_eq!(t.best_epoch, 0);
    assert_eq!(ptq::build(&t.decided).unwrap().bytes, q.built.bytes);
}

/// A distillation weight outside [0, 1] or a temperature that is not positive is refused before any
/// step.
#[test]
fn a_bad_distillation_blend_is_refused() {
    let (g, q, x, _, y) = digits();
    for (weight, temperature, why) in [
        (1.5, 4.0, "distillation weight must be in [0, 1], not 1.5"),
        (-0.1, 4.0, "distillation weight"),
        (0.5, 0.0, "temperature must be positive, not 0"),
        (0.5, f32::NAN, "temperature must be positive"),
    ] {
        let c = Config {
            label_distillation: LabelDistillation {
                weight,
                temperature,
            },
            ..config(1, 1e-3, 0)
        };
        let e = train(
            &g,
            &q.decided,
            &x,
            Supervision::Labels(&y),
            None,
            &c,
            |_| {},
        )
        .err()
        .expect("refused");
        assert!(format!("{e:#}").contains(why), "{e:#}");
    }
}

/// A scale never ends above both its starting value and the one that covers every value seen.
#[test]
fn scales_are_capped_at_the_range_seen() {
    let (_, q, x, _, _) = digits();
    let mut qat = Qat::new(&q.decided).unwrap();
    let start: Vec<f32> = qat.acts.iter().map(|a| a.scale).collect();
    let mut seen = qat.covered();
    let pass = qat
        .forward(&qat.quantized_ops(), std::slice::from_ref(&x))
        .unwrap();
    qat.observe(&pass, &mut seen);
    for (a, s) in qat.acts.iter_mut().zip(&start) {
        a.scale = s * 50.0;
    }
    qat.cap_scales(&seen);
    let mut lowered = 0;
    for (k, (a, &s)) in qat.acts.iter().zip(&start).enumerate() {
        if !a.learnable {
            assert_eq!(a.scale, s * 50.0, "quantizer {k} is fixed");
            continue;
        }
        // The capped grid covers the range seen (which includes the starting grid's), and one of
        // its ends is that range's end: no wider.
        let (lo, hi) = seen[k];
        let g = a.grid;
        let (low_end, high_end) = (
            a.scale * (g.lo - g.zero_point) as f32,
            a.scale * (g.hi - g.zero_point) as f32,
        );
        let tol = 1e-5 * (hi - lo);
        assert!(
            low_end <= lo + tol && high_end >= hi - tol,
            "quantizer {k}: not covering"
        );
        assert!(
            (low_end - lo).abs() <= tol || (high_end - hi).abs() <= tol,
            "quantizer {k}: [{low_end}, {high_end}] wider than [{lo}, {hi}]"
        );
        assert!(
            a.scale >= s * (1.0 - 1e-6),
            "quantizer {k}: below its start"
        );
        lowered += 1;
    }
    assert!(lowered > 0);
    // Scales inside the cover stay.
    for (a, s) in qat.acts.iter_mut().zip(&start) {
        a.scale = *s;
    }
    qat.cap_scales(&seen);
    assert!(qat.acts.iter().zip(&start).all(|(a, s)| a.scale == *s));
}

/// A scale training could reach but the runtime would refuse (a requantization multiplier out of its
/// range) is caught by the lowering, so a trained model is never written unloadable.
#[test]
fn a_model_the_runtime_would_refuse_is_not_built() {
    let (_, q, _, _, _) = digits();
    let mut d = q.decided.clone();
    let v = d.graph.nodes[0].output;
    d.params[v].as_mut().unwrap().scale = 1e-30;
    let e = format!("{:#}", ptq::build(&d).unwrap_err());
    assert!(e.contains("runtime's checks"), "{e}");
}

/// Sensitivity allocation zeros as many units as every layer at the target would, no layer more
/// than twice the target, and moves the float model's outputs less than the same zeros spread
/// evenly.
#[test]
fn sensitivity_allocation_moves_the_outputs_less_than_the_same_zeros_spread_evenly() {
    let (g, _, x, _, _) = digits();
    let s = sparsity::Sparsity {
        target: 0.5,
        scope: sparsity::Scope::Sensitivity,
        schedule: sparsity::Schedule::Polynomial,
        all_layers: true,
        skip: Vec::new(),
        block: 4,
    };
    let layers = s.layers(&g).unwrap();
    assert_eq!(layers.len(), 3);
    let zeros = |g: &Graph| -> Vec<usize> {
        layers
            .iter()
            .map(|&l| match &g.nodes[l].op {
                Op::FullyConnected { filter, .. } => {
                    filter.data.iter().filter(|&&w| w == 0.0).count()
                }
                _ => unreachable!(),
            })
            .collect()
    };
    let error = |pruned: &Graph| -> f64 {
        let run = |g: &Graph| {
            float_exec::run(g, std::slice::from_ref(&x), 1).unwrap()[0]
                .data
                .clone()
        };
        let (a, b) = (run(&g), run(pruned));
        let power: f64 = a.iter().map(|&v| (v as f64).powi(2)).sum();
        a.iter()
            .zip(&b)
            .map(|(&p, &q)| ((p - q) as f64).powi(2))
            .sum::<f64>()
            / power
    };
    let before = zeros(&g);
    let mut even = g.clone();
    sparsity::prune(
        &mut even,
        &layers,
        s.target,
        sparsity::Scope::Layer,
        s.block,
    );
    let shares = sparsity::allocate_by_sensitivity(&g, &layers, &x, s.target, s.block).unwrap();
    let mut chosen = g.clone();
    sparsity::prune_each(&mut chosen, &layers, &shares, s.block);
    let (even_zeros, chosen_zeros) = (zeros(&even), zeros(&chosen));
    // The same number of zero blocks of four (the filters' rows are multiples of four).
    let added = |z: &[usize]| z.iter().zip(&before).map(|(a, b)| a - b).sum::<usize>();
    assert_eq!(added(&chosen_zeros), added(&even_zeros), "{shares:?}");
    let sizes: Vec<usize> = layers
        .iter()
        .map(|&l| match &g.nodes[l].op {
            Op::FullyConnected { filter, .. } => filter.data.len(),
            _ => unreachable!(),
        })
        .collect();
    for ((&z, &b), &n) in chosen_zeros.iter().zip(&before).zip(&sizes) {
        assert!((z - b) as f64 <= 2.0 * s.target * n as f64, "{shares:?}");
    }
    assert_ne!(
        chosen_zeros, even_zeros,
        "the allocation is not the even one"
    );
    let (e_even, e_chosen) = (error(&even), error(&chosen));
    assert!(
        e_chosen < e_even,
        "{e_chosen} against {e_even} ({shares:?})"
    );
}
