//! Model-partition runner: the model is not built into the firmware but read
//! at boot from the flash partition that the board's `memory.x` reserves
//! (`MODEL` region, symbols `_ferrite_model_partition` and
//! `_ferrite_model_partition_size`), written there by `cargo xtask
//! flash-model` (QEMU: `-device loader`; a real board: `probe-rs download`).
//!
//! The file's length comes from its header (`file_len`); the model is
//! validated by `Model::from_bytes`; the arena is a static of all the RAM but
//! [`RAM_RESERVE`], defined in the board crate by [`partition_arena!`](crate::partition_arena)
//! (a static: the stack, at the bottom of RAM, grows away from it). One inference runs on an input
//! filled with each input's zero point; the outputs are logged (for the host
//! to compare). Any problem is logged and the firmware exits with failure.

use crate::{fnv, Outcome};
use ferrite_runtime::{file_len, Error, Interpreter, Model};

/// RAM not given to the arena: the firmware's other statics (about 1.1 KiB) and the stack (the
/// rest, about 6.9 KiB).
pub const RAM_RESERVE: usize = 8 * 1024;

/// The arena's length on a board with `ram` bytes of RAM (`FERRITE_RAM_BYTES`, set by
/// `boards/qemu-build.rs`, as a decimal string).
pub const fn arena_len(ram: &str) -> usize {
    let digits = ram.as_bytes();
    let mut value = 0usize;
    let mut i = 0;
    while i < digits.len() {
        assert!(
            digits[i].is_ascii_digit(),
            "FERRITE_RAM_BYTES: not a number"
        );
        value = value * 10 + (digits[i] - b'0') as usize;
        i += 1;
    }
    assert!(
        value > RAM_RESERVE,
        "FERRITE_RAM_BYTES: less RAM than the reserve"
    );
    value - RAM_RESERVE
}

/// Defines the partition firmware's arena in a QEMU board crate (with its `partition` feature):
/// a static `Arena` of all the RAM but [`RAM_RESERVE`], returned by `ferrite_partition_arena`.
#[macro_export]
macro_rules! partition_arena {
    () => {
        #[no_mangle]
        fn ferrite_partition_arena() -> &'static mut [u8] {
            static mut ARENA: ::ferrite_runtime::Arena<
                { $crate::partition::arena_len(env!("FERRITE_RAM_BYTES")) },
            > = ::ferrite_runtime::Arena::new();
            // SAFETY: called once, by the partition runner.
            unsafe { (*core::ptr::addr_of_mut!(ARENA)).as_mut_slice() }
        }
    };
}

extern "Rust" {
    /// Defined by [`partition_arena!`] in the board crate.
    fn ferrite_partition_arena() -> &'static mut [u8];
}

extern "C" {
    static _ferrite_model_partition: u8;
    static _ferrite_model_partition_size: u8;
}

fn partition() -> &'static [u8] {
    let start = core::ptr::addr_of!(_ferrite_model_partition);
    let size = core::ptr::addr_of!(_ferrite_model_partition_size) as usize;
    // SAFETY: the linker script reserves [start, start + size) of flash for
    // the partition; flash is only read.
    unsafe { core::slice::from_raw_parts(start, size) }
}

fn arena() -> &'static mut [u8] {
    // SAFETY: the board crate's static (zeroed at boot), handed out once.
    unsafe { ferrite_partition_arena() }
}

pub fn run() -> Outcome {
    let region = partition();
    let base = region.as_ptr() as usize;
    defmt::info!(
        "partition at {=usize:#010x}, {=usize} B",
        base,
        region.len()
    );
    let head = &region[..region.len().min(24)];
    if head.iter().all(|&b| b == 0) || head.iter().all(|&b| b == 0xff) {
        defmt::error!("partition: empty (no model flashed; use cargo xtask flash-model)");
        return Outcome::Fail;
    }
    let len = file_len(region);
    if len == 0 {
        // The header itself is invalid: let the loader say how.
        if let Err(e) = Model::from_bytes(head) {
            defmt::error!("partition: not a usable model: {} ({=str})", e, hint(&e));
        }
        return Outcome::Fail;
    }
    if len > region.len() {
        defmt::error!(
            "partition: the header declares a {=usize} B model, larger than the {=usize} B partition",
            len,
            region.len()
        );
        return Outcome::Fail;
    }
    let model = match Model::from_bytes(&region[..len]) {
        Ok(model) => model,
        Err(e) => {
            defmt::error!("partition: model rejected: {} ({=str})", e, hint(&e));
            return Outcome::Fail;
        }
    };
    let arena = arena();
    defmt::info!(
        "partition: model {=usize} B, arena needed {=usize} B, available {=usize} B",
        len,
        model.arena_size(),
        arena.len()
    );
    let mut interpreter = match Interpreter::new(&model, arena) {
        Ok(interpreter) => interpreter,
        Err(e) => {
            defmt::error!(
                "partition: interpreter setup failed: {} ({=str})",
                e,
                hint(&e)
            );
            return Outcome::Fail;
        }
    };
    for index in 0..interpreter.inputs() {
        let zero_point = model.input(index).map(|t| t.zero_point).unwrap_or(0);
        match interpreter.input_bytes_mut(index) {
            Ok(input) => input.fill(zero_point as i8 as u8),
            Err(e) => {
                defmt::error!("partition: input {=usize}: {}", index, e);
                return Outcome::Fail;
            }
        }
    }
    if let Err(e) = interpreter.invoke() {
        defmt::error!("partition: invoke failed: {}", e);
        return Outcome::Fail;
    }
    let mut hash = fnv::fnv1a_start();
    for index in 0..interpreter.outputs() {
        match interpreter.output_bytes(index) {
            Ok(output) => {
                hash = fnv::fnv1a_update(hash, output);
                if output.len() <= 64 {
                    defmt::info!("output {=usize}: {=[u8]}", index, output);
                }
            }
            Err(e) => {
                defmt::error!("partition: output {=usize}: {}", index, e);
                return Outcome::Fail;
            }
        }
    }
    defmt::info!("partition: ran, output fnv1a={=u32:#010x}", hash);
    Outcome::Pass
}

/// A sentence for the errors a flashed partition typically gives.
fn hint(e: &Error) -> &'static str {
    match e {
        Error::BadMagic => "not a .ferrite file",
        Error::UnsupportedVersion { .. } => {
            "a format version this firmware does not read: re-export the model or update the firmware"
        }
        Error::ChecksumMismatch { .. } => "corrupt or truncated model: flash it again",
        Error::Truncated { .. } => "the file is cut short",
        Error::ArenaTooSmall { .. } => "the model needs more RAM than this board leaves for the arena",
        Error::FloatKernelsDisabled => "the model needs f32 kernels, not built into this firmware",
        Error::Int16KernelsDisabled { .. } => {
            "the model has int16 tensors; build the firmware with the `int16` feature"
        }
        _ => "invalid model",
    }
}
