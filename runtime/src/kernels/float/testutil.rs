//! Helpers for the f32 kernel tests.

use std::vec::Vec;

use crate::format::Activation;
use crate::kernels::{ConvGeometry, Nhwc};

pub use crate::kernels::testutil::Rng;

/// Little-endian bytes of `values`, as the model stores f32 filters and biases.
pub fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `n` values uniform in `[lo, hi)`.
pub fn f32_vec(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.f32(lo, hi)).collect()
}

/// Asserts `|got - want| <= 1e-5 * max(|want|, 1)` everywhere (values in tests are of order 1);
/// `what` names the case in the failure message.
pub fn assert_close_f32(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-5 * w.abs().max(1.0);
        assert!(
            (g as f64 - w).abs() <= tol,
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

/// A random convolution geometry with TFLite-valid padding (each side less than the dilated kernel).
pub struct ConvCase {
    pub g: ConvGeometry,
    pub pad_bottom: usize,
    pub pad_right: usize,
}

/// Random shapes: batch 1-2, sizes 1-8, kernel 1-3, stride 1-2, dilation 1-2, asymmetric padding.
/// Output channels are `in_c * channel_multiplier` when `channel_multiplier > 0`, else random.
pub fn random_conv(rng: &mut Rng, channel_multiplier: usize) -> ConvCase {
    let r = |rng: &mut Rng, lo: i32, hi: i32| rng.range(lo, hi) as usize;
    loop {
        let (n, h, w, in_c) = (r(rng, 1, 2), r(rng, 1, 8), r(rng, 1, 8), r(rng, 1, 4));
        let (kernel_h, kernel_w) = (r(rng, 1, 3), r(rng, 1, 3));
        let (stride_h, stride_w) = (r(rng, 1, 2), r(rng, 1, 2));
        let (dilation_h, dilation_w) = (r(rng, 1, 2), r(rng, 1, 2));
        let eff_h = (kernel_h - 1) * dilation_h + 1;
        let eff_w = (kernel_w - 1) * dilation_w + 1;
        let (pad_top, pad_bottom) = (r(rng, 0, eff_h as i32 - 1), r(rng, 0, eff_h as i32 - 1));
        let (pad_left, pad_right) = (r(rng, 0, eff_w as i32 - 1), r(rng, 0, eff_w as i32 - 1));
        let (padded_h, padded_w) = (pad_top + h + pad_bottom, pad_left + w + pad_right);
        if padded_h < eff_h || padded_w < eff_w {
            continue;
        }
        let out_h = (padded_h - eff_h) / stride_h + 1;
        let out_w = (padded_w - eff_w) / stride_w + 1;
        let out_c = if channel_multiplier > 0 {
            in_c * channel_multiplier
        } else {
            r(rng, 1, 4)
        };
        let g = ConvGeometry {
            input: Nhwc::new(n, h, w, in_c),
            output: Nhwc::new(n, out_h, out_w, out_c),
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            dilation_h,
            dilation_w,
            pad_top,
            pad_left,
        };
        return ConvCase {
            g,
            pad_bottom,
            pad_right,
        };
    }
}

/// One of the four activations, uniformly.
pub fn random_activation(rng: &mut Rng) -> Activation {
    [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::ReluN1To1,
    ][rng.range(0, 3) as usize]
}

/// Grouped convolution in f64 over an explicitly zero-padded copy of the input.
///
/// `filter` is OHWI with `in_c / groups` input channels per filter; output channel `oc` belongs to
/// group `oc / (out_c / groups)` and reads that group's input channels.
#[allow(clippy::too_many_arguments)]
pub fn grouped_conv_reference(
    g: &ConvGeometry,
    pad_bottom: usize,
    pad_right: usize,
    groups: usize,
    act: Activation,
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
) -> Vec<f64> {
    let i = g.input;
    let ph = g.pad_top + i.h + pad_bottom;
    let pw = g.pad_left + i.w + pad_right;
    let padded_shape = Nhwc::new(i.n, ph, pw, i.c);
    let mut padded = std::vec![0.0f64; padded_shape.len()];
    for n in 0..i.n {
        for y in 0..i.h {
            for x in 0..i.w {
                for c in 0..i.c {
                    padded[padded_shape.index(n, y + g.pad_top, x + g.pad_left, c)] =
                        input[i.index(n, y, x, c)] as f64;
                }
            }
        }
    }
    let o = g.output;
    let group_in = i.c / groups;
    let group_out = o.c / groups;
    let mut out = Vec::with_capacity(o.len());
    for n in 0..o.n {
        for oy in 0..o.h {
            for ox in 0..o.w {
                for oc in 0..o.c {
                    let first_ic = (oc / group_out) * group_in;
                    let mut acc = bias.get(oc).map_or(0.0, |&b| b as f64);
                    for ky in 0..g.kernel_h {
                        for kx in 0..g.kernel_w {
                            let y = oy * g.stride_h + ky * g.dilation_h;
                            let x = ox * g.stride_w + kx * g.dilation_w;
                            for j in 0..group_in {
                                let f = filter
                                    [((oc * g.kernel_h + ky) * g.kernel_w + kx) * group_in + j]
                                    as f64;
                                acc += f * padded[padded_shape.index(n, y, x, first_ic + j)];
                            }
                        }
                    }
                    let (lo, hi) = act.range();
                    out.push(acc.clamp(lo as f64, hi as f64));
                }
            }
        }
    }
    out
}
