//! Importer tests on small models built in code (the fixtures cover whole networks against onnxruntime).

use super::build::*;
use super::*;
use crate::ir::float_exec::{self, Tensor};

fn err(bytes: &[u8]) -> String {
    format!("{:#}", import(bytes).unwrap_err())
}

#[test]
fn conv_weights_become_ohwi_and_depthwise_1hwc() {
    // 2 input channels, 3 output channels, 1x2 kernel: W[o][i][0][k] = 100o + 10i + k.
    let w: Vec<f32> = (0..3)
        .flat_map(|o| (0..2).flat_map(move |i| (0..2).map(move |k| (100 * o + 10 * i + k) as f32)))
        .collect();
    let bytes = model(
        17,
        vec![node("Conv", &["x", "w"], "y", vec![])],
        vec![tensor("w", &[3, 2, 1, 2], &w)],
        &[1, 2, 3, 3],
        "y",
    );
    let g = import(&bytes).unwrap();
    let Op::Conv2d { filter, .. } = &g.nodes[0].op else {
        panic!()
    };
    assert_eq!(filter.shape, [3, 1, 2, 2]);
    // filter[o][0][k][i] at o = 2, k = 1, i = 1.
    assert_eq!(filter.data[(2 * 2 + 1) * 2 + 1], 211.0);
    assert_eq!(g.values[g.outputs[0]].shape, [1, 3, 2, 3]);
    // Depthwise with multiplier 2: W [4, 1, 1, 1].
    let bytes = model(
        17,
        vec![node("Conv", &["x", "w"], "y", vec![int("group", 2)])],
        vec![tensor("w", &[4, 1, 1, 1], &[1.0, 2.0, 3.0, 4.0])],
        &[1, 2, 3, 3],
        "y",
    );
    let g = import(&bytes).unwrap();
    assert!(
        matches!(&g.nodes[0].op, Op::DepthwiseConv2d { depth_multiplier: 2, filter, .. } if filter.shape == [1, 1, 1, 4])
    );
    let x = Tensor::new(vec![1, 3, 3, 2], (0..18).map(|v| v as f32).collect());
    let y = float_exec::run(&g, &[x], 1).unwrap();
    // Pixel 0 has channels (0, 1): outputs 0*1, 0*2, 1*3, 1*4.
    assert_eq!(y[0].data[..4], [0.0, 0.0, 3.0, 4.0]);
}

#[test]
fn unsupported_inputs_are_named() {
    let grouped = model(
        17,
        vec![node("Conv", &["x", "w"], "y", vec![int("group", 3)])],
        vec![tensor("w", &[3, 2, 1, 1], &[0.0; 6])],
        &[1, 4, 3, 3],
        "y",
    );
    assert!(
        err(&grouped)
            .contains("group 3: weight for 2 input channels of each group, input has 4, output 3"),
        "{}",
        err(&grouped)
    );
    let old = model(
        9,
        vec![node("Relu", &["x"], "y", vec![])],
        vec![],
        &[1, 4],
        "y",
    );
    assert!(err(&old).contains("opset 9 is not supported (supported: 11 to 25)"));
    let new = model(
        26,
        vec![node("Relu", &["x"], "y", vec![])],
        vec![],
        &[1, 4],
        "y",
    );
    assert!(err(&new).contains("opset 26"));
    let moves = model(
        17,
        vec![node(
            "Transpose",
            &["x"],
            "y",
            vec![ints("perm", &[0, 2, 1, 3])],
        )],
        vec![],
        &[1, 2, 3, 4],
        "y",
    );
    // Channels and rows swapped: a TRANSPOSE of the image, y[h, c, w] = x[c, h, w].
    let (y, ops) = run_onnx_order(&moves, &[1, 2, 3, 4]);
    assert!(
        ops.iter().any(|o| matches!(o, Op::Transpose { .. })),
        "{ops:?}"
    );
    let want: Vec<f32> = (0..24)
        .map(|i| {
            let (h, c, w) = (i / 8, (i / 4) % 2, i % 4);
            (c * 12 + h * 4 + w) as f32
        })
        .collect();
    assert_eq!(y, want);
    let reduce = model(
        17,
        vec![node("ReduceMean", &["x"], "y", vec![ints("axes", &[1])])],
        vec![],
        &[1, 2, 3, 4],
        "y",
    );
    assert!(
        err(&reduce)
            .contains("ReduceMean over axes [1] of [1, 2, 3, 4] (only spatial axes are supported"),
        "{}",
        err(&reduce)
    );
    let runtime_weight = model(
        17,
        vec![node("MatMul", &["x", "x"], "y", vec![])],
        vec![],
        &[1, 4],
        "y",
    );
    assert!(
        err(&runtime_weight).contains("computed at run time"),
        "{}",
        err(&runtime_weight)
    );
    let custom = {
        let mut n = node("Relu", &["x"], "y", vec![]);
        n.domain = "com.microsoft".into();
        model(17, vec![n], vec![], &[1, 4], "y")
    };
    assert!(
        err(&custom).contains("unsupported operator `com.microsoft:Relu`"),
        "{}",
        err(&custom)
    );
    let external = {
        let mut t = tensor("w", &[4, 4], &[0.0; 16]);
        t.data_location = 1;
        model(
            17,
            vec![node("MatMul", &["x", "w"], "y", vec![])],
            vec![t],
            &[1, 4],
            "y",
        )
    };
    assert!(
        err(&external).contains("external data"),
        "{}",
        err(&external)
    );
}

#[test]
fn nhwc_graph_inputs_behind_a_transpose_stay_nhwc() {
    // tf2onnx style: NHWC input, Transpose to NCHW, conv.
    let bytes = model(
        13,
        vec![
            node("Transpose", &["x"], "t", vec![ints("perm", &[0, 3, 1, 2])]),
            node("Conv", &["t", "w"], "y", vec![]),
        ],
        vec![tensor("w", &[1, 2, 1, 1], &[1.0, 10.0])],
        &[1, 3, 3, 2],
        "y",
    );
    let g = import(&bytes).unwrap();
    assert_eq!(g.values[g.inputs[0]].source, SourceLayout::Same);
    assert_eq!(g.values[g.inputs[0]].shape, [1, 3, 3, 2]);
    let x = Tensor::new(vec![1, 3, 3, 2], (0..18).map(|v| v as f32).collect());
    let y = float_exec::run(&g, &[x], 1).unwrap();
    assert_eq!(y[0].data[..2], [10.0, 2.0 + 30.0]);
}

/// TensorFlow converters rescale a one-channel NHWC input, turn it into NCHW with a Reshape (not a
/// Transpose) and reshape the result back to NHWC: read as NCHW the input needs a TRANSPOSE, read
/// as NHWC none, so it is read as NHWC, and the model computes the ONNX graph's function.
#[test]
fn nhwc_graph_inputs_reshaped_to_nchw_stay_nhwc() {
    let bytes = model(
        13,
        vec![
            node("Mul", &["x", "two"], "m", vec![]),
            node("Reshape", &["m", "to_nchw"], "t", vec![]),
            node("Conv", &["t", "w"], "c", vec![]),
            node("Reshape", &["c", "to_nhwc"], "y", vec![]),
        ],
        vec![
            tensor("two", &[], &[2.0]),
            ints_tensor("to_nchw", &[1, 1, 2, 3]),
            tensor("w", &[1, 1, 1, 2], &[1.0, 10.0]),
            ints_tensor("to_nhwc", &[1, 2, 2, 1]),
        ],
        &[1, 2, 3, 1],
        "y",
    );
    let g = import(&bytes).unwrap();
    assert_eq!(g.values[g.inputs[0]].source, SourceLayout::Same);
    assert_eq!(g.values[g.inputs[0]].shape, [1, 2, 3, 1]);
    assert_eq!(g.values[g.outputs[0]].shape, [1, 2, 2, 1]);
    assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Transpose { .. })));
    let m = decode(&bytes).unwrap();
    let nchw = import_graph(m.graph.as_ref().unwrap(), 13, &HashSet::new(), &[], &mut 0).unwrap();
    assert!(nchw
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Transpose { .. })));
    // Rows (0, 2, 4) and (6, 8, 10) after the Mul: each output is a pixel plus ten times its
    // right neighbour.
    let x = Tensor::new(vec![1, 2, 3, 1], (0..6).map(|v| v as f32).collect());
    let y = float_exec::run(&g, &[x], 1).unwrap();
    assert_eq!(y[0].data, [20.0, 42.0, 86.0, 108.0]);
}

/// When neither reading of a rank-4 input imports, the error is the one of the reading that got
/// further: here NHWC, over whose last axis the opset-11 Softmax runs (read as NCHW, axis 3 is the
/// width, a spatial axis, refused before opset 13), and which stops at the unsupported Hardmax.
#[test]
fn the_reading_that_imports_more_nodes_names_the_error() {
    let bytes = model(
        11,
        vec![
            node("Softmax", &["x"], "s", vec![int("axis", 3)]),
            node("Hardmax", &["s"], "y", vec![]),
        ],
        vec![],
        &[1, 2, 3, 4],
        "y",
    );
    let e = err(&bytes);
    assert!(e.contains("unsupported operator `Hardmax`"), "{e}");
    // Each reading alone: NCHW stops at the Softmax, NHWC at the Hardmax.
    let m = decode(&bytes).unwrap();
    let graph = m.graph.as_ref().unwrap();
    let (mut nchw, mut nhwc) = (0, 0);
    let e = import_graph(graph, 11, &HashSet::new(), &[], &mut nchw).unwrap_err();
    assert!(format!("{e:#}").contains("Softmax"), "{e:#}");
    assert!(import_graph(graph, 11, &HashSet::from(["x"]), &[], &mut nhwc).is_err());
    assert_eq!((nchw, nhwc), (0, 1));
}

/// An image and its own elements reshaped to another image meet in an element-wise operator as
/// ONNX broadcasts them: `[1, 3, 3, 1] + [1, 1, 3, 3]` is `[1, 3, 3, 3]` (the reshape placed as a
/// TRANSPOSE of the NCHW reading, not as a second layout of the same image).
#[test]
fn an_image_and_its_reshape_broadcast_as_onnx_does() {
    let shape = ints_tensor("to_nchw", &[1, 1, 3, 3]);
    let bytes = model(
        13,
        vec![
            node("Reshape", &["x", "to_nchw"], "t", vec![]),
            node("Add", &["x", "t"], "y", vec![]),
        ],
        vec![shape],
        &[1, 3, 3, 1],
        "y",
    );
    let (y, _) = run_onnx_order(&bytes, &[1, 3, 3, 1]);
    // x[c, h] = 3 c + h, t[h, w] = 3 h + w: y[c, h, w] = x[c, h] + t[h, w].
    let want: Vec<f32> = (0..27)
        .map(|i| {
            let (c, h, w) = (i / 9, (i / 3) % 3, i % 3);
            (3 * c + h + 3 * h + w) as f32
        })
        .collect();
    assert_eq!(y, want);
}

