//! Arbitrary bytes through `ferrite convert` of a `.tflite` file: the FlatBuffer reader, the import to
//! the IR, lowering to `.ferrite` and the runtime loader's checks. Inputs without the `TFL3`
//! identifier are also given to the TFLite converter with the identifier set.
#![no_main]

use std::path::Path;

use ferrite_quantizer::builder::ArenaLayout;
use ferrite_quantizer::cli::convert::convert_bytes;
use ferrite_quantizer::import::{is_tflite, tflite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = convert_bytes(Path::new("fuzz.tflite"), data, ArenaLayout::InPlace);
    if data.len() >= 8 && !is_tflite(data) {
        let mut fixed = data.to_vec();
        fixed[4..8].copy_from_slice(b"TFL3");
        let _ = tflite::convert(&fixed, ArenaLayout::Separate);
    }
});
