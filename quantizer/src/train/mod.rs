//! Training: gradients of the IR operators for quantization-aware training.

pub mod backward;
