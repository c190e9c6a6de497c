//! Float ONNX models in `ferrite run` and `ferrite inspect`: imported to the IR, optimized, and run by
//! the float executor (not the int8 runtime).

use std::path::Path;

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use crate::ir::{self, Graph};

/// Whether `path` names an ONNX model.
pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
        && !std::fs::read(path).is_ok_and(|b| crate::import::onnx_qdq::is_qdq(&b))
}

/// Imports and optimizes a float ONNX model.
pub fn load(path: &Path) -> Result<Graph> {
    let mut g = crate::import::onnx::load(path)?;
    ir::passes::optimize(&mut g).map_err(|e| e.context(format!("{}", path.display())))?;
    Ok(g)
}

/// Reads a float ONNX model with one input (what quantization and training take): its bytes and its
/// optimized graph.
pub fn load_one_input(path: &Path) -> Result<(Vec<u8>, Graph)> {
    let source = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        !crate::import::onnx_qdq::is_qdq(&source),
        "{}: a quantized ONNX model (QuantizeLinear/DequantizeLinear nodes); `ferrite convert` converts it to .ferrite as it is",
        path.display()
    );
    let graph = load(path)?;
    ensure!(
        graph.inputs.len() == 1,
        "{}: models with {} inputs are not supported yet",
        path.display(),
        graph.inputs.len()
    );
    Ok((source, graph))
}

#[derive(Serialize)]
struct NodeJson {
    name: String,
    source_op: String,
    op: &'static str,
    activation: String,
    output_shape: Vec<usize>,
    macs: usize,
    weights: usize,
}

#[derive(Serialize)]
struct SummaryJson {
    format: &'static str,
    inputs: Vec<(String, Vec<usize>)>,
    outputs: Vec<(String, Vec<usize>)>,
    ops: Vec<NodeJson>,
    macs: usize,
    weights: usize,
}

/// `ferrite inspect` on a float ONNX model: the text and the JSON document.
pub fn inspect(path: &Path) -> Result<(String, String)> {
    let g = load(path)?;
    let text = ir::summary::render(&path.display().to_string(), &g);
    let io = |ids: &[usize]| {
        ids.iter()
            .map(|&v| (g.values[v].name.clone(), ir::io::source_dims(&g, v)))
            .collect()
    };
    let ops: Vec<NodeJson> = g
        .nodes
        .iter()
        .map(|n| {
            let mut op = n.op.clone();
            NodeJson {
                name: n.name.clone(),
                source_op: n.source_op.clone(),
                op: n.op.name(),
                activation: n.op.clamp().map(|c| c.to_string()).unwrap_or_default(),
                output_shape: g.values[n.output].shape.clone(),
                macs: n.op.macs(g.values[n.output].elements()),
                weights: op.params_mut().iter().map(|p| p.data.len()).sum(),
            }
        })
        .collect();
    let s = SummaryJson {
        format: "onnx-float",
        inputs: io(&g.inputs),
        outputs: io(&g.outputs),
        macs: ops.iter().map(|o| o.macs).sum(),
        weights: ops.iter().map(|o| o.weights).sum(),
        ops,
    };
    Ok((text, serde_json::to_string_pretty(&s)?))
}
