//! Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization
//! and Bias Correction"): a function-preserving rescaling that balances the weight ranges of
//! consecutive layers before quantization.
//!
//! For a pair of weighted layers where the first's output channel `c` is read only by the second
//! (through operators that commute with a positive per-channel scale: a ReLU-like or absent fused
//! clamp, MaxPool, AveragePool, zero Pad), dividing the first layer's channel `c` (weights and bias)
//! by `s_c` and multiplying the second's input channel `c` by `s_c` leaves the network's function
//! unchanged. With `r1_c` and `r2_c` the largest weight magnitudes of the two channels,
//! `s_c = sqrt(r1_c / r2_c)` makes both `sqrt(r1_c * r2_c)`: per-channel weight ranges even out
//! across the pair, and so do the per-tensor activation ranges between them (a channel 50x larger
//! than the rest no longer sets the scale of all of them). Chains of pairs are equalized in turn until
//! the scales settle.
//!
//! With per-channel weights the rescaling is not always a gain: it evens out the activation tensor
//! but can spread the consumer's per-row weight ranges. Given per-channel statistics of the activation
//! (calibration), a pair keeps its rescaling only where a simple noise model predicts less error at
//! the consumer's output: uniform int8 rounding noise (`step^2 / 12`) of the per-tensor activation,
//! carried through the consumer's weights, plus that of each per-row weight scale, carried by the
//! activation's mean square.
//!
//! Residual streams get the same treatment as a group ([`equalize_streams`]): the values an `Add`
//! joins share one channel numbering, so a channel of the stream is rescaled at once in every layer
//! that writes the stream (their output channel) and every layer that reads it (their input
//! channel). A pair of layers cannot see such an imbalance: the stream has several writers and
//! readers.

use crate::ir::{Clamp, Graph, Op, Param, ValueId};
use crate::ops::Channels;

/// Rounds over all pairs at most, and the change (largest `|ln s|`) below which they stop.
const MAX_ROUNDS: usize = 50;
const SETTLED: f32 = 1e-4;

/// A producer/consumer pair that can be equalized.
#[derive(Clone, Copy, Debug)]
struct Pair {
    producer: usize,
    consumer: usize,
}

/// A clamp that commutes with a positive scale: none, or a lower bound of 0 without an upper one.
fn scale_invariant(c: &Clamp) -> bool {
    (c.min == f32::NEG_INFINITY || c.min == 0.0) && c.max == f32::INFINITY
}

/// Output channels of a producer layer, if it is one that can be scaled.
fn out_channels(op: &Op) -> Option<usize> {
    match op {
        Op::Conv2d { filter, clamp, .. } | Op::FullyConnected { filter, clamp, .. }
            if scale_invariant(clamp) =>
        {
            Some(filter.shape[0])
        }
        Op::DepthwiseConv2d { filter, clamp, .. } if scale_invariant(clamp) => {
            filter.shape.last().copied()
        }
        _ => None,
    }
}

/// Whether `op` passes a positive per-channel scale of its (only) input through to its output.
fn passes_scale(op: &Op) -> bool {
    matches!(
        op.channels(),
        Channels::Kept {
            positive_scale: true
        } | Channels::Padded { .. }
    )
}

/// The consumer of `v` when it is the only reader, through scale-preserving operators.
fn sole_reader(g: &Graph, consumers: &[Vec<usize>], mut v: ValueId) -> Option<usize> {
    loop {
        if g.outputs.contains(&v) {
            return None;
        }
        let [n] = consumers[v][..] else { return None };
        let node = &g.nodes[n];
        if node.inputs.len() != 1 {
            return None;
        }
        if !passes_scale(&node.op) {
            return Some(n);
        }
        v = node.output;
    }
}

/// Whether the consumer reads `channels` channels as its input's last axis with weights per input
/// channel.
fn reads_channels(g: &Graph, n: usize, channels: usize) -> bool {
    let node = &g.nodes[n];
    let input_last = g.values[node.inputs[0]].shape.last().copied();
    let weights_match = match &node.op {
        Op::Conv2d { filter, .. } => filter.shape.last() == Some(&channels),
        Op::DepthwiseConv2d {
            filter,
            depth_multiplier,
            ..
        } => filter.shape.last() == Some(&(channels * depth_multiplier)),
        // A fully connected layer on a `[n, C]` input: its columns are the channels.
        Op::FullyConnected { filter, .. } => {
            g.values[node.inputs[0]].shape.len() == 2 && filter.shape.get(1) == Some(&channels)
        }
        _ => false,
    };
    weights_match && input_last == Some(channels)
}

