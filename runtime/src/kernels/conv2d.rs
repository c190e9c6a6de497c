//! Int8 2-D convolution (TFLite `reference_integer_ops::ConvPerChannel`) and the helpers it shares
//! with the other convolution-like kernels.

use super::{ConvGeometry, Int8Output, LeI32, Nhwc, OutputQuant};
use crate::quant::multiply_by_quantized_multiplier;

/// Input coordinate read by output coordinate `out` at kernel tap `k`, or `None` when the tap falls
/// in the padding.
///
/// TFLite: `in = out * stride - pad + k * dilation`, and a tap is used only when `0 <= in < len`.
#[inline(always)]
pub(crate) fn input_coord(
    out: usize,
    stride: usize,
    k: usize,
    dilation: usize,
    pad: usize,
    len: usize,
) -> Option<usize> {
    (out * stride + k * dilation)
        .checked_sub(pad)
        .filter(|&i| i < len)
}

/// Turns an int32 accumulator of output channel `channel` into an int8 (or wide int16) output value.
///
/// TFLite: `MultiplyByQuantizedMultiplier(acc, multiplier[c], shift[c]) + output_offset`, then
/// `max(act_min)` and `min(act_max)`. A single multiplier/shift value applies to every channel.
#[inline(always)]
pub(crate) fn requantize_acc<T: Int8Output>(q: &OutputQuant<'_>, acc: i32, channel: usize) -> T {
    let scaled = multiply_by_quantized_multiplier(
        acc,
        q.multiplier.get_or_first(channel),
        q.shift.get_or_first(channel),
    );
    T::from_clamped(
        scaled
            .saturating_add(q.output_offset)
            .max(q.act_min)
            .min(q.act_max),
    )
}

/// Int8 2-D convolution with per-channel (or per-tensor) requantization.
///
/// * `input`: NHWC, `g.input` (batches = `g.input.n`).
/// * `filter`: OHWI, `[g.output.c, g.kernel_h, g.kernel_w, g.input.c]`, symmetric (zero point 0).
/// * `bias`: one `i32` per output channel with scale `input_scale * weight_scale[c]`, or empty.
/// * `output`: NHWC, `g.output`: int8, or int16 for a wide output.
///
/// Taps that fall in the padding are skipped, which is the same as padding with the input zero
/// point. Matches TFLite Micro's `reference_integer_ops::ConvPerChannel` bit for bit.
pub fn conv2d_s8<T: Int8Output>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [T],
) {
    let in_c = g.input.c;
    let out_c = g.output.c;
    let filter_shape = Nhwc::new(out_c, g.kernel_h, g.kernel_w, in_c);
    for n in 0..g.input.n {
        for oy in 0..g.output.h {
            for ox in 0..g.output.w {
                for oc in 0..out_c {
                    // TFLite: acc += filter * (input + input_offset) over the taps inside the input.
                    let mut acc: i32 = 0;
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
                            for ic in 0..in_c {
                                let x = input[g.input.index(n, iy, ix, ic)] as i32;
                                let w = filter[filter_shape.index(oc, ky, kx, ic)] as i32;
                                acc = acc.wrapping_add(w * (x + q.input_offset));
                            }
                        }
                    }
                    if !bias.is_empty() {
                        acc = acc.wrapping_add(bias.get(oc));
                    }
                    output[g.output.index(n, oy, ox, oc)] = requantize_acc(q, acc, oc);
                }
            }
        }
    }
}