#[test]
fn reshape_targets_resolve() {
    assert_eq!(
        resolve_reshape(&[2, 3, 4], &[0, -1], false).unwrap(),
        [2, 12]
    );
    assert_eq!(
        resolve_reshape(&[2, 3, 4], &[-1, 4], false).unwrap(),
        [6, 4]
    );
    assert!(resolve_reshape(&[2, 3, 4], &[5, -1], false).is_err());
    assert!(resolve_reshape(&[2, 3, 4], &[-1, -1], false).is_err());
}

/// `(x - mean) / std` at the graph input (per-channel constants, no producer to fold into) becomes
/// one 1x1 depthwise convolution with the same float result; the quantizer then runs it in int8.
#[test]
fn sub_and_div_by_constants_become_one_depthwise_affine() {
    let bytes = model(
        17,
        vec![
            node("Sub", &["x", "mean"], "c", vec![]),
            node("Div", &["c", "std"], "n", vec![]),
            node("Relu", &["n"], "y", vec![]),
        ],
        vec![
            tensor("mean", &[1, 2, 1, 1], &[0.5, -1.0]),
            tensor("std", &[1, 2, 1, 1], &[0.25, 2.0]),
        ],
        &[1, 2, 2, 2],
        "y",
    );
    let mut g = import(&bytes).unwrap();
    crate::ir::passes::optimize(&mut g).unwrap();
    assert_eq!(g.nodes.len(), 1, "{:?}", g.nodes);
    assert!(matches!(&g.nodes[0].op, Op::DepthwiseConv2d { clamp, .. } if *clamp == Clamp::RELU));
    let x = Tensor::new(
        vec![1, 2, 2, 2],
        vec![0.0, 3.0, 1.0, -1.0, 0.75, 5.0, 0.5, -3.0],
    );
    let y = float_exec::run(&g, std::slice::from_ref(&x), 1).unwrap();
    let expected: Vec<f32> = x
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (m, s) = [(0.5, 0.25), (-1.0, 2.0)][i % 2];
            ((v - m) / s).max(0.0)
        })
        .collect();
    for (a, b) in y[0].data.iter().zip(&expected) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
    }
    let calib = Tensor::new(
        vec![4, 2, 2, 2],
        (0..32).map(|v| v as f32 / 8.0 - 1.0).collect(),
    );
    let q = crate::quantize::ptq::quantize(&g, &[calib], &Default::default()).unwrap();
    assert!(q.report.float_nodes.is_empty());
    assert!(err(&model(
        17,
        vec![node("Div", &["mean", "x"], "y", vec![])],
        vec![tensor("mean", &[1, 2, 1, 1], &[0.5, -1.0])],
        &[1, 2, 2, 2],
        "y",
    ))
    .contains("first operand must be computed at run time"));
}

/// A shape error names the node once, as the file does, and the window by its values.
#[test]
fn a_window_too_large_names_the_node_once() {
    let m = model(
        17,
        vec![node(
            "MaxPool",
            &["x"],
            "y",
            vec![ints("kernel_shape", &[100, 100])],
        )],
        vec![],
        &[1, 1, 28, 28],
        "y",
    );
    let e = err(&m);
    assert_eq!(e.matches("MaxPool_y").count(), 1, "{e}");
    assert!(
        e.contains("node `MaxPool_y` (MaxPool): window (kernel 100x100, stride 1x1"),
        "{e}"
    );
    assert!(e.contains("does not fit input [1, 28, 28, 1]"), "{e}");
}

/// Quantizes `g` (all in int8) calibrated on `x` and runs the model on `x` with the runtime.
fn quantized_outputs(g: &Graph, x: Tensor) -> Vec<f32> {
    let values = crate::npy::Array::from_f32(x.shape.clone(), &x.data);
    let q = crate::quantize::ptq::quantize(g, &[x], &Default::default()).unwrap();
    assert!(q.report.float_nodes.is_empty());
    let runner = crate::runtime_exec::Runner::new(&q.built.bytes).unwrap();
    runner.run(&[values], 1).unwrap()[0].to_f32()
}

/// LeakyRelu: imported with its slope (0.01 when absent), run in float and in int8 by the runtime
/// within one output step; a negative slope is refused by name.
#[test]
fn leaky_relu_imports_quantizes_and_runs() {
    let leaky = |attrs| {
        model(
            17,
            vec![node("LeakyRelu", &["x"], "y", attrs)],
            vec![],
            &[1, 64],
            "y",
        )
    };
    let g = import(&leaky(vec![])).unwrap();
    assert!(matches!(g.nodes[0].op, Op::LeakyRelu { alpha } if alpha == 0.01));
    let alpha_attr = AttributeProto {
        name: "alpha".into(),
        f: 0.2,
        r#type: at::FLOAT,
        ..Default::default()
    };
    let g = import(&leaky(vec![alpha_attr.clone()])).unwrap();
    let values: Vec<f32> = (0..64).map(|i| (i as f32 - 40.0) / 8.0).collect();
    let want: Vec<f32> = values
        .iter()
        .map(|&v| if v >= 0.0 { v } else { 0.2 * v })
        .collect();
    let x = Tensor::new(vec![1, 64], values.clone());
    let y = float_exec::run(&g, std::slice::from_ref(&x), 1).unwrap();
    assert_eq!(y[0].data, want);

    // Half an input step (range [-5, 2.875]) and one output step (range [-1, 2.875]).
    let tolerance = 7.875 / 255.0 / 2.0 + 3.875 / 255.0;
    for (got, want) in quantized_outputs(&g, x).iter().zip(&want) {
        assert!((got - want).abs() <= tolerance * 1.01, "{got} vs {want}");
    }

    let negative = AttributeProto {
        f: -0.5,
        ..alpha_attr
    };
    let e = err(&leaky(vec![negative]));
    assert!(e.contains("LeakyRelu alpha -0.5"), "{e}");
}

/// HardSigmoid becomes Mul and clamped Add by scalars, one depthwise convolution (on the
/// `[1, 1, 1, 64]` view of the vector); HardSwish a table (LOOKUP). Both run in float as the ONNX
/// formulas and in int8 by the runtime within one output step.
#[test]
fn hard_sigmoid_imports_as_an_affine_clamp_and_hard_swish_as_a_table() {
    let f = |name: &str, v: f32| AttributeProto {
        name: name.into(),
        f: v,
        r#type: at::FLOAT,
        ..Default::default()
    };
    let values: Vec<f32> = (0..64).map(|i| (i as f32 - 40.0) / 8.0).collect();
    // Operator, attributes, and the formula's alpha and beta.
    let cases = [
        ("HardSigmoid", vec![], 0.2, 0.5),
        (
            "HardSigmoid",
            vec![f("alpha", 0.5), f("beta", 0.25)],
            0.5,
            0.25,
        ),
        ("HardSwish", vec![], 1.0 / 6.0, 0.5),
    ];
    for (op, attrs, alpha, beta) in cases {
        let formula = |x: f32| {
            let gate = (alpha * x + beta).clamp(0.0, 1.0);
            if op == "HardSwish" {
                x * gate
            } else {
                gate
            }
        };
        let bytes = model(
            17,
            vec![node(op, &["x"], "y", attrs)],
            vec![],
            &[1, 64],
            "y",
        );
        let mut g = import(&bytes).unwrap();
        crate::ir::passes::optimize(&mut g).unwrap();
        let kinds: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
        let want_kinds = if op == "HardSwish" {
            vec!["LOOKUP"]
        } else {
            vec!["RESHAPE", "DEPTHWISE_CONV_2D", "RESHAPE"]
        };
        assert_eq!(kinds, want_kinds, "{op}");
        let x = Tensor::new(vec![1, 64], values.clone());
        let y = float_exec::run(&g, std::slice::from_ref(&x), 1).unwrap();
        let want: Vec<f32> = values.iter().map(|&v| formula(v)).collect();
        for (a, b) in y[0].data.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-6, "{op}: {a} vs {b}");
        }
        let out = quantized_outputs(&g, x);
        let (lo, hi) = want
            .iter()
            .fold((0f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
        let out_step = (hi - lo) / 255.0;
        let worst = out
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{op}: worst {worst} = {} output steps", worst / out_step);
        assert!(worst <= out_step, "{op}: {worst} vs step {out_step}");
    }
}

/// GlobalMaxPool: the maximum of each channel over the whole image.
#[test]
fn global_max_pool_takes_each_channel_maximum() {
    let bytes = model(
        17,
        vec![node("GlobalMaxPool", &["x"], "y", vec![])],
        vec![],
        &[1, 2, 3, 4],
        "y",
    );
    let g = import(&bytes).unwrap();
    assert_eq!(g.values[g.outputs[0]].shape, [1, 1, 1, 2]);
    // NHWC: channel 0 holds 0, 2, 4, ... (and -30 at one pixel); channel 1 holds 1 - k.
    let mut data: Vec<f32> = (0..24)
        .map(|k| if k % 2 == 0 { k as f32 } else { 1.0 - k as f32 })
        .collect();
    data[10] = -30.0;
    let y = float_exec::run(&g, &[Tensor::new(vec![1, 3, 4, 2], data)], 1).unwrap();
    assert_eq!(y[0].data, [22.0, 0.0]);
}

