#![no_std]
#![doc = include_str!("../README.md")]
// `unsafe` is denied except where the Arm kernels use inline assembly: `kernels::optimized::dsp`
// (DSP instructions), `conv_loops`, and the loops of `elementwise` and `depthwise_conv2d`. Each
// `unsafe fn` states its contract under `# Safety`, each `unsafe` block why it holds (`SAFETY:`).
#![deny(unsafe_code)]

#[cfg(any(feature = "host", test))]
extern crate std;

mod error;
pub mod format;
mod interpreter;
pub mod kernels;
mod model;
pub mod ops;
pub mod quant;
mod validate;

pub use error::Error;
pub use format::{arena_size, file_len, Arena};
pub use interpreter::Interpreter;
pub use model::Model;
