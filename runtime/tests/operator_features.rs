//! A runtime built without an operator's feature refuses models using it, naming the operator (run
//! with the DS-CNN operator set by `cargo xtask test`).

#[test]
#[cfg(not(feature = "mul"))]
fn a_built_out_operator_is_refused_by_name() {
    let bytes = include_bytes!("../../tests/golden/mul_broadcast_relu/model.ferrite");
    match ferrite_runtime::Model::from_bytes(bytes) {
        Err(ferrite_runtime::Error::OperatorNotBuilt { name, feature, .. }) => {
            assert_eq!((name, feature), ("MUL", "mul"));
        }
        other => panic!("expected OperatorNotBuilt, got {other:?}"),
    }
}

#[test]
#[cfg(all(
    feature = "conv-2d",
    feature = "depthwise-conv-2d",
    feature = "average-pool-2d"
))]
fn a_model_of_built_operators_loads() {
    let bytes = include_bytes!("../../tests/golden/small_dscnn/model.ferrite");
    let model = ferrite_runtime::Model::from_bytes(bytes).unwrap();
    assert!(model.ops().all(|op| op.is_built()));
}

/// The two convolutions share their decoding: each is refused by its own name when only the other
/// is built.
#[test]
#[cfg(not(all(feature = "conv-2d", feature = "depthwise-conv-2d")))]
fn a_built_out_convolution_is_refused_by_name() {
    let cases: [(&[u8], &str, bool); 2] = [
        (
            include_bytes!("../../tests/golden/conv2d_1x1/model.ferrite"),
            "CONV_2D",
            cfg!(feature = "conv-2d"),
        ),
        (
            include_bytes!("../../tests/golden/depthwise_3x3_relu/model.ferrite"),
            "DEPTHWISE_CONV_2D",
            cfg!(feature = "depthwise-conv-2d"),
        ),
    ];
    for (bytes, expected, built) in cases {
        match ferrite_runtime::Model::from_bytes(bytes) {
            Ok(model) if built => assert!(model.ops().all(|op| op.is_built())),
            Err(ferrite_runtime::Error::OperatorNotBuilt { name, .. }) if !built => {
                assert_eq!(name, expected);
            }
            other => panic!("{expected}, built {built}: got {other:?}"),
        }
    }
}
