//! Shared firmware for real boards flashed with probe-rs (nRF52840-DK,
//! NUCLEO-L4R5ZI): defmt logging over RTT (`defmt-rtt`), inference timed with
//! the DWT cycle counter, panic and HardFault handlers (the HardFault one says
//! `stack overflow` when the stack ran off its region: the boards link with
//! flip-link, the stack at the bottom of RAM), and [`fit::check`], the
//! compile-time check that an embedded model fits the board.
//!
//! A board's `main.rs` either embeds the model with `include_bytes!`, sizes
//! its arena with `arena_size(MODEL)`, asserts the fit in a `const` item and
//! calls [`run`]; or (its `partition` feature) has no model, a static arena
//! sized for the board, and calls [`partition::run`], which reads the model
//! from the flash partition at boot.
#![no_std]

pub mod fit;
#[path = "../../hard_fault.rs"]
mod hard_fault;
pub mod partition;

use cortex_m::peripheral::DWT;
use defmt_rtt as _;
use ferrite_runtime::{Interpreter, Model};

/// 16-byte alignment for an embedded model, so the runtime may borrow its
/// arrays in place whatever alignment it needs.
#[repr(C, align(16))]
pub struct Aligned<B: ?Sized>(pub B);

/// Most operators timed one by one.
const MAX_OPS: usize = 64;

/// Loads `model`, runs one inference on an all-zero-point input and logs the
/// cycles it took (DWT CYCCNT), per operator and in total, and the top-3 of
/// the first output. Ends on a breakpoint (which `probe-rs run` reports as
/// the end of the program); errors end on `udf` (a HardFault).
pub fn run(board: &str, model: &[u8], arena: &mut [u8]) -> ! {
    defmt::info!(
        "{=str}: model {=usize} B, arena {=usize} B",
        board,
        model.len(),
        arena.len()
    );
    let model = match Model::from_bytes(model) {
        Ok(model) => model,
        Err(e) => {
            defmt::error!("model rejected: {}", e);
            fail()
        }
    };
    let interpreter = match Interpreter::new(&model, arena) {
        Ok(interpreter) => interpreter,
        Err(e) => {
            defmt::error!("interpreter setup failed: {}", e);
            fail()
        }
    };
    run_interpreter(&model, interpreter)
}

/// Runs one inference of a validated model bound to its arena, timed per
/// operator with DWT CYCCNT, and logs the cycles and the top-3 of output 0.
/// Ends on a breakpoint; errors end on `udf`.
pub fn run_interpreter(model: &Model<'_>, mut interpreter: Interpreter<'_>) -> ! {
    let mut cp = match cortex_m::Peripherals::take() {
        Some(cp) => cp,
        None => fail(),
    };
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    for index in 0..interpreter.inputs() {
        let zero_point = model.input(index).map(|t| t.zero_point).unwrap_or(0);
        if let Ok(input) = interpreter.input_bytes_mut(index) {
            input.fill(zero_point as i8 as u8);
        }
    }

    let mut per_op = [0u32; MAX_OPS];
    let start = DWT::cycle_count();
    let mut last = start;
    let invoked = interpreter.invoke_with(|step, _| {
        let now = DWT::cycle_count();
        if let Some(slot) = per_op.get_mut(step) {
            *slot = now.wrapping_sub(last);
        }
        last = DWT::cycle_count();
    });
    let total = DWT::cycle_count().wrapping_sub(start);
    if let Err(e) = invoked {
        defmt::error!("invoke failed: {}", e);
        fail()
    }
    for (step, op) in model.ops().enumerate().take(MAX_OPS) {
        defmt::info!(
            "  op {=usize} {=str}: {=u32} cycles",
            step,
            op.name(),
            per_op[step]
        );
    }
    defmt::info!("invoke: {=u32} cycles", total);
    match interpreter.output_top_k::<3>(0) {
        Ok(top) => {
            for (class, score) in top {
                defmt::info!("  class {=usize}: {=i8}", class, score);
            }
        }
        Err(e) => defmt::info!("output 0 is not int8 ({})", e),
    }
    loop {
        cortex_m::asm::bkpt();
    }
}

