//! The HardFault handler, and the stack-overflow self-test.
//!
//! The boards link with flip-link (`boards/.cargo/config.toml`): the stack sits at the bottom
//! of RAM, below the statics (the arena among them), so a stack that overflows runs off the
//! start of RAM instead of into the arena: an access below 0x2000_0000 is a bus error on the
//! three QEMU machines (a BusFault, escalated to HardFault). The `HardFault` vector
//! (`boards/hard_fault.rs`, shared with the real boards) moves a stack pointer left below the
//! stack region back to its top and calls [`ferrite_hard_fault`], which logs `stack overflow`
//! (the stack pointer left the stack region) or `hard fault at pc=...` and exits QEMU with
//! failure.

use crate::hard_fault::{classify, Fault};
use crate::{exit, Outcome};

/// Reports a HardFault and exits with failure. `sp`: the stack pointer at the fault.
#[no_mangle]
unsafe extern "C" fn ferrite_hard_fault(sp: usize) -> ! {
    // SAFETY: `sp` is the faulting stack pointer, from the HardFault vector.
    match unsafe { classify(sp) } {
        Fault::StackOverflow { sp, bottom, top } => defmt::error!(
            "HardFault: stack overflow: sp={=usize:#010x} is outside the stack {=usize:#010x}..{=usize:#010x} ({=usize} B)",
            sp,
            bottom,
            top,
            top - bottom
        ),
        Fault::At { pc, lr, sp } => defmt::error!(
            "HardFault: hard fault at pc={=u32:#010x} lr={=u32:#010x} sp={=usize:#010x}",
            pc,
            lr,
            sp
        ),
        Fault::NoFrame { sp } => defmt::error!("HardFault: hard fault, sp={=usize:#010x}", sp),
    }
    exit(Outcome::Fail)
}
