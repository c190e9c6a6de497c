//! Arbitrary bytes through `ferrite convert` of an `.onnx` file: a Q/DQ model is rewritten, imported,
//! lowered to `.ferrite` and checked by the runtime's loader; anything else gets the CLI's diagnosis.
//! The Q/DQ converter is also called directly, as the library exposes it, without the Q/DQ check.
#![no_main]

use std::path::Path;

use ferrite_quantizer::builder::ArenaLayout;
use ferrite_quantizer::cli::convert::convert_bytes;
use ferrite_quantizer::import::onnx_qdq;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = convert_bytes(Path::new("fuzz.onnx"), data, ArenaLayout::InPlace);
    if !onnx_qdq::is_qdq(data) {
        let _ = onnx_qdq::convert(data, [0; 32], ArenaLayout::Separate);
    }
});
