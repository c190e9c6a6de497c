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

/// Per value, whether it may be a wide output: the output of an int8 Conv2d, DepthwiseConv2d or
/// FullyConnected (`int8_node`) that a single int8 function table (LOOKUP: Tanh, Sigmoid, GELU,
/// SiLU, ...) reads and nothing else does, not a graph output.
pub(super) fn wide_candidates(graph: &Graph, int8_node: &[bool]) -> Vec<bool> {
    let consumers = graph.consumers();
    let mut wide = vec![false; graph.values.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        let weighted = matches!(
            n.op,
            Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } | Op::FullyConnected { .. }
        );
        let v = n.output;
        if !weighted || !int8_node[i] || graph.outputs.contains(&v) {
            continue;
        }
        if let [reader] = consumers[v][..] {
            wide[v] = int8_node[reader] && graph.nodes[reader].op.table_function().is_some();
        }
    }
    wide
}

/// Per value, whether it is a wide output: a [`wide_candidates`] value whose int8 rounding would
/// put more noise into its function's output than the output's own int8 rounding does, on the
/// calibration values (`float_acts`) with the estimator's `ranges`: the mean of the function's
/// squared slope times the input's int8 step squared, against the output's step squared. Kept in
/// int16, the function then sees its input at int16's resolution, at the cost of the int16 tensor
/// (twice the bytes) and of a larger table: that at least halves the noise at the function's
/// output, where saturating functions (Tanh, Sigmoid) read a range much wider than their output's.
pub(super) fn wide_values(
    graph: &Graph,
    int8_node: &[bool],
    ranges: &[Option<(f32, f32)>],
    float_acts: &[Option<Tensor>],
    symmetric: bool,
) -> Vec<bool> {
    /// At most this many values estimate the mean squared slope.
    const SLOPE_SAMPLES: usize = 1 << 16;
    let consumers = graph.consumers();
    let mut wide = wide_candidates(graph, int8_node);
    for v in 0..graph.values.len() {
        let candidate = std::mem::take(&mut wide[v]);
        let (true, Some(&reader), Some(t)) = (candidate, consumers[v].first(), &float_acts[v])
        else {
            continue;
        };
        let node = &graph.nodes[reader];
        let Some(f) = node.op.table_function() else {
            continue;
        };
        let input_step = range_params(ranges[v], symmetric).scale as f64;
        let output = fixed_output(&node.op).unwrap_or(range_params(ranges[node.output], symmetric));
        let output_step = output.scale as f64;
        let h = input_step / 16.0;
        let stride = t.data.len().div_ceil(SLOPE_SAMPLES).max(1);
        let (mut sum, mut count) = (0.0f64, 0usize);
        for &x in t.data.iter().step_by(stride) {
            let x = x as f64;
            let slope = (f(x + h) - f(x - h)) / (2.0 * h);
            sum += slope * slope;
            count += 1;
        }
        let mean_square_slope = sum / count.max(1) as f64;
        wide[v] = mean_square_slope * input_step * input_step > output_step * output_step;
    }
    wide
}

/// The int16 scale of each wide value (`wide`; `None` elsewhere): [`Op::wide_scale`] of the
/// function that reads it, over the values seen in calibration, with that function's int8 output
/// parameters (`qp`), and at least the layer's accumulator step (its input scale times its largest
/// weight scale, from `weights`): the requantization factor never exceeds 1, so no accumulator is
/// shifted left (a step function such as Sign changes at one point only, and a range that narrow
/// would take factors in the thousands, whose left shifts wrap large accumulators). A step finer
/// than the accumulator's would resolve nothing more. A factor above 1/4 takes the kernels' long
/// requantization form: on `mbv1_tanh_fashion` 4% more instructions than without the floor, where
/// a floor making every factor at most 1/8 cost 0.1-0.2 dB.
pub(super) fn wide_scales(
    graph: &Graph,
    wide: &[bool],
    float_acts: &[Option<Tensor>],
    qp: &[Option<QParams>],
    weights: &[Option<(Vec<i8>, Vec<f32>)>],
) -> Vec<Option<f32>> {
    let consumers = graph.consumers();
    let mut scales = vec![None; graph.values.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        let v = n.output;
        if !wide[v] {
            continue;
        }
        let (Some(t), Some(&reader), Some(input), Some((_, w))) = (
            float_acts[v].as_ref(),
            consumers[v].first(),
            qp[n.inputs[0]],
            weights[i].as_ref(),
        ) else {
            continue;
        };
        let node = &graph.nodes[reader];
        let Some(out) = qp[node.output] else {
            continue;
        };
        let (lo, hi) = t
            .data
            .iter()
            .fold((0f32, 0f32), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let accumulator_step = input.scale * w.iter().fold(0f32, |m, &s| m.max(s));
        scales[v] = node
            .op
            .wide_scale(lo, hi, out)
            .map(|s| s.max(accumulator_step));
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
