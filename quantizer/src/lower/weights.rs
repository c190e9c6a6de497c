//! Constant data of the weighted operators (Conv2d, DepthwiseConv2d, FullyConnected): the filter and
//! bias as the runtime stores them, and each output channel's requantization factor; PRelu's alpha;
//! LOOKUP's table; NORMALIZE's gamma and beta.

use anyhow::{Context, Result};
use ferrite_runtime::kernels::sparse::encode;
use ferrite_runtime::quant::prepare::quantize_multiplier;

use super::{Precision, Quantization, Requantization};
use crate::ir::{Node, Op};
use crate::quantize::params::{self, QParams};

/// Constant data a lowered node borrows (empty for operators without weights).
#[derive(Default)]
pub(crate) struct NodeData {
    pub filter: Vec<u8>,
    pub bias: Vec<u8>,
    pub multiplier: Vec<u8>,
    pub shift: Vec<u8>,
    /// A pruned int8 filter stored sparsely: weights per block (0: dense) and the block mask;
    /// `filter` then holds only the stored blocks (`ferrite_runtime::kernels::sparse`).
    pub block: u16,
    pub mask: Vec<u8>,
    /// PRelu: the quantization of its int8 alpha (held in `filter`); `None` for f32.
    pub alpha: Option<QParams>,
}

/// Block sizes a sparse filter may use; the writer keeps whichever stores the fewest bytes.
const SPARSE_BLOCKS: [usize; 4] = [1, 2, 4, 8];

fn le_bytes<T: Copy, const N: usize>(values: &[T], to: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

/// The data of node `i`: f32 weights for a node kept in float; int8 weights, an int32 bias (int64
/// for an int16x8 node) and per-channel multipliers and shifts otherwise, the filter of an int8
/// Conv2d or FullyConnected stored sparsely when `sparse` and that takes fewer bytes; the table of
/// an int8 LOOKUP, LOG_SOFTMAX, Tanh or Logistic (`tflite_functions`: [`super::Options`]); an int8
/// NORMALIZE's gamma and beta.
pub(super) fn node_data(
    n: &Node,
    i: usize,
    q: &Quantization<'_>,
    requantization: Requantization,
    sparse: bool,
    tflite_functions: bool,
) -> Result<NodeData> {
    let mut d = NodeData::default();
    let imported = q.weights.get(i).and_then(Option::as_ref);
    let precision = q.precision[n.output];
    if let (Precision::Int8, true, Some(output)) =
        (precision, q.is_wide(n.inputs[0]), q.params[n.output])
    {
        let scale = q.int16_scales.get(n.inputs[0]).copied().flatten();
        let table = scale.and_then(|s| n.op.table16(s, output));
        d.filter = table.context("a wide input without its int16 scale or function")?;
        return Ok(d);
    }
    if let (Precision::Int8, Some(input), Some(output)) =
        (precision, q.params[n.inputs[0]], q.params[n.output])
    {
        if let Some(table) = n.op.table(input, output, tflite_functions) {
            d.filter = table;
            return Ok(d);
        }
    }
    if let (Precision::Int8, Some(output)) = (precision, q.params[n.output]) {
        if let Some(p) = n.op.normalize_data(output) {
            let p = p.with_context(|| format!("node `{}`", n.name))?;
            (d.filter, d.bias) = (p.gamma, p.beta);
            return Ok(d);
        }
    }
    if let Some((bytes, quant)) = n.op.own_data(precision == Precision::Float, imported)? {
        (d.filter, d.alpha) = (bytes, quant);
        return Ok(d);
    }
    let (filter, bias) = match &n.op {
        Op::Conv2d { filter, bias, .. }
        | Op::DepthwiseConv2d { filter, bias, .. }
        | Op::FullyConnected { filter, bias, .. } => (filter, bias),
        _ => return Ok(d),
    };
    if precision == Precision::Float {
        d.filter = le_bytes(&filter.data, f32::to_le_bytes);
        d.bias = le_bytes(&bias.data, f32::to_le_bytes);
        return Ok(d);
    }
    let (w, scales) = q.weights[i].as_ref().context("weights not quantized")?;
    // int16x8; a wide output is int16 too, with int8's input, bias and requantization.
    let wide = q.is_wide(n.output);
    let int16 = precision == Precision::Int16 && !wide;
    let scale_of = |v: usize| -> Option<f32> {
        if int16 || q.is_wide(v) {
            q.int16_scales.get(v).copied().flatten()
        } else {
            q.params[v].map(|p| p.scale)
        }
    };
    let s_in = scale_of(n.inputs[0]).context("input not calibrated")?;
    let s_out = scale_of(n.output).context("output not calibrated")?;
    d.filter = w.iter().map(|&x| x as u8).collect();
    let dense = int16 || wide;
    if let (Op::Conv2d { .. } | Op::FullyConnected { .. }, true, false) = (&n.op, sparse, dense) {
        // One row per output channel (the filter's first dimension).
        let row_len = w.len() / filter.shape.first().copied().unwrap_or(1).max(1);
        if let Some(e) = encode(w, row_len, &SPARSE_BLOCKS) {
            d.block = e.block as u16;
            d.mask = e.mask;
            d.filter = e.values.iter().map(|&x| x as u8).collect();
        }
    }
    let limit = if int16 {
        ferrite_runtime::MAX_BIAS_64
    } else {
        params::BIAS_LIMIT
    };
    let q_bias = match q.biases.get(i) {
        Some(Some(b)) => b.clone(),
        _ => params::bias_in(&bias.data, s_in, scales, limit),
    };
    d.bias = if int16 {
        le_bytes(&q_bias, i64::to_le_bytes)
    } else {
        le_bytes(&q_bias, |b| (b as i32).to_le_bytes())
    };
    for &s in scales {
        let r = match requantization {
            Requantization::TfLite => quantize_multiplier(s_in as f64 * s as f64 / s_out as f64),
            Requantization::Onnx => params::single_rounding_multiplier((s_in * s / s_out) as f64),
        };
        d.multiplier.extend(r.multiplier.to_le_bytes());
        d.shift.extend(r.shift.to_le_bytes());
    }
    Ok(d)
}
