#![no_std]
#![doc = "Ferrite runtime"]
#[cfg(feature = "host")]
extern crate std;
pub mod quant;