/// `Sub` of a value computed at run time (from a constant or from another value) is an Add of its
/// negation: run in float as the difference and in int8 by the runtime within half an input step
/// (range [-5, 2.875]) and one output step.
#[test]
fn sub_of_a_computed_value_adds_its_negation() {
    let values: Vec<f32> = (0..64).map(|i| (i as f32 - 40.0) / 8.0).collect();
    let cases = [
        (
            vec![
                node("Relu", &["x"], "r", vec![]),
                node("Sub", &["x", "r"], "y", vec![]),
            ],
            vec![],
            values.iter().map(|&v| v.min(0.0)).collect::<Vec<f32>>(),
        ),
        (
            vec![node("Sub", &["c", "x"], "y", vec![])],
            vec![tensor("c", &[1], &[1.5])],
            values.iter().map(|&v| 1.5 - v).collect(),
        ),
    ];
    for (nodes, inits, want) in cases {
        let mut g = import(&model(17, nodes, inits, &[1, 64], "y")).unwrap();
        crate::ir::passes::optimize(&mut g).unwrap();
        let x = Tensor::new(vec![1, 64], values.clone());
        let y = float_exec::run(&g, std::slice::from_ref(&x), 1).unwrap();
        assert_eq!(y[0].data, want);
        let (lo, hi) = want
            .iter()
            .fold((0f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
        let tolerance = 7.875 / 255.0 / 2.0 + (hi - lo) / 255.0;
        for (a, b) in quantized_outputs(&g, x).iter().zip(&want) {
            assert!(
                (a - b).abs() <= tolerance,
                "{a} vs {b}, tolerance {tolerance}"
            );
        }
    }
}

/// Resize in nearest mode by whole factors: each pixel repeated, in float and in int8; a mode or a
/// size whose rows the runtime would not pick is refused by name.
#[test]
fn resize_nearest_repeats_pixels_and_refuses_what_it_cannot_match() {
    let s = |name: &str, v: &str| AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        r#type: at::STRING,
        ..Default::default()
    };
    let resize = |scales: &[f32], attrs: Vec<AttributeProto>| {
        model(
            17,
            vec![node("Resize", &["x", "", "scales"], "y", attrs)],
            vec![tensor("scales", &[4], scales)],
            &[1, 2, 2, 3],
            "y",
        )
    };
    let g = import(&resize(&[1.0, 1.0, 2.0, 2.0], vec![])).unwrap();
    assert!(matches!(g.nodes[0].op, Op::ResizeNearest { size: [4, 6] }));
    // NHWC input [1, 2, 3, 2]: value 10 * y + x in channel 0, its negative in channel 1.
    let data: Vec<f32> = (0..2)
        .flat_map(|y| (0..3).flat_map(move |x| [(10 * y + x) as f32, -((10 * y + x) as f32)]))
        .collect();
    let x = Tensor::new(vec![1, 2, 3, 2], data);
    let y = float_exec::run(&g, std::slice::from_ref(&x), 1).unwrap();
    assert_eq!(y[0].shape, [1, 4, 6, 2]);
    // Output pixel (3, 5) is input pixel (1, 2).
    assert_eq!(
        y[0].data[(3 * 6 + 5) * 2..(3 * 6 + 5) * 2 + 2],
        [12.0, -12.0]
    );

    let e = err(&resize(&[1.0, 1.0, 2.0, 2.0], vec![s("mode", "cubic")]));
    assert!(e.contains("mode `cubic` is not supported"), "{e}");
    let e = err(&resize(
        &[1.0, 1.0, 2.0, 2.0],
        vec![
            s("mode", "linear"),
            s("coordinate_transformation_mode", "tf_crop_and_resize"),
        ],
    ));
    assert!(
        e.contains("coordinate_transformation_mode `tf_crop_and_resize` is not supported"),
        "{e}"
    );
    // 2 -> 1 halves rows: half_pixel reads row 1 (0.5 rounds down to 0 only at exactly .5).
    let e = err(&resize(
        &[1.0, 1.0, 0.5, 1.0],
        vec![s("nearest_mode", "ceil")],
    ));
    assert!(e.contains("reads row 1 for output 0"), "{e}");
    // The given scale places the rows, not out / in: 10 columns at 0.35 give 3, and output 1 reads
    // column floor(1 / 0.35) = 2 where the runtime reads floor(1 * 10 / 3) = 3.
    let e = err(&model(
        17,
        vec![node(
            "Resize",
            &["x", "", "scales"],
            "y",
            vec![
                s("coordinate_transformation_mode", "asymmetric"),
                s("nearest_mode", "floor"),
            ],
        )],
        vec![tensor("scales", &[4], &[1.0, 1.0, 1.0, 0.35])],
        &[1, 1, 1, 10],
        "y",
    ));
    assert!(e.contains("reads row 2 for output 1"), "{e}");
    let e = err(&resize(
        &[1.0, 1.0, 2.0, 2.0],
        vec![s("keep_aspect_ratio_policy", "not_larger")],
    ));
    assert!(
        e.contains("`keep_aspect_ratio_policy` is not supported"),
        "{e}"
    );
}

/// PRelu: a `[C, 1, 1]` slope on an NCHW input becomes one slope per channel (NHWC last axis) and a
/// `[1]` slope a shared one; other shapes are refused by name. Conv -> PRelu -> Conv quantizes
/// (the slope to int8) and runs close to float; the float export reads back the same.
#[test]
fn prelu_imports_per_channel_quantizes_and_exports() {
    let slope = [0.25f32, -0.5, 0.1, 1.5];
    let one = |dims: &[i64], data: &[f32]| {
        model(
            17,
            vec![node("PRelu", &["x", "s"], "y", vec![])],
            vec![tensor("s", dims, data)],
            &[1, 4, 2, 3],
            "y",
        )
    };
    let values: Vec<f32> = (0..24).map(|i| (i as f32 - 12.0) / 4.0).collect();
    let x = Tensor::new(vec![1, 2, 3, 4], values.clone());
    for dims in [&[4, 1, 1][..], &[1, 4, 1, 1]] {
        let g = import(&one(dims, &slope)).unwrap();
        assert!(matches!(&g.nodes[0].op, Op::PRelu { slope: s } if s.data == slope));
        let y = float_exec::run(&g, std::slice::from_ref(&x), 1).unwrap();
        let want: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| if v >= 0.0 { v } else { slope[i % 4] * v })
            .collect();
        assert_eq!(y[0].data, want);
    }
    let g = import(&one(&[1], &[0.2])).unwrap();
    assert!(matches!(&g.nodes[0].op, Op::PRelu { slope } if slope.data == [0.2]));
    for dims in [&[4][..], &[4, 2, 3], &[2, 1, 1]] {
        let n: i64 = dims.iter().product();
        let e = err(&one(dims, &vec![0.1; n as usize]));
        assert!(e.contains("PRelu slope of shape"), "{dims:?}: {e}");
    }

    // Conv (3 -> 4 channels, 3x3) -> PRelu -> Conv (4 -> 2, 1x1).
    let mut rng = crate::rng::Rng::new(54);
    let mut normal = |n: usize, s: f32| -> Vec<f32> { rng.values(n, -s, s) };
    let (w1, w2) = (normal(4 * 3 * 9, 0.3), normal(2 * 4, 0.5));
    let bytes = model(
        17,
        vec![
            node("Conv", &["x", "w1"], "a", vec![]),
            node("PRelu", &["a", "s"], "b", vec![]),
            node("Conv", &["b", "w2"], "y", vec![]),
        ],
        vec![
            tensor("w1", &[4, 3, 3, 3], &w1),
            tensor("s", &[4, 1, 1], &slope),
            tensor("w2", &[2, 4, 1, 1], &w2),
        ],
        &[1, 3, 8, 8],
        "y",
    );
    let g = import(&bytes).unwrap();
    let x = Tensor::new(vec![1, 8, 8, 3], normal(192, 1.0));
    let want = float_exec::run(&g, std::slice::from_ref(&x), 1).unwrap();
    // The runner reads and writes the source's NCHW layout.
    let nchw = |t: &[f32], (h, w, c): (usize, usize, usize)| -> Vec<f32> {
        let mut out = vec![0.0; t.len()];
        for (i, &v) in t.iter().enumerate() {
            let (p, ch) = (i / c, i % c);
            out[ch * h * w + p] = v;
        }
        out
    };
    let q =
        crate::quantize::ptq::quantize(&g, std::slice::from_ref(&x), &Default::default()).unwrap();
    assert!(q.report.float_nodes.is_empty());
    let runner = crate::runtime_exec::Runner::new(&q.built.bytes).unwrap();
    let input = crate::npy::Array::from_f32(vec![1, 3, 8, 8], &nchw(&x.data, (8, 8, 3)));
    let got = runner.run(&[input], 1).unwrap()[0].to_f32();
    let want_nchw = nchw(&want[0].data, (6, 6, 2));
    let mut sqnr = crate::quantize::sqnr::Sqnr::default();
    sqnr.extend(
        want_nchw
            .iter()
            .zip(&got)
            .map(|(&w, &g)| (w as f64, g as f64)),
    );
    let db = sqnr.db().unwrap();
    assert!(db > 30.0, "SQNR {db} dB");

    let exported = crate::export::float_onnx(&g).unwrap();
    let again = import(&exported).unwrap();
    let y = float_exec::run(&again, std::slice::from_ref(&x), 1).unwrap();
    for (a, b) in y[0].data.iter().zip(&want[0].data) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

/// `ConstantOfShape` folds to a constant of the shape it is given (from `Shape`, or a constant),
/// filled with its `value` (zero without one); a negative or huge shape is refused by name.
#[test]
fn constant_of_shape_folds_and_refuses_bad_shapes() {
    let two = tensor_attr("value", tensor("v", &[1], &[2.0]));
    let bytes = model(
        17,
        vec![
            node("Shape", &["x"], "s", vec![]),
            node("ConstantOfShape", &["s"], "c", vec![two]),
            node("Add", &["x", "c"], "y", vec![]),
        ],
        vec![],
        &[1, 4],
        "y",
    );
    let g = import(&bytes).unwrap();
    let y = float_exec::run(&g, &[Tensor::new(vec![1, 4], vec![0.0, 1.0, -1.0, 0.5])], 1).unwrap();
    assert_eq!(y[0].data, [2.0, 3.0, 1.0, 2.5]);
    let shape = |dims: &[i64]| proto::TensorProto {
        dims: vec![dims.len() as i64],
        data_type: proto::data_type::INT64,
        name: "shape".into(),
        raw_data: dims.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    };
    let of = |dims: &[i64]| {
        model(
            17,
            vec![
                node("ConstantOfShape", &["shape"], "c", vec![]),
                node("Add", &["x", "c"], "y", vec![]),
            ],
            vec![shape(dims)],
            &[1, 4],
            "y",
        )
    };
    let g = import(&of(&[1, 4])).unwrap();
    let y = float_exec::run(&g, &[Tensor::new(vec![1, 4], vec![1.0; 4])], 1).unwrap();
    assert_eq!(y[0].data, [1.0; 4]);
    assert!(err(&of(&[1, -4])).contains("ConstantOfShape of a negative size -4"));
    assert!(err(&of(&[1 << 20, 1 << 20])).contains("more than 268435456 elements"));
}

/// `Sum` of one, two or three operands (values and constants) is the identity, an Add or a chain of
/// them; of constants it folds.
#[test]
fn sum_adds_every_operand() {
    let x = vec![-2.0, -0.5, 0.5, 2.0];
    let cases: [(&[&str], Vec<f32>); 3] = [
        (&["x"], x.clone()),
        (&["x", "r"], x.iter().map(|&v| v + v.max(0.0)).collect()),
        (
            &["x", "r", "c"],
            x.iter().map(|&v| v + v.max(0.0) + 1.0).collect(),
        ),
    ];
    for (operands, want) in cases {
        let bytes = model(
            17,
            vec![
                node("Relu", &["x"], "r", vec![]),
                node("Sum", operands, "y", vec![]),
            ],
            vec![tensor("c", &[1], &[1.0])],
            &[1, 4],
            "y",
        );
        let mut g = import(&bytes).unwrap();
        crate::ir::passes::optimize(&mut g).unwrap();
        let y = float_exec::run(&g, &[Tensor::new(vec![1, 4], x.clone())], 1).unwrap();
        assert_eq!(y[0].data, want, "{operands:?}");
    }
    let folded = model(
        17,
        vec![
            node("Sum", &["c", "c", "c"], "s", vec![]),
            node("Add", &["x", "s"], "y", vec![]),
        ],
        vec![tensor("c", &[1], &[1.5])],
        &[1, 2],
        "y",
    );
    let g = import(&folded).unwrap();
    let y = float_exec::run(&g, &[Tensor::new(vec![1, 2], vec![0.0, 1.0])], 1).unwrap();
    assert_eq!(y[0].data, [4.5, 5.5]);
}

/// A `Dropout` mask output that nothing reads is left out; one the graph reads is refused.
#[test]
fn dropout_masks_nothing_reads_are_left_out() {
    let dropout = NodeProto {
        output: vec!["y".into(), "mask".into()],
        ..node("Dropout", &["x"], "y", vec![])
    };
    let g = import(&model(17, vec![dropout.clone()], vec![], &[1, 3], "y")).unwrap();
    let y = float_exec::run(&g, &[Tensor::new(vec![1, 3], vec![1.0, -2.0, 3.0])], 1).unwrap();
    assert_eq!(y[0].data, [1.0, -2.0, 3.0]);
    let read = model(
        17,
        vec![dropout, node("Add", &["y", "mask"], "z", vec![])],
        vec![],
        &[1, 3],
        "z",
    );
    assert!(err(&read).contains("Dropout's mask output is read by the graph"));
}

/// A grouped convolution (2 groups of 2 input channels, 3 output channels each, 3x3, padded)
/// imports as one convolution whose filter is zero outside the groups: the same outputs as the
/// grouped sum, computed here directly.
#[test]
fn grouped_convolution_is_a_block_diagonal_convolution() {
    let (c, m, groups, cg, hw) = (4usize, 6usize, 2usize, 2usize, 3usize);
    let w: Vec<f32> = (0..m * cg * 9)
        .map(|k| ((k * 7 % 11) as f32 - 5.0) / 4.0)
        .collect();
    let b: Vec<f32> = (0..m).map(|o| o as f32 / 8.0).collect();
    let bytes = model(
        17,
        vec![node(
            "Conv",
            &["x", "w", "b"],
            "y",
            vec![int("group", groups as i64), ints("pads", &[1, 1, 1, 1])],
        )],
        vec![
            tensor("w", &[m as i64, cg as i64, 3, 3], &w),
            tensor("b", &[m as i64], &b),
        ],
        &[1, c as i64, hw as i64, hw as i64],
        "y",
    );
    let g = import(&bytes).unwrap();
    assert!(matches!(&g.nodes[0].op, Op::Conv2d { filter, .. } if filter.shape == [m, 3, 3, c]));
    // NHWC input.
    let x: Vec<f32> = (0..hw * hw * c)
        .map(|k| ((k * 5 % 13) as f32 - 6.0) / 3.0)
        .collect();
    let y = float_exec::run(&g, &[Tensor::new(vec![1, hw, hw, c], x.clone())], 1).unwrap();
    for oy in 0..hw {
        for ox in 0..hw {
            for o in 0..m {
                let first = (o / (m / groups)) * cg;
                let mut want = b[o];
                for i in 0..cg {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = (oy + ky, ox + kx);
                            if iy == 0 || ix == 0 || iy > hw || ix > hw {
                                continue;
                            }
                            let xv = x[((iy - 1) * hw + ix - 1) * c + first + i];
                            want += xv * w[((o * cg + i) * 3 + ky) * 3 + kx];
                        }
                    }
                }
                let got = y[0].data[(oy * hw + ox) * m + o];
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{got} vs {want}"
                );
            }
        }
    }
}

