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

#[cfg(feature = "selftest-stack-overflow")]
use crate::hard_fault::stack_region;
use crate::{exit, Outcome};

/// Reports a HardFault and exits with failure. `sp`: the stack pointer at the fault.
#[no_mangle]
unsafe extern "C" fn ferrite_hard_fault(sp: usize) -> ! {
    // SAFETY: `sp` is the faulting stack pointer, from the HardFault vector.
    unsafe { crate::hard_fault::log(sp) };
    exit(Outcome::Fail)
}

/// Feature `selftest-stack-overflow`: recurses, 512 B a frame, until the stack pointer is
/// 256 B below the stack's end. With the guard (flip-link) that is below RAM: the recursion
/// faults and the HardFault handler reports a stack overflow. Without it (cortex-m-rt's
/// layout, the statics below the stack) it returns normally after overwriting the top of the
/// statics, where [`CANARY`] lies (the statics are larger than the overshoot: the canary alone
/// is 1 KiB): then the firmware says so and fails without the HardFault's message.
#[cfg(feature = "selftest-stack-overflow")]
pub(crate) fn overflow_stack() {
    let (bottom, top) = stack_region();
    defmt::info!(
        "selftest: overflowing the stack {=usize:#010x}..{=usize:#010x} ({=usize} B) on purpose",
        bottom,
        top,
        top - bottom
    );
    let canary = core::ptr::addr_of_mut!(CANARY).cast::<[u32; 256]>();
    // SAFETY: the canary is only touched here, single-threaded.
    unsafe { core::ptr::write_volatile(canary, [CANARY_WORD; 256]) };
    let depth = recurse(bottom.wrapping_sub(256), 0);
    // SAFETY: as above; written in full before.
    let canary = unsafe { core::ptr::read_volatile(canary) };
    let clobbered = canary.iter().filter(|&&w| w != CANARY_WORD).count();
    defmt::error!(
        "selftest: {=usize} frames went 256 B below the stack's end without a fault; {=usize} of the statics' canary words overwritten",
        depth,
        clobbered
    );
    exit(Outcome::Fail)
}

#[cfg(feature = "selftest-stack-overflow")]
const CANARY_WORD: u32 = 0x5AFE_C0DE;

/// The last statics (cortex-m-rt puts `.uninit` after `.bss`): right below the stack in the
/// unguarded layout.
#[cfg(feature = "selftest-stack-overflow")]
#[link_section = ".uninit.ferrite_canary"]
static mut CANARY: core::mem::MaybeUninit<[u32; 256]> = core::mem::MaybeUninit::uninit();

#[cfg(feature = "selftest-stack-overflow")]
#[inline(never)]
fn recurse(limit: usize, depth: usize) -> usize {
    let mut frame = [0u8; 512];
    // The frame is written and read through black_box: it stays on the stack.
    core::hint::black_box(&mut frame);
    let sp = cortex_m::register::msp::read() as usize;
    if sp < limit {
        return depth;
    }
    let deeper = recurse(limit, depth + 1);
    core::hint::black_box(&frame);
    deeper
}
