//! A summary of a `.ferrite` model: operators with shapes, MACs and weight bytes, tensors, arena.

use ferrite_runtime::format::{Activation, DType, Operand, Tensor, Window};
use ferrite_runtime::ops::Op;
use ferrite_runtime::Model;
use serde::Serialize;

/// One operator's line in the summary.
#[derive(Debug, Serialize)]
pub struct OpSummary {
    pub index: usize,
    pub op: &'static str,
    /// Kernel family: `int8`, `int16x8`, `f32`, or `int8>16` and `int16>8` for a layer with a wide
    /// output and the function table that reads it.
    pub kind: &'static str,
    pub inputs: Vec<Vec<u16>>,
    pub output: Vec<u16>,
    /// Multiply-accumulates (element operations for element-wise operators).
    pub macs: u64,
    /// Bytes of constant data (weights, bias, multipliers) the operator reads from flash.
    pub weight_bytes: usize,
    /// Convolutions and fully connected layers: the fraction of their filter's weights that are
    /// not zero (1 when dense, 0.5 after 50% pruning).
    pub density: Option<f64>,
    /// Convolutions and fully connected layers: how the filter is stored, `dense` or
    /// `sparse/B` (blocks of B weights, zero blocks left out).
    pub encoding: Option<String>,
    /// Their filter's bytes stored densely, and as the file stores them (values and mask).
    pub filter_bytes_dense: Option<usize>,
    pub filter_bytes_stored: Option<usize>,
    pub detail: String,
}

/// One graph input or output.
#[derive(Debug, Serialize)]
pub struct IoSummary {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u16>,
    pub scale: f32,
    pub zero_point: i32,
}

/// The file a model was converted from in memory (`ferrite inspect` of a `.tflite` file).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Source {
    /// `TFLite` or `ONNX Q/DQ`.
    pub format: &'static str,
    /// The file's size.
    pub bytes: usize,
}

/// The whole model.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Size of the `.ferrite` bytes (converted in memory when `converted_from` is set).
    pub file_bytes: usize,
    pub converted_from: Option<Source>,
    pub format_version: u16,
    pub producer: String,
    pub source_layout: String,
    /// How data became the model's input, when the file records it (left out of the JSON otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<String>,
    pub float_kernels: bool,
    /// The runtime features the model needs, sorted: its operators' (`Op::feature`) and `int16` when a
    /// tensor is int16; `float` is separate (`float_kernels`).
    pub runtime_features: Vec<&'static str>,
    pub arena_bytes: usize,
    /// The largest total size of tensors live at one step: no plan without in-place convolutions
    /// can use less.
    pub arena_lower_bound: usize,
    pub weight_bytes: usize,
    pub macs: u64,
    pub tensors: usize,
    pub inputs: Vec<IoSummary>,
    pub outputs: Vec<IoSummary>,
    pub ops: Vec<OpSummary>,
}

fn io(t: &Tensor<'_>) -> IoSummary {
    IoSummary {
        name: t.name.to_string(),
        dtype: format!("{:?}", t.dtype).to_lowercase(),
        shape: t.shape.dims().to_vec(),
        scale: t.scale,
        zero_point: t.zero_point,
    }
}

/// The fraction of nonzero weights in a filter of int8 or float32 values.
fn density(filter: &[u8], dtype: DType) -> f64 {
    let (nonzero, total) = if dtype == DType::F32 {
        let values = filter.chunks_exact(4);
        let n = values.len();
        let nz = values
            .filter(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) != 0.0)
            .count();
        (nz, n)
    } else {
        (filter.iter().filter(|&&b| b != 0).count(), filter.len())
    };
    if total == 0 {
        1.0
    } else {
        nonzero as f64 / total as f64
    }
}

/// A fused activation for the detail column: nothing when there is none, else its name after a
/// space.
fn activation(a: Activation) -> String {
    match a {
        Activation::None => String::new(),
        other => format!(" {other:?}"),
    }
}

fn elements(o: &Operand) -> u64 {
    o.shape.elements().unwrap_or(0) as u64
}

