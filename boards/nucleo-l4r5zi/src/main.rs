//! Ferrite on the NUCLEO-L4R5ZI (STM32L4R5ZI, Cortex-M4F, 120 MHz): runs a model once, timed with the DWT cycle counter,
//! and logs over RTT. By default the model is embedded (`include_bytes!`,
//! `$FERRITE_MODEL` at build time); with the `partition` feature the
//! firmware holds no model and reads one at boot from the flash partition of
//! memory.x (`cargo xtask flash-model --board nucleo-l4r5zi` prints the command
//! that writes it). `cargo run --release [--features partition]` from this
//! directory (probe-rs); `cargo xtask build-boards` builds both without
//! hardware.
#![no_std]
#![no_main]

use ferrite_board_rtt::fit;
use ferrite_runtime::Arena;

const BOARD: &str = "nucleo-l4r5zi";
/// The image's flash (the FLASH region of memory.x; the 256 KiB MODEL
/// partition after it is not part of the image) and the chip's RAM.
#[cfg_attr(feature = "partition", allow(dead_code))]
const FLASH_SIZE: usize = 1792 * 1024;
const RAM_SIZE: usize = 640 * 1024;

#[cfg(not(feature = "partition"))]
mod embedded {
    use super::*;
    use ferrite_board_rtt::Aligned;
    use ferrite_runtime::arena_size;

    /// The model, placed in flash 16-byte aligned.
    pub static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("FERRITE_MODEL_PATH")));
    /// The same bytes, for compile-time use.
    const MODEL_BYTES: &[u8] = include_bytes!(env!("FERRITE_MODEL_PATH"));
    /// The arena, sized at compile time from the model's header.
    const ARENA_SIZE: usize = arena_size(MODEL_BYTES);
    pub static mut ARENA: Arena<ARENA_SIZE> = Arena::new();

    // A model too large for this board fails the build here, with the sizes.
    const FIT: fit::Fit = fit::check(BOARD, MODEL_BYTES, FLASH_SIZE, RAM_SIZE);
    const _: () = assert!(FIT.ok, "{}", FIT.message());
}

/// The partition firmware's arena: all the RAM but [`fit::STACK_RESERVE`]
/// (the firmware's few statics and the stack). Statics that outgrow the
/// reserve fail the link (RAM overflow); the model's need is checked at boot.
#[cfg(feature = "partition")]
static mut ARENA: Arena<{ RAM_SIZE - fit::STACK_RESERVE }> = Arena::new();

#[cfg(not(feature = "partition"))]
#[cortex_m_rt::entry]
fn main() -> ! {
    // SAFETY: the only reference to ARENA, taken once.
    let arena = unsafe { &mut *core::ptr::addr_of_mut!(embedded::ARENA) };
    ferrite_board_rtt::run(BOARD, &embedded::MODEL.0, arena.as_mut_slice())
}

#[cfg(feature = "partition")]
#[cortex_m_rt::entry]
fn main() -> ! {
    // SAFETY: the only reference to ARENA, taken once.
    let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    ferrite_board_rtt::partition::run(BOARD, arena.as_mut_slice())
}
