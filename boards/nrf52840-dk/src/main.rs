//! Ferrite on the nRF52840-DK (nRF52840, Cortex-M4F, 64 MHz): runs the
//! embedded model once, timed with the DWT cycle counter, and logs over RTT.
//! `cargo run --release` from this directory (probe-rs); `cargo xtask
//! build-boards` builds it without hardware.
#![no_std]
#![no_main]

use ferrite_board_rtt::{fit, Aligned};
use ferrite_runtime::{arena_size, Arena};

const BOARD: &str = "nrf52840-dk";
/// The chip's memories (see memory.x).
const FLASH_SIZE: usize = 1024 * 1024;
const RAM_SIZE: usize = 256 * 1024;

/// The model, placed in flash 16-byte aligned.
static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("FERRITE_MODEL_PATH")));
/// The same bytes, for compile-time use.
const MODEL_BYTES: &[u8] = include_bytes!(env!("FERRITE_MODEL_PATH"));
/// The arena, sized at compile time from the model's header.
const ARENA_SIZE: usize = arena_size(MODEL_BYTES);
static mut ARENA: Arena<ARENA_SIZE> = Arena::new();

// A model too large for this board fails the build here, with the sizes.
const FIT: fit::Fit = fit::check(BOARD, MODEL_BYTES, FLASH_SIZE, RAM_SIZE);
const _: () = assert!(FIT.ok, "{}", FIT.message());

#[cortex_m_rt::entry]
fn main() -> ! {
    // SAFETY: the only reference to ARENA, taken once.
    let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    ferrite_board_rtt::run(BOARD, &MODEL.0, arena.as_mut_slice())
}