/// Float references and quantization helpers shared by the convolution-like kernels' tests.
/// (Test modules that need `quant::prepare` run with `--features host`.)
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::format::Activation;
    use crate::kernels::testutil::{assert_close, dequant, quant, Rng};
    use crate::quant::prepare::quantize_multiplier;
    use std::vec;
    use std::vec::Vec;

    /// Little-endian bytes of an `i32` array, as the model stores it.
    pub(crate) fn le(values: &[i32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Multiplier and shift arrays (LE bytes) for `input_scale * weight_scale[c] / output_scale`.
    pub(crate) fn multipliers(
        input_scale: f32,
        weight_scales: &[f32],
        output_scale: f32,
    ) -> (Vec<u8>, Vec<u8>) {
        let r: Vec<_> = weight_scales
            .iter()
            .map(|&w| quantize_multiplier(input_scale as f64 * w as f64 / output_scale as f64))
            .collect();
        let m: Vec<i32> = r.iter().map(|r| r.multiplier).collect();
        let s: Vec<i32> = r.iter().map(|r| r.shift).collect();
        (le(&m), le(&s))
    }

    /// TFLite `CalculateActivationRangeQuantized` for int8.
    pub(crate) fn act_range(act: Activation, scale: f32, zp: i32) -> (i32, i32) {
        let q = |x: f32| zp + (x / scale).round() as i32;
        let (lo, hi) = match act {
            Activation::None => (-128, 127),
            Activation::Relu => (q(0.0), 127),
            Activation::Relu6 => (q(0.0), q(6.0)),
            Activation::ReluN1To1 => (q(-1.0), q(1.0)),
        };
        (lo.max(-128), hi.min(127))
    }

    /// Applies the activation to a real value, then quantizes it.
    pub(crate) fn quant_act(x: f64, act: Activation, scale: f32, zp: i32) -> i8 {
        let (lo, hi) = act.range();
        quant(x.max(lo as f64).min(hi as f64), scale, zp)
    }

    /// An output scale and zero point that cover most of `reals` (a little saturates on purpose).
    pub(crate) fn output_scale_for(reals: &[f64], rng: &mut Rng) -> (f32, i32) {
        let lo = reals.iter().cloned().fold(0.0f64, f64::min);
        let hi = reals.iter().cloned().fold(0.0f64, f64::max);
        let span = (hi - lo).max(1e-3);
        let scale = (span / 255.0 * rng.f32(0.8, 1.05) as f64) as f32;
        let zp = (-128.0 - lo / scale as f64).round().clamp(-128.0, 127.0) as i32;
        (scale, zp)
    }

    pub(crate) fn random_act(rng: &mut Rng) -> Activation {
        match rng.range(0, 3) {
            0 => Activation::None,
            1 => Activation::Relu,
            2 => Activation::Relu6,
            _ => Activation::ReluN1To1,
        }
    }

    /// Padding of one spatial dimension in a test case.
    #[derive(Clone, Copy, Debug)]
    pub(crate) enum Pad {
        Valid,
        /// TF SAME: output `ceil(in / stride)`, the odd padding row/column goes after.
        Same,
        /// Explicit `(before, after)`.
        Explicit(usize, usize),
    }

    /// Output length and `(before, after)` padding of one dimension.
    pub(crate) fn out_len(
        len: usize,
        k: usize,
        stride: usize,
        dilation: usize,
        pad: Pad,
    ) -> (usize, usize, usize) {
        let eff = (k - 1) * dilation + 1;
        match pad {
            Pad::Valid => ((len - eff) / stride + 1, 0, 0),
            Pad::Same => {
                let out = len.div_ceil(stride);
                let total = ((out - 1) * stride + eff).saturating_sub(len);
                (out, total / 2, total - total / 2)
            }
            Pad::Explicit(b, a) => ((len + b + a - eff) / stride + 1, b, a),
        }
    }

    /// A convolution test case (also used for depthwise with `depth_multiplier`).
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Case {
        pub n: usize,
        pub h: usize,
        pub w: usize,
        pub in_c: usize,
        /// Output channels (conv) or depth multiplier (depthwise).
        pub out_c: usize,
        pub kh: usize,
        pub kw: usize,
        pub stride: (usize, usize),
        pub dilation: (usize, usize),
        pub pad_h: Pad,
        pub pad_w: Pad,
        pub per_channel: bool,
        pub bias: bool,
        pub act: Activation,
    }

    impl Case {
        pub(crate) fn random(rng: &mut Rng) -> Self {
            let kh = rng.range(1, 3) as usize;
            let kw = rng.range(1, 3) as usize;
            let dilation = (rng.range(1, 2) as usize, rng.range(1, 2) as usize);
            let pad = |rng: &mut Rng, k: usize| match rng.range(0, 2) {
                0 => Pad::Valid,
                1 => Pad::Same,
                _ => Pad::Explicit(
                    rng.range(0, k as i32) as usize,
                    rng.range(0, k as i32) as usize,
                ),
            };
            Case {
                n: rng.range(1, 2) as usize,
                // Large enough for VALID with any kernel and dilation.
                h: rng.range(5, 9) as usize,
                w: rng.range(5, 9) as usize,
                in_c: rng.range(1, 5) as usize,
                out_c: rng.range(1, 5) as usize,
                kh,
                kw,
                stride: (rng.range(1, 2) as usize, rng.range(1, 2) as usize),
                dilation,
                pad_h: pad(rng, kh),
                pad_w: pad(rng, kw),
                per_channel: rng.range(0, 1) == 1,
                bias: rng.range(0, 3) != 0,
                act: random_act(rng),
            }
        }

        /// Geometry for `output_c` output channels.
        pub(crate) fn geometry(&self, output_c: usize) -> (ConvGeometry, (usize, usize)) {
            let (oh, pt, pb) = out_len(self.h, self.kh, self.stride.0, self.dilation.0, self.pad_h);
            let (ow, pl, pr) = out_len(self.w, self.kw, self.stride.1, self.dilation.1, self.pad_w);
            let g = ConvGeometry {
                input: Nhwc::new(self.n, self.h, self.w, self.in_c),
                output: Nhwc::new(self.n, oh, ow, output_c),
                kernel_h: self.kh,
                kernel_w: self.kw,
                stride_h: self.stride.0,
                stride_w: self.stride.1,
                dilation_h: self.dilation.0,
                dilation_w: self.dilation.1,
                pad_top: pt,
                pad_left: pl,
            };
            (g, (pb, pr))
        }
    }

    /// Real-valued input copied into a zero-padded buffer `[n][pt + h + pb][pl + w + pr][c]`.
    pub(crate) struct Padded {
        pub data: Vec<f64>,
        pub h: usize,
        pub w: usize,
        pub c: usize,
    }

    impl Padded {
        pub(crate) fn new(
            g: &ConvGeometry,
            after: (usize, usize),
            input: &[i8],
            scale: f32,
            zp: i32,
        ) -> Self {
            let (n, h, w, c) = (g.input.n, g.input.h, g.input.w, g.input.c);
            let ph = g.pad_top + h + after.0;
            let pw = g.pad_left + w + after.1;
            let mut data = vec![0.0; n * ph * pw * c];
            // Walk the input in memory order and place each value.
            for (i, &v) in input.iter().enumerate() {
                let ch = i % c;
                let x = (i / c) % w;
                let y = (i / (c * w)) % h;
                let b = i / (c * w * h);
                let dst = ((b * ph + y + g.pad_top) * pw + x + g.pad_left) * c + ch;
                data[dst] = dequant(v, scale, zp);
            }
            Padded {
                data,
                h: ph,
                w: pw,
                c,
            }
        }

        pub(crate) fn at(&self, b: usize, y: usize, x: usize, ch: usize) -> f64 {
            self.data[((b * self.h + y) * self.w + x) * self.c + ch]
        }
    }

    /// Random symmetric weights scales: one per channel, or a single per-tensor one.
    pub(crate) fn weight_scales(rng: &mut Rng, channels: usize, per_channel: bool) -> Vec<f32> {
        let count = if per_channel { channels } else { 1 };
        (0..count).map(|_| rng.f32(0.002, 0.02)).collect()
    }

    /// Random bias (empty when `present` is false).
    pub(crate) fn random_bias(rng: &mut Rng, channels: usize, present: bool) -> Vec<i32> {
        if present {
            (0..channels).map(|_| rng.range(-20_000, 20_000)).collect()
        } else {
            Vec::new()
        }
    }

    fn run_conv(case: Case, seed: u64) {
        let mut rng = Rng::new(seed);
        let (g, after) = case.geometry(case.out_c);
        let input = rng.i8_vec(g.input.len());
        let filter: Vec<i8> = (0..case.out_c * case.kh * case.kw * case.in_c)
            .map(|_| rng.range(-127, 127) as i8)
            .collect();
        let in_scale = rng.f32(0.01, 0.1);
        let in_zp = rng.range(-128, 127);
        let w_scales = weight_scales(&mut rng, case.out_c, case.per_channel);
        let w_scale = |oc: usize| w_scales[if case.per_channel { oc } else { 0 }];
        let bias = random_bias(&mut rng, case.out_c, case.bias);

        // Float reference: gather over an explicitly zero-padded copy of the input.
        let padded = Padded::new(&g, after, &input, in_scale, in_zp);
        let mut reals = Vec::new();
        for b in 0..g.output.n {
            for oy in 0..g.output.h {
                for ox in 0..g.output.w {
                    for oc in 0..case.out_c {
                        let mut sum = match bias.get(oc) {
                            Some(&v) => v as f64 * in_scale as f64 * w_scale(oc) as f64,
                            None => 0.0,
                        };
                        for ky in 0..case.kh {
                            for kx in 0..case.kw {
                                let y = oy * case.stride.0 + ky * case.dilation.0;
                                let x = ox * case.stride.1 + kx * case.dilation.1;
                                for ic in 0..case.in_c {
                                    let wi = ((oc * case.kh + ky) * case.kw + kx) * case.in_c + ic;
                                    let wr = filter[wi] as f64 * w_scale(oc) as f64;
                                    sum += padded.at(b, y, x, ic) * wr;
                                }
                            }
                        }
                        reals.push(sum);
                    }
                }
            }
        }
        let (out_scale, out_zp) = output_scale_for(&reals, &mut rng);
        let want: Vec<i8> = reals
            .iter()
            .map(|&x| quant_act(x, case.act, out_scale, out_zp))
            .collect();

        let (m, s) = multipliers(in_scale, &w_scales, out_scale);
        let (act_min, act_max) = act_range(case.act, out_scale, out_zp);
        let q = OutputQuant {
            input_offset: -in_zp,
            output_offset: out_zp,
            act_min,
            act_max,
            multiplier: LeI32::new(&m).unwrap(),
            shift: LeI32::new(&s).unwrap(),
        };
        let bias_bytes = le(&bias);
        let mut got = vec![0i8; g.output.len()];
        conv2d_s8(
            &g,
            &q,
            &input,
            &filter,
            LeI32::new(&bias_bytes).unwrap(),
            &mut got,
        );
        assert_close(&got, &want, 1);
    }

    #[test]
    fn hand_computed_valid_2x2() {
        // Input 3x3 with zero point 1 (values 0..8 after the offset), filter [[1, 2], [3, 4]].
        let g = ConvGeometry {
            input: Nhwc::new(1, 3, 3, 1),
            output: Nhwc::new(1, 2, 2, 1),
            kernel_h: 2,
            kernel_w: 2,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 0,
            pad_left: 0,
        };
        let input: Vec<i8> = (1..=9).collect();
        let filter = [1i8, 2, 3, 4];
        // Factor exactly 1: 2^30 * 2^(1 - 31).
        let (m, s) = (le(&[1 << 30]), le(&[1]));
        let q = OutputQuant {
            input_offset: -1,
            output_offset: -5,
            act_min: -128,
            act_max: 70,
            multiplier: LeI32::new(&m).unwrap(),
            shift: LeI32::new(&s).unwrap(),
        };
        let bias = le(&[10]);
        let mut out = [0i8; 4];
        conv2d_s8(
            &g,
            &q,
            &input,
            &filter,
            LeI32::new(&bias).unwrap(),
            &mut out,
        );
        // Sums 27, 37, 57, 67; + bias 10; - 5; the last clamps at 70.
        assert_eq!(out, [32, 42, 62, 70]);
    }

    #[test]
    fn hand_computed_padding_skips_taps_and_rounds_like_tflite() {
        // 2x2 input, 2x2 filter of ones, pad top/left 1 -> 2x2 output (rows/cols -1..0 and 0..1).
        let g = ConvGeometry {
            input: Nhwc::new(1, 2, 2, 1),
            output: Nhwc::new(1, 2, 2, 1),
            kernel_h: 2,
            kernel_w: 2,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 1,
            pad_left: 1,
        };
        let input = [-1i8, -2, -3, -4];
        let filter = [1i8, 1, 1, 1];
        // Factor 0.5 (2^30, shift 0): ties round toward +inf in the doubling high multiply.
        let (m, s) = (le(&[1 << 30]), le(&[0]));
        let q = OutputQuant {
            input_offset: 0,
            output_offset: 0,
            act_min: -128,
            act_max: 127,
            multiplier: LeI32::new(&m).unwrap(),
            shift: LeI32::new(&s).unwrap(),
        };
        let mut out = [0i8; 4];
        conv2d_s8(&g, &q, &input, &filter, LeI32::new(&[]).unwrap(), &mut out);
        // Sums -1, -3, -4, -10 -> halves -0.5, -1.5, -2, -5 -> 0, -1, -2, -5.
        assert_eq!(out, [0, -1, -2, -5]);
    }

    #[test]
    fn same_odd_padding_stride_2_per_channel() {
        let case = Case {
            n: 1,
            h: 6,
            w: 7,
            in_c: 3,
            out_c: 4,
            kh: 3,
            kw: 4,
            stride: (2, 2),
            dilation: (1, 1),
            pad_h: Pad::Same,
            pad_w: Pad::Same,
            per_channel: true,
            bias: true,
            act: Activation::None,
        };
        // SAME with an odd total: width 7, kernel 4, stride 2 -> total 3 (1 left, 2 right).
        let (g, after) = case.geometry(case.out_c);
        assert_eq!((g.pad_left, after.1), (1, 2));
        run_conv(case, 1);
    }

    #[test]
    fn dilation_2_batch_2_relu6_per_tensor_no_bias() {
        let case = Case {
            n: 2,
            h: 7,
            w: 6,
            in_c: 2,
            out_c: 3,
            kh: 3,
            kw: 2,
            stride: (1, 1),
            dilation: (2, 2),
            pad_h: Pad::Same,
            pad_w: Pad::Explicit(0, 3),
            per_channel: false,
            bias: false,
            act: Activation::Relu6,
        };
        run_conv(case, 2);
    }

    #[test]
    fn relu_valid_stride_1_2() {
        let case = Case {
            n: 1,
            h: 5,
            w: 8,
            in_c: 4,
            out_c: 2,
            kh: 2,
            kw: 3,
            stride: (1, 2),
            dilation: (1, 1),
            pad_h: Pad::Valid,
            pad_w: Pad::Valid,
            per_channel: true,
            bias: true,
            act: Activation::Relu,
        };
        run_conv(case, 3);
    }

    #[test]
    fn random_cases_match_float_reference() {
        let mut rng = Rng::new(0xC0DE);
        for i in (0..200).take(crate::MIRI_CASES) {
            let case = Case::random(&mut rng);
            run_conv(case, 1000 + i);
        }
    }
}
