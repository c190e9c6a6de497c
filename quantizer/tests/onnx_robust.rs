//! The ONNX importer on damaged files: every error is an `Err`, never a panic.

use std::path::Path;

use ferrite_quantizer::ir::float_exec::{self, Tensor};
use ferrite_quantizer::{import::onnx, ir};

fn import_and_optimize(bytes: &[u8]) -> bool {
    match onnx::import(bytes) {
        Ok(mut g) => ir::passes::optimize(&mut g).is_ok(),
        Err(_) => false,
    }
}

/// Imports, optimizes and runs a two-sample batch of ones; true when all succeed.
fn import_and_run(bytes: &[u8]) -> bool {
    let Ok(mut g) = onnx::import(bytes) else {
        return false;
    };
    if ir::passes::optimize(&mut g).is_err() {
        return false;
    }
    let inputs: Vec<Tensor> = g
        .inputs
        .iter()
        .map(|&v| {
            let mut shape = g.values[v].shape.clone();
            shape[0] = 2;
            let n = shape.iter().product();
            Tensor::new(shape, vec![1.0; n])
        })
        .collect();
    float_exec::run(&g, &inputs, 1).is_ok()
}

fn model(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name),
    )
    .unwrap()
}

#[test]
fn truncations_are_refused_without_panicking() {
    for name in ["dscnn_fashion/model.onnx", "ops/ops_opset17.onnx"] {
        let bytes = model(name);
        assert!(import_and_optimize(&bytes));
        let step = if cfg!(debug_assertions) { 31 } else { 1 };
        for len in (0..bytes.len()).step_by(step) {
            // A prefix may still be a well-formed (smaller) model only if it ends between fields; what
            // matters is that nothing panics.
            let _ = import_and_optimize(&bytes[..len]);
        }
    }
}

#[test]
fn bit_flips_never_panic() {
    // FERRITE_ONNX_FLIPS raises the count for a longer soak.
    let flips = std::env::var("FERRITE_ONNX_FLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 300 } else { 20000 });
    // The small operator graphs also run after each flip.
    for name in ["ops/ops_opset11.onnx", "ops/ops_opset21.onnx"] {
        flip(&model(name), flips, import_and_run);
    }
    flip(
        &model("mobilenetv2_mnist/model.onnx"),
        flips,
        import_and_optimize,
    );
}

fn flip(bytes: &[u8], flips: usize, check: fn(&[u8]) -> bool) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut ok = 0;
    for _ in 0..flips {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut b = bytes.to_vec();
        let at = (state % b.len() as u64) as usize;
        b[at] ^= 1 << ((state >> 32) % 8);
        ok += check(&b) as usize;
    }
    // Most flips land in weights and leave a valid model.
    assert!(ok > 0);
}
