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
