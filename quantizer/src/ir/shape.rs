//! Shape inference: each operator's output shape from its inputs' shapes.
//!
//! The first dimension is the batch and passes through every operator, so the same rules serve the
//! graph (batch 1) and the executor (any batch).

use anyhow::{bail, ensure, Context, Result};

use super::{Op, Window2d};

/// The broadcast shape of two operands of equal rank (a dimension of 1 stretches).
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    ensure!(
        a.len() == b.len(),
        "operands of rank {} and {} (equal ranks required)",
        a.len(),
        b.len()
    );
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Ok(x),
            (1, _) => Ok(y),
            (_, 1) => Ok(x),
            _ => bail!("shapes {a:?} and {b:?} do not broadcast"),
        })
        .collect()
}

fn window_out(window: &Window2d, input: &[usize], channels: usize) -> Result<Vec<usize>> {
    ensure!(
        input.len() == 4,
        "input of rank {} (NHWC required)",
        input.len()
    );
    let h = window.out_size(0, input[1]);
    let w = window.out_size(1, input[2]);
    match (h, w) {
        (Some(h), Some(w)) if h > 0 && w > 0 => Ok(vec![input[0], h, w, channels]),
        _ => bail!("window ({window}) does not fit input {input:?}"),
    }
}

fn arity(inputs: &[&[usize]], n: usize) -> Result<()> {
    ensure!(inputs.len() == n, "{} input(s), {n} expected", inputs.len());
    Ok(())
}

