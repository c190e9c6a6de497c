//! Arbitrary bytes through the float ONNX import as `ferrite quantize`, `run` and `inspect` do it: the
//! Q/DQ check, decoding, import to the IR and the optimization passes, then the summary `inspect`
//! prints.
#![no_main]

use ferrite_quantizer::import::{onnx, onnx_qdq};
use ferrite_quantizer::ir;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if onnx_qdq::is_qdq(data) {
        return;
    }
    let Ok(mut g) = onnx::import(data) else {
        return;
    };
    if ir::passes::optimize(&mut g).is_err() {
        return;
    }
    let _ = ir::summary::render("fuzz.onnx", &g);
});