/// Ends the program on an error: `udf` raises a HardFault, which `probe-rs
/// run` reports with a backtrace and a non-zero exit status.
pub fn fail() -> ! {
    cortex_m::asm::udf()
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
    fail()
}

/// Called by the `HardFault` vector (`boards/hard_fault.rs`) with the faulting stack pointer:
/// logs the fault (a stack overflow when the stack pointer left the stack region) and stops on a
/// breakpoint.
#[no_mangle]
unsafe extern "C" fn ferrite_hard_fault(sp: usize) -> ! {
    // SAFETY: `sp` is the faulting stack pointer, from the HardFault vector.
    unsafe { hard_fault::log(sp) };
    loop {
        cortex_m::asm::bkpt();
    }
}

/// The whole firmware of a real board: `board_main!("name", FLASH_BYTES, RAM_BYTES);` in the board
/// crate's `main.rs`. Without the board crate's `partition` feature the model is embedded from
/// `$FERRITE_MODEL_PATH` (set by `boards/board-build.rs`) with an arena sized at compile time and a
/// build-time fit check against the image's flash (`FLASH_BYTES`, the FLASH region of memory.x) and
/// the RAM; with it the firmware holds no model, reads one from the flash partition at boot and
/// gives it all the RAM but [`fit::STACK_RESERVE`].
#[macro_export]
macro_rules! board_main {
    ($board:literal, $flash:expr, $ram:expr) => {
        const BOARD: &str = $board;
        #[cfg_attr(feature = "partition", allow(dead_code))]
        const FLASH_SIZE: usize = $flash;
        const RAM_SIZE: usize = $ram;

        #[cfg(not(feature = "partition"))]
        mod embedded {
            use ferrite_runtime::{arena_size, Arena};
            use $crate::{fit, Aligned};

            /// The model, placed in flash 16-byte aligned.
            pub static MODEL: &Aligned<[u8]> =
                &Aligned(*include_bytes!(env!("FERRITE_MODEL_PATH")));
            /// The same bytes, for compile-time use.
            const MODEL_BYTES: &[u8] = include_bytes!(env!("FERRITE_MODEL_PATH"));
            /// The arena, sized at compile time from the model's header.
            const ARENA_SIZE: usize = arena_size(MODEL_BYTES);
            pub static mut ARENA: Arena<ARENA_SIZE> = Arena::new();

            // A model too large for this board fails the build here, with the sizes.
            const FIT: fit::Fit = fit::check(
                super::BOARD,
                MODEL_BYTES,
                super::FLASH_SIZE,
                super::RAM_SIZE,
            );
            const _: () = assert!(FIT.ok, "{}", FIT.message());
        }

        /// The partition firmware's arena: all the RAM but the stack reserve (the firmware's few
        /// statics and the stack). Statics that outgrow the reserve fail the link (RAM overflow);
        /// the model's need is checked at boot.
        #[cfg(feature = "partition")]
        static mut ARENA: ferrite_runtime::Arena<{ RAM_SIZE - $crate::fit::STACK_RESERVE }> =
            ferrite_runtime::Arena::new();

        #[cfg(not(feature = "partition"))]
        #[cortex_m_rt::entry]
        fn main() -> ! {
            // SAFETY: the only reference to ARENA, taken once.
            let arena = unsafe { &mut *core::ptr::addr_of_mut!(embedded::ARENA) };
            $crate::run(BOARD, &embedded::MODEL.0, arena.as_mut_slice())
        }

        #[cfg(feature = "partition")]
        #[cortex_m_rt::entry]
        fn main() -> ! {
            // SAFETY: the only reference to ARENA, taken once.
            let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
            $crate::partition::run(BOARD, arena.as_mut_slice())
        }
    };
}
