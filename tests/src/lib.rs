//! Host integration tests and golden data: generated single-operator and small-network cases whose
//! expected outputs come from the host runtime, so firmware can prove it computes the same bytes.

pub mod bench_models;
pub mod cases;
pub mod golden;