/// The kernel family of an operator reading `input` (its first input) and writing `output`: a
/// layer with a wide output is `int8>16`, the function table reading it `int16>8`.
fn kind(input: &Operand, output: &Operand, weighted_or_table: bool) -> &'static str {
    match (input.dtype, output.dtype) {
        (DType::F32, _) => "f32",
        (DType::I8, DType::I16) if weighted_or_table => "int8>16",
        (DType::I16, DType::I8) if weighted_or_table => "int16>8",
        (DType::I16, _) => "int16x8",
        _ => "int8",
    }
}

fn op_summary(index: usize, op: &Op<'_>) -> OpSummary {
    // A sparse layer: its dense twin's summary, with the stored filter's bytes and density.
    let sparse = match op {
        Op::Conv2dSparse(s) => Some((Op::Conv2d(s.conv.clone()), s.filter())),
        Op::FullyConnectedSparse(s) => Some((Op::FullyConnected(s.fc.clone()), s.filter())),
        _ => None,
    };
    if let Some((dense, filter)) = sparse {
        let mut s = op_summary(index, &dense);
        let rows = filter.mask.len() / filter.mask_per_row().max(1);
        let total = rows * filter.row_len;
        let nonzero = filter.values.iter().filter(|&&w| w != 0).count();
        let stored = filter.values.len() + filter.mask.len();
        s.op = op.name();
        // Each output position multiplies every stored weight once.
        let positions =
            s.output.iter().map(|&d| u64::from(d)).product::<u64>() / rows.max(1) as u64;
        s.macs = positions * filter.values.len() as u64;
        s.weight_bytes += filter.mask.len();
        s.density = Some(if total == 0 {
            1.0
        } else {
            nonzero as f64 / total as f64
        });
        s.encoding = Some(format!("sparse/{}", filter.block));
        s.filter_bytes_dense = Some(total);
        s.filter_bytes_stored = Some(stored);
        return s;
    }
    let dims = |o: &Operand| o.shape.dims().to_vec();
    let mut s = OpSummary {
        index,
        op: op.name(),
        kind: "int8",
        inputs: Vec::new(),
        output: Vec::new(),
        macs: 0,
        weight_bytes: 0,
        density: None,
        encoding: None,
        filter_bytes_dense: None,
        filter_bytes_stored: None,
        detail: String::new(),
    };
    let mut set = |ins: &[&Operand], out: &Operand, macs: u64, weights: usize, detail: String| {
        s.inputs = ins.iter().map(|o| dims(o)).collect();
        s.output = dims(out);
        let wide = matches!(
            op,
            Op::Conv2d(_) | Op::DepthwiseConv2d(_) | Op::FullyConnected(_) | Op::Lookup(_)
        );
        s.kind = kind(ins.first().copied().unwrap_or(out), out, wide);
        s.macs = macs;
        s.weight_bytes = weights;
        s.detail = detail;
    };
    let filter = match op {
        Op::Conv2d(c) | Op::DepthwiseConv2d(c) => Some((c.filter, c.input.dtype)),
        Op::FullyConnected(f) => Some((f.filter, f.input.dtype)),
        _ => None,
    };
    match op {
        Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
            let per_out = c.kernel_h as u64
                * c.kernel_w as u64
                * if matches!(op, Op::Conv2d(_)) {
                    c.input.shape.last() as u64
                } else {
                    1
                };
            let w = c.window;
            let detail = format!(
                "{}x{} stride {}x{} dilation {}x{} pad {} (t,l,b,r){}",
                c.kernel_h,
                c.kernel_w,
                w.stride_h,
                w.stride_w,
                w.dilation_h,
                w.dilation_w,
                pads(
                    &w,
                    [c.kernel_h, c.kernel_w],
                    [w.dilation_h, w.dilation_w],
                    &c.input,
                    &c.output
                ),
                activation(c.activation)
            );
            let weights = c.filter.len() + c.bias.len() + c.multiplier.len() + c.shift.len();
            set(
                &[&c.input],
                &c.output,
                elements(&c.output) * per_out,
                weights,
                detail,
            );
        }
        Op::FullyConnected(f) => {
            let weights = f.filter.len() + f.bias.len() + f.multiplier.len() + f.shift.len();
            let elem = if f.input.dtype == DType::F32 { 4 } else { 1 };
            let macs = (f.filter.len() / elem) as u64
                * (elements(&f.output) / f.output.shape.last() as u64);
            set(
                &[&f.input],
                &f.output,
                macs,
                weights,
                activation(f.activation).trim_start().to_string(),
            );
        }
        Op::Add(b) | Op::Sub(b) => set(
            &[&b.a, &b.b],
            &b.output,
            elements(&b.output),
            0,
            activation(b.activation).trim_start().to_string(),
        ),
        Op::Maximum(b) | Op::Minimum(b) => set(
            &[&b.a, &b.b],
            &b.output,
            elements(&b.output),
            0,
            String::new(),
        ),
        Op::Mul(b) => set(
            &[&b.a, &b.b],
            &b.output,
            elements(&b.output),
            0,
            activation(b.activation).trim_start().to_string(),
        ),
        Op::AveragePool2d(p) | Op::MaxPool2d(p) => {
            let macs = elements(&p.output) * p.filter_h as u64 * p.filter_w as u64;
            let detail = format!(
                "{}x{} stride {}x{} pad {} (t,l,b,r)",
                p.filter_h,
                p.filter_w,
                p.window.stride_h,
                p.window.stride_w,
                pads(
                    &p.window,
                    [p.filter_h, p.filter_w],
                    [1, 1],
                    &p.input,
                    &p.output
                )
            );
            set(&[&p.input], &p.output, macs, 0, detail);
        }
        Op::Mean(u) => set(&[&u.input], &u.output, elements(&u.input), 0, String::new()),
        Op::Softmax(x) => set(
            &[&x.input],
            &x.output,
            elements(&x.input),
            0,
            format!("beta {}", x.beta),
        ),
        Op::Logistic(u) => set(&[&u.input], &u.output, elements(&u.input), 0, String::new()),
        Op::Tanh(u) => set(&[&u.input], &u.output, elements(&u.input), 0, String::new()),
        Op::Relu(u) => set(
            &[&u.input],
            &u.output,
            elements(&u.input),
            0,
            activation(u.activation).trim_start().to_string(),
        ),
        Op::LeakyRelu(u) => set(
            &[&u.input],
            &u.output,
            elements(&u.input),
            0,
            format!("alpha {}", u.alpha),
        ),
        Op::PRelu(u) => set(
            &[&u.input],
            &u.output,
            elements(&u.input),
            u.alpha.len(),
            format!(
                "{} alpha",
                u.alpha.len() / if u.quant.is_some() { 1 } else { 4 }
            ),
        ),
        Op::Slice(u) => set(
            &[&u.input],
            &u.output,
            elements(&u.output),
            0,
            format!("begin {:?}", u.begin),
        ),
        Op::Transpose(u) => set(
            &[&u.input],
            &u.output,
            elements(&u.output),
            0,
            format!("perm {:?}", u.perm),
        ),
        Op::Normalize(u) => set(
            &[&u.input],
            &u.output,
            elements(&u.output),
            u.gamma.len() + u.beta.len(),
            format!(
                "{} group{} {}",
                u.groups,
                if u.groups == 1 { "" } else { "s" },
                if u.across_positions {
                    "over all positions"
                } else {
                    "per position"
                }
            ),
        ),
        Op::DepthToSpace(u) => set(
            &[&u.input],
            &u.output,
            elements(&u.output),
            0,
            format!(
                "block {}x{}{}",
                u.block[0],
                u.block[1],
                if u.crd { " CRD" } else { "" }
            ),
        ),
        Op::LogSoftmax(u) => set(
            &[&u.input],
            &u.output,
            elements(&u.input),
            u.exp_table.len(),
            "exp table".to_string(),
        ),
        Op::Lookup(u) => set(
            &[&u.input],
            &u.output,
            elements(&u.input),
            u.table.len(),
            "table".to_string(),
        ),
        Op::ResizeNearestNeighbor(r) => set(
            &[&r.input],
            &r.output,
            elements(&r.output),
            0,
            String::new(),
        ),
        Op::ResizeBilinear(r) => set(
            &[&r.input],
            &r.output,
            elements(&r.output),
            0,
            match (r.align_corners, r.half_pixel_centers) {
                (true, _) => "aligned corners",
                (false, true) => "half-pixel centres",
                (false, false) => "asymmetric",
            }
            .to_string(),
        ),
        Op::Reshape(r) => {
            let detail = if r.input.offset == r.output.offset {
                "in place"
            } else {
                "copy"
            };
            set(&[&r.input], &r.output, 0, 0, detail.into());
        }
        Op::Concatenation(c) => {
            let parts: Vec<Operand> = c
                .inputs
                .iter()
                .filter_map(Result::ok)
                .map(|p| p.input)
                .collect();
            let refs: Vec<&Operand> = parts.iter().collect();
            set(
                &refs,
                &c.output,
                elements(&c.output),
                0,
                format!("axis {}", c.axis),
            );
        }
        Op::Pad(p) => set(
            &[&p.input],
            &p.output,
            elements(&p.output),
            0,
            format!("before {:?}", p.before),
        ),
        Op::MirrorPad(p) => set(
            &[&p.input],
            &p.output,
            elements(&p.output),
            0,
            format!("{:?}, before {:?}", p.mode, p.before),
        ),
        Op::Quantize(q) => set(
            &[&q.input],
            &q.output,
            elements(&q.output),
            0,
            String::new(),
        ),
        Op::Dequantize(d) => set(
            &[&d.input],
            &d.output,
            elements(&d.output),
            0,
            String::new(),
        ),
        Op::Conv2dSparse(_) | Op::FullyConnectedSparse(_) => unreachable!("summarized above"),
    }
    s.density = filter.map(|(bytes, dtype)| density(bytes, dtype));
    if let Some((bytes, _)) = filter {
        s.encoding = Some("dense".into());
        s.filter_bytes_dense = Some(bytes.len());
        s.filter_bytes_stored = Some(bytes.len());
    }
    s
}

