//! Post-training quantization: range estimation (observers) and the int8 parameters derived from ranges.

pub mod observer;
pub mod params;
pub mod ptq;