/// The output shape of `op` applied to inputs of `inputs` shapes.
pub fn infer(op: &Op, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    match op {
        Op::Conv2d {
            window,
            filter,
            bias,
            ..
        } => {
            arity(inputs, 1)?;
            let x = inputs[0];
            ensure!(
                filter.shape.len() == 4,
                "filter of rank {}",
                filter.shape.len()
            );
            ensure!(
                x.len() == 4 && x[3] == filter.shape[3],
                "input {x:?} does not fit filter {:?}",
                filter.shape
            );
            ensure!(
                window.kernel == [filter.shape[1], filter.shape[2]],
                "kernel size differs from the filter's"
            );
            ensure!(
                bias.data.len() == filter.shape[0],
                "bias of {} for {} channels",
                bias.data.len(),
                filter.shape[0]
            );
            window_out(window, x, filter.shape[0])
        }
        Op::DepthwiseConv2d {
            window,
            depth_multiplier,
            filter,
            bias,
            ..
        } => {
            arity(inputs, 1)?;
            let x = inputs[0];
            ensure!(x.len() == 4, "input of rank {} (NHWC required)", x.len());
            let out_c = x[3] * depth_multiplier;
            ensure!(
                filter.shape == [1, window.kernel[0], window.kernel[1], out_c],
                "filter {:?} does not fit input {x:?}",
                filter.shape
            );
            ensure!(
                bias.data.len() == out_c,
                "bias of {} for {out_c} channels",
                bias.data.len()
            );
            window_out(window, x, out_c)
        }
        Op::FullyConnected { filter, bias, .. } => {
            arity(inputs, 1)?;
            let x = inputs[0];
            ensure!(
                filter.shape.len() == 2,
                "filter of rank {}",
                filter.shape.len()
            );
            ensure!(
                x.len() >= 2 && x[x.len() - 1] == filter.shape[1],
                "input {x:?} does not fit filter {:?}",
                filter.shape
            );
            ensure!(
                bias.data.len() == filter.shape[0],
                "bias of {} for {} outputs",
                bias.data.len(),
                filter.shape[0]
            );
            let mut out = x.to_vec();
            *out.last_mut().unwrap() = filter.shape[0];
            Ok(out)
        }
        Op::Add { .. } | Op::Mul { .. } => {
            arity(inputs, 2)?;
            broadcast(inputs[0], inputs[1])
        }
        Op::AveragePool2d { window, .. } | Op::MaxPool2d { window, .. } => {
            arity(inputs, 1)?;
            ensure!(window.dilation == [1, 1], "pooling with dilation");
            let x = inputs[0];
            ensure!(x.len() == 4, "input of rank {} (NHWC required)", x.len());
            window_out(window, x, x[3])
        }
        Op::ResizeNearest { size } => {
            arity(inputs, 1)?;
            let x = inputs[0];
            ensure!(x.len() == 4, "input of rank {} (NHWC required)", x.len());
            ensure!(
                size[0] > 0 && size[1] > 0,
                "resize to an empty size {size:?}"
            );
            Ok(vec![x[0], size[0], size[1], x[3]])
        }
        Op::Mean { keep_dims } => {
            arity(inputs, 1)?;
            let x = inputs[0];
            ensure!(x.len() == 4, "input of rank {} (NHWC required)", x.len());
            Ok(if *keep_dims {
                vec![x[0], 1, 1, x[3]]
            } else {
                vec![x[0], x[3]]
            })
        }
        Op::Softmax { .. }
        | Op::Logistic
        | Op::Tanh
        | Op::Relu { .. }
        | Op::LeakyRelu { .. }
        | Op::Identity => {
            arity(inputs, 1)?;
            Ok(inputs[0].to_vec())
        }
        Op::Reshape { shape } => {
            arity(inputs, 1)?;
            let x = inputs[0];
            ensure!(
                !shape.is_empty() && !x.is_empty(),
                "reshape to or from a scalar"
            );
            let per_in: usize = x[1..].iter().product();
            let per_out: usize = shape[1..].iter().product();
            ensure!(per_in == per_out, "cannot reshape {x:?} to {shape:?}");
            let mut out = shape.clone();
            out[0] = x[0];
            Ok(out)
        }
        Op::Concatenation { axis } => {
            ensure!(!inputs.is_empty(), "no inputs");
            let first = inputs[0];
            ensure!(
                *axis > 0 && *axis < first.len(),
                "axis {axis} of rank {}",
                first.len()
            );
            let mut out = first.to_vec();
            out[*axis] = 0;
            for s in inputs {
                ensure!(
                    s.len() == first.len()
                        && s.iter()
                            .zip(first)
                            .enumerate()
                            .all(|(d, (a, b))| d == *axis || a == b),
                    "shapes {first:?} and {s:?} do not concatenate on axis {axis}"
                );
                out[*axis] = out[*axis].checked_add(s[*axis]).context("size overflows")?;
            }
            Ok(out)
        }
        Op::Pad { before, after } => {
            arity(inputs, 1)?;
            let x = inputs[0];
            ensure!(
                before.len() == x.len() && after.len() == x.len(),
                "padding of rank {} for input {x:?}",
                before.len()
            );
            ensure!(
                before[0] == 0 && after[0] == 0,
                "padding the batch dimension"
            );
            x.iter()
                .zip(before)
                .zip(after)
                .map(|((d, b), a)| d.checked_add(*b)?.checked_add(*a))
                .collect::<Option<Vec<_>>>()
                .context("padding overflows")
        }
        Op::BatchNorm { scale, shift } => {
            arity(inputs, 1)?;
            let x = inputs[0];
            let c = *x.last().unwrap_or(&0);
            ensure!(
                x.len() >= 2 && scale.data.len() == c && shift.data.len() == c,
                "{} channels for input {x:?}",
                scale.data.len()
            );
            Ok(x.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Clamp, Param};

    fn win(k: usize, s: usize, pads: [usize; 4]) -> Window2d {
        Window2d {
            kernel: [k, k],
            stride: [s, s],
            dilation: [1, 1],
            pads,
        }
    }

    #[test]
    fn conv_pool_and_reshape_shapes() {
        let conv = Op::Conv2d {
            window: win(3, 2, [1, 1, 1, 1]),
            filter: Param::new(vec![8, 3, 3, 4], vec![0.0; 288]),
            bias: Param::new(vec![8], vec![0.0; 8]),
            clamp: Clamp::NONE,
        };
        assert_eq!(infer(&conv, &[&[1, 28, 28, 4]]).unwrap(), [1, 14, 14, 8]);
        // The batch passes through.
        assert_eq!(infer(&conv, &[&[5, 28, 28, 4]]).unwrap(), [5, 14, 14, 8]);
        assert!(infer(&conv, &[&[1, 28, 28, 3]]).is_err());
        let pool = Op::MaxPool2d {
            window: win(2, 2, [0; 4]),
            clamp: Clamp::NONE,
        };
        assert_eq!(infer(&pool, &[&[2, 7, 7, 3]]).unwrap(), [2, 3, 3, 3]);
        let r = Op::Reshape { shape: vec![1, 12] };
        assert_eq!(infer(&r, &[&[3, 2, 2, 3]]).unwrap(), [3, 12]);
        assert!(infer(&r, &[&[3, 2, 2, 2]]).is_err());
        assert_eq!(
            infer(&Op::Mean { keep_dims: false }, &[&[2, 5, 5, 7]]).unwrap(),
            [2, 7]
        );
        assert_eq!(
            broadcast(&[1, 4, 4, 8], &[1, 1, 1, 8]).unwrap(),
            [1, 4, 4, 8]
        );
        assert!(broadcast(&[1, 4, 4, 8], &[1, 1, 1, 3]).is_err());
        let cat = Op::Concatenation { axis: 3 };
        assert_eq!(
            infer(&cat, &[&[1, 2, 2, 3], &[1, 2, 2, 5]]).unwrap(),
            [1, 2, 2, 8]
        );
        let pad = Op::Pad {
            before: vec![0, 1, 2, 0],
            after: vec![0, 1, 0, 0],
        };
        assert_eq!(infer(&pad, &[&[1, 4, 4, 2]]).unwrap(), [1, 6, 6, 2]);
    }
}
