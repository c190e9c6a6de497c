//! Shared firmware support for Ferrite's test boards.
//!
//! - defmt logging over semihosting stdout (`defmt-semihosting`); the host
//!   (`cargo xtask qemu-test`) decodes the frames with the ELF's defmt table;
//! - [`exit`]: semihosting exit with a success or failure status, which QEMU
//!   turns into its own exit status (0 or 1);
//! - a panic handler and a HardFault handler that log and exit with failure, the
//!   HardFault handler saying `stack overflow` when the stack ran off its region
//!   (the boards link with flip-link: the stack at the bottom of RAM, see [`fault`]);
//! - [`run`]: the test runner, the golden case embedded from
//!   `$FERRITE_CASE_DIR` (feature `case`), the model read from the flash
//!   partition (feature `partition`), or else the smoke test;
//! - [`ferrite_bench_mark`]: a marker called right before and right after the
//!   measured code, for instruction counting;
//! - feature `bench`: a mark after each operator, and the stack high-water mark
//!   measured by painting (`cargo xtask bench`).
#![no_std]

use cortex_m_semihosting::debug;
use defmt_semihosting as _;

#[cfg(all(feature = "case", not(feature = "partition")))]
mod case;
mod fault;
mod fnv;
#[path = "../../hard_fault.rs"]
mod hard_fault;
#[cfg(feature = "partition")]
pub mod partition;
#[cfg(not(any(feature = "case", feature = "partition")))]
mod smoke;
#[cfg(feature = "bench")]
mod stack;

pub use fnv::fnv1a;

/// Outcome of a test run.
#[derive(Clone, Copy, PartialEq, Eq, Debug, defmt::Format)]
pub enum Outcome {
    Pass,
    Fail,
}

/// Runs the embedded test (golden case or smoke test) and exits QEMU with
/// its outcome.
pub fn run() -> ! {
    #[cfg(feature = "bench")]
    {
        stack::paint();
        // Calibration pair: the instructions between two back-to-back marks
        // are the marker's own cost, subtracted from every measured region.
        ferrite_bench_mark();
        ferrite_bench_mark();
    }
    selftest();
    #[cfg(feature = "partition")]
    let outcome = partition::run();
    #[cfg(all(feature = "case", not(feature = "partition")))]
    let outcome = case::run();
    #[cfg(not(any(feature = "case", feature = "partition")))]
    let outcome = smoke::run();
    #[cfg(feature = "bench")]
    {
        let (used, size) = stack::high_water();
        defmt::info!("stack high-water {=usize} B of {=usize} B", used, size);
    }
    match outcome {
        Outcome::Pass => defmt::info!("PASS"),
        Outcome::Fail => defmt::error!("FAIL"),
    }
    exit(outcome)
}

/// Ends the program through semihosting: QEMU exits with status 0 on
/// [`Outcome::Pass`] and 1 on [`Outcome::Fail`].
pub fn exit(outcome: Outcome) -> ! {
    let code = match outcome {
        Outcome::Pass => debug::EXIT_SUCCESS,
        Outcome::Fail => debug::EXIT_FAILURE,
    };
    loop {
        debug::exit(code);
    }
}

static mut BENCH_MARKS: u32 = 0;

/// Marker for instruction counting: called right before and right after the
/// measured code. A tracer (e.g. QEMU's `-d exec` or an insn plugin) finds its
/// address in the ELF by this unmangled name. The volatile write keeps the
/// call and the body from being optimized away.
#[no_mangle]
#[inline(never)]
pub extern "C" fn ferrite_bench_mark() {
    // SAFETY: single-threaded firmware; the static is only touched here.
    unsafe {
        let p = core::ptr::addr_of_mut!(BENCH_MARKS);
        core::ptr::write_volatile(p, core::ptr::read_volatile(p).wrapping_add(1));
    }
}

/// Harness self-tests: fail on purpose in the way the feature names.
fn selftest() {
    #[cfg(feature = "selftest-panic")]
    {
        defmt::info!("selftest: panicking on purpose");
        panic!("selftest panic");
    }
    #[cfg(feature = "selftest-hardfault")]
    {
        // (Unmapped reads do not fault on every QEMU machine; an undefined
        // instruction does, escalated to HardFault where UsageFault is off.)
        defmt::info!("selftest: executing an undefined instruction on purpose");
        cortex_m::asm::udf();
    }
    #[cfg(feature = "selftest-stack-overflow")]
    fault::overflow_stack();
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let message = info.message().as_str().unwrap_or("(formatted message)");
    match info.location() {
        Some(at) => defmt::error!(
            "panicked at {=str}:{=u32}: {=str}",
            at.file(),
            at.line(),
            message
        ),
        None => defmt::error!("panicked: {=str}", message),
    }
    exit(Outcome::Fail)
}
