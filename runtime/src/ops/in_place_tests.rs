//! In-place poolings and element-wise activations compute what they compute out of place, with the
//! output before or after the input by the smallest room their bands need and by more.

use super::testutil::{int8_tensor, one_op_model, run_int8, values};
use super::{Op, Pool, Relu, ReluParams, TanhParams, Unary};
use crate::format::{Activation, Operand, Window, ARENA_ALIGN};
use crate::in_place::{Direction, Rows};
use crate::Model;
use proptest::prelude::*;
use std::vec::Vec;

/// Which operator a case runs.
#[derive(Clone, Copy, Debug)]
enum Kind {
    MaxPool,
    AveragePool,
    Relu6,
    Tanh,
}

/// The operator of `kind` from `input` to `output`, and its rows.
fn op(kind: Kind, input: Operand, output: Operand, window: (usize, usize, usize)) -> Op<'static> {
    let (k, stride, pad) = window;
    let pool = |input, output| Pool {
        input,
        output,
        filter_h: k as u16,
        filter_w: k as u16,
        window: Window {
            stride_h: stride as u16,
            stride_w: stride as u16,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad as u16,
            pad_left: pad as u16,
        },
        activation: Activation::None,
        act_min: -128,
        act_max: 127,
    };
    match kind {
        Kind::MaxPool => Op::MaxPool2d(pool(input, output)),
        Kind::AveragePool => Op::AveragePool2d(pool(input, output)),
        Kind::Relu6 => Op::Relu(Relu {
            input,
            output,
            quant: Some(ReluParams::prepare(0.05, 4, 0.05, 4, Activation::Relu6)),
            activation: Activation::Relu6,
        }),
        Kind::Tanh => Op::Tanh(Unary {
            input,
            output,
            quant: Some(TanhParams::prepare(0.05, 4)),
        }),
    }
}

fn rows(op: &Op<'_>) -> Rows {
    match op {
        Op::MaxPool2d(p) | Op::AveragePool2d(p) => p.rows(),
        Op::Relu(r) => super::unary_rows(&r.input, &r.output).unwrap(),
        Op::Tanh(u) => super::unary_rows(&u.input, &u.output).unwrap(),
        _ => unreachable!(),
    }
}

/// The model with the input at `x` and the output at `y`, and its operator.
fn model(kind: Kind, dims: [usize; 4], window: (usize, usize, usize), x: u32, y: u32) -> Vec<u8> {
    let [n, h, w, c] = dims;
    let (k, stride, pad) = window;
    let out_dims = match kind {
        Kind::MaxPool | Kind::AveragePool => {
            let o = |d: usize| (d + 2 * pad).saturating_sub(k) / stride + 1;
            [n, o(h), o(w), c]
        }
        _ => dims,
    };
    let (out_scale, out_zero) = match kind {
        Kind::Tanh => (1.0 / 128.0, 0),
        _ => (0.05, 4),
    };
    let overlap = |a: u32, la: usize, b: u32, lb: usize| {
        (b as usize) < a as usize + la && (a as usize) < b as usize + lb
    };
    let (in_len, out_len) = (dims.iter().product(), out_dims.iter().product());
    let tensors = [
        int8_tensor("x", &dims, x, (0.05, 4), false),
        int8_tensor(
            "y",
            &out_dims,
            y,
            (out_scale, out_zero),
            overlap(x, in_len, y, out_len),
        ),
    ];
    let arena = (x as usize + in_len).max(y as usize + out_len);
    let op = op(kind, tensors[0].operand(0), tensors[1].operand(1), window);
    one_op_model(
        &tensors,
        arena.div_ceil(ARENA_ALIGN) as u32 * ARENA_ALIGN as u32,
        false,
        op,
    )
}

proptest! {
    #![proptest_config(crate::proptest_config(128))]

    #[test]
    fn in_place_equals_out_of_place(
        kind in prop_oneof![
            Just(Kind::MaxPool),
            Just(Kind::AveragePool),
            Just(Kind::Relu6),
            Just(Kind::Tanh),
        ],
        (h, w, c) in (1usize..9, 1usize..7, 1usize..5),
        (k, stride, pad) in (1usize..4, 1usize..3, 0usize..2),
        seed in any::<u64>(),
    ) {
        let pooling = matches!(kind, Kind::MaxPool | Kind::AveragePool);
        let window = (k.min(h).min(w), stride, pad.min(k.min(h).min(w) - 1));
        // Element-wise operators take any batch; poolings run in place with batch 1 only.
        let n = if pooling { 1 } else { 1 + (seed % 2) as usize };
        let dims = [n, h, w, c];
        let input: Vec<i8> =
            values(seed, n * h * w * c, -128, 127).into_iter().map(|v| v as i8).collect();
        let far = (n * h * w * c).div_ceil(ARENA_ALIGN) as u32 * ARENA_ALIGN as u32;
        let expected = run_int8(&model(kind, dims, window, 0, far), &[&input]);
        let bytes = model(kind, dims, window, 0, far);
        let m = Model::from_bytes(&bytes).unwrap();
        let rows = rows(&m.ops().next().unwrap());
        for extra in [0, 2 * ARENA_ALIGN] {
            if let Some(d) = rows.min_shift(Direction::Before, ARENA_ALIGN) {
                let bytes = model(kind, dims, window, (d + extra) as u32, 0);
                prop_assert_eq!(&run_int8(&bytes, &[&input]), &expected, "before by {}", d + extra);
            }
            if let Some(d) = rows.min_shift(Direction::After, ARENA_ALIGN) {
                let bytes = model(kind, dims, window, 0, (d + extra) as u32);
                prop_assert_eq!(&run_int8(&bytes, &[&input]), &expected, "after by {}", d + extra);
            }
        }
    }
}
