//! Every operator's backward pass against central finite differences of `float_exec::eval`, and the
//! weighted operators' gradients against the thread count.

use super::*;
use crate::ir::float_exec::{eval, Tensor};
use crate::ir::{Param, Window2d};
use crate::rng::Rng;

/// Step of the central differences.
const EPS: f32 = 1e-3;
/// Allowed error: `|analytic - numeric| <= TOL * max(1, |numeric|)`.
const TOL: f64 = 2e-3;

fn random_tensor(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(shape.to_vec(), rng.values(n, -1.0, 1.0))
}

fn random_param(rng: &mut Rng, shape: &[usize]) -> Param {
    let n = shape.iter().product();
    Param::new(shape.to_vec(), rng.values(n, -1.0, 1.0))
}

/// One operator application to check.
struct Case {
    op: Op,
    inputs: Vec<Tensor>,
    need: Vec<bool>,
}

impl Case {
    fn new(op: Op, inputs: Vec<Tensor>) -> Case {
        let need = vec![true; inputs.len()];
        Case { op, inputs, need }
    }
}

fn views(ts: &[Tensor]) -> Vec<View<'_>> {
    ts.iter()
        .map(|t| View {
            shape: &t.shape,
            data: &t.data,
        })
        .collect()
}

/// `sum(eval(op, inputs) * r)`, accumulated in f64.
fn loss(op: &Op, inputs: &[Tensor], r: &[f32]) -> f64 {
    let out = eval(op, &views(inputs)).unwrap();
    out.data
        .iter()
        .zip(r)
        .map(|(&y, &r)| y as f64 * r as f64)
        .sum()
}

/// The central difference of `loss` in one value that `set` writes (`set(v)` then `loss()`).
fn central(value: f32, mut loss_at: impl FnMut(f32) -> f64) -> f64 {
    let (up, down) = (value + EPS, value - EPS);
    (loss_at(up) - loss_at(down)) / (up as f64 - down as f64)
}

/// Numeric gradients of every needed input and every parameter.
fn numeric(case: &Case, r: &[f32]) -> (Vec<Option<Vec<f64>>>, Vec<Vec<f64>>) {
    let mut inputs = case.inputs.clone();
    let mut d_inputs = Vec::new();
    for i in 0..inputs.len() {
        if !case.need[i] {
            d_inputs.push(None);
            continue;
        }
        let mut d = Vec::new();
        for e in 0..inputs[i].data.len() {
            let keep = inputs[i].data[e];
            d.push(central(keep, |v| {
                inputs[i].data[e] = v;
                loss(&case.op, &inputs, r)
            }));
            inputs[i].data[e] = keep;
        }
        d_inputs.push(Some(d));
    }
    let mut op = case.op.clone();
    let count = op.params_mut().len();
    let mut d_params = Vec::new();
    for p in 0..count {
        let mut d = Vec::new();
        for e in 0..op.params_mut()[p].data.len() {
            let keep = op.params_mut()[p].data[e];
            d.push(central(keep, |v| {
                op.params_mut()[p].data[e] = v;
                loss(&op, &inputs, r)
            }));
            op.params_mut()[p].data[e] = keep;
        }
        d_params.push(d);
    }
    (d_inputs, d_params)
}

/// The analytic gradients of `case` for `d_output = r`.
fn analytic(case: &Case, r: &[f32]) -> OpGrads {
    let ins = views(&case.inputs);
    let out = eval(&case.op, &ins).unwrap();
    backward(&case.op, &ins, &out.data, r, &case.need).unwrap()
}

/// The first element where `got` is off `want`, described.
fn mismatch(got: &[f32], want: &[f64]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{} values, {} expected", got.len(), want.len()));
    }
    got.iter()
        .zip(want)
        .position(|(&a, &n)| (a as f64 - n).abs() > TOL * n.abs().max(1.0))
        .map(|i| format!("element {i}: analytic {}, numeric {}", got[i], want[i]))
}

/// A fixed random `d_output` for `case`.
fn weights_of_loss(case: &Case) -> Vec<f32> {
    let out = eval(&case.op, &views(&case.inputs)).unwrap();
    Rng::new(0x5eed_1234_5678_9abc).values(out.data.len(), -1.0, 1.0)
}