/// A window's zero padding as `top,left,bottom,right`. The file stores the leading pads; the trailing
/// ones are the rows and columns the last output reads past the input (more on one side with
/// TensorFlow's SAME and ONNX's SAME_UPPER on even sizes).
fn pads(
    w: &Window,
    kernel: [u16; 2],
    dilation: [u16; 2],
    input: &Operand,
    output: &Operand,
) -> String {
    let (i, o) = (input.shape.nhwc(), output.shape.nhwc());
    let trailing = |axis: usize, size: usize, out: usize, stride: u16, lead: u16| {
        let reach = (out.max(1) - 1) * stride as usize
            + (kernel[axis].max(1) as usize - 1) * dilation[axis] as usize
            + 1;
        reach.saturating_sub(size + lead as usize)
    };
    format!(
        "{},{},{},{}",
        w.pad_top,
        w.pad_left,
        trailing(0, i.h, o.h, w.stride_h, w.pad_top),
        trailing(1, i.w, o.w, w.stride_w, w.pad_left)
    )
}

/// Summarizes a loaded model whose file is `file_bytes` long.
pub fn summarize(model: &Model<'_>, file_bytes: usize) -> Summary {
    let g = model.graph();
    let tensors: Vec<Tensor<'_>> = g.tensors.iter().filter_map(Result::ok).collect();
    let steps = g.ops.len();
    // An in-place Reshape's output is its input's bytes at the step where one ends and the other
    // begins; an in-place convolution's output is not counted as shared (the bound is the one no
    // placement without in-place convolutions can beat).
    let reshapes: Vec<bool> = model.ops().map(|op| matches!(op, Op::Reshape(_))).collect();
    let arena_lower_bound = (0..steps)
        .map(|s| {
            tensors
                .iter()
                .filter(|t| t.first as usize <= s && s <= t.last as usize)
                .filter(|t| !(t.in_place && t.first as usize == s && reshapes[s]))
                .map(|t| t.byte_len().unwrap_or(0))
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    let ops: Vec<OpSummary> = model
        .ops()
        .enumerate()
        .map(|(i, op)| op_summary(i, &op))
        .collect();
    let inputs = (0..model.inputs())
        .filter_map(|i| model.input(i).ok())
        .map(|t| io(&t))
        .collect();
    let outputs = (0..model.outputs())
        .filter_map(|i| model.output(i).ok())
        .map(|t| io(&t))
        .collect();
    Summary {
        file_bytes,
        converted_from: None,
        format_version: model.header().version,
        producer: g.metadata.producer.to_string(),
        source_layout: g.metadata.source_layout.to_string(),
        preprocessing: model.preprocessing().map(str::to_string),
        float_kernels: model.header().flags & ferrite_runtime::format::FLAG_FLOAT != 0,
        runtime_features: {
            let mut f: Vec<_> = model.ops().map(|op| op.feature()).collect();
            if tensors.iter().any(|t| t.dtype == DType::I16) {
                f.push("int16");
            }
            if tensors
                .iter()
                .any(|t| t.in_place && !reshapes.get(t.first as usize).copied().unwrap_or(true))
            {
                f.push("in-place");
            }
            f.sort_unstable();
            f.dedup();
            f
        },
        arena_bytes: model.arena_size(),
        arena_lower_bound,
        weight_bytes: ops.iter().map(|o| o.weight_bytes).sum(),
        macs: ops.iter().map(|o| o.macs).sum(),
        tensors: tensors.len(),
        inputs,
        outputs,
        ops,
    }
}

/// Human-readable text of a summary.
pub fn render(name: &str, s: &Summary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(src) = s.converted_from {
        let _ = write!(
            out,
            "{name}: {} file of {} bytes, converted in memory to ",
            src.format, src.bytes
        );
    } else {
        let _ = write!(out, "{name}: ");
    }
    let _ = writeln!(
        out,
        ".ferrite v{}, {} bytes ({} of constants), {} operators, {} tensors, produced by {}",
        s.format_version,
        s.file_bytes,
        s.weight_bytes,
        s.ops.len(),
        s.tensors,
        s.producer
    );
    if let Some(p) = &s.preprocessing {
        let _ = writeln!(out, "preprocessing: {p}");
    }
    let _ = writeln!(
        out,
        "arena {} bytes (lower bound {}), {} MACs, f32 kernels: {}",
        s.arena_bytes,
        s.arena_lower_bound,
        s.macs,
        if s.float_kernels { "yes" } else { "no" }
    );
    let _ = writeln!(
        out,
        "runtime features: {}{}",
        s.runtime_features.join(","),
        if s.float_kernels { ",float" } else { "" }
    );
    for (label, list) in [("input", &s.inputs), ("output", &s.outputs)] {
        for (i, t) in list.iter().enumerate() {
            let _ = writeln!(
                out,
                "{label} {i}: {} {} {:?} scale {} zero point {}",
                t.name, t.dtype, t.shape, t.scale, t.zero_point
            );
        }
    }
    let _ = writeln!(
        out,
        "{:>3}  {:<22} {:<7} {:<22} {:>11} {:>8} {:>8} {:<9} {:>13}  detail",
        "#", "operator", "type", "output", "MACs", "weights", "density", "encoding", "dense>stored"
    );
    for o in &s.ops {
        let bytes = match (o.filter_bytes_dense, o.filter_bytes_stored) {
            (Some(d), Some(s)) => format!("{d}>{s}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:>3}  {:<22} {:<7} {:<22} {:>11} {:>8} {:>8} {:<9} {:>13}  {}",
            o.index,
            o.op,
            o.kind,
            format!("{:?}", o.output),
            o.macs,
            o.weight_bytes,
            o.density
                .map_or("-".to_string(), |d| format!("{:.1}%", 100.0 * d)),
            o.encoding.as_deref().unwrap_or("-"),
            bytes,
            o.detail
        );
    }
    out
}
