//! The `HardFault` vector of every board (`#[path]`-included by `ferrite-board` and
//! `ferrite-board-rtt`), for the flip-link layout: the stack at the bottom of RAM, so that an
//! overflow faults off the start of RAM (`boards/.cargo/config.toml`).
//!
//! A fault from an overflowed stack leaves the stack pointer below RAM, where no handler can
//! push a frame. The vector is a few instructions of assembly: when the faulting stack pointer
//! is below `_stack_end + 256` (the stack region's end, plus room for the handler), it moves
//! the stack pointer to the top of the stack region (`_stack_start`: the interrupted program
//! never resumes) before calling `ferrite_hard_fault(sp)`, which the crate defines, with `sp`
//! the faulting stack pointer; [`classify`] tells it what happened.

extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// The stack region: `_stack_end` (its lowest address) and `_stack_start` (the initial stack
/// pointer, its top). With flip-link, `_stack_end` is the start of RAM.
pub fn stack_region() -> (usize, usize) {
    // Linker symbols: only their addresses are taken.
    (
        core::ptr::addr_of!(_stack_end) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

// It replaces cortex-m-rt's `HardFault` (a PROVIDE in link.x); .HardFault.* is in .text.
core::arch::global_asm!(
    ".section .HardFault.ferrite, \"ax\", %progbits",
    ".global HardFault",
    ".type HardFault, %function",
    ".thumb_func",
    "HardFault:",
    "    mrs r0, msp",
    "    ldr r1, =_stack_end + 256",
    "    cmp r0, r1",
    "    bhs 1f",
    "    ldr r1, =_stack_start",
    "    mov sp, r1",
    "1:",
    "    bl ferrite_hard_fault",
    "    .ltorg",
    ".size HardFault, . - HardFault",
);

/// What a HardFault was, from the stack pointer at the fault.
pub enum Fault {
    /// The stack pointer is outside the stack region: the stack overflowed.
    StackOverflow {
        sp: usize,
        bottom: usize,
        top: usize,
    },
    /// The exception frame's pc and lr (the frame lies in the stack region).
    At { pc: u32, lr: u32, sp: usize },
    /// The stack pointer is in the region but too close to its top for a whole frame.
    NoFrame { sp: usize },
}

/// Offsets of the stacked lr and pc in an exception frame, and its size.
const FRAME_LR: usize = 20;
const FRAME_PC: usize = 24;
const FRAME_SIZE: usize = 32;

/// Classifies the fault whose exception frame is (or would have been) at `sp`.
///
/// # Safety
/// `sp` must be the stack pointer at the fault, as the `HardFault` vector passes it, and the
/// frame must not have been overwritten since.
pub unsafe fn classify(sp: usize) -> Fault {
    let (bottom, top) = stack_region();
    if sp < bottom || sp > top {
        Fault::StackOverflow { sp, bottom, top }
    } else if sp + FRAME_SIZE <= top {
        // SAFETY: the exception frame lies inside the stack region, in RAM.
        let (pc, lr) = unsafe {
            (
                core::ptr::read_volatile((sp + FRAME_PC) as *const u32),
                core::ptr::read_volatile((sp + FRAME_LR) as *const u32),
            )
        };
        Fault::At { pc, lr, sp }
    } else {
        Fault::NoFrame { sp }
    }
}

/// Logs the fault whose stack pointer was `sp` (over defmt): a stack overflow when the stack
/// pointer left the stack region, else the faulting pc and lr.
///
/// # Safety
/// As [`classify`].
pub unsafe fn log(sp: usize) {
    // SAFETY: forwarded from the caller.
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
}
