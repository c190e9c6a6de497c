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
pub mod in_place;
mod interpreter;
pub mod kernels;
mod model;
pub mod ops;
pub mod quant;
mod validate;

/// Iterations of a randomized test loop under Miri, which interprets every instruction and is orders
/// of magnitude slower; all of them natively.
#[cfg(test)]
pub(crate) const MIRI_CASES: usize = if cfg!(miri) { 3 } else { usize::MAX };

/// A property test's configuration: `n` cases natively; under Miri a few (see [`MIRI_CASES`]) and no
/// failure file (Miri's isolation has no file system).
#[cfg(test)]
pub(crate) fn proptest_config(n: u32) -> proptest::test_runner::Config {
    if cfg!(miri) {
        proptest::test_runner::Config {
            failure_persistence: None,
            ..proptest::test_runner::Config::with_cases(3)
        }
    } else {
        proptest::test_runner::Config::with_cases(n)
    }
}

pub use error::Error;
pub use format::{arena_size, file_len, Arena};
pub use interpreter::Interpreter;
pub use model::Model;
pub use validate::{MAX_BIAS, MAX_BIAS_64, MAX_REDUCTION};
