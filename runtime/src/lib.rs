#![no_std]
#![doc = "Ferrite runtime"]
#[cfg(any(feature = "host", test))]
extern crate std;
pub mod kernels;
pub mod quant;
