//! Arbitrary bytes through the `.npy` reader, and a parsed array through everything the CLI does with
//! one: element access, conversion to f32, re-encoding, and use as a model input.
#![no_main]

use ferrite_quantizer::npy::Array;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = Array::parse(data) else { return };
    assert_eq!(a.len() * a.dtype.size(), a.data.len());
    let f = a.to_f32();
    assert_eq!(f.len(), a.len());
    for i in 0..a.len() {
        let _ = a.get_f64(i);
    }
    let again =
        Array::parse(&a.to_bytes().expect("an array encodes")).expect("an encoded array parses");
    assert_eq!(again.shape, a.shape);
    assert_eq!(again.data, a.data);
});
