//! Ferrite's host-side quantizer: importers, IR, calibration, post-training quantization and export.

pub mod builder;
pub mod plan;
