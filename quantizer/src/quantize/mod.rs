//! Post-training quantization: cross-layer equalization, range estimation (observers), the int8 parameters derived from ranges,
//! and the SQNR that measures the result.

pub mod accuracy_control;
pub mod cle;
pub mod observer;
pub mod params;
pub mod ptq;
pub mod sqnr;