fn pairs(g: &Graph) -> Vec<Pair> {
    let consumers = g.consumers();
    g.nodes
        .iter()
        .enumerate()
        .filter_map(|(producer, node)| {
            let channels = out_channels(&node.op).filter(|&c| c > 0)?;
            let consumer = sole_reader(g, &consumers, node.output)?;
            reads_channels(g, consumer, channels).then_some(Pair { producer, consumer })
        })
        .collect()
}

/// Largest magnitude of each output channel of a producer's filter.
fn producer_ranges(op: &Op, channels: usize) -> Vec<f32> {
    let mut r = vec![0f32; channels];
    match op {
        Op::Conv2d { filter, .. } | Op::FullyConnected { filter, .. } => {
            let per = filter.data.len() / channels;
            for (c, row) in filter.data.chunks(per).enumerate() {
                r[c] = row.iter().fold(0f32, |m, w| m.max(w.abs()));
            }
        }
        Op::DepthwiseConv2d { filter, .. } => {
            for (i, w) in filter.data.iter().enumerate() {
                r[i % channels] = r[i % channels].max(w.abs());
            }
        }
        _ => unreachable!("not a producer"),
    }
    r
}

/// Index of the input channel each weight of a consumer's filter reads, for `channels` channels.
fn input_channel(op: &Op) -> impl Fn(usize) -> usize {
    let (columns, per_channel) = match op {
        Op::Conv2d { filter, .. } => (filter.shape[3], 1),
        Op::DepthwiseConv2d {
            filter,
            depth_multiplier,
            ..
        } => (filter.shape[3], *depth_multiplier),
        Op::FullyConnected { filter, .. } => (filter.shape[1], 1),
        _ => unreachable!("not a consumer layer"),
    };
    move |i| (i % columns) / per_channel
}

fn filter_of(op: &Op) -> &Param {
    match op {
        Op::Conv2d { filter, .. }
        | Op::DepthwiseConv2d { filter, .. }
        | Op::FullyConnected { filter, .. } => filter,
        _ => unreachable!("not a weighted layer"),
    }
}

fn filter_mut(op: &mut Op) -> &mut Param {
    match op {
        Op::Conv2d { filter, .. }
        | Op::DepthwiseConv2d { filter, .. }
        | Op::FullyConnected { filter, .. } => filter,
        _ => unreachable!("not a weighted layer"),
    }
}

/// Largest magnitude of each input channel of a consumer's filter.
fn consumer_ranges(op: &Op, channels: usize) -> Vec<f32> {
    let mut r = vec![0f32; channels];
    let channel = input_channel(op);
    for (i, w) in filter_of(op).data.iter().enumerate() {
        let c = channel(i);
        r[c] = r[c].max(w.abs());
    }
    r
}

/// Divides the producer's output channels by `s` and multiplies the consumer's input channels by it.
fn apply(g: &mut Graph, pair: Pair, s: &[f32]) {
    rescale(g, &[pair.producer], &[pair.consumer], s);
}

/// Divides output channel `c` of every writer (weights and bias) by `s[c]` and multiplies input
/// channel `c` of every reader by it.
fn rescale(g: &mut Graph, writers: &[usize], readers: &[usize], s: &[f32]) {
    let inverse: Vec<f32> = s.iter().map(|&x| 1.0 / x).collect();
    for &w in writers {
        let op = &mut g.nodes[w].op;
        crate::ir::passes::scale_filter(op, &inverse);
        crate::ir::passes::affine_bias(op, &inverse, &[]);
    }
    for &r in readers {
        let channel = input_channel(&g.nodes[r].op);
        let filter = filter_mut(&mut g.nodes[r].op);
        for (i, w) in filter.data.iter_mut().enumerate() {
            *w *= s[channel(i)];
        }
    }
}

