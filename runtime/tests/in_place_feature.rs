//! The `in-place` feature: a runtime built without it refuses a model whose operators run in place
//! at load, naming the feature (run without it by `cargo xtask test`); with it, the model loads and
//! runs. With or without it, an output that overlaps its input without being planned in place is
//! refused.
//!
//! `data/depthwise_in_place.ferrite` is `tests/tflite/fixtures/depthwise_same_relu.tflite` converted
//! by `ferrite convert --arena in-place`: one depthwise 3x3 convolution over `[1, 6, 6, 6]` whose
//! output overlaps its input.

const DEPTHWISE_IN_PLACE: &[u8] = include_bytes!("data/depthwise_in_place.ferrite");

#[test]
#[cfg(not(feature = "in-place"))]
fn an_in_place_model_is_refused_without_the_feature() {
    match ferrite_runtime::Model::from_bytes(DEPTHWISE_IN_PLACE) {
        Err(e @ ferrite_runtime::Error::InvalidOperator { op: 0, .. }) => {
            assert!(e.to_string().contains("`in-place` feature"), "{e}");
        }
        other => panic!("expected InvalidOperator at 0, got {other:?}"),
    }
}

#[test]
#[cfg(all(feature = "in-place", feature = "depthwise-conv-2d"))]
fn an_in_place_model_runs_with_the_feature() {
    let model = ferrite_runtime::Model::from_bytes(DEPTHWISE_IN_PLACE).unwrap();
    let mut arena = vec![0u8; model.arena_size() + 16];
    let mut interpreter = ferrite_runtime::Interpreter::new(&model, &mut arena).unwrap();
    interpreter.input_i8_mut(0).unwrap().fill(3);
    interpreter.invoke().unwrap();
    assert_eq!(interpreter.output_i8(0).unwrap().len(), 6 * 6 * 6);
}

/// The same model with its output's in-place flag cleared: the output still overlaps the input, which
/// the plan check refuses with the feature or without it (no kernel may read bytes it writes).
#[test]
fn an_overlap_not_planned_in_place_is_refused() {
    use ferrite_runtime::format::{crc32, Reader, Tensor, HEADER_LEN};
    let mut bytes = DEPTHWISE_IN_PLACE.to_vec();
    let payload = &DEPTHWISE_IN_PLACE[HEADER_LEN..];
    // The tensor table is the payload's first item: its count, its byte length, then the tensors.
    let mut r = Reader::new(payload);
    let count: u32 = r.read().unwrap();
    let encoded: &[u8] = r.read().unwrap();
    let table_at = HEADER_LEN + (payload.len() - r.rest().len() - encoded.len());
    let mut items = Reader::new(encoded);
    let mut cleared = 0;
    for _ in 0..count {
        let tensor: Tensor<'_> = items.read().unwrap();
        if tensor.in_place {
            // `in_place` is a tensor's last field: one byte, 1.
            let at = table_at + encoded.len() - items.rest().len() - 1;
            assert_eq!(bytes[at], 1);
            bytes[at] = 0;
            cleared += 1;
        }
    }
    assert_eq!(cleared, 1);
    let crc = crc32(&bytes[HEADER_LEN..]);
    bytes[16..20].copy_from_slice(&crc.to_le_bytes());
    match ferrite_runtime::Model::from_bytes(&bytes) {
        Err(ferrite_runtime::Error::PlanOverlap { .. }) => {}
        other => panic!("expected PlanOverlap, got {other:?}"),
    }
}
