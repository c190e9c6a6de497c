//! The executor against the runtime's scalar reference kernels, and its batch handling.

use super::*;
use crate::ir::{Clamp, Param};
use crate::rng::Rng;
use ferrite_runtime::kernels::float as k;
use ferrite_runtime::kernels::LeF32;

#[test]
fn parallel_batches_equal_one_pass_and_observer_sees_every_node() {
    let mut g = Graph::default();
    let x = g.add_value("x", vec![1, 3, 3, 2]);
    g.inputs = vec![x];
    let p = g
        .add_node(
            "pad",
            "Pad",
            Op::Pad {
                before: vec![0, 1, 0, 0],
                after: vec![0, 0, 1, 1],
            },
            vec![x],
            "p",
        )
        .unwrap();
    let c = g
        .add_node(
            "cat",
            "Concat",
            Op::Concatenation { axis: 3 },
            vec![p, p],
            "c",
        )
        .unwrap();
    let bn = Op::BatchNorm {
        scale: Param::new(vec![6], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        shift: Param::new(vec![6], vec![0.5; 6]),
    };
    let b = g
        .add_node("bn", "BatchNormalization", bn, vec![c], "b")
        .unwrap();
    let r = g
        .add_node(
            "clip",
            "Clip",
            Op::Relu {
                clamp: Clamp::new(-2.0, 7.5),
            },
            vec![b],
            "r",
        )
        .unwrap();
    g.outputs = vec![r, p];
    let n = 9;
    let data: Vec<f32> = (0..n * 18).map(|v| (v % 11) as f32 - 5.0).collect();
    let input = Tensor::new(vec![n, 3, 3, 2], data);
    let all = run(&g, std::slice::from_ref(&input), 2).unwrap();
    let mut seen = Vec::new();
    let mut acts = run_observed(&g, std::slice::from_ref(&input), true, |i, _, t| {
        seen.push((i, t.shape.clone()))
    })
    .unwrap();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[1].1, [n, 4, 4, 6]);
    assert_eq!(acts.take(r).unwrap(), all[0]);
    assert_eq!(acts.take(p).unwrap(), all[1]);
    // Spot values: the pad puts a zero row on top and zeros right; sample 0's pixel (0, 0) moves to (1, 0).
    let padded = &all[1];
    assert_eq!(padded.data[..2], [0.0, 0.0]);
    let at = 4 * 3; // row 1, column 0 of a 4-wide, 3-channel image
    assert_eq!(padded.data[at..at + 3], [input.data[0], input.data[1], 0.0]);
    // Concat then BatchNorm then clamp: channel 3 is pixel channel 0 scaled by 4, shifted by 0.5.
    let y = &all[0];
    let v = input.data[0] * 4.0 + 0.5;
    assert_eq!(y.data[4 * 6 + 3], v.clamp(-2.0, 7.5));
}

/// Values in `[-1, 1]` on a grid of 1e-4.
fn random_values(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| rng.below(20_001) as f32 / 10_000.0 - 1.0)
        .collect()
}

fn random_clamp(rng: &mut Rng) -> Clamp {
    [
        Clamp::NONE,
        Clamp::RELU,
        Clamp::RELU6,
        Clamp::new(-0.5, 0.7),
    ][rng.range(0, 3)]
}

fn random_param(rng: &mut Rng, shape: Vec<usize>) -> Param {
    let n = shape.iter().product();
    Param::new(shape, random_values(rng, n))
}

fn le(data: &[f32]) -> LeF32<'_> {
    LeF32::new(bytemuck::cast_slice(data)).unwrap()
}

fn with_clamp(op: &Op, clamp: Clamp) -> Op {
    let mut op = op.clone();
    if let Some(c) = op.clamp_mut() {
        *c = clamp;
    }
    op
}

