//! Models the TFLite importer must refuse with a clear error, and corrupt files: every truncation and
//! many byte flips of a real fixture give a model or an error, never a panic.

use ferrite_quantizer::builder::ArenaLayout;
use std::path::{Path, PathBuf};

use ferrite_quantizer::import::tflite;

fn path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/tflite")
        .join(rel)
}

fn error_of(rel: &str) -> String {
    let bytes = std::fs::read(path(rel)).unwrap();
    match tflite::convert(&bytes, ArenaLayout::Separate) {
        Ok(_) => panic!("{rel} converted"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_contains(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "{message:?} lacks {p:?}");
    }
}

#[test]
fn unsupported_operator_names_the_operator_its_index_and_the_supported_list() {
    let e = error_of("errors/unsupported_squared_difference.tflite");
    assert_contains(
        &e,
        &[
            "operator 0 (SQUARED_DIFFERENCE)",
            "not supported",
            "CONV_2D",
            "SOFTMAX",
        ],
    );
}

#[test]
fn a_strided_slice_with_a_step_names_its_strides() {
    let e = error_of("errors/strided_slice_step.tflite");
    assert_contains(
        &e,
        &[
            "operator 0 (STRIDED_SLICE)",
            "strides [1, 2, 1, 1]",
            "only strides of 1",
        ],
    );
}

#[test]
fn a_constant_operand_of_several_values_names_its_size() {
    let e = error_of("errors/add_constant_per_channel.tflite");
    assert_contains(
        &e,
        &[
            "operator 0 (ADD)",
            "constant operand of 8 bytes",
            "must be one int8 value",
        ],
    );
}

#[test]
fn float_model_points_to_ferrite_quantize() {
    let e = error_of("errors/float_model.tflite");
    assert_contains(&e, &["float model", "ferrite quantize"]);
}

#[test]
fn softmax_output_quantization_is_checked() {
    let e = error_of("errors/softmax_output_scale.tflite");
    assert_contains(&e, &["operator 0 (SOFTMAX)", "1/256", "-128"]);
}

#[test]
fn per_channel_scale_count_is_checked() {
    let e = error_of("errors/conv_scale_count.tflite");
    assert_contains(&e, &["operator 0 (CONV_2D)", "3 scales", "expected 1 or 8"]);
}

#[test]
fn int8_zero_point_range_is_checked() {
    let e = error_of("errors/zero_point_range.tflite");
    assert_contains(&e, &["zero point 200", "-128..=127"]);
}

#[test]
fn prelu_alpha_off_the_last_axis_is_refused() {
    let e = error_of("errors/prelu_alpha_shape.tflite");
    assert_contains(
        &e,
        &[
            "operator 0 (PRELU)",
            "shape [1, 6, 1]",
            "one per channel (6)",
        ],
    );
}

#[test]
fn int16_concatenation_needs_equal_scales() {
    let e = error_of("errors/i16_concat_scales.tflite");
    assert_contains(
        &e,
        &["operator 1 (CONCATENATION)", "int16", "needs equal scales"],
    );
}

#[test]
fn not_a_tflite_file() {
    let e = format!(
        "{:#}",
        tflite::convert(b"FRTE not a flatbuffer", ArenaLayout::Separate).unwrap_err()
    );
    assert_contains(&e, &["not a TFLite model"]);
    let e = format!(
        "{:#}",
        tflite::convert(&[], ArenaLayout::Separate).unwrap_err()
    );
    assert_contains(&e, &["not a TFLite model"]);
}

/// Converts, and loads what converts: any outcome but a panic is fine.
fn convert_and_load(bytes: &[u8]) -> Result<(), String> {
    let built = tflite::convert(bytes, ArenaLayout::Separate).map_err(|e| format!("{e:#}"))?;
    ferrite_runtime::Model::from_bytes(&built.bytes).map_err(|e| format!("{e}"))?;
    Ok(())
}

#[test]
fn every_truncation_is_an_error_naming_the_problem() {
    let bytes = std::fs::read(path("fixtures/small_cnn.tflite")).unwrap();
    assert!(convert_and_load(&bytes).is_ok());
    for len in 0..bytes.len() {
        // A FlatBuffer's tail holds vectors and tables that offsets point to; cutting it is corrupt.
        match convert_and_load(&bytes[..len]) {
            Ok(()) => panic!("a file truncated to {len} bytes converted"),
            Err(e) => assert!(
                e.contains("corrupt or truncated") || e.contains("not a TFLite model"),
                "truncation to {len}: {e}"
            ),
        }
    }
}

#[test]
fn byte_flips_never_panic() {
    let bytes = std::fs::read(path("fixtures/small_cnn.tflite")).unwrap();
    let (mut ok, mut err) = (0, 0);
    // Every byte XOR 0xFF and XOR 0x01, then random multi-byte corruption.
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for i in 0..bytes.len() {
        for mask in [0xFF, 0x01, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            cases.push(b);
        }
    }
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..4 {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
            let i = (r >> 32) as usize % b.len();
            b[i] = r as u8;
        }
        cases.push(b);
    }
    for b in &cases {
        match convert_and_load(b) {
            Ok(()) => ok += 1,
            Err(_) => err += 1,
        }
    }
    eprintln!(
        "{} corrupted files: {ok} converted, {err} refused",
        cases.len()
    );
    assert!(err > 0);
}
