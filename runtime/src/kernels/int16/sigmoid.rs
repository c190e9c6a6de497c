//! int16 Logistic and Tanh (TFLite `reference_integer_ops::Logistic` / `Tanh`, int16 forms): the input
//! rescaled so that one unit is `3 * 2^12`, then a 256-entry sigmoid table interpolated linearly
//! (`tanh(x) = 2 * sigmoid(2x) - 1`). Output scale 1/32768, zero point 0.
//!
//! The parameters are TFLite Micro's int16 Prepare values: `input_multiplier` at most 32767 and
//! `input_left_shift` in `0..=31`, or `input_multiplier` 0 for an input scale of a power of two, which
//! stands for the multiplier `3 << input_left_shift` and no shift.

use crate::ops::{LogisticParams, TanhParams};

/// `sigmoid(i / 24)` in Q0.16 for `i` in `0..256` (the last saturated to 65535), as TFLite tabulates
/// it: its values are nudged by one here and there from the rounded sigmoid, to lower the error of
/// the interpolation between them, so they are data rather than a formula.
#[rustfmt::skip]
static SIGMOID_Q016: [u16; 256] = [
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535,
];

/// The input in units of `1 / (3 * 2^12)`: `(x * multiplier + round) >> shift`.
#[inline(always)]
fn rescale(x: i16, multiplier: i32, shift: i32) -> i32 {
    let (multiplier, shift) = if multiplier == 0 {
        (3 << shift, 0)
    } else {
        (multiplier, shift)
    };
    let round = if shift > 0 { 1 << (shift - 1) } else { 0 };
    (x as i32 * multiplier + round) >> shift
}

/// `SIGMOID_Q016` at `magnitude / 2^fraction_bits`, interpolated with the low `fraction_bits` bits,
/// in Q0.(16 + fraction_bits); `None` past the table's end.
#[inline(always)]
fn sigmoid_interpolated(magnitude: u32, fraction_bits: u32) -> Option<u32> {
    let index = (magnitude >> fraction_bits) as usize;
    if index >= 255 {
        return None;
    }
    let (a, b) = (SIGMOID_Q016[index] as u32, SIGMOID_Q016[index + 1] as u32);
    let fraction = magnitude & ((1 << fraction_bits) - 1);
    Some((a << fraction_bits) + fraction * (b - a))
}

/// int16 logistic, mirroring TFLite Micro's int16 path: output scale 1/32768, zero point 0, in
/// `0..=32767`.
pub fn logistic_s16(p: &LogisticParams, input: &[i16], output: &mut [i16]) {
    for (&x, o) in input.iter().zip(output.iter_mut()) {
        let v = rescale(x, p.input_multiplier, p.input_left_shift);
        // sigmoid(|v| / (3 * 2^12)) = SIGMOID_Q016[|v| / 2^9] (a quarter of the scale: 24 per unit),
        // in Q0.25; saturated to 32767 in Q0.15 past the table.
        let s = sigmoid_interpolated(v.unsigned_abs(), 9).unwrap_or(0x7FFF << 10);
        // sigmoid(-t) = 1 - sigmoid(t); both rounded to Q0.15.
        let q025 = if v >= 0 {
            s + (1 << 9)
        } else {
            (1 << 25) - s + (1 << 9) - 1
        };
        *o = (q025 >> 10) as i16;
    }
}