/// `op` on the runtime's scalar f32 kernels (what the executor ran before it had its own kernels).
fn reference(op: &Op, x: &Tensor) -> Tensor {
    let out_shape = op.output_shape(&[&x.shape]).unwrap();
    let mut out = Tensor::zeros(out_shape);
    let (act, rest, clamp) = match op.clone().clamp_mut() {
        Some(c) => {
            let (a, r) = split_clamp(*c);
            (a, r, *c)
        }
        None => (Activation::None, false, Clamp::NONE),
    };
    match op {
        Op::Conv2d {
            window,
            filter,
            bias,
            ..
        } => {
            let g = geometry(window, &x.shape, &out.shape).unwrap();
            let (f, b) = (le(&filter.data), le(&bias.data));
            k::conv2d_f32(&g, act, &x.data, f, b, &mut out.data);
        }
        Op::DepthwiseConv2d {
            window,
            depth_multiplier,
            filter,
            bias,
            ..
        } => {
            let g = geometry(window, &x.shape, &out.shape).unwrap();
            let (f, b) = (le(&filter.data), le(&bias.data));
            k::depthwise_conv2d_f32(&g, *depth_multiplier, act, &x.data, f, b, &mut out.data);
        }
        Op::FullyConnected { filter, bias, .. } => {
            let (o, i) = (filter.shape[0], filter.shape[1]);
            let (f, b) = (le(&filter.data), le(&bias.data));
            k::fully_connected_f32(x.data.len() / i, i, o, act, &x.data, f, b, &mut out.data);
        }
        Op::MaxPool2d { window, .. } => {
            let g = geometry(window, &x.shape, &out.shape).unwrap();
            k::max_pool2d_f32(&g, act, &x.data, &mut out.data);
        }
        Op::AveragePool2d { window, .. } => {
            let g = geometry(window, &x.shape, &out.shape).unwrap();
            k::average_pool2d_f32(&g, act, &x.data, &mut out.data);
        }
        _ => unreachable!("{op:?}"),
    }
    finish(clamp, rest, &mut out.data);
    out
}

/// `op` on the executor inside a pool of `threads` threads.
fn eval_on(threads: usize, op: &Op, x: &Tensor) -> Tensor {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let view = View {
        shape: &x.shape,
        data: &x.data,
    };
    pool.install(|| eval(op, &[view])).unwrap()
}

/// Checks the executor against the reference on `op`: equal with 1 and 3 threads, and within `1e-5`
/// of the sum of the absolute values of the terms (the reference on `|x|`, `|w|`, `|b|` without clamp)
/// when `exact` is false, bit-identical otherwise.
fn check(case: usize, op: &Op, x: &Tensor, exact: bool) {
    let want = reference(op, x);
    let got = eval_on(1, op, x);
    assert_eq!(got.shape, want.shape, "case {case}");
    assert_eq!(
        got,
        eval_on(3, op, x),
        "case {case}: 1 and 3 threads differ"
    );
    if exact {
        let bits = |t: &Tensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "case {case}: {op:?}");
        return;
    }
    let mut abs_op = with_clamp(op, Clamp::NONE);
    for p in abs_op.params_mut() {
        p.data.iter_mut().for_each(|v| *v = v.abs());
    }
    let abs_x = Tensor::new(x.shape.clone(), x.data.iter().map(|v| v.abs()).collect());
    let bound = reference(&abs_op, &abs_x);
    for (i, ((&g, &w), &b)) in got.data.iter().zip(&want.data).zip(&bound.data).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * b + f32::MIN_POSITIVE,
            "case {case}, element {i}: {g} vs {w} (terms {b}): {op:?} on {:?}",
            x.shape
        );
    }
}

/// A random window over an `h x w` input that leaves at least one output pixel, and the input.
fn random_window(rng: &mut Rng, dilation: bool) -> (Window2d, usize, usize) {
    let kernel = [rng.range(1, 4), rng.range(1, 4)];
    let stride = [rng.range(1, 3), rng.range(1, 3)];
    let dilation = if dilation {
        [rng.range(1, 2), rng.range(1, 2)]
    } else {
        [1, 1]
    };
    let pads = [0; 4].map(|_| rng.range(0, 2).min(kernel[0].min(kernel[1]) - 1));
    let size = |axis: usize, rng: &mut Rng| {
        let eff = (kernel[axis] - 1) * dilation[axis] + 1;
        let least = eff.saturating_sub(pads[axis] + pads[axis + 2]).max(1);
        rng.range(least, least + 7)
    };
    let (h, w) = (size(0, rng), size(1, rng));
    let window = Window2d {
        kernel,
        stride,
        dilation,
        pads,
    };
    (window, h, w)
}