/// Checks every gradient of `case` against central differences.
fn check(what: &str, case: &Case) {
    assert!(
        smooth(case),
        "{what}: an output is within reach of a clamp's kink"
    );
    let r = weights_of_loss(case);
    let got = analytic(case, &r);
    let (want_inputs, want_params) = numeric(case, &r);
    assert_eq!(got.inputs.len(), case.inputs.len(), "{what}: input count");
    for (i, (g, w)) in got.inputs.iter().zip(&want_inputs).enumerate() {
        match (g, w) {
            (Some(g), Some(w)) => {
                if let Some(m) = mismatch(g, w) {
                    panic!("{what}: d input {i}: {m}");
                }
            }
            (None, None) => {}
            _ => panic!("{what}: input {i} gradient given where not needed or missing"),
        }
    }
    assert_eq!(got.params.len(), want_params.len(), "{what}: param count");
    for (p, (g, w)) in got.params.iter().zip(&want_params).enumerate() {
        if let Some(m) = mismatch(g, w) {
            panic!("{what}: d param {p}: {m}");
        }
    }
}

/// Whether no pre-clamp output lies within `10 * EPS` of a finite clamp bound, so that no step of
/// the finite differences crosses a kink (a step moves an output by at most `EPS` here).
fn smooth(case: &Case) -> bool {
    let mut free = case.op.clone();
    let Some(c) = free.clamp_mut() else {
        return true;
    };
    let clamp = std::mem::replace(c, Clamp::NONE);
    let pre = eval(&free, &views(&case.inputs)).unwrap();
    let far = |v: f32, bound: f32| !bound.is_finite() || (v - bound).abs() > 10.0 * EPS;
    pre.data
        .iter()
        .all(|&v| far(v, clamp.min) && far(v, clamp.max))
}

/// The first case `make` builds (from successive seeds) whose outputs keep away from clamp kinks.
fn smooth_case(seed: u64, make: impl Fn(&mut Rng) -> Case) -> Case {
    for s in 0..1000 {
        let case = make(&mut Rng::new(seed + 7919 * s));
        if smooth(&case) {
            return case;
        }
    }
    panic!("no smooth case in 1000 tries");
}

fn window(
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pads: [usize; 4],
) -> Window2d {
    Window2d {
        kernel,
        stride,
        dilation,
        pads,
    }
}

fn conv(rng: &mut Rng, w: Window2d, in_c: usize, out_c: usize, clamp: Clamp) -> Op {
    Op::Conv2d {
        window: w,
        filter: random_param(rng, &[out_c, w.kernel[0], w.kernel[1], in_c]),
        bias: random_param(rng, &[out_c]),
        clamp,
    }
}

#[test]
fn conv2d_strided_padded_dilated_batch_3() {
    let case = smooth_case(1, |rng| {
        let w = window([3, 3], [2, 2], [2, 2], [1, 2, 2, 1]);
        let op = conv(rng, w, 3, 4, Clamp::NONE);
        Case::new(op, vec![random_tensor(rng, &[3, 7, 8, 3])])
    });
    check("conv 3x3 stride 2 dilation 2", &case);
}

#[test]
fn conv2d_non_square_kernels_with_clamps() {
    let case = smooth_case(2, |rng| {
        let w = window([2, 3], [1, 2], [1, 1], [0, 1, 1, 0]);
        let op = conv(rng, w, 2, 3, Clamp::RELU6);
        let mut x = random_tensor(rng, &[2, 5, 6, 2]);
        // Large enough that some outputs pass 6.
        x.data.iter_mut().for_each(|v| *v *= 3.0);
        Case::new(op, vec![x])
    });
    check("conv 2x3 relu6", &case);
    let case = smooth_case(3, |rng| {
        let w = window([3, 1], [2, 1], [1, 2], [1, 0, 0, 0]);
        let op = conv(rng, w, 3, 2, Clamp::new(-0.5, 0.7));
        Case::new(op, vec![random_tensor(rng, &[2, 6, 5, 3])])
    });
    check("conv 3x1 dilated clamp", &case);
}

