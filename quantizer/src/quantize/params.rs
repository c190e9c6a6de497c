//! int8 quantization parameters from ranges: activations (asymmetric or symmetric), per-channel
//! symmetric weights, int32 biases. Conventions of TFLite's int8 scheme.

/// Scale and zero point of an int8 tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl std::fmt::Display for QParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scale {}, zero point {}", self.scale, self.zero_point)
    }
}

impl QParams {
    /// `x` quantized to int8 with these parameters and back.
    pub fn fake_quant(self, x: f32) -> f32 {
        let q = ((x / self.scale).round() + self.zero_point as f32).clamp(-128.0, 127.0);
        (q - self.zero_point as f32) * self.scale
    }
}

/// Smallest scale used, so that a zero weight channel still gets a valid positive scale.
const MIN_SCALE: f32 = 1e-8;

/// Range given to an activation that is zero on every calibration sample. Any scale represents it
/// exactly, but a tiny one would make the next layer's bias scale (`input scale * weight scale`) so
/// small that its int32 biases saturate, and its requantization factors extreme: the int8 model
/// would be wrong even on the samples it was calibrated on.
const ZERO_RANGE_MAX: f32 = 1.0;

/// Activation parameters for the range `[min, max]` (widened to contain 0, as TFLite requires; a
/// range that is only 0 becomes `[0, 1]`, or `[-1, 1]` symmetric). Asymmetric:
/// `scale = (max - min) / 255` and a zero point mapping `min` to -128; symmetric: zero point 0 and
/// `scale = max(|min|, |max|) / 127`.
pub fn activation(min: f32, max: f32, symmetric: bool) -> QParams {
    let (min, max) = (min.min(0.0), max.max(0.0));
    let max = if max - min > 0.0 { max } else { ZERO_RANGE_MAX };
    if symmetric {
        let m = min.abs().max(max.abs());
        return QParams {
            scale: (m / 127.0).max(MIN_SCALE),
            zero_point: 0,
        };
    }
    let scale = ((max - min) / 255.0).max(MIN_SCALE);
    // Nudge so that real 0 is exactly representable.
    let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32;
    QParams { scale, zero_point }
}

