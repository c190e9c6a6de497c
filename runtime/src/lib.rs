#![no_std]
#![doc = include_str!("../README.md")]
// Only `kernels::optimized::dsp` (DSP instructions through inline assembly) allows `unsafe`.
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
