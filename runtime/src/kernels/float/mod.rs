//! f32 reference kernels, for layers a model keeps in float, and the f32 <-> int8 conversions.
//!
//! Same conventions as the int8 kernels: NHWC activations, OHWI filters borrowed from the model bytes
//! as little-endian [`LeF32`](super::LeF32), slices sized by the caller from validated shapes.
//! Accumulation is in `f32`, in the natural loop order. Transcendental functions come from [`math`].

pub mod activation;
pub mod conv2d;
pub mod depthwise_conv2d;
pub mod elementwise;
pub mod fully_connected;
pub mod math;
pub mod mean;
pub mod pooling;
pub mod quantize;
pub mod softmax;

pub use activation::{logistic_f32, relu_f32, tanh_f32};
pub use conv2d::conv2d_f32;
pub use depthwise_conv2d::depthwise_conv2d_f32;
pub use elementwise::{add_f32, maximum_f32, minimum_f32, mul_f32, sub_f32};
pub use fully_connected::fully_connected_f32;
pub use mean::mean_hw_f32;
pub use pooling::{average_pool2d_f32, max_pool2d_f32};
pub use quantize::{
    dequantize_s16_to_f32, dequantize_s8_to_f32, quantize_f32_to_s16, quantize_f32_to_s8,
};
pub use softmax::softmax_f32;

#[cfg(test)]
mod testutil;