/// Per channel of an activation: largest magnitude and mean square over the calibration samples.
pub type ChannelStats = Vec<(f32, f32)>;

/// Per-channel statistics of an NHWC (channel-last) activation.
pub fn channel_stats(data: &[f32], channels: usize) -> ChannelStats {
    let mut stats = vec![(0f32, 0f64); channels];
    for (i, &x) in data.iter().enumerate() {
        let s = &mut stats[i % channels];
        s.0 = s.0.max(x.abs());
        s.1 += (x as f64) * (x as f64);
    }
    let per = (data.len() / channels.max(1)).max(1) as f64;
    stats
        .into_iter()
        .map(|(m, sq)| (m, (sq / per) as f32))
        .collect()
}

/// Output row of each weight of a consumer's filter.
fn output_row(op: &Op) -> impl Fn(usize) -> usize + '_ {
    move |i| match op {
        Op::Conv2d { filter, .. } | Op::FullyConnected { filter, .. } => {
            i / (filter.data.len() / filter.shape[0])
        }
        Op::DepthwiseConv2d { filter, .. } => i % filter.shape[3],
        _ => unreachable!("not a weighted layer"),
    }
}

/// Predicted int8 rounding noise at the consumer's output when its input channels are scaled by `s`
/// (the activation divided by it, the consumer's weights multiplied by it).
fn consumer_noise(op: &Op, stats: &[(f32, f32)], s: &[f32]) -> f64 {
    let channels = s.len();
    let channel = input_channel(op);
    let row = output_row(op);
    let filter = filter_of(op);
    let rows = match op {
        Op::DepthwiseConv2d { filter, .. } => filter.shape[3],
        _ => filter.shape[0],
    };
    let range = (0..channels).fold(0f32, |m, c| m.max(stats[c].0 / s[c])) as f64;
    let act_step2 = (range / 255.0).powi(2) / 12.0;
    let mut row_max = vec![0f64; rows];
    let mut act = 0f64;
    for (i, &w) in filter.data.iter().enumerate() {
        let ws = (w * s[channel(i)]) as f64;
        act += ws * ws * act_step2;
        let r = &mut row_max[row(i)];
        *r = r.max(ws.abs());
    }
    let mut weight = 0f64;
    for i in 0..filter.data.len() {
        let c = channel(i);
        let step2 = (row_max[row(i)] / 127.0).powi(2) / 12.0;
        weight += step2 * stats[c].1 as f64 / (s[c] as f64).powi(2);
    }
    act + weight
}

/// Equalizes the residual streams ([`equalize_streams`]), then the pairs of `g`; returns how many
/// streams and pairs were rescaled. `stats(v)` gives the per-channel statistics of activation `v`
/// from calibration (of `g` as given): with them a pair is rescaled only where the noise model
/// predicts a gain; without (`None`), every pair is, and no stream.
pub fn equalize(g: &mut Graph, stats: &dyn Fn(ValueId) -> Option<ChannelStats>) -> usize {
    let streams = equalize_streams(g, stats);
    let pairs = pairs(g);
    // The data-free solution on a copy, as cumulative per-pair scales.
    let mut trial = g.clone();
    let mut total: Vec<Vec<f32>> = pairs
        .iter()
        .map(|p| vec![1.0; out_channels(&g.nodes[p.producer].op).unwrap_or(0)])
        .collect();
    for _ in 0..MAX_ROUNDS {
        let mut change = 0f32;
        for (k, &pair) in pairs.iter().enumerate() {
            let s = balancing_scales(&trial, pair);
            change = s.iter().fold(change, |m, x| m.max(x.ln().abs()));
            total[k].iter_mut().zip(&s).for_each(|(t, x)| *t *= x);
            apply(&mut trial, pair, &s);
        }
        if change < SETTLED {
            break;
        }
    }
    let mut applied = 0;
    for (pair, s) in pairs.iter().zip(&total) {
        let consumer = &g.nodes[pair.consumer];
        let helps = match stats(consumer.inputs[0]) {
            Some(st) if st.len() == s.len() => {
                let ones = vec![1.0; s.len()];
                consumer_noise(&consumer.op, &st, s) < consumer_noise(&consumer.op, &st, &ones)
            }
            _ => true,
        };
        if helps {
            apply(g, *pair, s);
            applied += 1;
        }
    }
    streams + applied
}

