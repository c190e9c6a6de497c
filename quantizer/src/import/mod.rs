//! Importers: float ONNX models into the IR (`onnx`), and models quantized elsewhere, converted with
//! their own quantization parameters (`onnx_qdq`, `tflite`).

pub mod onnx;
pub mod onnx_qdq;
pub mod tflite;

/// Whether `bytes` look like a TFLite FlatBuffer (identifier `TFL3` at offset 4).
pub fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"TFL3")
}