/// Per-channel symmetric weights: `channels` slices of `weights` (`weights.len() / channels` each,
/// channel-major), each scaled by its largest magnitude to `[-127, 127]`. Returns the int8 weights
/// and the scales.
pub fn weights_per_channel(weights: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per = weights.len() / channels.max(1);
    let mut q = Vec::with_capacity(weights.len());
    let mut scales = Vec::with_capacity(channels);
    for c in 0..channels {
        let w = &weights[c * per..(c + 1) * per];
        let m = w.iter().fold(0f32, |a, &x| a.max(x.abs()));
        let s = (m / 127.0).max(MIN_SCALE);
        scales.push(s);
        q.extend(
            w.iter()
                .map(|&x| (x / s).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

/// Per-channel weights where the channel is the innermost dimension (depthwise filters
/// `[1, kh, kw, channels]`).
pub fn weights_per_channel_last(weights: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let mut max = vec![0f32; channels];
    for (i, &x) in weights.iter().enumerate() {
        max[i % channels] = max[i % channels].max(x.abs());
    }
    let scales: Vec<f32> = max.iter().map(|m| (m / 127.0).max(MIN_SCALE)).collect();
    let q = weights
        .iter()
        .enumerate()
        .map(|(i, &x)| (x / scales[i % channels]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (q, scales)
}

/// Largest magnitude of a quantized int32 bias: `2^30`, inside the runtime's `MAX_BIAS`.
pub const BIAS_LIMIT: i64 = 1 << 30;

/// int32 bias for channel scales `input_scale * weight_scale[c]`.
pub fn bias(bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> Vec<i32> {
    bias_in(bias, input_scale, weight_scales, BIAS_LIMIT)
        .into_iter()
        .map(|b| b as i32)
        .collect()
}

/// Integer bias for channel scales `input_scale * weight_scale[c]`, saturated to `-limit..=limit`
/// ([`BIAS_LIMIT`] for int32 biases, the runtime's `MAX_BIAS_64` for int16x8's int64 ones).
pub fn bias_in(bias: &[f32], input_scale: f32, weight_scales: &[f32], limit: i64) -> Vec<i64> {
    bias.iter()
        .enumerate()
        .map(|(c, &b)| {
            let s = input_scale as f64
                * weight_scales[if weight_scales.len() == 1 { 0 } else { c }] as f64;
            (b as f64 / s).round().clamp(-limit as f64, limit as f64) as i64
        })
        .collect()
}

/// The runtime's requantization factor `multiplier * 2^(shift - 31)` for `real`, in the form whose
/// result is closest to one rounding of the exact product `x * real` (what ONNX's DequantizeLinear ->
/// operator -> QuantizeLinear specifies and onnxruntime's float-scale requantization computes).
///
/// The runtime computes `round(x * multiplier / 2^31)`, then divides by `2^-shift` rounding again:
/// with TFLite's normalized multiplier (`multiplier >= 2^30`) a factor below 1/2 has a negative
/// shift, and the intermediate keeps only `-shift` fractional bits, so a product just below
/// `k + 1/2` (within `2^(shift - 1)`) is first rounded to `k + 1/2` and then away from zero: about
/// `2^(shift - 1)` of all results land one step off. With shift 0 and the multiplier
/// `round(real * 2^31)` (below `2^30`, which the runtime accepts and computes in the same
/// arithmetic) there is one rounding only, and the error is the multiplier's own: half a unit in
/// `real * 2^31`, which moves results of magnitude up to 128 across a boundary about
/// `64 / multiplier` of the time. The form with the smaller of the two estimates is returned.
pub fn single_rounding_multiplier(real: f64) -> ferrite_runtime::quant::Requant {
    use ferrite_runtime::quant::{prepare::quantize_multiplier, Requant};
    let normal = quantize_multiplier(real);
    if normal.shift >= 0 || normal.multiplier == 0 {
        return normal;
    }
    let m = (real * 2f64.powi(31)).round();
    let normal_off = 2f64.powi(normal.shift - 1);
    let single_off = 64.0 / m;
    if m >= 1.0 && single_off < normal_off {
        Requant {
            multiplier: m as i32,
            shift: 0,
        }
    } else {
        normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_range_gets_a_usable_scale() {
        let p = activation(0.0, 0.0, false);
        assert_eq!((p.scale, p.zero_point), (1.0 / 255.0, -128));
        let p = activation(0.0, 0.0, true);
        assert_eq!((p.scale, p.zero_point), (1.0 / 127.0, 0));
        // A constant tensor keeps its value exactly representable.
        let p = activation(2.5, 2.5, false);
        assert_eq!((p.scale, p.zero_point), (2.5 / 255.0, -128));
        let p = activation(-3.0, -3.0, false);
        assert_eq!((p.scale, p.zero_point), (3.0 / 255.0, 127));
    }

    #[test]
    fn asymmetric_range_maps_ends_and_zero_exactly() {
        let p = activation(-1.0, 3.0, false);
        assert!((p.scale - 4.0 / 255.0).abs() < 1e-7);
        // 0 is representable: q = zero_point dequantizes to 0.
        assert_eq!(p.zero_point, (-128.0f32 + 1.0 / p.scale).round() as i32);
        let lo = (p.scale * (-128 - p.zero_point) as f32 - -1.0).abs();
        assert!(lo <= p.scale, "min maps near -128");
    }

    #[test]
    fn all_positive_range_includes_zero() {
        let p = activation(2.0, 6.0, false);
        assert_eq!(p.zero_point, -128);
        assert!((p.scale - 6.0 / 255.0).abs() < 1e-7);
        let s = activation(-2.0, 6.0, true);
        assert_eq!(s.zero_point, 0);
        assert!((s.scale - 6.0 / 127.0).abs() < 1e-7);
    }

    #[test]
    fn per_channel_weights_use_the_full_range() {
        let (q, s) = weights_per_channel(&[0.5, -1.0, 0.25, 2.0, -0.5, 0.0], 2);
        assert_eq!(q, vec![64, -127, 32, 127, -32, 0]);
        assert_eq!(s, vec![1.0 / 127.0, 2.0 / 127.0]);
        let (q, s) = weights_per_channel_last(&[0.5, 2.0, -1.0, -0.5], 2);
        assert_eq!(q, vec![64, 127, -127, -32]);
        assert_eq!(s, vec![1.0 / 127.0, 2.0 / 127.0]);
        let (q, s) = weights_per_channel(&[0.0, 0.0], 1);
        assert_eq!(q, vec![0, 0]);
        assert!(s[0] > 0.0);
    }

    #[test]
    fn bias_uses_the_product_scale() {
        assert_eq!(bias(&[0.5, -0.25], 0.5, &[0.01, 0.02]), vec![100, -25]);
    }

    /// Results of `x * real` for every accumulator in `-2^17..2^17` that differ from the product
    /// rounded once (half away from zero; no product of these factors is an exact tie).
    fn off(r: ferrite_runtime::quant::Requant, real: f64) -> usize {
        (-(1i32 << 17)..(1 << 17))
            .filter(|&x| r.apply(x) as f64 != (x as f64 * real).round())
            .count()
    }

    #[test]
    fn single_rounding_multiplier_rounds_once() {
        use ferrite_runtime::quant::prepare::quantize_multiplier;
        // A convolution's factor (input 1/255, weight 0.0101, output 0.0214): the normalized form
        // has shift -9 and rounds about 2^-10 of the results twice.
        let real = (0.003921569f32 * 0.01009f32 / 0.02139f32) as f64;
        let normal = quantize_multiplier(real);
        assert_eq!(normal.shift, -9);
        let single = single_rounding_multiplier(real);
        assert_eq!(single.shift, 0);
        assert_eq!(single.multiplier as f64, (real * 2f64.powi(31)).round());
        // What is left is the 22-bit multiplier's own error, near boundaries of large results.
        let (n, s) = (off(normal, real), off(single, real));
        assert!(n > 100 && s * 20 < n, "normalized {n}, single {s}");
        // A factor whose f32 value fits the multiplier (as onnxruntime's f32 scales of 2^-8 and
        // above do) is represented exactly: every result is the once-rounded product.
        let real = 0.010_74f32 as f64;
        assert_eq!(off(single_rounding_multiplier(real), real), 0);
        assert!(off(quantize_multiplier(real), real) > 100);
        // Factors of 1/2 and above already round once; tiny factors keep the normalized form, whose
        // double rounding is rarer than a short multiplier's error.
        for real in [0.5, 0.75, 3.0] {
            assert_eq!(single_rounding_multiplier(real), quantize_multiplier(real));
        }
        assert_eq!(single_rounding_multiplier(1e-6), quantize_multiplier(1e-6));
        assert_eq!(single_rounding_multiplier(0.0).multiplier, 0);
    }
}