/// Values joined by `Add` (and by the operators between them that pass a positive per-channel
/// scale) with one channel numbering, the layers that write them and the layers that read them.
#[derive(Debug)]
struct Stream {
    values: Vec<ValueId>,
    writers: Vec<usize>,
    readers: Vec<usize>,
    channels: usize,
}

/// Whether `node` keeps its single input's channel numbering under a positive per-channel scale, the
/// last axis being the channels on both sides: a ReLU-like operator, pooling, the spatial mean, zero
/// padding of the spatial axes, or a reshape that keeps the last axis (the flat order keeps `i % C`).
fn keeps_stream(g: &Graph, node: &crate::ir::Node) -> bool {
    let last = |v: ValueId| g.values[v].shape.last().copied();
    if node.inputs.len() != 1 || last(node.inputs[0]) != last(node.output) {
        return false;
    }
    matches!(node.op, Op::Mean { .. })
        || matches!(
            node.op.channels(),
            Channels::Kept {
                positive_scale: true
            } | Channels::Padded { channels: false }
                | Channels::Reshaped { .. }
        )
}

/// An `Add` of two activations of the output's shape whose clamp commutes with a positive scale.
fn joins_stream(g: &Graph, node: &crate::ir::Node) -> bool {
    let Op::Add { clamp } = &node.op else {
        return false;
    };
    let shape = &g.values[node.output].shape;
    scale_invariant(clamp)
        && node.inputs.len() == 2
        && node
            .inputs
            .iter()
            .all(|&v| g.values[v].data.is_none() && &g.values[v].shape == shape)
}

/// The residual streams of `g` that can be rescaled: every value is written by a layer with one
/// output channel per stream channel or by a joining/keeping operator, and read only by such
/// operators or by layers with weights per input channel. A stream that reaches a graph input or
/// output, or any other operator, is left out.
fn streams(g: &Graph) -> Vec<Stream> {
    let n = g.values.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(p: &mut [usize], mut v: usize) -> usize {
        while p[v] != v {
            p[v] = p[p[v]];
            v = p[v];
        }
        v
    }
    let mut joined = vec![false; n];
    for node in &g.nodes {
        let join = joins_stream(g, node);
        if join || keeps_stream(g, node) {
            for &i in &node.inputs {
                let (a, b) = (root(&mut parent, i), root(&mut parent, node.output));
                parent[a] = b;
            }
        }
        if join {
            joined[node.output] = true;
        }
    }
    let mut groups: Vec<Vec<ValueId>> = vec![Vec::new(); n];
    for v in 0..n {
        let r = root(&mut parent, v);
        groups[r].push(v);
    }
    let consumers = g.consumers();
    let producers = g.producers();
    groups
        .into_iter()
        .filter(|values| values.iter().any(|&v| joined[v]))
        .filter_map(|values| {
            let channels = g.values[values[0]]
                .shape
                .last()
                .copied()
                .filter(|&c| c > 0)?;
            let inside = |v: ValueId| values.contains(&v);
            let (mut writers, mut readers) = (Vec::new(), Vec::new());
            for &v in &values {
                let value = &g.values[v];
                if value.data.is_some()
                    || value.shape.last() != Some(&channels)
                    || g.inputs.contains(&v)
                    || g.outputs.contains(&v)
                {
                    return None;
                }
                let p = producers[v]?;
                let node = &g.nodes[p];
                if !(joins_stream(g, node) || keeps_stream(g, node)) || !inside(node.inputs[0]) {
                    if out_channels(&node.op) != Some(channels) {
                        return None;
                    }
                    writers.push(p);
                }
                for &c in &consumers[v] {
                    let node = &g.nodes[c];
                    let interior =
                        (joins_stream(g, node) || keeps_stream(g, node)) && inside(node.output);
                    if interior {
                        continue;
                    }
                    if node.inputs.len() != 1 || !reads_channels(g, c, channels) {
                        return None;
                    }
                    readers.push(c);
                }
            }
            Some(Stream {
                values,
                writers,
                readers,
                channels,
            })
        })
        .collect()
}