#[test]
fn conv2d_pointwise() {
    let case = smooth_case(4, |rng| {
        let w = window([1, 1], [1, 1], [1, 1], [0; 4]);
        let op = conv(rng, w, 5, 3, Clamp::RELU);
        Case::new(op, vec![random_tensor(rng, &[3, 4, 3, 5])])
    });
    check("conv 1x1", &case);
    // A 1x1 kernel with stride 2 goes through im2col.
    let case = smooth_case(5, |rng| {
        let w = window([1, 1], [2, 2], [1, 1], [0; 4]);
        Case::new(
            conv(rng, w, 4, 3, Clamp::NONE),
            vec![random_tensor(rng, &[2, 5, 5, 4])],
        )
    });
    check("conv 1x1 stride 2", &case);
}

#[test]
fn depthwise_multipliers_1_2_3_padded() {
    let depthwise = |rng: &mut Rng, w: Window2d, in_c: usize, dm: usize, clamp: Clamp| {
        let out_c = in_c * dm;
        Op::DepthwiseConv2d {
            window: w,
            depth_multiplier: dm,
            filter: random_param(rng, &[1, w.kernel[0], w.kernel[1], out_c]),
            bias: random_param(rng, &[out_c]),
            clamp,
        }
    };
    let case = smooth_case(6, |rng| {
        let w = window([3, 3], [1, 1], [1, 1], [1, 1, 1, 1]);
        let op = depthwise(rng, w, 3, 2, Clamp::RELU6);
        Case::new(op, vec![random_tensor(rng, &[2, 5, 4, 3])])
    });
    check("depthwise 3x3 x2 padded", &case);
    let case = smooth_case(7, |rng| {
        let w = window([2, 3], [2, 1], [1, 2], [0, 2, 1, 1]);
        let op = depthwise(rng, w, 2, 3, Clamp::NONE);
        Case::new(op, vec![random_tensor(rng, &[3, 6, 6, 2])])
    });
    check("depthwise 2x3 x3 strided dilated", &case);
    let case = smooth_case(8, |rng| {
        let w = window([3, 3], [2, 2], [1, 1], [1, 0, 1, 2]);
        let op = depthwise(rng, w, 4, 1, Clamp::new(-0.5, 0.7));
        Case::new(op, vec![random_tensor(rng, &[2, 5, 6, 4])])
    });
    check("depthwise 3x3 x1 strided clamp", &case);
}

#[test]
fn fully_connected_rank_3_input() {
    let case = smooth_case(8, |rng| {
        let op = Op::FullyConnected {
            filter: random_param(rng, &[4, 5]),
            bias: random_param(rng, &[4]),
            clamp: Clamp::new(-0.5, 0.7),
        };
        Case::new(op, vec![random_tensor(rng, &[2, 3, 5])])
    });
    check("fc rank 3 clamp", &case);
    let case = smooth_case(9, |rng| {
        let op = Op::FullyConnected {
            filter: random_param(rng, &[3, 7]),
            bias: random_param(rng, &[3]),
            clamp: Clamp::NONE,
        };
        Case::new(op, vec![random_tensor(rng, &[4, 7])])
    });
    check("fc rank 2", &case);
}

fn binary_cases(op: impl Fn(Clamp) -> Op, seed: u64) {
    let shapes: [(&[usize], &[usize]); 5] = [
        (&[2, 3, 4, 5], &[2, 3, 4, 5]),
        // Each operand broadcast along a different dimension.
        (&[2, 1, 4, 5], &[2, 3, 1, 5]),
        (&[2, 3, 4, 5], &[1, 1, 1, 5]),
        (&[1, 3, 1, 1], &[2, 3, 4, 2]),
        (&[3, 1], &[1, 4]),
    ];
    for (i, (a, b)) in shapes.into_iter().enumerate() {
        for clamp in [Clamp::NONE, Clamp::new(-0.3, 0.4)] {
            let case = smooth_case(seed + i as u64, |rng| {
                Case::new(
                    op(clamp),
                    vec![random_tensor(rng, a), random_tensor(rng, b)],
                )
            });
            check(&format!("{a:?} and {b:?} with {clamp}"), &case);
        }
    }
    // A constant operand: no gradient asked for it, on either side.
    for constant in [0, 1] {
        let mut case = smooth_case(seed + 10, |rng| {
            Case::new(
                op(Clamp::RELU),
                vec![
                    random_tensor(rng, &[2, 3, 3, 4]),
                    random_tensor(rng, &[1, 1, 1, 4]),
                ],
            )
        });
        case.need[constant] = false;
        check(&format!("constant operand {constant}"), &case);
    }
}

