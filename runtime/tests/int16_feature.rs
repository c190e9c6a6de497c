//! The `int16` feature: a runtime built without it refuses a model with int16 tensors at load, naming
//! the feature, and still runs int8 models (run without it by `cargo xtask test`); with it, the same
//! model loads and runs.
//!
//! `data/i16_relu.ferrite` is `tests/tflite/fixtures/i16_relu.tflite` converted by
//! `ferrite convert`: one int16x8 RELU over `[1, 64]`, int16 input and output.

const I16_RELU: &[u8] = include_bytes!("data/i16_relu.ferrite");

#[test]
#[cfg(not(feature = "int16"))]
fn an_int16_model_is_refused_without_the_feature() {
    match ferrite_runtime::Model::from_bytes(I16_RELU) {
        Err(e @ ferrite_runtime::Error::Int16KernelsDisabled { tensor: 0 }) => {
            assert!(e.to_string().contains("`int16` feature"), "{e}");
        }
        other => panic!("expected Int16KernelsDisabled for tensor 0, got {other:?}"),
    }
}

#[test]
#[cfg(feature = "relu")]
fn an_int8_model_runs_with_or_without_the_feature() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden/relu/");
    let bytes = std::fs::read(format!("{dir}model.ferrite")).unwrap();
    let input = std::fs::read(format!("{dir}input.bin")).unwrap();
    let expected = std::fs::read(format!("{dir}expected.bin")).unwrap();
    let model = ferrite_runtime::Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size() + 16];
    let mut interpreter = ferrite_runtime::Interpreter::new(&model, &mut arena).unwrap();
    interpreter
        .input_bytes_mut(0)
        .unwrap()
        .copy_from_slice(&input);
    interpreter.invoke().unwrap();
    assert_eq!(interpreter.output_bytes(0).unwrap(), &expected[..]);
}

#[test]
#[cfg(all(feature = "int16", feature = "relu"))]
fn an_int16_model_runs_with_the_feature() {
    let model = ferrite_runtime::Model::from_bytes(I16_RELU).unwrap();
    let mut arena = vec![0u8; model.arena_size() + 16];
    let mut interpreter = ferrite_runtime::Interpreter::new(&model, &mut arena).unwrap();
    let input: Vec<i16> = (0..64).map(|i| (i - 32) * 1000).collect();
    interpreter
        .input_i16_mut(0)
        .unwrap()
        .copy_from_slice(&input);
    interpreter.invoke().unwrap();
    let output = interpreter.output_i16(0).unwrap();
    // RELU: negative inputs give 0, positive ones stay positive (rescaled to the output's scale).
    for (&x, &y) in input.iter().zip(output) {
        assert_eq!(x <= 0, y == 0, "relu({x}) = {y}");
    }
}
