//! Arbitrary bytes through `Model::from_bytes`, `Interpreter::new` and `invoke`: every input must give
//! `Ok` or `Err`, never a panic, a hang or an out-of-bounds access.
#![no_main]

use ferrite_runtime::format::{crc32, HEADER_LEN};
use ferrite_runtime::{Interpreter, Model};
use libfuzzer_sys::fuzz_target;

/// Larger plans are refused by `Interpreter::new` with `ArenaTooSmall`, which is itself exercised.
const ARENA: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    run(data);
    // Mutations nearly always break the checksum; also try the bytes with a repaired checksum so the
    // payload decoder and the validator see them.
    if data.len() >= HEADER_LEN {
        let mut fixed = data.to_vec();
        let end = (HEADER_LEN + u32::from_le_bytes([data[12], data[13], data[14], data[15]]) as usize)
            .min(data.len());
        let crc = crc32(&fixed[HEADER_LEN..end]);
        fixed[16..20].copy_from_slice(&crc.to_le_bytes());
        run(&fixed);
    }
});

fn run(data: &[u8]) {
    let Ok(model) = Model::from_bytes(data) else { return };
    let mut arena = vec![0u8; ARENA];
    let Ok(mut interpreter) = Interpreter::new(&model, &mut arena) else { return };
    for i in 0..interpreter.inputs() {
        if let Ok(bytes) = interpreter.input_bytes_mut(i) {
            for (k, b) in bytes.iter_mut().enumerate() {
                *b = (k as u8).wrapping_mul(31);
            }
        }
    }
    let _ = interpreter.invoke();
    for i in 0..interpreter.outputs() {
        let _ = interpreter.output_bytes(i);
    }
}
