//! Stack high-water measurement by painting: at boot, every word of the stack
//! region below the current stack pointer is filled with a pattern; at the end,
//! the lowest word that no longer holds it shows how deep the stack has been.
//!
//! The region is `_stack_end`..`_stack_start` (the initial stack pointer). The
//! boards link with flip-link: `_stack_end` is the start of RAM and
//! `_stack_start` lies right below the statics (boards/README.md, "Stack guard").

const PATTERN: u32 = 0xC5C5_C5C5;

/// Words left unpainted just below the stack pointer of the painting code.
const MARGIN_WORDS: usize = 32;

extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

fn region() -> (usize, usize) {
    // Linker symbols: only their addresses are taken.
    (
        core::ptr::addr_of!(_stack_end) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

/// Paints the unused part of the stack. Call early, from a shallow frame (the stack probe calls it
/// again after each operator, below the frames that are live then).
#[inline(never)]
pub fn paint() {
    let (bottom, _) = region();
    let sp = cortex_m::register::msp::read() as usize;
    let end = sp.saturating_sub(MARGIN_WORDS * 4) & !3;
    let mut at = (bottom + 3) & !3;
    while at < end {
        // SAFETY: [bottom, sp - margin) is stack memory below every live frame.
        unsafe { core::ptr::write_volatile(at as *mut u32, PATTERN) };
        at += 4;
    }
}

/// Deepest stack use since [`paint`], in bytes, and the stack region's size.
pub fn high_water() -> (usize, usize) {
    let (bottom, top) = region();
    let mut at = (bottom + 3) & !3;
    // SAFETY: reads of RAM inside the stack region, below the current frame.
    while at < top && unsafe { core::ptr::read_volatile(at as *const u32) } == PATTERN {
        at += 4;
    }
    (top - at, top - bottom)
}
