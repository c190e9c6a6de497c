//! The `in-place` feature: a runtime built without it refuses a model whose operators run in place
//! at load, naming the feature (run without it by `cargo xtask test`); with it, the model loads and
//! runs.
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
