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

// The image's flash (the FLASH region of memory.x; the 256 KiB MODEL partition after it is not part
// of the image) and the chip's RAM.
ferrite_board_rtt::board_main!("nucleo-l4r5zi", 1792 * 1024, 640 * 1024);