/// Exponents tried for the stream scales `(a_c / w_c)^alpha` (see [`equalize_streams`]).
const STREAM_EXPONENTS: [f32; 4] = [0.25, 0.5, 0.75, 1.0];
/// A stream is rescaled only when the noise model predicts at least this factor less noise (3 dB).
/// The model sees the readers' inputs only, not the rounding of the writers' outputs that the stream
/// also carries; small predicted gains were measured both ways on the fixtures' full test sets
/// (2% predicted: -0.5 dB of output SQNR on `resnet_fashion`; 10%: +0.3 dB on `mobilenetv2_mnist`),
/// where the outlier channels of `resnet_fashion_outliers` predict 600-2000x and gain 21 dB.
const STREAM_GAIN: f64 = 2.0;

/// Equalizes the residual streams of `g` whose statistics are known; returns how many were
/// rescaled. Channel `c` of a stream has the activation range `a_c` (the largest magnitude over the
/// stream's values) and the reader weight range `w_c` (over its readers, each relative to its own
/// largest); the candidate scales `s_c = (a_c / w_c)^alpha`, normalized to a geometric mean of 1,
/// divide the channel in the writers and multiply it in the readers. The candidate with the least
/// predicted rounding noise at the readers' outputs is applied if it predicts `STREAM_GAIN` (2) times
/// less noise than leaving the stream alone.
/// Without statistics a stream is left alone: its writers' weights do not tell the activation range.
pub fn equalize_streams(g: &mut Graph, stats: &dyn Fn(ValueId) -> Option<ChannelStats>) -> usize {
    let mut applied = 0;
    for stream in streams(g) {
        let c = stream.channels;
        let Some(value_stats) = stream
            .values
            .iter()
            .map(|&v| stats(v).filter(|s| s.len() == c))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let mut act = vec![0f32; c];
        for s in &value_stats {
            for (a, &(m, _)) in act.iter_mut().zip(s) {
                *a = a.max(m);
            }
        }
        let mut weight = vec![0f32; c];
        for &r in &stream.readers {
            let ranges = consumer_ranges(&g.nodes[r].op, c);
            let top = ranges.iter().fold(0f32, |m, &x| m.max(x));
            if top > 0.0 {
                for (w, x) in weight.iter_mut().zip(&ranges) {
                    *w = w.max(x / top);
                }
            }
        }
        let reader_stats: Vec<ChannelStats> = stream
            .readers
            .iter()
            .map(|&r| {
                let v = g.nodes[r].inputs[0];
                value_stats[stream.values.iter().position(|&x| x == v).unwrap_or(0)].clone()
            })
            .collect();
        let noise = |s: &[f32]| -> f64 {
            stream
                .readers
                .iter()
                .zip(&reader_stats)
                .map(|(&r, st)| consumer_noise(&g.nodes[r].op, st, s))
                .sum()
        };
        let ones = vec![1f32; c];
        let baseline = noise(&ones);
        let mut best = (baseline, ones);
        for alpha in STREAM_EXPONENTS {
            let raw: Vec<f32> = act
                .iter()
                .zip(&weight)
                .map(|(&a, &w)| {
                    let r = a / w;
                    if a > 0.0 && w > 0.0 && r.is_finite() {
                        r.powf(alpha)
                    } else {
                        1.0
                    }
                })
                .collect();
            let mean_log = raw.iter().map(|x| x.ln()).sum::<f32>() / c as f32;
            let s: Vec<f32> = raw.iter().map(|x| x / mean_log.exp()).collect();
            let n = noise(&s);
            if n < best.0 {
                best = (n, s);
            }
        }
        if best.0 * STREAM_GAIN > baseline {
            continue;
        }
        let s = best.1;
        rescale(g, &stream.writers, &stream.readers, &s);
        applied += 1;
    }
    applied
}