#[test]
fn add_with_broadcasting_and_constants() {
    binary_cases(|clamp| Op::Add { clamp }, 10);
}

#[test]
fn sub_with_broadcasting_and_constants() {
    binary_cases(|clamp| Op::Sub { clamp }, 20);
}

#[test]
fn mul_with_broadcasting_and_constants() {
    binary_cases(|clamp| Op::Mul { clamp }, 30);
}

/// Maximum and Minimum: the gradient goes to the chosen operand. The operands are distinct grids
/// a third of a step apart, so no pair is within a finite-difference step of a tie.
#[test]
fn maximum_and_minimum_send_the_gradient_to_the_chosen_operand() {
    let shapes: [(&[usize], &[usize]); 3] = [
        (&[2, 3, 4, 5], &[2, 3, 4, 5]),
        (&[2, 1, 4, 5], &[2, 3, 1, 5]),
        (&[2, 3, 4, 5], &[1, 1, 1, 5]),
    ];
    for (i, (a, b)) in shapes.into_iter().enumerate() {
        for op in [Op::Maximum, Op::Minimum] {
            let mut rng = Rng::new(40 + i as u64);
            let x = distinct(&mut rng, a);
            let mut y = distinct(&mut rng, b);
            y.data.iter_mut().for_each(|v| *v += 0.01);
            check(
                &format!("{} of {a:?} and {b:?}", op.name()),
                &Case::new(op, vec![x, y]),
            );
        }
    }
}

/// A tensor of distinct values on a grid of 0.03 (offset by half a step, so 0 and 6 are not on it), in
/// random order: no max pooling window has two taps within a finite-difference step of each other.
fn distinct(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut data: Vec<f32> = (0..n)
        .map(|i| (i as f32 - (n / 2) as f32) * 0.03 + 0.015)
        .collect();
    for i in (1..n).rev() {
        data.swap(i, rng.below(i + 1));
    }
    Tensor::new(shape.to_vec(), data)
}

#[test]
fn pools_with_padding_and_stride() {
    let geometries = [
        window([3, 3], [2, 2], [1, 1], [1, 1, 1, 1]),
        window([2, 3], [1, 2], [1, 1], [0, 1, 1, 2]),
        window([2, 2], [2, 2], [1, 1], [0; 4]),
    ];
    for (i, w) in geometries.into_iter().enumerate() {
        for clamp in [Clamp::NONE, Clamp::RELU, Clamp::new(-0.12, 0.21)] {
            let case = smooth_case(50 + i as u64, |rng| {
                let op = Op::MaxPool2d { window: w, clamp };
                Case::new(op, vec![distinct(rng, &[2, 6, 7, 3])])
            });
            check(&format!("max pool {w:?} {clamp}"), &case);
            let case = smooth_case(60 + i as u64, |rng| {
                let op = Op::AveragePool2d { window: w, clamp };
                Case::new(op, vec![random_tensor(rng, &[2, 6, 7, 3])])
            });
            check(&format!("average pool {w:?} {clamp}"), &case);
        }
    }
}

