//! int16x8 2-D and depthwise convolution (TFLite `reference_integer_ops::ConvPerChannel` and
//! `DepthwiseConvPerChannel`, their int16 forms with int64 biases).

use super::requantize_acc64;
use crate::kernels::conv2d::input_coord;
use crate::kernels::{ConvGeometry, LeI64, OutputQuant};

/// int16x8 2-D convolution: `input` NHWC int16, `filter` OHWI int8, `bias` one int64 per output
/// channel (or empty), `output` NHWC int16. Taps in the padding are skipped (zero point 0).
pub fn conv2d_s16(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i16],
    filter: &[i8],
    bias: LeI64<'_>,
    output: &mut [i16],
) {
    let (in_c, out_c) = (g.input.c, g.output.c);
    for n in 0..g.output.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for oc in 0..out_c {
                    let mut acc: i64 = 0;
                    for ky in 0..g.kernel_h {
                        let Some(iy) =
                            input_coord(oy, g.stride_h, ky, g.dilation_h, g.pad_top, g.input.h)
                        else {
                            continue;
                        };
                        for kx in 0..g.kernel_w {
                            let Some(ix) = input_coord(
                                ox,
                                g.stride_w,
                                kx,
                                g.dilation_w,
                                g.pad_left,
                                g.input.w,
                            ) else {
                                continue;
                            };
                            let x = &input[g.input.index(n, iy, ix, 0)..][..in_c];
                            let w = &filter[((oc * g.kernel_h + ky) * g.kernel_w + kx) * in_c..]
                                [..in_c];
                            for (&x, &w) in x.iter().zip(w) {
                                acc += x as i64 * w as i64;
                            }
                        }
                    }
                    if !bias.is_empty() {
                        acc += bias.get(oc);
                    }
                    output[g.output.index(n, oy, ox, oc)] = requantize_acc64(q, acc, oc);
                }
            }
        }
    }
}

/// int16x8 depthwise convolution: output channel `ic * depth_multiplier + m` convolves input
/// channel `ic` with filter `[1, kh, kw, out_c]` column `ic * depth_multiplier + m`.
pub fn depthwise_conv2d_s16(
    g: &ConvGeometry,
    depth_multiplier: usize,
    q: &OutputQuant<'_>,
    input: &[i16],
    filter: &[i8],
    bias: LeI64<'_>,
    output: &mut [i16],
) {
    let out_c = g.output.c;
    for n in 0..g.output.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for ic in 0..g.input.c {
                    for m in 0..depth_multiplier {
                        let oc = ic * depth_multiplier + m;
                        let mut acc: i64 = 0;
                        for ky in 0..g.kernel_h {
                            let Some(iy) =
                                input_coord(oy, g.stride_h, ky, g.dilation_h, g.pad_top, g.input.h)
                            else {
                                continue;
                            };
                            for kx in 0..g.kernel_w {
                                let Some(ix) = input_coord(
                                    ox,
                                    g.stride_w,
                                    kx,
                                    g.dilation_w,
                                    g.pad_left,
                                    g.input.w,
                                ) else {
                                    continue;
                                };
                                let x = input[g.input.index(n, iy, ix, ic)] as i64;
                                let w = filter[(ky * g.kernel_w + kx) * out_c + oc] as i64;
                                acc += x * w;
                            }
                        }
                        if !bias.is_empty() {
                            acc += bias.get(oc);
                        }
                        output[g.output.index(n, oy, ox, oc)] = requantize_acc64(q, acc, oc);
                    }
                }
            }
        }
    }
}
