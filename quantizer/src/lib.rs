//! Ferrite's host-side quantizer: importers, IR, calibration, post-training quantization, lowering to
//! runtime operators and export.

pub mod builder;
pub mod cli;
pub mod export;
pub mod import;
pub mod inspect;
pub mod ir;
pub mod lower;
pub mod npy;
pub mod ops;
pub mod output;
pub mod plan;
pub mod quantize;
pub mod report;
pub mod rng;
pub mod runtime_exec;
pub mod sha256;
pub mod top1;
pub mod train;
