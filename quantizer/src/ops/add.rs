//! Add: element-wise sum with NumPy broadcasting (operands of equal rank) and a fused clamp; int8
//! operands are rescaled to a common scale as TFLite does. Mul shares this file's broadcasting code.

use anyhow::Result;
use ferrite_runtime::kernels::float as k;
use ferrite_runtime::ops::{AddParams, Binary, Op as RtOp};

use super::OutputQuant;
use crate::export::{Exporter, Layout};
use crate::ir::float_exec::{finish, kernels, nhwc, split_clamp, Tensor, View};
use crate::ir::shape::{arity, broadcast};
use crate::ir::{Clamp, Node};
use crate::lower::{NodeCx, Precision};
use crate::train::backward::{Grad, OpGrads};

pub(super) const OUTPUT: OutputQuant = OutputQuant::Calibrated;
/// The runtime runs this operator on int16 activations (int16x8).
pub(super) const INT16: bool = true;

pub(super) fn shape(inputs: &[&[usize]]) -> Result<Vec<usize>> {
    arity(inputs, 2)?;
    broadcast(inputs[0], inputs[1])
}

pub(super) fn eval(clamp: Clamp, inputs: &[View<'_>], out: &mut Tensor) -> Result<()> {
    binary_eval(Arith::Add, clamp, inputs, out)
}

/// The element-wise arithmetic of Add, Sub and Mul.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Arith {
    Add,
    Sub,
    Mul,
}

/// `a + b`, `a - b` or `a * b` by `arith`, with broadcasting, then the clamp.
pub(super) fn binary_eval(
    arith: Arith,
    clamp: Clamp,
    inputs: &[View<'_>],
    out: &mut Tensor,
) -> Result<()> {
    let (x, b) = (inputs[0], inputs[1]);
    let (act, rest) = split_clamp(clamp);
    if x.shape == out.shape.as_slice() && b.shape == out.shape.as_slice() {
        let f = match arith {
            Arith::Add => |x: f32, y: f32| x + y,
            Arith::Sub => |x, y| x - y,
            Arith::Mul => |x, y| x * y,
        };
        kernels::binary_same_shape(f, act, x.data, b.data, &mut out.data);
    } else {
        let (sa, sb, so) = (nhwc(x.shape)?, nhwc(b.shape)?, nhwc(&out.shape)?);
        let kernel = match arith {
            Arith::Add => k::add_f32,
            Arith::Sub => k::sub_f32,
            Arith::Mul => k::mul_f32,
        };
        kernel(act, sa, x.data, sb, b.data, so, &mut out.data);
    }
    finish(clamp, rest, &mut out.data);
    Ok(())
}

pub(super) fn backward(g: &Grad<'_>) -> Result<OpGrads> {
    binary_backward(Arith::Add, g)
}

/// Gradients of `a + b`, `a - b` or `a * b` with broadcasting: each operand's gradient is summed
/// over the dimensions it was stretched along.
pub(super) fn binary_backward(arith: Arith, g: &Grad<'_>) -> Result<OpGrads> {
    let (a, b, dy, need) = (g.inputs[0], g.inputs[1], g.dy, g.need);
    // d(out)/d(a) and d(out)/d(b) at one element, given the other operand's value there.
    let da_of = |d: f32, other: f32| if arith == Arith::Mul { d * other } else { d };
    let db_of = |d: f32, other: f32| match arith {
        Arith::Add => d,
        Arith::Sub => -d,
        Arith::Mul => d * other,
    };
    if a.shape == g.out_shape && b.shape == g.out_shape {
        let grad = |f: &dyn Fn(f32, f32) -> f32, other: &[f32]| -> Vec<f32> {
            dy.iter().zip(other).map(|(&d, &o)| f(d, o)).collect()
        };
        return Ok(OpGrads::inputs(vec![
            need[0].then(|| grad(&da_of, b.data)),
            need[1].then(|| grad(&db_of, a.data)),
        ]));
    }
    let mut da = need[0].then(|| vec![0.0f32; a.data.len()]);
    let mut db = need[1].then(|| vec![0.0f32; b.data.len()]);
    each_broadcast_pair(a.shape, b.shape, g.out_shape, |ia, ib, at| {
        let d = dy[at];
        if let Some(da) = &mut da {
            da[ia] += da_of(d, b.data[ib]);
        }
        if let Some(db) = &mut db {
            db[ib] += db_of(d, a.data[ia]);
        }
    })?;
    Ok(OpGrads::inputs(vec![da, db]))
}

/// Calls `f(ia, ib, at)` for each element `at` of an output of shape `out` that broadcasts operands
/// of shapes `a` and `b`, with the indices of the operands' elements it reads.
pub(super) fn each_broadcast_pair(
    a: &[usize],
    b: &[usize],
    out: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) -> Result<()> {
    let (sa, sb, so) = (nhwc(a)?, nhwc(b)?, nhwc(out)?);
    let pick = |size: usize, i: usize| if size == 1 { 0 } else { i };
    let mut at = 0;
    for n in 0..so.n {
        for y in 0..so.h {
            for x in 0..so.w {
                for c in 0..so.c {
                    let ia = sa.index(pick(sa.n, n), pick(sa.h, y), pick(sa.w, x), pick(sa.c, c));
                    let ib = sb.index(pick(sb.n, n), pick(sb.h, y), pick(sb.w, x), pick(sb.c, c));
                    f(ia, ib, at);
                    at += 1;
                }
            }
        }
    }
    Ok(())
}

pub(super) fn lower<'a>(clamp: Clamp, cx: &NodeCx<'_, 'a>) -> Result<RtOp<'a>> {
    let prepare = if cx.precision == Precision::Int16 {
        AddParams::prepare_int16
    } else {
        AddParams::prepare
    };
    binary(cx, clamp, prepare).map(RtOp::Add)
}

/// An element-wise binary operator (Add, Sub, Mul): its operands, fused activation and, for int8 and
/// int16, the parameters `prepare` computes from both inputs' and the output's quantization and the
/// clamp (in the output's type).
pub(super) fn binary<P>(
    cx: &NodeCx<'_, '_>,
    clamp: Clamp,
    prepare: fn(f32, i32, f32, i32, f32, i32, i32, i32) -> P,
) -> Result<Binary<P>> {
    let (lo, hi) = cx.act_range(clamp);
    let activation = cx.activation(clamp)?;
    let (p1, p2, out) = (cx.in_q(0), cx.in_q(1), cx.out_q);
    let quant = (!cx.float).then(|| {
        prepare(
            p1.scale,
            p1.zero_point,
            p2.scale,
            p2.zero_point,
            out.scale,
            out.zero_point,
            lo,
            hi,
        )
    });
    Ok(Binary {
        a: cx.input(0),
        b: cx.input(1),
        output: cx.output(),
        activation,
        quant,
    })
}

pub(super) fn export(clamp: Clamp, e: &mut Exporter<'_>, n: &Node) -> Result<(String, Layout)> {
    binary_export("Add", clamp, e, n)
}

/// An ONNX `Add`, `Sub` or `Mul` of the node's operands, then the clamp.
pub(super) fn binary_export(
    op: &str,
    clamp: Clamp,
    e: &mut Exporter<'_>,
    n: &Node,
) -> Result<(String, Layout)> {
    let name = n.name.as_str();
    let (ins, l) = e.operands(n, true)?;
    let y = e.op(op, name, ins, vec![]);
    Ok((e.clamp(y, clamp, name), l))
}
