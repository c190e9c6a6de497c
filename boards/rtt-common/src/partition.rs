//! The model-partition path of the real boards: no model in the image; at
//! boot the firmware reads the model from the flash partition that the
//! board's `memory.x` reserves (`MODEL` region, exported as
//! `_ferrite_model_partition` and `_ferrite_model_partition_size`), written
//! there by `probe-rs download` (`cargo xtask flash-model` prints the
//! command).
//!
//! An erased or empty partition is detected first; the file's length comes
//! from its header (`file_len`) and must fit the partition; the model is
//! validated by `Model::from_bytes` and bound to the board's arena by
//! `Interpreter::new`. Any error is logged over defmt-rtt with a sentence and
//! ends on `udf`: an invalid model never runs. A valid one runs as the
//! embedded-model firmware does ([`crate::run_interpreter`]).

use crate::fail;
use ferrite_runtime::{file_len, Error, Interpreter, Model};

extern "C" {
    static _ferrite_model_partition: u8;
    static _ferrite_model_partition_size: u8;
}

/// The partition's bytes, as the linker script places it.
pub fn region() -> &'static [u8] {
    let start = core::ptr::addr_of!(_ferrite_model_partition);
    let size = core::ptr::addr_of!(_ferrite_model_partition_size) as usize;
    // SAFETY: memory.x reserves [start, start + size) of flash for the
    // partition, outside the image; flash is only read.
    unsafe { core::slice::from_raw_parts(start, size) }
}

/// Reads, validates and runs the model in the partition with `arena` (the
/// board's static arena). Never returns: ends on a breakpoint after the
/// inference, or on `udf` after logging why the model was refused.
pub fn run(board: &str, arena: &'static mut [u8]) -> ! {
    let region = region();
    defmt::info!(
        "{=str}: model partition at {=usize:#010x}, {=usize} B; arena {=usize} B",
        board,
        region.as_ptr() as usize,
        region.len(),
        arena.len()
    );
    let head = &region[..region.len().min(24)];
    if head.iter().all(|&b| b == 0xff) || head.iter().all(|&b| b == 0) {
        defmt::error!(
            "the model partition is empty (erased flash): flash a model with the command `cargo xtask flash-model --board {=str} MODEL.ferrite` prints",
            board
        );
        fail()
    }
    let len = file_len(region);
    if len == 0 {
        // The header itself is invalid: let the loader say how.
        let e = Model::from_bytes(head).err().unwrap_or(Error::BadMagic);
        defmt::error!(
            "the model partition does not hold a usable model: {} ({=str})",
            e,
            hint(&e)
        );
        fail()
    }
    if len > region.len() {
        defmt::error!(
            "the model's header declares a {=usize} B file, larger than the {=usize} B partition: not run",
            len,
            region.len()
        );
        fail()
    }
    let model = match Model::from_bytes(&region[..len]) {
        Ok(model) => model,
        Err(e) => {
            defmt::error!("the model was rejected: {} ({=str})", e, hint(&e));
            fail()
        }
    };
    defmt::info!(
        "model {=usize} B, {=usize} operators, arena needed {=usize} B of {=usize} B",
        len,
        model.ops().count(),
        model.arena_size(),
        arena.len()
    );
    let interpreter = match Interpreter::new(&model, arena) {
        Ok(interpreter) => interpreter,
        Err(Error::ArenaTooSmall { needed, available }) => {
            defmt::error!(
                "the model needs a {=u32} B arena but {=str} has {=u32} B (RAM less statics and stack): not run",
                needed,
                board,
                available
            );
            fail()
        }
        Err(e) => {
            defmt::error!("interpreter setup failed: {} ({=str})", e, hint(&e));
            fail()
        }
    };
    crate::run_interpreter(&model, interpreter)
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
