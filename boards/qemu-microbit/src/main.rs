//! Ferrite test firmware for QEMU `-M microbit` (Cortex-M0): runs the shared
//! case runner of `ferrite-board` and exits through semihosting.
#![no_std]
#![no_main]

#[cortex_m_rt::entry]
fn main() -> ! {
    ferrite_board::run()
}

// The partition firmware's arena: a static of all the RAM but a reserve for the other statics
// and the stack.
#[cfg(feature = "partition")]
ferrite_board::partition_arena!();