#[test]
fn conv2d_and_fully_connected_match_the_reference_kernels() {
    let mut rng = Rng::new(0x5eed_c0417);
    for case in 0..300 {
        let (n, in_c, out_c) = (rng.range(1, 3), rng.range(1, 6), rng.range(1, 7));
        let (mut window, mut h, mut w) = random_window(&mut rng, true);
        if case % 4 == 0 {
            // A plain 1x1 convolution: a GEMM on the input itself.
            window = Window2d {
                kernel: [1, 1],
                stride: [1, 1],
                dilation: [1, 1],
                pads: [0; 4],
            };
            (h, w) = (rng.range(1, 20), rng.range(1, 20));
        }
        let op = Op::Conv2d {
            window,
            filter: random_param(
                &mut rng,
                vec![out_c, window.kernel[0], window.kernel[1], in_c],
            ),
            bias: random_param(&mut rng, vec![out_c]),
            clamp: random_clamp(&mut rng),
        };
        let x = Tensor::new(
            vec![n, h, w, in_c],
            random_values(&mut rng, n * h * w * in_c),
        );
        check(case, &op, &x, false);
    }
    // A layer bigger than one im2col tile.
    let window = Window2d {
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pads: [1; 4],
    };
    let op = Op::Conv2d {
        window,
        filter: random_param(&mut rng, vec![24, 3, 3, 40]),
        bias: random_param(&mut rng, vec![24]),
        clamp: Clamp::NONE,
    };
    check(
        300,
        &op,
        &Tensor::new(
            vec![2, 12, 13, 40],
            random_values(&mut rng, 2 * 12 * 13 * 40),
        ),
        false,
    );
    for case in 0..100 {
        let (rows, i, o) = (rng.range(1, 40), rng.range(1, 50), rng.range(1, 12));
        let op = Op::FullyConnected {
            filter: random_param(&mut rng, vec![o, i]),
            bias: random_param(&mut rng, vec![o]),
            clamp: random_clamp(&mut rng),
        };
        check(
            case,
            &op,
            &Tensor::new(vec![rows, i], random_values(&mut rng, rows * i)),
            false,
        );
    }
}

#[test]
fn depthwise_and_pooling_are_bit_identical_to_the_reference_kernels() {
    let mut rng = Rng::new(0xd3_9750);
    for case in 0..300 {
        let (n, in_c) = (rng.range(1, 3), rng.range(1, 6));
        let dm = [1, 2, 2, 3][case % 4];
        let (window, h, w) = random_window(&mut rng, true);
        let op = Op::DepthwiseConv2d {
            window,
            depth_multiplier: dm,
            filter: random_param(
                &mut rng,
                vec![1, window.kernel[0], window.kernel[1], in_c * dm],
            ),
            bias: random_param(&mut rng, vec![in_c * dm]),
            clamp: random_clamp(&mut rng),
        };
        let x = Tensor::new(
            vec![n, h, w, in_c],
            random_values(&mut rng, n * h * w * in_c),
        );
        check(case, &op, &x, true);
        let (window, h, w) = random_window(&mut rng, false);
        let x = Tensor::new(
            vec![n, h, w, in_c],
            random_values(&mut rng, n * h * w * in_c),
        );
        let clamp = random_clamp(&mut rng);
        for op in [
            Op::MaxPool2d { window, clamp },
            Op::AveragePool2d { window, clamp },
        ] {
            check(case, &op, &x, true);
        }
    }
}

/// A convolution's output for a sample does not depend on the batch it is computed in, and `run`
/// gives the same outputs with any number of threads.
#[test]
fn results_do_not_depend_on_the_batch_split_or_the_threads() {
    let mut rng = Rng::new(0xba7c4);
    let window = Window2d {
        kernel: [3, 3],
        stride: [2, 1],
        dilation: [1, 2],
        pads: [1, 2, 0, 1],
    };
    let mut g = Graph::default();
    let x = g.add_value("x", vec![1, 9, 8, 3]);
    g.inputs = vec![x];
    let conv = Op::Conv2d {
        window,
        filter: random_param(&mut rng, vec![5, 3, 3, 3]),
        bias: random_param(&mut rng, vec![5]),
        clamp: Clamp::RELU,
    };
    let c = g
        .add_node("conv", "Conv", conv.clone(), vec![x], "c")
        .unwrap();
    let r = g
        .add_node(
            "flat",
            "Flatten",
            Op::Reshape {
                shape: vec![1, 4 * 7 * 5],
            },
            vec![c],
            "r",
        )
        .unwrap();
    let fc = Op::FullyConnected {
        filter: random_param(&mut rng, vec![4, 140]),
        bias: random_param(&mut rng, vec![4]),
        clamp: Clamp::NONE,
    };
    let y = g.add_node("fc", "Gemm", fc, vec![r], "y").unwrap();
    g.outputs = vec![y, c];
    let n = 2 * RUN_CHUNK + 9;
    let input = Tensor::new(vec![n, 9, 8, 3], random_values(&mut rng, n * 9 * 8 * 3));
    let one = run(&g, std::slice::from_ref(&input), 1).unwrap();
    for threads in [2, 3] {
        assert_eq!(run(&g, std::slice::from_ref(&input), threads).unwrap(), one);
    }
    let whole = eval_on(2, &conv, &input);
    assert_eq!(whole, one[1]);
    for s in [0, 1, n / 2, n - 1] {
        assert_eq!(
            eval_on(1, &conv, &input.slice_batch(s, s + 1)),
            whole.slice_batch(s, s + 1)
        );
    }
}