/// The first axis of a graph input is the batch: a model exported with a fixed batch of 8 takes one
/// sample per inference, as one with a symbolic batch does.
#[test]
fn a_fixed_batch_becomes_one_sample() {
    let bytes = model(
        17,
        vec![
            node("Relu", &["x"], "r", vec![]),
            node("Flatten", &["r"], "y", vec![]),
        ],
        vec![],
        &[8, 2, 3, 1],
        "y",
    );
    let g = import(&bytes).unwrap();
    assert_eq!(g.values[g.inputs[0]].shape, [1, 3, 1, 2]);
    assert_eq!(g.values[g.outputs[0]].shape, [1, 6]);
}

/// An int64 initializer.
fn ints_tensor(name: &str, v: &[i64]) -> proto::TensorProto {
    proto::TensorProto {
        dims: vec![v.len() as i64],
        data_type: proto::data_type::INT64,
        name: name.into(),
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A 1-D convolution of a signal `[1, c, l]` computed directly (stride 1, `pad` zeros each side).
fn conv1d(x: &[f32], c: usize, l: usize, w: &[f32], m: usize, k: usize, pad: usize) -> Vec<f32> {
    let out = l + 2 * pad + 1 - k;
    let mut y = vec![0.0f32; m * out];
    for o in 0..m {
        for t in 0..out {
            for i in 0..c {
                for j in 0..k {
                    let at = (t + j) as isize - pad as isize;
                    if (0..l as isize).contains(&at) {
                        y[o * out + t] += w[(o * c + i) * k + j] * x[i * l + at as usize];
                    }
                }
            }
        }
    }
    y
}

/// A 1-D convolution over `[n, c, l]` (and the same one written as a 2-D convolution between
/// Unsqueeze(2) and Squeeze(2), as some exporters do) equals the direct computation, read and
/// written in the source's NCL order; the signal is the IR's image `[n, 1, l, c]`.
#[test]
fn one_d_convolutions_run_on_signals() {
    let (c, l, m, k) = (2usize, 5usize, 3usize, 3usize);
    let w: Vec<f32> = (0..m * c * k).map(|v| (v as f32 * 0.37).sin()).collect();
    let x: Vec<f32> = (0..c * l).map(|v| (v as f32 * 0.71).cos()).collect();
    let want = conv1d(&x, c, l, &w, m, k, 1);
    let direct = model(
        17,
        vec![node(
            "Conv",
            &["x", "w"],
            "y",
            vec![ints("pads", &[1, 1]), ints("kernel_shape", &[3])],
        )],
        vec![tensor("w", &[3, 2, 3], &w)],
        &[1, 2, 5],
        "y",
    );
    let lifted = model(
        17,
        vec![
            node("Unsqueeze", &["x", "axis"], "image", vec![]),
            node(
                "Conv",
                &["image", "w"],
                "conv",
                vec![ints("pads", &[0, 1, 0, 1])],
            ),
            node("Squeeze", &["conv", "axis"], "y", vec![]),
        ],
        vec![tensor("w", &[3, 2, 1, 3], &w), ints_tensor("axis", &[2])],
        &[1, 2, 5],
        "y",
    );
    for bytes in [direct, lifted] {
        let g = import(&bytes).unwrap();
        assert_eq!(g.values[g.inputs[0]].source, SourceLayout::Ncl);
        assert_eq!(g.values[g.inputs[0]].shape, [1, 1, 5, 2]);
        let input = crate::npy::Array::from_f32(vec![1, 2, 5], &x);
        let y = crate::ir::io::run_arrays(&g, &[input], 1).unwrap();
        assert_eq!(y[0].shape, [1, 3, 5]);
        for (got, want) in y[0].to_f32().iter().zip(&want) {
            assert!((got - want).abs() <= 1e-5, "{got} vs {want}");
        }
    }
}

/// A `[n, t, f]` input unsqueezed to the one-channel image `[n, 1, t, f]` (a spectrogram) stays a
/// sequence, not a signal; a 1-D operator cannot read a tensor computed in `[n, l, c]` order; and
/// 1-D attributes must have one value per axis.
#[test]
fn signals_and_sequences_are_told_apart() {
    let spectrogram = model(
        17,
        vec![
            node("Unsqueeze", &["x", "axis"], "image", vec![]),
            node("Conv", &["image", "w"], "y", vec![]),
        ],
        vec![
            tensor("w", &[2, 1, 3, 3], &[0.5; 18]),
            ints_tensor("axis", &[1]),
        ],
        &[1, 6, 5],
        "y",
    );
    let g = import(&spectrogram).unwrap();
    assert_eq!(g.values[g.inputs[0]].source, SourceLayout::Same);
    assert_eq!(g.values[g.outputs[0]].shape, [1, 4, 3, 2]);
    // [n, l, c] transposed to [n, c, l] is the IR's signal as it is.
    let transposed = model(
        17,
        vec![
            node("Transpose", &["x"], "t", vec![ints("perm", &[0, 2, 1])]),
            node("Conv", &["t", "w"], "y", vec![]),
        ],
        vec![tensor("w", &[2, 6, 3], &[0.5; 36])],
        &[1, 5, 6],
        "y",
    );
    let g = import(&transposed).unwrap();
    assert!(matches!(g.nodes[0].op, Op::Reshape { ref shape } if shape == &[1, 1, 5, 6]));
    assert_eq!(g.values[g.outputs[0]].shape, [1, 1, 3, 2]);
    let per_step = model(
        17,
        vec![
            node("MatMul", &["x", "w0"], "t", vec![]),
            node("Conv", &["t", "w"], "y", vec![]),
        ],
        vec![
            tensor("w0", &[6, 4], &[0.5; 24]),
            tensor("w", &[2, 5, 3], &[0.5; 30]),
        ],
        &[1, 5, 6],
        "y",
    );
    assert!(
        err(&per_step).contains("was computed in a [n, l, c] order"),
        "{}",
        err(&per_step)
    );
    let bad_pads = model(
        17,
        vec![node(
            "Conv",
            &["x", "w"],
            "y",
            vec![ints("pads", &[1, 1, 1, 1])],
        )],
        vec![tensor("w", &[2, 2, 3], &[0.5; 12])],
        &[1, 2, 5],
        "y",
    );
    assert!(
        err(&bad_pads).contains("pads [1, 1, 1, 1] for a 1-D input (2 value(s) expected)"),
        "{}",
        err(&bad_pads)
    );
}

/// Element-wise functions import as one table operator with their attributes (ONNX defaults when
/// absent); attributes they cannot take are refused by name.
#[test]
fn table_functions_take_their_attributes() {
    let one = |op: &str, attrs: Vec<proto::AttributeProto>| {
        model(17, vec![node(op, &["x"], "y", attrs)], vec![], &[1, 4], "y")
    };
    let f = |bytes: &[u8]| match &import(bytes).unwrap().nodes[0].op {
        Op::Lookup { f } => *f,
        other => panic!("{other:?}"),
    };
    assert_eq!(f(&one("Elu", vec![])), UnaryFn::Elu { alpha: 1.0 });
    assert_eq!(
        f(&one("Selu", vec![])),
        UnaryFn::Selu {
            alpha: 1.673_263_2,
            gamma: 1.050_701
        }
    );
    assert_eq!(
        f(&one("Shrink", vec![float_attr("lambd", 0.25)])),
        UnaryFn::Shrink {
            bias: 0.0,
            lambd: 0.25
        }
    );
    let gelu = |approximate: &str| {
        let a = proto::AttributeProto {
            name: "approximate".into(),
            s: approximate.as_bytes().to_vec(),
            r#type: proto::attribute_type::STRING,
            ..Default::default()
        };
        model(
            20,
            vec![node("Gelu", &["x"], "y", vec![a])],
            vec![],
            &[1, 4],
            "y",
        )
    };
    assert_eq!(f(&gelu("tanh")), UnaryFn::Gelu { tanh: true });
    assert!(err(&gelu("erf")).contains("Gelu approximate `erf` (none or tanh)"));
    let celu = one("Celu", vec![float_attr("alpha", 0.0)]);
    assert!(err(&celu).contains("Celu alpha 0"), "{}", err(&celu));
    let elu = one("Elu", vec![float_attr("alpha", f32::INFINITY)]);
    assert!(err(&elu).contains("Elu with a non-finite attribute"));
}

/// ReduceMean over one spatial axis of an NCHW image is an average pool across it: over H kept as
/// `[n, c, 1, w]`, over W dropped to the signal `[n, c, h]`; both equal the direct means.
#[test]
fn a_mean_over_one_spatial_axis_is_a_pool() {
    let x: Vec<f32> = (0..2 * 3 * 4).map(|v| (v as f32 * 0.3).sin()).collect();
    // x[c][y][w] in NCHW, shape [1, 2, 3, 4].
    let at = |c: usize, y: usize, w: usize| x[(c * 3 + y) * 4 + w];
    for (axis, keep, dims) in [(2, 1, vec![1, 2, 1, 4]), (3, 0, vec![1, 2, 3])] {
        let bytes = model(
            17,
            vec![node(
                "ReduceMean",
                &["x"],
                "y",
                vec![ints("axes", &[axis]), int("keepdims", keep)],
            )],
            vec![],
            &[1, 2, 3, 4],
            "y",
        );
        let g = import(&bytes).unwrap();
        assert!(matches!(g.nodes[0].op, Op::AveragePool2d { .. }));
        let input = crate::npy::Array::from_f32(vec![1, 2, 3, 4], &x);
        let y = crate::ir::io::run_arrays(&g, &[input], 1).unwrap();
        assert_eq!(y[0].shape, dims);
        let want: Vec<f32> = if axis == 2 {
            (0..2)
                .flat_map(|c| (0..4).map(move |w| (0..3).map(|y| at(c, y, w)).sum::<f32>() / 3.0))
                .collect()
        } else {
            (0..2)
                .flat_map(|c| (0..3).map(move |y| (0..4).map(|w| at(c, y, w)).sum::<f32>() / 4.0))
                .collect()
        };
        for (got, want) in y[0].to_f32().iter().zip(&want) {
            assert!((got - want).abs() < 1e-6, "axis {axis}: {got} vs {want}");
        }
    }
}

/// Slices and splits they cannot express are refused by name: steps other than 1, the batch axis,
/// split sizes that do not add up to the axis.
#[test]
fn unsupported_slices_and_splits_are_named() {
    let slice = |starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]| {
        model(
            13,
            vec![node("Slice", &["x", "s", "e", "a", "t"], "y", vec![])],
            vec![
                ints_tensor("s", starts),
                ints_tensor("e", ends),
                ints_tensor("a", axes),
                ints_tensor("t", steps),
            ],
            &[1, 2, 3, 4],
            "y",
        )
    };
    let e = err(&slice(&[0], &[4], &[3], &[2]));
    assert!(
        e.contains("Slice with steps [2] (only steps of 1 are supported)"),
        "{e}"
    );
    let e = err(&slice(&[1], &[2], &[0], &[1]));
    assert!(e.contains("Slice along the batch"), "{e}");
    let g = import(&slice(&[1, -3], &[2, i64::MAX], &[1, 3], &[1, 1])).unwrap();
    let Op::Slice { begin, size } = &g.nodes[0].op else {
        panic!("{:?}", g.nodes[0].op)
    };
    // NCHW axes 1 (C) and 3 (W) are the IR's 3 and 2.
    assert_eq!(
        (begin.as_slice(), size.as_slice()),
        (&[0, 0, 1, 1][..], &[1, 3, 3, 1][..])
    );
    let split = model(
        13,
        vec![node("Split", &["x", "sizes"], "y", vec![int("axis", 1)])],
        vec![ints_tensor("sizes", &[1, 2])],
        &[1, 2, 3, 4],
        "y",
    );
    let e = err(&split);
    assert!(
        e.contains("Split of axis 1 (2 elements) into [1, 2] for 1 outputs"),
        "{e}"
    );
}

/// ReduceSum and ReduceMax over spatial axes equal the direct sums and maxima: over H and W of an
/// image (dimensions dropped), over W kept, and over the steps of an `[n, l, c]` sequence.
#[test]
fn sums_and_maxima_over_spatial_axes() {
    let x: Vec<f32> = (0..2 * 3 * 4).map(|v| (v as f32 * 0.7).cos()).collect();
    // NCHW [1, 2, 3, 4]: x[c][y][w]; as a sequence [1, 6, 4]: x[t][f] at t * 4 + f.
    let at = |c: usize, y: usize, w: usize| x[(c * 3 + y) * 4 + w];
    let max = |v: &mut dyn Iterator<Item = f32>| v.fold(f32::MIN, f32::max);
    // Operator, axes, keepdims, input dims, output dims, expected values.
    type Case<'a> = (&'a str, &'a [i64], i64, &'a [i64], Vec<usize>, Vec<f32>);
    let cases: Vec<Case> = vec![
        (
            "ReduceSum",
            &[2, 3],
            0,
            &[1, 2, 3, 4],
            vec![1, 2],
            (0..2)
                .map(|c| {
                    (0..3)
                        .flat_map(|y| (0..4).map(move |w| (y, w)))
                        .map(|(y, w)| at(c, y, w))
                        .sum()
                })
                .collect(),
        ),
        (
            "ReduceMax",
            &[3],
            1,
            &[1, 2, 3, 4],
            vec![1, 2, 3, 1],
            (0..2)
                .flat_map(|c| (0..3).map(move |y| (c, y)))
                .map(|(c, y)| max(&mut (0..4).map(|w| at(c, y, w))))
                .collect(),
        ),
        (
            "ReduceMax",
            &[1],
            0,
            &[1, 6, 4],
            vec![1, 4],
            (0..4)
                .map(|f| max(&mut (0..6).map(|t| x[t * 4 + f])))
                .collect(),
        ),
    ];
    for (op, axes, keep, dims, out, want) in cases {
        let bytes = model(
            13,
            vec![node(
                op,
                &["x"],
                "y",
                vec![ints("axes", axes), int("keepdims", keep)],
            )],
            vec![],
            dims,
            "y",
        );
        let g = import(&bytes).unwrap();
        let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
        let input = crate::npy::Array::from_f32(shape, &x);
        let y = crate::ir::io::run_arrays(&g, &[input], 1).unwrap();
        assert_eq!(y[0].shape, out, "{op} {axes:?}");
        for (got, want) in y[0].to_f32().iter().zip(&want) {
            assert!((got - want).abs() < 1e-5, "{op} {axes:?}: {got} vs {want}");
        }
    }
}

