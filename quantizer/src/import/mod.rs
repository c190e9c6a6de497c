//! Importers of models quantized elsewhere, converted as they are.

pub mod tflite;

/// Whether `bytes` look like a TFLite FlatBuffer (identifier `TFL3` at offset 4).
pub fn is_tflite(bytes: &[u8]) -> bool {
    bytes.get(4..8) == Some(b"TFL3")
}
