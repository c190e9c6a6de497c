//! Quantization parameters: each activation's scale and zero point from its calibrated range, and
//! the int8 weights with their per-channel scales.

use crate::ir::float_exec::Tensor;
use crate::ir::{Graph, Op};
use crate::ops::OutputQuant;
use crate::quantize::params::{self, QParams};

/// Output quantization fixed by the operator (TFLite's int8 kernels require it), if any.
pub(crate) fn fixed_output(op: &Op) -> Option<QParams> {
    match op.output_quant() {
        OutputQuant::Fixed(q) => Some(q),
        OutputQuant::Calibrated | OutputQuant::Input => None,
    }
}

/// Operators whose int8 output keeps the input's quantization.
pub(crate) fn keeps_input_quant(op: &Op) -> bool {
    op.output_quant() == OutputQuant::Input
}

/// The int8 parameters of a calibrated range (`None`: nothing seen). `symmetric`: the performance
/// preset (zero point 0, or -128 for non-negative ranges).
pub(super) fn range_params(range: Option<(f32, f32)>, symmetric: bool) -> QParams {
    let (lo, hi) = range.unwrap_or((0.0, 0.0));
    if symmetric && lo >= 0.0 {
        // A non-negative range: zero point -128, all 256 levels on [0, max].
        let p = params::activation(0.0, hi, false);
        QParams {
            scale: p.scale,
            zero_point: -128,
        }
    } else {
        params::activation(lo, hi, symmetric)
    }
}

/// Whether value `v`'s int8 parameters come from its own calibrated range (not fixed by its
/// producer, nor inherited from the producer's input).
pub(super) fn own_range(graph: &Graph, v: usize) -> bool {
    match graph.nodes.iter().find(|n| n.output == v) {
        Some(n) => fixed_output(&n.op).is_none() && !keeps_input_quant(&n.op),
        None => graph.inputs.contains(&v),
    }
}

/// int8 parameters of each value, in execution order so that pass-through operators inherit their
/// input's. `symmetric`: the performance preset (zero point 0, or -128 for non-negative ranges).
pub(super) fn activation_params(
    graph: &Graph,
    ranges: &[Option<(f32, f32)>],
    symmetric: bool,
) -> Vec<Option<QParams>> {
    let mut qp: Vec<Option<QParams>> = vec![None; graph.values.len()];
    let from_range = |r: Option<(f32, f32)>| range_params(r, symmetric);
    for &v in &graph.inputs {
        qp[v] = Some(from_range(ranges[v]));
    }
    for n in &graph.nodes {
        let p = if let Some(p) = fixed_output(&n.op) {
            p
        } else if keeps_input_quant(&n.op) && qp[n.inputs[0]].is_some() {
            qp[n.inputs[0]].unwrap()
        } else {
            from_range(ranges[n.output])
        };
        qp[n.output] = Some(p);
    }
    qp
}

/// The int16 scale (zero point 0) of each value, in execution order: the largest magnitude seen in
/// calibration over 32767 (int16x8 keeps the whole range: 256 times int8's resolution leaves no
/// need to clip), `1/32768` for the outputs whose int8 quantization the operator fixes (TFLite's
/// int16 Logistic, Tanh and Softmax outputs), the input's for pass-through operators.
pub(super) fn int16_scales(graph: &Graph, float_acts: &[Option<Tensor>]) -> Vec<Option<f32>> {
    let from_data = |v: usize| {
        let t = float_acts[v].as_ref()?;
        let m = t.data.iter().fold(0f32, |m, &x| m.max(x.abs()));
        Some(if m > 0.0 { m / 32767.0 } else { 1.0 / 32767.0 })
    };
    let mut scales: Vec<Option<f32>> = vec![None; graph.values.len()];
    for &v in &graph.inputs {
        scales[v] = from_data(v);
    }
    for n in &graph.nodes {
        scales[n.output] = if fixed_output(&n.op).is_some() {
            Some(1.0 / 32768.0)
        } else if keeps_input_quant(&n.op) && scales[n.inputs[0]].is_some() {
            scales[n.inputs[0]]
        } else {
            from_data(n.output)
        };
    }
    scales
}

/// Quantized weights of a Conv/Depthwise/FC node: int8 values, per-channel scales.
pub(super) fn quantize_weights(op: &Op, per_tensor: bool) -> Option<(Vec<i8>, Vec<f32>)> {
    let (filter, channel_last) = match op {
        Op::Conv2d { filter, .. } | Op::FullyConnected { filter, .. } => (filter, false),
        Op::DepthwiseConv2d { filter, .. } => (filter, true),
        _ => return None,
    };
    let channels = if channel_last {
        *filter.shape.last()?
    } else {
        filter.shape[0]
    };
    Some(if per_tensor {
        params::weights_per_channel(&filter.data, 1)
    } else if channel_last {
        params::weights_per_channel_last(&filter.data, channels)
    } else {
        params::weights_per_channel(&filter.data, channels)
    })
}
