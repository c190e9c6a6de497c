//! Shape rules shared by the operators (`crate::ops`, [`super::Op::output_shape`]): broadcasting,
//! windows, arity.
//!
//! The first dimension is the batch and passes through every operator, so the same rules serve the
//! graph (batch 1) and the executor (any batch).

use anyhow::{bail, ensure, Result};

use super::Window2d;

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

/// The NHWC output shape of `window` over `input`, with `channels` channels.
pub(crate) fn window_out(
    window: &Window2d,
    input: &[usize],
    channels: usize,
) -> Result<Vec<usize>> {
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

/// Checks that there are `n` inputs.
pub(crate) fn arity(inputs: &[&[usize]], n: usize) -> Result<()> {
    ensure!(inputs.len() == n, "{} input(s), {n} expected", inputs.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Clamp, Op, Param};

    fn infer(op: &Op, inputs: &[&[usize]]) -> anyhow::Result<Vec<usize>> {
        op.output_shape(inputs)
    }

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