/// The scales that give both layers of `pair` the same per-channel weight range.
fn balancing_scales(g: &Graph, pair: Pair) -> Vec<f32> {
    let channels = out_channels(&g.nodes[pair.producer].op).unwrap_or(0);
    let r1 = producer_ranges(&g.nodes[pair.producer].op, channels);
    let r2 = consumer_ranges(&g.nodes[pair.consumer].op, channels);
    r1.iter()
        .zip(&r2)
        .map(|(&a, &b)| {
            if a > 0.0 && b > 0.0 && (a / b).is_finite() {
                (a / b).sqrt()
            } else {
                1.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::float_exec::{self, Tensor};
    use crate::ir::Window2d;

    /// A pseudo-random value in `[-1, 1)`.
    fn rand(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn param(shape: Vec<usize>, seed: &mut u64, scale: f32) -> Param {
        let n = shape.iter().product();
        Param::new(shape, (0..n).map(|_| rand(seed) * scale).collect())
    }

    /// A 3x3 window, stride 1, padded to keep the size.
    fn same_3x3() -> Window2d {
        Window2d {
            kernel: [3, 3],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [1, 1, 1, 1],
        }
    }

    /// Conv (ReLU) -> MaxPool -> depthwise (ReLU) -> pointwise conv -> flatten-free FC path, with one
    /// channel of each producer made 40x larger and compensated in its consumer (the imbalance CLE
    /// removes).
    fn imbalanced_graph() -> Graph {
        let mut s = 7u64;
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 8, 8, 3]);
        g.inputs.push(x);
        let window = same_3x3();
        let mut conv = param(vec![4, 3, 3, 3], &mut s, 0.5);
        conv.data[..27].iter_mut().for_each(|w| *w *= 40.0);
        let a = g
            .add_node(
                "conv",
                "Conv",
                Op::Conv2d {
                    window,
                    filter: conv,
                    bias: param(vec![4], &mut s, 0.1),
                    clamp: Clamp::RELU,
                },
                vec![x],
                "a",
            )
            .unwrap();
        let pool = Window2d {
            kernel: [2, 2],
            stride: [2, 2],
            dilation: [1, 1],
            pads: [0, 0, 0, 0],
        };
        let b = g
            .add_node(
                "pool",
                "MaxPool",
                Op::MaxPool2d {
                    window: pool,
                    clamp: Clamp::NONE,
                },
                vec![a],
                "b",
            )
            .unwrap();
        let mut dw = param(vec![1, 3, 3, 4], &mut s, 0.5);
        for (i, w) in dw.data.iter_mut().enumerate() {
            if i % 4 == 0 {
                *w /= 40.0;
            }
        }
        let c = g
            .add_node(
                "dw",
                "Conv",
                Op::DepthwiseConv2d {
                    window,
                    depth_multiplier: 1,
                    filter: dw,
                    bias: param(vec![4], &mut s, 0.1),
                    clamp: Clamp::RELU,
                },
                vec![b],
                "c",
            )
            .unwrap();
        let pw_window = Window2d {
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0, 0, 0, 0],
        };
        let d = g
            .add_node(
                "pw",
                "Conv",
                Op::Conv2d {
                    window: pw_window,
                    filter: param(vec![5, 1, 1, 4], &mut s, 0.5),
                    bias: param(vec![5], &mut s, 0.1),
                    clamp: Clamp::NONE,
                },
                vec![c],
                "d",
            )
            .unwrap();
        g.outputs.push(d);
        g
    }

    fn run(g: &Graph, x: &Tensor) -> Vec<f32> {
        float_exec::run(g, std::slice::from_ref(x), 1).unwrap()[0]
            .data
            .clone()
    }

    #[test]
    fn equalization_preserves_the_function_and_evens_out_the_ranges() {
        let g = imbalanced_graph();
        let mut seed = 3u64;
        let x = Tensor::new(
            vec![4, 8, 8, 3],
            (0..4 * 8 * 8 * 3).map(|_| rand(&mut seed)).collect(),
        );
        let before = run(&g, &x);
        let mut e = g.clone();
        assert_eq!(
            equalize(&mut e, &|_| None),
            2,
            "conv->dw (through the pool) and dw->pw"
        );
        let after = run(&e, &x);
        let scale = before.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in before.iter().zip(&after) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
        }
        // The 40x channel of the first convolution is gone from its per-channel ranges.
        let r = producer_ranges(&e.nodes[0].op, 4);
        let (lo, hi) = r
            .iter()
            .fold((f32::MAX, 0f32), |(l, h), &x| (l.min(x), h.max(x)));
        let r0 = producer_ranges(&g.nodes[0].op, 4);
        let (lo0, hi0) = r0
            .iter()
            .fold((f32::MAX, 0f32), |(l, h), &x| (l.min(x), h.max(x)));
        assert!(hi / lo < (hi0 / lo0) / 4.0, "{r0:?} -> {r:?}");
    }

    /// With calibration statistics, the noise model keeps the rescaling of the 40x imbalance, and the
    /// function is still preserved.
    #[test]
    fn the_noise_model_keeps_the_rescaling_of_a_large_imbalance() {
        let g = imbalanced_graph();
        let mut seed = 5u64;
        let x = Tensor::new(
            vec![8, 8, 8, 3],
            (0..8 * 8 * 8 * 3).map(|_| rand(&mut seed)).collect(),
        );
        let acts =
            float_exec::run_observed(&g, std::slice::from_ref(&x), true, |_, _, _| {}).unwrap();
        let stats = |v: ValueId| {
            let t = acts.get(v)?;
            Some(channel_stats(t.data, *t.shape.last()?))
        };
        let mut e = g.clone();
        assert!(equalize(&mut e, &stats) >= 1);
        let (before, after) = (run(&g, &x), run(&e, &x));
        let scale = before.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in before.iter().zip(&after) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
        }
    }

    #[test]
    fn a_relu6_or_a_shared_output_is_left_alone() {
        let mut g = imbalanced_graph();
        if let Op::Conv2d { clamp, .. } = &mut g.nodes[0].op {
            *clamp = Clamp::RELU6;
        }
        // The pointwise output is the graph output; the depthwise one is read twice.
        let c = g.nodes[2].output;
        let extra = g
            .add_node("id", "Relu", Op::Relu { clamp: Clamp::RELU }, vec![c], "e")
            .unwrap();
        g.outputs.push(extra);
        let before = g.clone();
        assert_eq!(equalize(&mut g, &|_| None), 0);
        assert_eq!(g, before);
    }

    /// A residual block whose stream (the stem's output, the block's second convolution and their
    /// sum) carries two channels 50x wider than the rest, compensated in every reader: the first
    /// convolution of the block and the classifier after the spatial mean.
    fn residual_outlier_graph() -> Graph {
        let mut s = 11u64;
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 6, 6, 2]);
        g.inputs.push(x);
        let window = same_3x3();
        let wide = [1usize, 4];
        let scale_rows = |p: &mut Param, by: f32| {
            let per = p.data.len() / p.shape[0];
            for &c in &wide {
                p.data[c * per..(c + 1) * per]
                    .iter_mut()
                    .for_each(|w| *w *= by);
            }
        };
        let scale_columns = |p: &mut Param, columns: usize, by: f32| {
            for (i, w) in p.data.iter_mut().enumerate() {
                if wide.contains(&(i % columns)) {
                    *w *= by;
                }
            }
        };
        let conv = |g: &mut Graph, name: &str, input, filter: Param, bias: Param, clamp| {
            g.add_node(
                name,
                "Conv",
                Op::Conv2d {
                    window,
                    filter,
                    bias,
                    clamp,
                },
                vec![input],
                name,
            )
            .unwrap()
        };
        let (mut stem, mut stem_b) = (
            param(vec![6, 3, 3, 2], &mut s, 0.5),
            param(vec![6], &mut s, 0.1),
        );
        scale_rows(&mut stem, 50.0);
        stem_b.data[1] *= 50.0;
        stem_b.data[4] *= 50.0;
        let a = conv(&mut g, "stem", x, stem, stem_b, Clamp::RELU);
        let mut first = param(vec![6, 3, 3, 6], &mut s, 0.3);
        scale_columns(&mut first, 6, 1.0 / 50.0);
        let b = conv(
            &mut g,
            "first",
            a,
            first,
            param(vec![6], &mut s, 0.1),
            Clamp::RELU,
        );
        let (mut second, mut second_b) = (
            param(vec![6, 3, 3, 6], &mut s, 0.3),
            param(vec![6], &mut s, 0.1),
        );
        scale_rows(&mut second, 50.0);
        second_b.data[1] *= 50.0;
        second_b.data[4] *= 50.0;
        let c = conv(&mut g, "second", b, second, second_b, Clamp::NONE);
        let sum = g
            .add_node(
                "add",
                "Add",
                Op::Add { clamp: Clamp::RELU },
                vec![c, a],
                "sum",
            )
            .unwrap();
        let mean = g
            .add_node(
                "mean",
                "GlobalAveragePool",
                Op::Mean { keep_dims: true },
                vec![sum],
                "mean",
            )
            .unwrap();
        let flat = g
            .add_node(
                "flat",
                "Flatten",
                Op::Reshape { shape: vec![1, 6] },
                vec![mean],
                "flat",
            )
            .unwrap();
        let mut fc = param(vec![3, 6], &mut s, 0.5);
        scale_columns(&mut fc, 6, 1.0 / 50.0);
        let y = g
            .add_node(
                "fc",
                "Gemm",
                Op::FullyConnected {
                    filter: fc,
                    bias: param(vec![3], &mut s, 0.1),
                    clamp: Clamp::NONE,
                },
                vec![flat],
                "y",
            )
            .unwrap();
        g.outputs.push(y);
        g
    }

    fn observed_stats(g: &Graph, x: &Tensor) -> Vec<Option<ChannelStats>> {
        let acts =
            float_exec::run_observed(g, std::slice::from_ref(x), true, |_, _, _| {}).unwrap();
        (0..g.values.len())
            .map(|v| {
                let t = acts.get(v)?;
                Some(channel_stats(t.data, *t.shape.last()?))
            })
            .collect()
    }

    /// Largest over smallest per-channel magnitude of a value.
    fn spread(stats: &ChannelStats) -> f32 {
        let (lo, hi) = stats
            .iter()
            .fold((f32::MAX, 0f32), |(l, h), &(m, _)| (l.min(m), h.max(m)));
        hi / lo
    }

    #[test]
    fn a_residual_stream_is_equalized_as_a_whole_and_the_function_kept() {
        let g = residual_outlier_graph();
        let found = streams(&g);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].writers,
            vec![0, 2],
            "the stem and the second convolution"
        );
        assert_eq!(
            found[0].readers,
            vec![1, 6],
            "the first convolution and the classifier"
        );
        let mut seed = 9u64;
        let x = Tensor::new(
            vec![16, 6, 6, 2],
            (0..16 * 6 * 6 * 2).map(|_| rand(&mut seed)).collect(),
        );
        let stats = observed_stats(&g, &x);
        let mut e = g.clone();
        assert_eq!(equalize_streams(&mut e, &|v| stats[v].clone()), 1);
        let (before, after) = (run(&g, &x), run(&e, &x));
        let scale = before.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (a, b) in before.iter().zip(&after) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
        }
        let sum = e.nodes[3].output;
        let new = observed_stats(&e, &x);
        let (old, new) = (
            spread(stats[sum].as_ref().unwrap()),
            spread(new[sum].as_ref().unwrap()),
        );
        assert!(new < old / 5.0, "channel spread of the sum {old} -> {new}");
    }

    #[test]
    fn a_stream_without_statistics_or_reaching_another_operator_is_left_alone() {
        let g = residual_outlier_graph();
        let mut e = g.clone();
        assert_eq!(
            equalize_streams(&mut e, &|_| None),
            0,
            "data-free: no stream"
        );
        assert_eq!(e, g);

        let mut seed = 9u64;
        let x = Tensor::new(
            vec![4, 6, 6, 2],
            (0..4 * 6 * 6 * 2).map(|_| rand(&mut seed)).collect(),
        );
        // A Sigmoid reading the sum: the stream's scale would change its output.
        let mut g = residual_outlier_graph();
        let sum = g.nodes[3].output;
        let sig = g
            .add_node("sig", "Sigmoid", Op::Logistic, vec![sum], "sig")
            .unwrap();
        g.outputs.push(sig);
        assert!(streams(&g).is_empty());
        let stats = observed_stats(&g, &x);
        let mut e = g.clone();
        assert_eq!(equalize_streams(&mut e, &|v| stats[v].clone()), 0);
        assert_eq!(e, g);

        // The sum is itself a graph output.
        let mut g = residual_outlier_graph();
        g.outputs.push(g.nodes[3].output);
        assert!(streams(&g).is_empty());
    }
}