#[test]
fn max_pool_ties_go_to_the_first_maximum() {
    // One 2x3 window over a 2x3 image; channel 0 has its maximum 5 at taps 1 and 3, channel 1 is flat.
    let x = Tensor::new(
        vec![1, 2, 3, 2],
        vec![1.0, 2.0, 5.0, 2.0, 0.0, 2.0, 5.0, 2.0, 5.0, 2.0, -1.0, 2.0],
    );
    let op = Op::MaxPool2d {
        window: window([2, 3], [1, 1], [1, 1], [0; 4]),
        clamp: Clamp::NONE,
    };
    let out = eval(&op, &views(std::slice::from_ref(&x))).unwrap();
    assert_eq!(out.data, [5.0, 2.0]);
    let g = backward(&op, &views(&[x]), &out.data, &[1.0, 10.0], &[true]).unwrap();
    let dx = g.inputs[0].as_ref().unwrap();
    assert_eq!(
        dx,
        &[0.0, 10.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn mean_over_height_and_width() {
    for keep_dims in [true, false] {
        let case = Case::new(
            Op::Mean { keep_dims },
            vec![random_tensor(&mut Rng::new(70), &[2, 3, 4, 5])],
        );
        check(&format!("mean keep_dims {keep_dims}"), &case);
    }
}

#[test]
fn softmax_logistic_tanh_and_log_softmax() {
    let mut rng = Rng::new(80);
    for beta in [1.0, 0.5, 2.0] {
        let mut x = random_tensor(&mut rng, &[3, 2, 7]);
        x.data.iter_mut().for_each(|v| *v *= 3.0);
        check(
            &format!("softmax beta {beta}"),
            &Case::new(Op::Softmax { beta }, vec![x]),
        );
    }
    for op in [Op::Logistic, Op::Tanh, Op::LogSoftmax] {
        let mut x = random_tensor(&mut rng, &[2, 3, 3, 4]);
        x.data.iter_mut().for_each(|v| *v *= 3.0);
        check(op.name(), &Case::new(op, vec![x]));
    }
}

#[test]
fn relu_with_any_clamp() {
    for clamp in [
        Clamp::RELU,
        Clamp::RELU6,
        Clamp::new(-1.0, 1.0),
        Clamp::new(-0.25, 2.5),
    ] {
        let case = smooth_case(90, |rng| {
            let mut x = random_tensor(rng, &[2, 4, 4, 3]);
            x.data.iter_mut().for_each(|v| *v *= 8.0);
            Case::new(Op::Relu { clamp }, vec![x])
        });
        check(&format!("relu {clamp}"), &case);
    }
}

#[test]
fn leaky_relu_slopes() {
    let mut rng = Rng::new(95);
    for alpha in [0.0, 0.01, 0.3] {
        let mut x = random_tensor(&mut rng, &[2, 3, 3, 4]);
        // Away from the kink at 0, which a finite-difference step must not cross.
        x.data
            .iter_mut()
            .for_each(|v| *v = 4.0 * *v + 0.1f32.copysign(*v));
        check(
            &format!("leaky relu {alpha}"),
            &Case::new(Op::LeakyRelu { alpha }, vec![x]),
        );
    }
}

#[test]
fn lookup_functions() {
    use crate::ir::UnaryFn;
    let fns = [
        UnaryFn::Elu { alpha: 0.7 },
        UnaryFn::Celu { alpha: 1.5 },
        UnaryFn::Selu {
            alpha: 1.673_263_2,
            gamma: 1.050_701,
        },
        UnaryFn::Softplus,
        UnaryFn::Softsign,
        UnaryFn::Exp,
        UnaryFn::Erf,
        UnaryFn::Gelu { tanh: false },
        UnaryFn::Gelu { tanh: true },
        UnaryFn::Mish,
        UnaryFn::HardSwish,
        UnaryFn::Silu,
        UnaryFn::Abs,
        UnaryFn::Neg,
        UnaryFn::Sign,
        UnaryFn::Sqrt,
        UnaryFn::Sin,
        UnaryFn::Cos,
        UnaryFn::Shrink {
            bias: 0.25,
            lambd: 0.75,
        },
        UnaryFn::ThresholdedRelu { alpha: 0.5 },
        UnaryFn::Pow { exponent: 3 },
    ];
    let mut rng = Rng::new(97);
    for f in fns {
        let mut x = random_tensor(&mut rng, &[2, 3, 5]);
        // Away from the kinks (0, +-0.5, +-0.75, +-3), which a finite-difference step must not
        // cross; the square root on positive values only.
        x.data.iter_mut().for_each(|v| {
            let m = 0.1 + 2.0 * v.abs();
            let m = if [0.5, 0.75, 3.0].iter().any(|k| (m - k).abs() < 0.05) {
                m + 0.1
            } else {
                m
            };
            *v = if f == UnaryFn::Sqrt {
                m
            } else {
                m.copysign(*v)
            };
        });
        check(&format!("{f:?}"), &Case::new(Op::Lookup { f }, vec![x]));
    }
}

#[test]
fn prelu_input_and_slope_gradients() {
    let mut rng = Rng::new(96);
    for slope in [vec![0.25], vec![0.2, -0.5, 0.0, 1.5]] {
        let mut x = random_tensor(&mut rng, &[2, 3, 3, 4]);
        // Away from the kink at 0, which a finite-difference step must not cross.
        x.data
            .iter_mut()
            .for_each(|v| *v = 4.0 * *v + 0.1f32.copysign(*v));
        let slope = Param::new(vec![slope.len()], slope);
        check(
            &format!("prelu {:?}", slope.data),
            &Case::new(Op::PRelu { slope }, vec![x]),
        );
    }
}

#[test]
fn resize_nearest_sums_the_copies() {
    let mut rng = Rng::new(97);
    for size in [[4, 6], [5, 7], [1, 2]] {
        let x = random_tensor(&mut rng, &[2, 2, 3, 4]);
        check(
            &format!("resize to {size:?}"),
            &Case::new(Op::ResizeNearest { size }, vec![x]),
        );
    }
}

#[test]
fn reshape_and_identity_copy() {
    let mut rng = Rng::new(100);
    let reshape = Op::Reshape { shape: vec![1, 12] };
    check(
        "reshape",
        &Case::new(reshape, vec![random_tensor(&mut rng, &[2, 2, 2, 3])]),
    );
    check(
        "identity",
        &Case::new(Op::Identity, vec![random_tensor(&mut rng, &[2, 5])]),
    );
}

#[test]
fn concatenation_on_axes_1_and_3() {
    let mut rng = Rng::new(110);
    let on_1 = vec![
        random_tensor(&mut rng, &[2, 1, 3, 2]),
        random_tensor(&mut rng, &[2, 3, 3, 2]),
    ];
    check(
        "concat axis 1",
        &Case::new(Op::Concatenation { axis: 1 }, on_1),
    );
    let on_3 = vec![
        random_tensor(&mut rng, &[2, 2, 3, 2]),
        random_tensor(&mut rng, &[2, 2, 3, 1]),
        random_tensor(&mut rng, &[2, 2, 3, 4]),
    ];
    let mut case = Case::new(Op::Concatenation { axis: 3 }, on_3);
    case.need[1] = false;
    check("concat axis 3", &case);
}

#[test]
fn slice_boxes() {
    let mut rng = Rng::new(98);
    for (begin, size) in [
        (vec![0, 1, 0, 2], vec![2, 2, 3, 3]),
        (vec![0, 0, 2, 0], vec![2, 3, 1, 5]),
    ] {
        let x = random_tensor(&mut rng, &[2, 3, 4, 5]);
        check(
            &format!("slice {begin:?}"),
            &Case::new(Op::Slice { begin, size }, vec![x]),
        );
    }
}

#[test]
fn depth_to_space_in_both_orders() {
    let mut rng = Rng::new(99);
    for (block, crd) in [([2, 2], false), ([2, 2], true), ([1, 3], false)] {
        let x = random_tensor(&mut rng, &[2, 2, 3, 12]);
        check(
            &format!("depth to space {block:?} crd {crd}"),
            &Case::new(Op::DepthToSpace { block, crd }, vec![x]),
        );
    }
}

#[test]
fn transpose_of_three_and_four_axes() {
    let mut rng = Rng::new(131);
    for (shape, perm) in [
        (&[2, 3, 4, 2][..], vec![0, 2, 1, 3]),
        (&[2, 3, 4, 2][..], vec![0, 3, 1, 2]),
        (&[1, 4, 3][..], vec![0, 2, 1]),
    ] {
        let x = random_tensor(&mut rng, shape);
        check(
            &format!("transpose {perm:?}"),
            &Case::new(Op::Transpose { perm }, vec![x]),
        );
    }
}

#[test]
fn normalization_per_position_and_across_positions() {
    let mut rng = Rng::new(137);
    for (shape, groups, across) in [
        (&[2, 3, 4][..], 1, false),
        (&[2, 2, 3, 4][..], 2, false),
        (&[2, 2, 3, 4][..], 2, true),
        (&[1, 3, 4][..], 4, true),
        (&[2, 6][..], 3, true),
    ] {
        let c = shape[shape.len() - 1];
        let param = |rng: &mut Rng, base: f32| {
            Param::new(
                vec![c],
                (0..c).map(|_| base + rng.uniform(-0.5, 0.5)).collect(),
            )
        };
        let op = Op::Normalize {
            groups,
            across_positions: across,
            epsilon: 1e-3,
            gamma: param(&mut rng, 1.0),
            beta: param(&mut rng, 0.0),
            clamp: Clamp::NONE,
        };
        let x = random_tensor(&mut rng, shape);
        check(
            &format!("normalize {shape:?} groups {groups} across {across}"),
            &Case::new(op, vec![x]),
        );
    }
}

#[test]
fn bilinear_resize_in_every_mode() {
    use ferrite_runtime::kernels::resize::BilinearMode;
    let mut rng = Rng::new(100);
    for (size, align, half) in [
        ([6, 8], false, true),
        ([5, 5], true, false),
        ([2, 3], false, false),
    ] {
        let x = random_tensor(&mut rng, &[2, 3, 4, 2]);
        let mode = BilinearMode {
            align_corners: align,
            half_pixel_centers: half,
        };
        check(
            &format!("bilinear to {size:?}, {mode:?}"),
            &Case::new(Op::ResizeBilinear { size, mode }, vec![x]),
        );
    }
}

#[test]
fn pad_on_height_width_and_channels() {
    let mut rng = Rng::new(120);
    let hw = Op::Pad {
        before: vec![0, 1, 2, 0],
        after: vec![0, 2, 0, 0],
    };
    check(
        "pad h w",
        &Case::new(hw, vec![random_tensor(&mut rng, &[2, 3, 2, 3])]),
    );
    let c = Op::Pad {
        before: vec![0, 0, 0, 2],
        after: vec![0, 0, 1, 1],
    };
    check(
        "pad c",
        &Case::new(c, vec![random_tensor(&mut rng, &[2, 2, 2, 3])]),
    );
    let rank_2 = Op::Pad {
        before: vec![0, 3],
        after: vec![0, 1],
    };
    check(
        "pad rank 2",
        &Case::new(rank_2, vec![random_tensor(&mut rng, &[3, 4])]),
    );
}

/// Elements copied into the padding more than once (reflected, repeated from the border, wrapped)
/// gather the gradient of every copy.
#[test]
fn mirror_pad_in_every_mode() {
    use ferrite_runtime::ops::PadMode;
    let mut rng = Rng::new(125);
    for mode in [
        PadMode::Reflect,
        PadMode::Symmetric,
        PadMode::Edge,
        PadMode::Wrap,
    ] {
        let hw = Op::MirrorPad {
            before: vec![0, 2, 1, 0],
            after: vec![0, 1, 3, 0],
            mode,
        };
        check(
            &format!("mirror pad h w, {mode:?}"),
            &Case::new(hw, vec![random_tensor(&mut rng, &[2, 3, 4, 2])]),
        );
        let c = Op::MirrorPad {
            before: vec![0, 0, 0, 1],
            after: vec![0, 0, 0, 2],
            mode,
        };
        check(
            &format!("mirror pad c, {mode:?}"),
            &Case::new(c, vec![random_tensor(&mut rng, &[1, 2, 2, 3])]),
        );
    }
}

#[test]
fn batch_norm_scale_and_shift() {
    let mut rng = Rng::new(130);
    for shape in [&[2, 3, 2, 4][..], &[5, 4]] {
        let op = Op::BatchNorm {
            scale: random_param(&mut rng, &[4]),
            shift: random_param(&mut rng, &[4]),
        };
        check(
            &format!("batch norm {shape:?}"),
            &Case::new(op, vec![random_tensor(&mut rng, shape)]),
        );
    }
}

#[test]
fn wrong_gradients_fail_the_check() {
    let case = smooth_case(1, |rng| {
        let w = window([3, 2], [2, 1], [1, 1], [1, 1, 0, 0]);
        Case::new(
            conv(rng, w, 2, 3, Clamp::NONE),
            vec![random_tensor(rng, &[2, 5, 4, 2])],
        )
    });
    let r = weights_of_loss(&case);
    let got = analytic(&case, &r);
    let (want_inputs, want_params) = numeric(&case, &r);
    let d_filter = &got.params[0];
    assert_eq!(mismatch(d_filter, &want_params[0]), None);
    assert_eq!(
        mismatch(
            got.inputs[0].as_ref().unwrap(),
            want_inputs[0].as_ref().unwrap()
        ),
        None
    );
    // A sign flip.
    let flipped: Vec<f32> = d_filter.iter().map(|v| -v).collect();
    assert!(mismatch(&flipped, &want_params[0]).is_some());
    // The filter's taps read in transposed order (kx, ky instead of ky, kx).
    let (out_c, kh, kw, in_c) = (3, 3, 2, 2);
    let mut transposed = d_filter.clone();
    for o in 0..out_c {
        for ky in 0..kh {
            for kx in 0..kw {
                let (t, s) = (ky * kw + kx, (kx * kh + ky) % (kh * kw));
                let dst = ((o * kh * kw) + t) * in_c;
                let src = ((o * kh * kw) + s) * in_c;
                transposed[dst..dst + in_c].copy_from_slice(&d_filter[src..src + in_c]);
            }
        }
    }
    assert!(mismatch(&transposed, &want_params[0]).is_some());
    // The input gradient of a clamp ignored: Relu6 must block where the output saturates.
    let case = smooth_case(2, |rng| {
        let mut x = random_tensor(rng, &[1, 3, 3, 2]);
        x.data.iter_mut().for_each(|v| *v *= 8.0);
        Case::new(
            Op::Relu {
                clamp: Clamp::RELU6,
            },
            vec![x],
        )
    });
    let r = weights_of_loss(&case);
    let (want, _) = numeric(&case, &r);
    assert!(mismatch(&r, want[0].as_ref().unwrap()).is_some());
}

/// The gradients of `case` in a rayon pool of `threads` threads.
fn grads_with_threads(case: &Case, threads: usize) -> (Vec<Option<Vec<f32>>>, Vec<Vec<f32>>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let r = weights_of_loss(case);
    let g = pool.install(|| analytic(case, &r));
    (g.inputs, g.params)
}

#[test]
fn weighted_gradients_do_not_depend_on_the_thread_count() {
    let mut rng = Rng::new(140);
    let w3 = window([3, 3], [1, 1], [1, 1], [1, 1, 1, 1]);
    let w1 = window([1, 1], [1, 1], [1, 1], [0; 4]);
    let cases = [
        Case::new(
            conv(&mut rng, w3, 8, 6, Clamp::RELU),
            vec![random_tensor(&mut rng, &[11, 9, 9, 8])],
        ),
        Case::new(
            conv(&mut rng, w1, 8, 6, Clamp::NONE),
            vec![random_tensor(&mut rng, &[11, 9, 9, 8])],
        ),
        Case::new(
            Op::FullyConnected {
                filter: random_param(&mut rng, &[10, 40]),
                bias: random_param(&mut rng, &[10]),
                clamp: Clamp::NONE,
            },
            vec![random_tensor(&mut rng, &[300, 40])],
        ),
        Case::new(
            Op::DepthwiseConv2d {
                window: w3,
                depth_multiplier: 2,
                filter: random_param(&mut rng, &[1, 3, 3, 8]),
                bias: random_param(&mut rng, &[8]),
                clamp: Clamp::NONE,
            },
            vec![random_tensor(&mut rng, &[11, 9, 9, 4])],
        ),
    ];
    for case in &cases {
        let one = grads_with_threads(case, 1);
        let two = grads_with_threads(case, 2);
        assert!(
            one == two,
            "{}: gradients differ with 2 threads",
            case.op.name()
        );
    }
}

/// Conv2d forward and backward time on a batch of 32 28x28x16 images, 16 3x3 filters (run with
/// `cargo test --release -p ferrite-quantizer --lib train:: -- --ignored --nocapture`).
#[test]
#[ignore]
fn conv2d_backward_timing() {
    let mut rng = Rng::new(150);
    let w = window([3, 3], [1, 1], [1, 1], [1, 1, 1, 1]);
    let op = conv(&mut rng, w, 16, 16, Clamp::RELU);
    let x = random_tensor(&mut rng, &[32, 28, 28, 16]);
    let ins = views(std::slice::from_ref(&x));
    let out = eval(&op, &ins).unwrap();
    let dy = rng.values(out.data.len(), -1.0, 1.0);
    // The fastest of 20 runs: the machine may be shared.
    let time = |f: &dyn Fn()| {
        f();
        (0..20)
            .map(|_| {
                let start = std::time::Instant::now();
                f();
                start.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    };
    let forward = time(&|| {
        eval(&op, &ins).unwrap();
    });
    let backward_all = time(&|| {
        backward(&op, &ins, &out.data, &dy, &[true]).unwrap();
    });
    let backward_params = time(&|| {
        backward(&op, &ins, &out.data, &dy, &[false]).unwrap();
    });
    eprintln!(
        "conv2d batch 32 28x28x16 -> 16 3x3 on {} threads: forward {forward:.2} ms, backward \
         {backward_all:.2} ms (params only {backward_params:.2} ms)",
        rayon::current_num_threads()
    );
}