/// int16 tanh, mirroring TFLite Micro's int16 path: output scale 1/32768, zero point 0, in
/// `-32767..=32767`.
pub fn tanh_s16(p: &TanhParams, input: &[i16], output: &mut [i16]) {
    for (&x, o) in input.iter().zip(output.iter_mut()) {
        let v = rescale(x, p.input_multiplier, p.input_left_shift);
        // sigmoid(2|v| / (3 * 2^12)) = SIGMOID_Q016[|v| / 2^8], in Q0.24; 65535 past the table.
        let s = sigmoid_interpolated(v.unsigned_abs(), 8).unwrap_or(0xFFFF << 8) as i32;
        // tanh = 2 * sigmoid - 1, odd; rounded from Q0.24 to Q0.15.
        let q023 = if v >= 0 {
            s - (1 << 23) + (1 << 7)
        } else {
            -s + (1 << 23) + (1 << 7) - 1
        };
        *o = (q023 >> 8) as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logistic(input_scale: f32, x: &[i16]) -> std::vec::Vec<i16> {
        let mut out = std::vec![0; x.len()];
        logistic_s16(&LogisticParams::prepare_int16(input_scale), x, &mut out);
        out
    }

    fn tanh(input_scale: f32, x: &[i16]) -> std::vec::Vec<i16> {
        let mut out = std::vec![0; x.len()];
        tanh_s16(&TanhParams::prepare_int16(input_scale), x, &mut out);
        out
    }

    #[test]
    fn table_is_the_rounded_sigmoid_within_one() {
        for (i, &v) in SIGMOID_Q016.iter().enumerate() {
            let exact = 65536.0 / (1.0 + (-(i as f64) / 24.0).exp());
            assert!(
                (v as f64 - exact.round()).abs() <= 1.0,
                "{i}: {v} vs {exact}"
            );
        }
        assert!(SIGMOID_Q016.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn power_of_two_scales_use_the_multiplier_three() {
        // 2^-12: the input already counts 2^12 per unit, times 3 (multiplier 0, shift 0).
        let p = LogisticParams::prepare_int16(1.0 / 4096.0);
        assert_eq!((p.input_multiplier, p.input_left_shift), (0, 0));
        // Tanh takes 2^-11 too (shift 1); Logistic does not.
        let t = TanhParams::prepare_int16(1.0 / 2048.0);
        assert_eq!((t.input_multiplier, t.input_left_shift), (0, 1));
        let l = LogisticParams::prepare_int16(1.0 / 2048.0);
        // 2^-11 * 12288 = 6, doubled 12 times to 24576.
        assert_eq!((l.input_multiplier, l.input_left_shift), (24576, 12));
        // Within TFLite's log2 tolerance of 2^-12.
        let near = LogisticParams::prepare_int16(1.0005 / 4096.0);
        assert_eq!((near.input_multiplier, near.input_left_shift), (0, 0));
        // Not a power of two: 1e-4 * 12288 = 1.2288, doubled 14 times.
        let q = LogisticParams::prepare_int16(1e-4);
        assert_eq!((q.input_multiplier, q.input_left_shift), (20132, 14));
    }

    #[test]
    fn logistic_follows_the_sigmoid() {
        let scale = 8.0 / 32768.0;
        let x: std::vec::Vec<i16> = (-32768..=32767).step_by(97).map(|v| v as i16).collect();
        for (&xi, &o) in x.iter().zip(&logistic(scale, &x)) {
            let want = 1.0 / (1.0 + (-(xi as f64) * scale as f64).exp());
            let got = o as f64 / 32768.0;
            assert!((want - got).abs() < 1e-4, "{xi}: {got} vs {want}");
        }
        assert_eq!(logistic(scale, &[0]), [16384]);
        assert_eq!(logistic(scale, &[i16::MIN, i16::MAX]), [11, 32757]);
        // Far beyond the table: saturated.
        assert_eq!(
            logistic(1.0, &[i16::MIN, -100, 100, i16::MAX]),
            [1, 1, 32767, 32767]
        );
    }

    #[test]
    fn tanh_follows_the_tanh() {
        let scale = 4.0 / 32768.0;
        let x: std::vec::Vec<i16> = (-32768..=32767).step_by(89).map(|v| v as i16).collect();
        for (&xi, &o) in x.iter().zip(&tanh(scale, &x)) {
            let want = (xi as f64 * scale as f64).tanh();
            let got = o as f64 / 32768.0;
            assert!((want - got).abs() < 2e-4, "{xi}: {got} vs {want}");
        }
        assert_eq!(tanh(scale, &[0]), [0]);
        assert_eq!(
            tanh(1.0, &[i16::MIN, -100, 100, i16::MAX]),
            [-32767, -32767, 32767, 32767]
        );
    }

    #[test]
    fn extreme_parameters_stay_in_range() {
        // The largest multipliers and shifts validation accepts.
        for (m, s) in [(32767, 0), (32767, 31), (0, 13), (1, 0), (16384, 15)] {
            let p = LogisticParams {
                input_zero_point: 0,
                input_range_radius: 0,
                input_multiplier: m,
                input_left_shift: s,
            };
            let t = TanhParams {
                input_zero_point: 0,
                input_range_radius: 0,
                input_multiplier: m,
                input_left_shift: s,
            };
            let x = [i16::MIN, -1, 0, 1, i16::MAX];
            let (mut lo, mut to) = ([0i16; 5], [0i16; 5]);
            logistic_s16(&p, &x, &mut lo);
            tanh_s16(&t, &x, &mut to);
            assert!(lo.iter().all(|&v| v >= 0), "{lo:?}");
            assert!(to.iter().all(|&v| v >= -32767), "{to:?}");
        }
    }
}
