//! Importers: float ONNX models into the IR (`onnx`), and models quantized elsewhere, converted with
//! their own quantization parameters (`onnx_qdq`, `tflite`).

pub mod onnx;
pub mod onnx_qdq;
pub mod tflite;

/// Whether `bytes` look like a TFLite FlatBuffer (identifier `TFL3` at offset 4).
pub fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"TFL3")
}

/// One tap of a transposed convolution's kernel in its phase kernel: phase `rh * s_w + rw`, its
/// position `(mh, mw)` in the phase kernel and the source tap `(th, tw)`.
pub(crate) type PhaseTap = (usize, [usize; 2], [usize; 2]);

/// A transposed convolution's kernel of `k` taps at stride `s` (height, width) as a stride-1
/// convolution over its output's phases: along one axis, output `o = q * s + r - pad` sums taps
/// `r, r + s, r + 2s, ...` over inputs `q, q - 1, ...`, so phase `r` is a convolution with the
/// `ceil(k / s)` taps `r + j * s` reversed, zero beyond the kernel.
///
/// Returns the phase kernel's size and every tap inside the kernel.
pub(crate) fn transposed_taps(k: [usize; 2], s: [usize; 2]) -> ([usize; 2], Vec<PhaseTap>) {
    let taps = [k[0].div_ceil(s[0]), k[1].div_ceil(s[1])];
    let mut list = Vec::new();
    for rh in 0..s[0] {
        for rw in 0..s[1] {
            for mh in 0..taps[0] {
                for mw in 0..taps[1] {
                    let th = rh + (taps[0] - 1 - mh) * s[0];
                    let tw = rw + (taps[1] - 1 - mw) * s[1];
                    if th < k[0] && tw < k[1] {
                        list.push((rh * s[1] + rw, [mh, mw], [th, tw]));
                    }
                }
            }
        }
    }
    (taps, list)
}