/// A Transpose of a constant folds at import: a weight transposed before a MatMul (older PyTorch
/// exports of `Linear`) gives `x W^T`; a rank-3 permutation moves each element where the
/// permutation says.
#[test]
fn transposes_of_constants_fold() {
    let w: Vec<f32> = (0..6).map(|v| v as f32).collect(); // W [3, 2]: W[o][i] = 2 o + i
    let bytes = model(
        13,
        vec![
            node("Transpose", &["w"], "wt", vec![ints("perm", &[1, 0])]),
            node("MatMul", &["x", "wt"], "y", vec![]),
        ],
        vec![tensor("w", &[3, 2], &w)],
        &[1, 2],
        "y",
    );
    let g = import(&bytes).unwrap();
    let y = float_exec::run(&g, &[Tensor::new(vec![1, 2], vec![1.0, 10.0])], 1).unwrap();
    // y[o] = x0 W[o][0] + x1 W[o][1] = 2 o + 10 (2 o + 1).
    assert_eq!(y[0].data, [10.0, 32.0, 54.0]);
    let c = tensor::Const {
        dims: vec![2, 3, 4],
        data: tensor::Data::I64((0..24).collect()),
    };
    let t = tensor::transpose(&c, &[2, 0, 1]).unwrap();
    assert_eq!(t.dims, [4, 2, 3]);
    let v = t.i64().unwrap();
    for a in 0..2 {
        for b in 0..3 {
            for k in 0..4 {
                // t[k][a][b] = c[a][b][k].
                assert_eq!(v[(k * 2 + a) * 3 + b], ((a * 3 + b) * 4 + k) as i64);
            }
        }
    }
    assert!(tensor::transpose(&c, &[0, 0, 1]).is_err());
}

