//! TFLite int8 models: a bounds-checked FlatBuffer reader, accessors written from the TFLite schema's
//! field ids, and the importer into the IR with the model's own quantization; the shared lowering then
//! prepares every parameter as TFLite Micro does.

pub mod flatbuf;
pub mod schema;
mod to_ir;

use anyhow::Result;

use crate::builder::{ArenaLayout, Built};
use crate::lower::{self, Quantization, Requantization};
pub use schema::Model;
pub use to_ir::{import, Imported, SUPPORTED};

/// Converts a `.tflite` file's bytes to a `.ferrite` model planned with `arena`.
pub fn convert(bytes: &[u8], arena: ArenaLayout) -> Result<Built> {
    let m = import(bytes)?;
    lower::lower(
        &m.graph,
        &Quantization {
            precision: &m.precision,
            params: &m.params,
            int16_scales: &m.int16_scales,
            wide: &[],
            weights: &m.weights,
            biases: &m.biases,
        },
        lower::Options {
            source_sha256: crate::sha256::digest(bytes),
            expose_all: false,
            requantization: Requantization::TfLite,
            sparse_weights: false,
            arena,
            tflite_functions: true,
        },
    )
}