/// A transposed convolution of an NCHW image `[1, c, h, w]` computed directly, scattering each input
/// pixel through the kernel: weight `[c, cg, kh, kw]` in `groups` groups, output `[m, oh, ow]`.
#[allow(clippy::too_many_arguments)]
fn conv_transpose_2d(
    x: &[f32],
    [c, h, w]: [usize; 3],
    wt: &[f32],
    (cg, groups): (usize, usize),
    k: [usize; 2],
    s: [usize; 2],
    [top, left]: [isize; 2],
    [oh, ow]: [usize; 2],
    bias: &[f32],
) -> Vec<f32> {
    let m = cg * groups;
    let mut y: Vec<f32> = (0..m * oh * ow).map(|i| bias[i / (oh * ow)]).collect();
    for ci in 0..c {
        let group = ci / (c / groups);
        for iy in 0..h {
            for ix in 0..w {
                for ol in 0..cg {
                    let o = group * cg + ol;
                    for th in 0..k[0] {
                        for tw in 0..k[1] {
                            let oy = (iy * s[0] + th) as isize - top;
                            let ox = (ix * s[1] + tw) as isize - left;
                            if (0..oh as isize).contains(&oy) && (0..ow as isize).contains(&ox) {
                                y[(o * oh + oy as usize) * ow + ox as usize] += x
                                    [(ci * h + iy) * w + ix]
                                    * wt[((ci * cg + ol) * k[0] + th) * k[1] + tw];
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

/// The one-output model `bytes` imports and, run in float on `input`, gives `want` of shape `out`.
fn assert_imports_and_runs(
    bytes: &[u8],
    input: crate::npy::Array,
    out: &[usize],
    want: &[f32],
    what: &str,
) {
    let g = import(bytes).unwrap();
    let y = crate::ir::io::run_arrays(&g, &[input], 1).unwrap();
    assert_eq!(y[0].shape, out, "{what}");
    for (got, want) in y[0].to_f32().iter().zip(want) {
        assert!((got - want).abs() <= 1e-5, "{what}: {got} vs {want}");
    }
}

fn string_attr(name: &str, v: &str) -> proto::AttributeProto {
    proto::AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        r#type: at::STRING,
        ..Default::default()
    }
}

/// ConvTranspose (a convolution over the phases, DepthToSpace and a crop) equals the direct
/// scatter on 2-D and 1-D inputs: uneven strides and kernels, groups, asymmetric pads, output
/// padding, kernels smaller than the stride (outputs no input reaches are the bias), an explicit
/// output_shape with SAME_LOWER, and one beyond the natural size (negative pads) with SAME_UPPER.
#[test]
fn transposed_convolutions_equal_the_direct_scatter() {
    struct Case {
        c: usize,
        hw: [usize; 2],
        cg: usize,
        groups: usize,
        k: [usize; 2],
        s: [usize; 2],
        attrs: Vec<proto::AttributeProto>,
        // Leading pads and output size the attributes mean, as ONNX defines them.
        lead: [isize; 2],
        out: [usize; 2],
    }
    let cases = [
        Case {
            c: 4,
            hw: [3, 4],
            cg: 3,
            groups: 2,
            k: [3, 2],
            s: [2, 3],
            attrs: vec![
                ints("strides", &[2, 3]),
                ints("pads", &[1, 0, 0, 1]),
                ints("output_padding", &[1, 2]),
                int("group", 2),
            ],
            lead: [1, 0],
            // 2 * 2 + 1 + 3 - 1 = 7, 3 * 3 + 2 + 2 - 1 = 12.
            out: [7, 12],
        },
        Case {
            c: 2,
            hw: [3, 3],
            cg: 2,
            groups: 1,
            k: [1, 1],
            s: [2, 2],
            attrs: vec![ints("strides", &[2, 2])],
            lead: [0, 0],
            out: [5, 5],
        },
        Case {
            c: 3,
            hw: [2, 3],
            cg: 2,
            groups: 1,
            k: [3, 3],
            s: [2, 2],
            attrs: vec![
                ints("strides", &[2, 2]),
                ints("output_shape", &[4, 6]),
                string_attr("auto_pad", "SAME_LOWER"),
            ],
            // Total padding 2 * 1 + 3 - 4 = 1 and 2 * 2 + 3 - 6 = 1, the odd one first.
            lead: [1, 1],
            out: [4, 6],
        },
        Case {
            c: 1,
            hw: [3, 3],
            cg: 2,
            groups: 1,
            k: [3, 3],
            s: [3, 2],
            attrs: vec![
                ints("strides", &[3, 2]),
                ints("output_shape", &[11, 8]),
                string_attr("auto_pad", "SAME_UPPER"),
            ],
            // Total padding 3 * 2 + 3 - 11 = -2 and 2 * 2 + 3 - 8 = -1, halved by floor division.
            lead: [-1, -1],
            out: [11, 8],
        },
    ];
    for (i, t) in cases.iter().enumerate() {
        let m = t.cg * t.groups;
        let wn = t.c * t.cg * t.k[0] * t.k[1];
        let wt: Vec<f32> = (0..wn).map(|v| (v as f32 * 0.37).sin()).collect();
        let bias: Vec<f32> = (0..m).map(|v| v as f32 * 0.1 - 0.2).collect();
        let x: Vec<f32> = (0..t.c * t.hw[0] * t.hw[1])
            .map(|v| (v as f32 * 0.71).cos())
            .collect();
        let want = conv_transpose_2d(
            &x,
            [t.c, t.hw[0], t.hw[1]],
            &wt,
            (t.cg, t.groups),
            t.k,
            t.s,
            t.lead,
            t.out,
            &bias,
        );
        let dims = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<_>>();
        let bytes = model(
            17,
            vec![node(
                "ConvTranspose",
                &["x", "w", "b"],
                "y",
                t.attrs.clone(),
            )],
            vec![
                tensor("w", &dims(&[t.c, t.cg, t.k[0], t.k[1]]), &wt),
                tensor("b", &[m as i64], &bias),
            ],
            &dims(&[1, t.c, t.hw[0], t.hw[1]]),
            "y",
        );
        let input = crate::npy::Array::from_f32(vec![1, t.c, t.hw[0], t.hw[1]], &x);
        let out = [1, m, t.out[0], t.out[1]];
        assert_imports_and_runs(&bytes, input, &out, &want, &format!("case {i}"));
    }
    // 1-D: kernel 4, stride 2, pads 1 (the doubling of 1-D decoders), output 2 * 4 + 4 - 2 = 10.
    let (c, l, m) = (2usize, 5usize, 3usize);
    let wt: Vec<f32> = (0..c * m * 4).map(|v| (v as f32 * 0.37).sin()).collect();
    let x: Vec<f32> = (0..c * l).map(|v| (v as f32 * 0.71).cos()).collect();
    let want = conv_transpose_2d(
        &x,
        [c, 1, l],
        &wt,
        (m, 1),
        [1, 4],
        [1, 2],
        [0, 1],
        [1, 10],
        &[0.0; 3],
    );
    let bytes = model(
        17,
        vec![node(
            "ConvTranspose",
            &["x", "w"],
            "y",
            vec![ints("strides", &[2]), ints("pads", &[1, 1])],
        )],
        vec![tensor("w", &[2, 3, 4], &wt)],
        &[1, 2, 5],
        "y",
    );
    let input = crate::npy::Array::from_f32(vec![1, c, l], &x);
    assert_imports_and_runs(&bytes, input, &[1, 3, 10], &want, "1-D");
}

/// What ConvTranspose cannot run is named: dilations, output padding not below the stride, pads
/// that leave no output.
#[test]
fn unsupported_transposed_convolutions_are_named() {
    let with = |attrs: Vec<proto::AttributeProto>| {
        model(
            17,
            vec![node("ConvTranspose", &["x", "w"], "y", attrs)],
            vec![tensor("w", &[2, 2, 3, 3], &[0.5; 36])],
            &[1, 2, 4, 4],
            "y",
        )
    };
    assert!(err(&with(vec![ints("dilations", &[2, 2])])).contains("dilations [2, 2]"));
    let e = err(&with(vec![
        ints("strides", &[2, 2]),
        ints("output_padding", &[2, 0]),
    ]));
    assert!(e.contains("output_padding [2, 0]"), "{e}");
    let e = err(&with(vec![ints("pads", &[5, 0, 5, 0])]));
    assert!(e.contains("an empty output along spatial axis 0"), "{e}");
}

/// Flatten's negative axis counts from the back of the input's rank: -3 of a 4-D input keeps the
/// batch, -4 would join it (refused), and -1 of a 2-D input is axis 1.
#[test]
fn flatten_negative_axes_count_from_the_back() {
    let flatten = |shape: &[i64], axis: i64| {
        model(
            17,
            vec![node("Flatten", &["x"], "y", vec![int("axis", axis)])],
            vec![],
            shape,
            "y",
        )
    };
    let g = import(&flatten(&[1, 3, 4, 5], -3)).unwrap();
    assert_eq!(crate::ir::io::source_dims(&g, g.outputs[0]), [1, 60]);
    assert!(err(&flatten(&[1, 3, 4, 5], -4)).contains("Flatten with axis 0"));
    assert!(err(&flatten(&[1, 3, 4, 5], -5)).contains("out of range"));
    let g = import(&flatten(&[1, 12], -1)).unwrap();
    assert_eq!(crate::ir::io::source_dims(&g, g.outputs[0]), [1, 12]);
}

/// The batch is run a sample at a time: slicing it or putting a dimension before it is refused by
/// name, where it used to be read as a no-op or a reshape.
#[test]
fn slicing_the_batch_or_unsqueezing_before_it_is_refused() {
    let slice = |starts: &[i64], ends: &[i64], axes: &[i64]| {
        model(
            17,
            vec![node("Slice", &["x", "s", "e", "a"], "y", vec![])],
            vec![
                ints_tensor("s", starts),
                ints_tensor("e", ends),
                ints_tensor("a", axes),
            ],
            &[1, 10, 5],
            "y",
        )
    };
    assert!(
        err(&slice(&[0, 0], &[3, 10], &[0, 1])).contains("Slice along the batch axis from 0 to 3")
    );
    // The whole batch (to the end, or to 1: a batch of one), and any other axis, still slice.
    assert!(import(&slice(&[0, 2], &[1, 7], &[0, 1])).is_ok());
    let g = import(&slice(&[0, 2], &[i64::MAX, 7], &[0, 1])).unwrap();
    assert_eq!(crate::ir::io::source_dims(&g, g.outputs[0]), [1, 5, 5]);
    let unsqueeze = |axis: i64| {
        model(
            17,
            vec![node("Unsqueeze", &["x", "a"], "y", vec![])],
            vec![ints_tensor("a", &[axis])],
            &[1, 4, 5],
            "y",
        )
    };
    assert!(err(&unsqueeze(0)).contains("Unsqueeze at axis 0"));
    assert!(err(&unsqueeze(-4)).contains("Unsqueeze at axis 0"));
    let g = import(&unsqueeze(1)).unwrap();
    assert_eq!(crate::ir::io::source_dims(&g, g.outputs[0]), [1, 1, 4, 5]);
}

/// `Pow` by a constant: integer powers become tables, 0.5 a square root, 1 nothing; other
/// exponents are refused, naming the exponent.
#[test]
fn powers_by_a_constant_import_as_functions() {
    let pow = |e: f32| {
        model(
            13,
            vec![node("Pow", &["x", "e"], "y", vec![])],
            vec![tensor("e", &[], &[e])],
            &[1, 4],
            "y",
        )
    };
    let x = Tensor::new(vec![1, 4], vec![-2.0, -0.5, 1.5, 3.0]);
    for (e, want) in [
        (3.0, vec![-8.0, -0.125, 3.375, 27.0]),
        (2.0, vec![4.0, 0.25, 2.25, 9.0]),
        (1.0, vec![-2.0, -0.5, 1.5, 3.0]),
    ] {
        let g = import(&pow(e)).unwrap();
        let y = float_exec::run(&g, std::slice::from_ref(&x), 1).unwrap();
        assert_eq!(y[0].data, want, "Pow by {e}");
        // Written back as ONNX (`Pow` by a constant exponent) and read again: the same function.
        let again = import(&crate::export::float_onnx(&g).unwrap()).unwrap();
        let y = float_exec::run(&again, std::slice::from_ref(&x), 1).unwrap();
        assert_eq!(y[0].data, want, "Pow by {e}, exported");
    }
    let g = import(&pow(0.5)).unwrap();
    assert_eq!(g.nodes[0].op, Op::Lookup { f: UnaryFn::Sqrt });
    assert!(err(&pow(2.5)).contains("Pow by 2.5 (integer exponents from 2 to 8"));
    assert!(err(&pow(-1.0)).contains("Pow by -1"));
    // An exponent that would broadcast the input to a larger shape.
    let wider = model(
        13,
        vec![node("Pow", &["x", "e"], "y", vec![])],
        vec![tensor("e", &[2, 1], &[2.0, 2.0])],
        &[1, 4],
        "y",
    );
    assert!(err(&wider).contains("Pow by an exponent of shape [2, 1]"));
}

/// Runs the imported graph on an NCHW input of `dims` holding 0, 1, 2... and returns the output
/// in ONNX order, with the graph's node operators.
fn run_onnx_order(bytes: &[u8], dims: &[usize]) -> (Vec<f32>, Vec<Op>) {
    let g = import(bytes).unwrap();
    let total: usize = dims.iter().product();
    let x: Vec<f32> = (0..total).map(|v| v as f32).collect();
    let input = g.inputs[0];
    let ir = g.values[input].shape.clone();
    let at = moves::onnx_to_ir(g.values[input].source, &ir);
    let mut data = vec![0.0; total];
    for (i, &to) in at.iter().enumerate() {
        data[to as usize] = x[i];
    }
    let y = float_exec::run(&g, &[Tensor::new(ir, data)], 1).unwrap();
    let out = g.outputs[0];
    let at = moves::onnx_to_ir(g.values[out].source, &g.values[out].shape);
    let ops = g.nodes.iter().map(|n| n.op.clone()).collect();
    (at.iter().map(|&i| y[0].data[i as usize]).collect(), ops)
}

/// Nearest upsampling written as Keras writes it (tf2onnx: Unsqueeze, Tile, Transpose, Reshape
/// through rank-5 tensors, once per axis) and as PyTorch code writes it by hand (Unsqueeze twice,
/// Expand, Reshape) becomes one RESIZE_NEAREST_NEIGHBOR; the values are ONNX's.
#[test]
fn upsampling_by_tile_and_expand_becomes_one_resize() {
    // NCHW [1, 2, 2, 3] -> rows repeated twice through NHWC rank-5 tensors, then back to NCHW.
    let keras = model(
        13,
        vec![
            node("Unsqueeze", &["x", "ax3"], "u", vec![]),
            node("Tile", &["u", "reps"], "t", vec![]),
            node(
                "Transpose",
                &["t"],
                "p",
                vec![ints("perm", &[0, 2, 3, 4, 1])],
            ),
            node("Reshape", &["p", "nhwc"], "r", vec![]),
            node("Transpose", &["r"], "y", vec![ints("perm", &[0, 3, 1, 2])]),
        ],
        vec![
            ints_tensor("ax3", &[3]),
            ints_tensor("reps", &[1, 1, 1, 2, 1]),
            ints_tensor("nhwc", &[1, 4, 3, 2]),
        ],
        &[1, 2, 2, 3],
        "y",
    );
    let (y, ops) = run_onnx_order(&keras, &[1, 2, 2, 3]);
    assert_eq!(ops, [Op::ResizeNearest { size: [4, 3] }]);
    // Channel 0 holds rows (0 1 2) and (3 4 5): each row twice.
    assert_eq!(y[..12], [0., 1., 2., 0., 1., 2., 3., 4., 5., 3., 4., 5.]);
    // x[:, :, :, None, :, None].expand(1, 2, 2, 2, 3, 2).reshape(1, 2, 4, 6).
    let torch = model(
        13,
        vec![
            node("Unsqueeze", &["x", "axes"], "u", vec![]),
            node("Expand", &["u", "to"], "e", vec![]),
            node("Reshape", &["e", "out"], "y", vec![]),
        ],
        vec![
            ints_tensor("axes", &[3, 5]),
            ints_tensor("to", &[1, 2, 2, 2, 3, 2]),
            ints_tensor("out", &[1, 2, 4, 6]),
        ],
        &[1, 2, 2, 3],
        "y",
    );
    let (y, ops) = run_onnx_order(&torch, &[1, 2, 2, 3]);
    assert_eq!(ops, [Op::ResizeNearest { size: [4, 6] }]);
    assert_eq!(y[..6], [0., 0., 1., 1., 2., 2.]);
    assert_eq!(y[12..18], [3., 3., 4., 4., 5., 5.]);
}

/// PyTorch's PixelShuffle as older exporters write it (Reshape to rank 6, Transpose, Reshape)
/// becomes DEPTH_TO_SPACE in ONNX's CRD order; the values are ONNX's.
#[test]
fn pixel_shuffle_through_rank_6_becomes_depth_to_space() {
    let bytes = model(
        13,
        vec![
            node("Reshape", &["x", "split"], "r", vec![]),
            node(
                "Transpose",
                &["r"],
                "t",
                vec![ints("perm", &[0, 1, 4, 2, 5, 3])],
            ),
            node("Reshape", &["t", "out"], "y", vec![]),
        ],
        vec![
            ints_tensor("split", &[1, 2, 2, 2, 2, 3]),
            ints_tensor("out", &[1, 2, 4, 6]),
        ],
        &[1, 8, 2, 3],
        "y",
    );
    let (y, ops) = run_onnx_order(&bytes, &[1, 8, 2, 3]);
    assert_eq!(
        ops,
        [Op::DepthToSpace {
            block: [2, 2],
            crd: true
        }]
    );
    // Output (c, y, x) reads input channel c * 4 + (y % 2) * 2 + x % 2 at (y / 2, x / 2).
    let want: Vec<f32> = (0..2 * 4 * 6)
        .map(|i| {
            let (c, y, x) = (i / 24, (i / 6) % 4, i % 6);
            (((c * 4 + (y % 2) * 2 + x % 2) * 2 + y / 2) * 3 + x / 2) as f32
        })
        .collect();
    assert_eq!(y, want);
}

/// ShuffleNet's channel shuffle (Reshape to rank 5, Transpose, Reshape) becomes one TRANSPOSE of
/// each pixel's channels between two reshapes; the values are ONNX's.
#[test]
fn a_channel_shuffle_becomes_a_transpose() {
    let shuffle = model(
        13,
        vec![
            node("Reshape", &["x", "groups"], "r", vec![]),
            node(
                "Transpose",
                &["r"],
                "t",
                vec![ints("perm", &[0, 2, 1, 3, 4])],
            ),
            node("Reshape", &["t", "back"], "y", vec![]),
        ],
        vec![
            ints_tensor("groups", &[1, 2, 3, 2, 2]),
            ints_tensor("back", &[1, 6, 2, 2]),
        ],
        &[1, 6, 2, 2],
        "y",
    );
    let (y, ops) = run_onnx_order(&shuffle, &[1, 6, 2, 2]);
    assert_eq!(
        ops,
        [
            Op::Reshape {
                shape: vec![1, 4, 2, 3]
            },
            Op::Transpose {
                perm: vec![0, 1, 3, 2]
            },
            Op::Reshape {
                shape: vec![1, 2, 2, 6]
            },
        ]
    );
    // Output channel j is input channel (j % 2) * 3 + j / 2; each channel holds 4 pixels.
    let want: Vec<f32> = (0..24)
        .map(|i| {
            let (j, p) = (i / 4, i % 4);
            (((j % 2) * 3 + j / 2) * 4 + p) as f32
        })
        .collect();
    assert_eq!(y, want);
}

/// A movement that no operator computes (each channel twice, by Tile) is refused where it is read,
/// naming the operators followed; one that moves the batch is refused at its node.
#[test]
fn movements_no_operator_computes_are_refused_by_name() {
    let twice = model(
        13,
        vec![
            node("Unsqueeze", &["x", "ax"], "u", vec![]),
            node("Tile", &["u", "reps"], "t", vec![]),
            node("Reshape", &["t", "back"], "s", vec![]),
            node("Relu", &["s"], "y", vec![]),
        ],
        vec![
            ints_tensor("ax", &[2]),
            ints_tensor("reps", &[1, 1, 2, 1, 1]),
            ints_tensor("back", &[1, 8, 3, 3]),
        ],
        &[1, 4, 3, 3],
        "y",
    );
    let e = err(&twice);
    assert!(
        e.contains("node `Relu_y` (Relu)")
            && e.contains("Unsqueeze `Unsqueeze_u`, Tile `Tile_t`, Reshape `Reshape_s`")
            && e.contains("no supported operator computes"),
        "{e}"
    );
    let batch = model(
        13,
        vec![
            node("Unsqueeze", &["x", "ax"], "u", vec![]),
            node("Tile", &["u", "reps"], "y", vec![]),
        ],
        vec![
            ints_tensor("ax", &[2]),
            ints_tensor("reps", &[2, 1, 1, 1, 1]),
        ],
        &[1, 4, 3, 3],
        "y",
    );
    let e = err(&batch);
    assert!(e.contains("moves the batch dimension"), "{e}");
}

/// Softmax and LogSoftmax over an axis other than the channels (opset 13) run over the last IR
/// axis between two TRANSPOSEs; the values are ONNX's. Before opset 13 (the trailing axes
/// flattened) and over the batch they are refused.
#[test]
fn softmax_over_another_axis_runs_between_transposes() {
    let softmax = |opset: i64, op: &str, axis: i64| {
        model(
            opset,
            vec![node(op, &["x"], "y", vec![int("axis", axis)])],
            vec![],
            &[1, 2, 3, 2],
            "y",
        )
    };
    let (y, ops) = run_onnx_order(&softmax(13, "Softmax", 2), &[1, 2, 3, 2]);
    assert!(
        matches!(
            &ops[..],
            [
                Op::Transpose { .. },
                Op::Softmax { .. },
                Op::Transpose { .. }
            ]
        ),
        "{ops:?}"
    );
    // x[c, h, w] = 6 c + 2 h + w: over h the values step by 2.
    let e = |k: f32| (2.0 * k).exp();
    let sum = e(0.0) + e(1.0) + e(2.0);
    for (i, &v) in y.iter().enumerate() {
        let h = (i / 2) % 3;
        assert!((v - e(h as f32) / sum).abs() < 1e-6, "{i}: {v}");
    }
    let (y, _) = run_onnx_order(&softmax(13, "LogSoftmax", 3), &[1, 2, 3, 2]);
    let log_sum = (1f32 + 1f32.exp()).ln();
    assert!((y[1] - (1.0 - log_sum)).abs() < 1e-6, "{y:?}");
    assert!(err(&softmax(11, "Softmax", 2)).contains("from opset 13 any axis"));
    assert!(err(&softmax(13, "Softmax", 0)).contains("any axis but the batch"));
}

/// A 1-D signal's channel shuffle stays a signal (a 1-D convolution reads it): here a 1x1
/// convolution with the identity as weights shows the shuffled channels.
#[test]
fn a_signal_channel_shuffle_feeds_a_1d_convolution() {
    let eye: Vec<f32> = (0..16)
        .map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })
        .collect();
    let bytes = model(
        13,
        vec![
            node("Conv", &["x", "w"], "c", vec![]),
            node("Reshape", &["c", "groups"], "r", vec![]),
            node("Transpose", &["r"], "t", vec![ints("perm", &[0, 2, 1, 3])]),
            node("Reshape", &["t", "back"], "s", vec![]),
            node("Conv", &["s", "w"], "y", vec![]),
        ],
        vec![
            tensor("w", &[4, 4, 1], &eye),
            ints_tensor("groups", &[1, 2, 2, 5]),
            ints_tensor("back", &[1, 4, 5]),
        ],
        &[1, 4, 5],
        "y",
    );
    let (y, ops) = run_onnx_order(&bytes, &[1, 4, 5]);
    assert!(
        ops.iter().any(|o| matches!(o, Op::Transpose { .. })),
        "{ops:?}"
    );
    // Output channel j is input channel (j % 2) * 2 + j / 2: channels 0, 2, 1, 3.
    let want: Vec<f32> = [0, 2, 1, 3]
        .iter()
        .flat_map(|&c| (0..5).map(move |l| (c * 5 + l) as f32))
        .collect();
    assert_eq!(y, want);
}

/// Weights stored outside the model (PyTorch's exporter writes them to `<model>.onnx.data`) are
/// read from the file the tensor names beside the model; a location outside its directory, or
/// bytes beyond the file's end, are refused.
#[test]
fn external_data_is_read_from_beside_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let weights: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let mut data = vec![0u8; 16];
    data.extend(weights.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(dir.path().join("m.onnx.data"), &data).unwrap();
    let external = |location: &str, offset: &str, length: &str| {
        let mut t = tensor("w", &[4, 2], &[]);
        t.data_location = 1;
        for (key, value) in [
            ("location", location),
            ("offset", offset),
            ("length", length),
        ] {
            t.external_data.push(super::proto::StringStringEntryProto {
                key: key.into(),
                value: value.into(),
            });
        }
        let bytes = model(
            17,
            vec![node("MatMul", &["x", "w"], "y", vec![])],
            vec![t],
            &[1, 4],
            "y",
        );
        let path = dir.path().join("m.onnx");
        std::fs::write(&path, bytes).unwrap();
        load(&path)
    };
    let g = external("m.onnx.data", "16", "32").unwrap();
    let x = Tensor::new(vec![1, 4], vec![1.0, 0.0, 0.0, 1.0]);
    let y = float_exec::run(&g, &[x], 1).unwrap();
    // Rows 0 and 3 of the [4, 2] weights: (0 + 6, 1 + 7).
    assert_eq!(y[0].data, [6.0, 8.0]);
    let e = format!("{:#}", external("../m.onnx.data", "16", "32").unwrap_err());
    assert!(e.contains("not a file beside the model"), "{e}");
    let e = format!("{:#}", external("m.onnx.data", "16", "64").unwrap_err());
    assert!(e.contains("beyond its 48 bytes"), "{e}");
}

/// Arithmetic on integer constants (PyTorch's `chunk` computes `(c + 1) / 2` from the shape) folds
/// in integers, Div truncating as onnxruntime's does: the Slice reads three of five channels.
#[test]
fn shape_arithmetic_folds_in_integers() {
    let bytes = model(
        13,
        vec![
            node("Shape", &["x"], "s", vec![]),
            node("Gather", &["s", "one"], "c", vec![int("axis", 0)]),
            node("Add", &["c", "one"], "c1", vec![]),
            node("Div", &["c1", "two"], "half", vec![]),
            node("Slice", &["x", "zero", "half", "one"], "y", vec![]),
        ],
        vec![
            ints_tensor("zero", &[0]),
            ints_tensor("one", &[1]),
            ints_tensor("two", &[2]),
        ],
        &[1, 5, 2, 2],
        "y",
    );
    let g = import(&bytes).unwrap();
    assert_eq!(crate::ir::io::source_dims(&g, g.outputs[0]), [1, 3, 2, 2]);
    let zero_div = model(
        13,
        vec![
            node("Div", &["one", "zero"], "d", vec![]),
            node("Reshape", &["x", "d"], "y", vec![]),
        ],
        vec![ints_tensor("zero", &[0]), ints_tensor("one", &[1])],
        &[1, 4],
        "y",
    );
    assert!(err(&zero_div).contains("integer arithmetic on 1 and 0 fails"));
}

/// An unsupported operator is named before anything is imported, with the other unsupported ones
/// the graph holds: an LSTM fed by a Transpose that moves the batch (as tf2onnx writes Keras's)
/// is reported as the LSTM.
#[test]
fn unsupported_operators_are_named_first() {
    let bytes = model(
        13,
        vec![
            node("Transpose", &["x"], "t", vec![ints("perm", &[1, 0, 2])]),
            node("LSTM", &["t"], "h", vec![]),
            node("Reciprocal", &["h"], "m", vec![]),
            node("GRU", &["m"], "y", vec![]),
        ],
        vec![],
        &[1, 5, 3],
        "y",
    );
    let e = err(&bytes);
    assert!(
        e.contains(
            "node `LSTM_h` (LSTM): unsupported operator `LSTM`; the graph also holds `GRU`, `Reciprocal`"
        ) && !e.contains("batch"),
        "{e}"
    );
}

/// Slices of constants fold in any rank and step: PyTorch's `F.pad` reverses its pads with a step of
/// -1 over a `[n, 2]` constant.
#[test]
fn slices_of_constants_fold_with_any_step() {
    let c = Const {
        dims: vec![4, 2],
        data: tensor::Data::I64((0..8).collect()),
    };
    let reversed = tensor::slice(&c, &[-1], &[i64::MIN], &[0], &[-1]).unwrap();
    assert_eq!(reversed.dims, [4, 2]);
    assert_eq!(reversed.i64().unwrap(), [6, 7, 4, 5, 2, 3, 0, 1]);
    let every_other = tensor::slice(&c, &[1, 0], &[100, 1], &[0, 1], &[2, 1]).unwrap();
    assert_eq!(every_other.dims, [2, 1]);
    assert_eq!(every_other.i64().unwrap(), [2, 6]);
    assert!(tensor::slice(&c, &[0], &[1], &[2], &[1]).is_err());
    assert!(tensor::slice(&c, &[0], &[1], &[0], &[0]).is_err());
}

/// Gather of an activation at a constant index (`y[:, :, -1]`: the last step of a signal) is a
/// Slice with that axis dropped; at consecutive indices a Slice; other indices are refused.
#[test]
fn gather_at_constant_indices_is_a_slice() {
    let gather = |indices: super::proto::TensorProto| {
        model(
            13,
            vec![node("Gather", &["x", "i"], "y", vec![int("axis", 2)])],
            vec![indices],
            &[1, 2, 4],
            "y",
        )
    };
    let mut last = ints_tensor("i", &[-1]);
    last.dims.clear();
    let (y, _) = run_onnx_order(&gather(last), &[1, 2, 4]);
    assert_eq!(y, [3.0, 7.0]);
    let (y, _) = run_onnx_order(&gather(ints_tensor("i", &[1, 2])), &[1, 2, 4]);
    assert_eq!(y, [1.0, 2.0, 5.0, 6.0]);
    assert!(err(&gather(ints_tensor("i", &[0, 2]))).contains("consecutive"));
    assert!(err(&gather(ints_tensor("i", &[4]))).contains("out of range"));
}

/// PyTorch's layer normalization before opset 17 (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div,
/// Mul, Add) over `[1, 3, 4]` imports as one Normalize computing it; the same nodes with the
/// variance also read by another node are no such pattern, and the ReduceMean over the channels is
/// then refused by name.
#[test]
fn a_written_out_layer_normalization_is_one_normalize() {
    let nodes = |extra_output: bool| {
        let mut n = vec![
            node("ReduceMean", &["x"], "m", vec![ints("axes", &[-1])]),
            node("Sub", &["x", "m"], "d", vec![]),
            node("Pow", &["d", "two"], "sq", vec![]),
            node("ReduceMean", &["sq"], "v", vec![ints("axes", &[-1])]),
            node("Add", &["v", "eps"], "a", vec![]),
            node("Sqrt", &["a"], "s", vec![]),
            node("Div", &["d", "s"], "nz", vec![]),
            node("Mul", &["nz", "gamma"], "g", vec![]),
            node("Add", &["g", "beta"], "y", vec![]),
        ];
        if extra_output {
            n.push(node("Relu", &["v"], "v2", vec![]));
        }
        n
    };
    let inits = || {
        vec![
            tensor("two", &[], &[2.0]),
            tensor("eps", &[], &[1e-5]),
            tensor("gamma", &[4], &[1.0, 2.0, 0.5, -1.0]),
            tensor("beta", &[4], &[0.0, 0.1, 0.2, 0.3]),
        ]
    };
    let g = import(&model(13, nodes(false), inits(), &[1, 3, 4], "y")).unwrap();
    assert_eq!(g.nodes.len(), 1, "{:?}", g.nodes);
    assert!(matches!(
        g.nodes[0].op,
        Op::Normalize {
            groups: 1,
            across_positions: false,
            ..
        }
    ));
    let values: Vec<f32> = (0..12).map(|i| ((i * 5) % 7) as f32 - 2.0).collect();
    let y = float_exec::run(&g, &[Tensor::new(vec![1, 3, 4], values.clone())], 1).unwrap();
    for (row, out) in values.chunks(4).zip(y[0].data.chunks(4)) {
        let mean = row.iter().sum::<f32>() / 4.0;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 4.0;
        for (c, (&v, &o)) in row.iter().zip(out).enumerate() {
            let want = [1.0, 2.0, 0.5, -1.0][c] * (v - mean) / (var + 1e-5).sqrt()
                + [0.0, 0.1, 0.2, 0.3][c];
            assert!((o - want).abs() < 1e-5, "{o} vs {want}");
        }
    }
    let e = err(&model(13, nodes(true), inits(), &[1, 3, 4], "y"));
    assert!(e.contains("ReduceMean"), "{e}");
}

/// Max and Min: with one constant value a clamp; of two activations a MAXIMUM or MINIMUM; of an
/// activation and a constant tensor a Sub, a ReLU and an Add or Sub; of three, pairwise. Each
/// computes the element-wise extreme in float and within the quantization's tolerance in int8.
#[test]
fn max_and_min_of_activations_and_constants() {
    let values: Vec<f32> = (0..64).map(|i| (i as f32 - 40.0) / 8.0).collect();
    let ramp: Vec<f32> = (0..64).map(|i| (i % 8) as f32 / 4.0 - 1.0).collect();
    let neg: Vec<f32> = values.iter().map(|&v| -0.5 * v).collect();
    let cases = [
        (
            vec![node("Max", &["x", "c"], "y", vec![])],
            vec![tensor("c", &[1], &[0.5])],
            values.iter().map(|&v| v.max(0.5)).collect::<Vec<f32>>(),
            "RELU",
        ),
        (
            vec![node("Min", &["c", "x"], "y", vec![])],
            vec![tensor("c", &[], &[-1.0])],
            values.iter().map(|&v| v.min(-1.0)).collect(),
            "RELU",
        ),
        (
            vec![
                node("Mul", &["x", "k"], "n", vec![]),
                node("Max", &["x", "n"], "y", vec![]),
            ],
            vec![tensor("k", &[1], &[-0.5])],
            values.iter().zip(&neg).map(|(&v, &n)| v.max(n)).collect(),
            "MAXIMUM",
        ),
        (
            vec![
                node("Mul", &["x", "k"], "n", vec![]),
                node("Min", &["n", "x"], "y", vec![]),
            ],
            vec![tensor("k", &[1], &[-0.5])],
            values.iter().zip(&neg).map(|(&v, &n)| v.min(n)).collect(),
            "MINIMUM",
        ),
        (
            vec![node("Min", &["x", "r"], "y", vec![])],
            vec![tensor("r", &[1, 64], &ramp)],
            values.iter().zip(&ramp).map(|(&v, &r)| v.min(r)).collect(),
            "SUB",
        ),
        (
            vec![
                node("Mul", &["x", "k"], "n", vec![]),
                node("Max", &["x", "n", "c"], "y", vec![]),
            ],
            vec![tensor("k", &[1], &[-0.5]), tensor("c", &[1], &[1.0])],
            values
                .iter()
                .zip(&neg)
                .map(|(&v, &n)| v.max(n).max(1.0))
                .collect(),
            // The last step, a constant value, is a clamp after the first step's MAXIMUM.
            "RELU",
        ),
        (
            // Constants first: the activation is taken first, each constant a clamp.
            vec![node("Max", &["c", "d", "x"], "y", vec![])],
            vec![tensor("c", &[1], &[0.5]), tensor("d", &[1, 1], &[1.0])],
            values.iter().map(|&v| v.max(1.0)).collect(),
            "RELU",
        ),
    ];
    for (nodes, inits, want, last_op) in cases {
        let mut g = import(&model(13, nodes, inits, &[1, 64], "y")).unwrap();
        crate::ir::passes::optimize(&mut g).unwrap();
        let out = g.nodes.iter().find(|n| n.output == g.outputs[0]).unwrap();
        assert_eq!(out.op.name(), last_op, "{:?}", g.nodes);
        let x = Tensor::new(vec![1, 64], values.clone());
        let y = float_exec::run(&g, std::slice::from_ref(&x), 1).unwrap();
        assert_eq!(y[0].data, want);
        let (lo, hi) = want
            .iter()
            .fold((0f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
        let tolerance = 3.0 * (hi - lo) / 255.0;
        for (a, b) in quantized_outputs(&g, x).iter().zip(&want) {
            assert!(
                (a - b).abs() <= tolerance,
                "{a} vs {b}, tolerance {tolerance}"
            );
        }
    }
}
