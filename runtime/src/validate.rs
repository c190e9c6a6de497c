//! Load-time validation: after it passes, `invoke` indexes every slice in bounds without checking again.
//!
//! An operator the runtime was built without (see `Op::feature`) does not decode and is refused by
//! name; the checks of each operator are compiled only with its feature, and helpers only those checks
//! use are then unused.
#![cfg_attr(not(feature = "all-ops"), allow(unused))]

use crate::format::{
    built_out, Conv, DType, FullyConnected, Graph, Header, Op, Operand, Shape, Tensor, FLAG_FLOAT,
    MAX_RANK,
};
use crate::kernels::{Activation, LeI32, Window};
use crate::quant::Requant;
use crate::Error;

/// Largest number of products summed into one int32 accumulator: `2^15` keeps
/// `sum(|(x - zp) * w|) <= 2^15 * 255 * 128 < 2^30`, leaving room for a bias up to [`MAX_BIAS`].
pub const MAX_REDUCTION: usize = 1 << 15;
/// Largest magnitude of an int32 bias: what is left of `i32::MAX` after the largest possible sum of
/// products, so the accumulator never overflows (1,077,936,127, a little above `2^30`: TensorFlow's
/// converter clamps biases to about `2^30 + 128`, which real models such as MLPerf Tiny's VWW reach).
pub const MAX_BIAS: i32 = i32::MAX - (MAX_REDUCTION as i32) * 255 * 128;

pub(crate) fn graph(graph: &Graph<'_>, header: &Header) -> Result<(), Error> {
    let malformed = |reason| Error::Malformed { reason };
    graph
        .tensors
        .check()
        .map_err(|_| malformed("tensor table does not decode"))?;
    let mut ops = graph.ops.iter();
    let mut step = 0u16;
    while let Some(op) = ops.next() {
        if op.is_err() {
            return Err(match built_out(ops.rest()) {
                Some((name, feature)) => Error::OperatorNotBuilt {
                    op: step,
                    name,
                    feature,
                },
                None => malformed("operator list does not decode"),
            });
        }
        step = step.saturating_add(1);
    }
    if !ops.rest().is_empty() {
        return Err(malformed("operator list does not decode"));
    }
    graph
        .inputs
        .check()
        .map_err(|_| malformed("input list does not decode"))?;
    graph
        .outputs
        .check()
        .map_err(|_| malformed("output list does not decode"))?;
    if graph.tensors.len() > u16::MAX as usize || graph.ops.len() > u16::MAX as usize {
        return Err(malformed("more than 65535 tensors or operators"));
    }
    if graph.ops.is_empty() {
        return Err(malformed("no operators"));
    }
    if graph.inputs.is_empty() || graph.outputs.is_empty() {
        return Err(malformed("no inputs or no outputs"));
    }
    let ctx = Context {
        graph,
        arena_size: header.arena_size as usize,
        float: header.flags & FLAG_FLOAT != 0,
    };
    for (i, t) in graph.tensors.iter().enumerate() {
        let t = t.map_err(|_| malformed("tensor table does not decode"))?;
        ctx.tensor(i as u16, &t)?;
    }
    let last_step = graph.ops.len() as u16 - 1;
    for (list, is_input) in [(&graph.inputs, true), (&graph.outputs, false)] {
        for index in list.iter() {
            let index = index.map_err(|_| malformed("input/output list does not decode"))?;
            let t = ctx
                .tensor_at(index)
                .ok_or(malformed("input/output index outside the tensor table"))?;
            let bad = |reason| Error::InvalidTensor {
                tensor: index,
                reason,
            };
            if is_input && (t.first != 0 || t.in_place) {
                return Err(bad("graph input must be live from step 0 and not in place"));
            }
            if !is_input && t.last != last_step {
                return Err(bad("graph output must be live until the last step"));
            }
        }
    }
    for (step, op) in graph.ops.iter().enumerate() {
        let op = op.map_err(|_| malformed("operator list does not decode"))?;
        ctx.op(step as u16, &op)?;
    }
    ctx.plan()
}

struct Context<'g, 'a> {
    graph: &'g Graph<'a>,
    arena_size: usize,
    float: bool,
}

/// Which kernel family an operator runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int8,
    Float,
}

impl<'a> Context<'_, 'a> {
    fn tensor_at(&self, index: u16) -> Option<Tensor<'a>> {
        self.graph.tensors.get(index as usize)
    }

    fn is_graph_input(&self, index: u16) -> bool {
        self.graph.inputs.iter().any(|i| i.ok() == Some(index))
    }

    fn tensor(&self, index: u16, t: &Tensor<'_>) -> Result<(), Error> {
        let bad = |reason| {
            Err(Error::InvalidTensor {
                tensor: index,
                reason,
            })
        };
        let rank = t.shape.rank as usize;
        if rank == 0 || rank > MAX_RANK {
            return bad("rank must be 1 to 4");
        }
        if t.shape.dims().contains(&0) || t.shape.dims[rank..].iter().any(|&d| d != 0) {
            return bad("dimensions must be positive (and unused ones zero)");
        }
        match t.dtype {
            DType::I8 => {
                if !(t.scale.is_finite() && t.scale > 0.0) {
                    return bad("int8 tensor needs a finite positive scale");
                }
                if !(-128..=127).contains(&t.zero_point) {
                    return bad("int8 zero point outside -128..=127");
                }
            }
            DType::F32 => {
                if !self.float {
                    return bad("f32 tensor in a model without the float flag");
                }
                if t.zero_point != 0 {
                    return bad("f32 tensor with a zero point");
                }
            }
            DType::I16 | DType::I32 => return bad("int16/int32 activations are not supported yet"),
        }
        let Some(len) = t.byte_len() else {
            return bad("size overflows");
        };
        let offset = t.offset as usize;
        match offset.checked_add(len) {
            Some(end) if end <= self.arena_size => {}
            _ => return bad("extends past the arena"),
        }
        if !offset.is_multiple_of(t.dtype.size()) {
            return bad("offset not aligned to the element size");
        }
        if t.first > t.last || t.last as usize >= self.graph.ops.len() {
            return bad("lifetime outside the operator list");
        }
        Ok(())
    }

    /// Checks an operand against the tensor table and its lifetime at `step`.
    fn operand(&self, step: u16, o: &Operand, is_output: bool) -> Result<Tensor<'a>, Error> {
        let bad = |reason| Err(Error::InvalidOperator { op: step, reason });
        let Some(t) = self.tensor_at(o.tensor) else {
            return bad("operand index outside the tensor table");
        };
        if t.operand(o.tensor) != *o {
            return bad("operand differs from its tensor-table entry");
        }
        if is_output {
            if t.first != step || self.is_graph_input(o.tensor) {
                return bad("output tensor's lifetime does not start at its producer");
            }
        } else if t.last < step
            || t.first > step
            || (t.first == step && !self.is_graph_input(o.tensor))
        {
            return bad("input tensor is not live at this step");
        }
        Ok(t)
    }

    fn op(&self, step: u16, op: &Op<'_>) -> Result<(), Error> {
        let err = |reason| Error::InvalidOperator { op: step, reason };
        let bad = |reason| -> Result<(), Error> { Err(err(reason)) };
        // Every output is checked; in-place outputs are allowed only for Reshape.
        let check_out = |o: &Operand| -> Result<Tensor<'a>, Error> {
            let t = self.operand(step, o, true)?;
            if t.in_place && !matches!(op, Op::Reshape(_)) {
                return Err(err("only Reshape may run in place"));
            }
            Ok(t)
        };
        let check_in = |o: &Operand| self.operand(step, o, false);
        let kind = |input: &Operand, output: &Operand| -> Result<Kind, Error> {
            match (input.dtype, output.dtype) {
                (DType::I8, DType::I8) => Ok(Kind::Int8),
                (DType::F32, DType::F32) => Ok(Kind::Float),
                _ => Err(err("unsupported input/output element types")),
            }
        };
        match op {
            #[cfg(any(feature = "conv-2d", feature = "depthwise-conv-2d"))]
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
                check_in(&c.input)?;
                check_out(&c.output)?;
                self.conv(
                    step,
                    c,
                    matches!(op, Op::DepthwiseConv2d(_)),
                    kind(&c.input, &c.output)?,
                )
            }
            #[cfg(feature = "fully-connected")]
            Op::FullyConnected(f) => {
                check_in(&f.input)?;
                check_out(&f.output)?;
                self.fully_connected(step, f, kind(&f.input, &f.output)?)
            }
            #[cfg(feature = "add")]
            Op::Add(b) => {
                self.binary(
                    step,
                    &b.a,
                    &b.b,
                    &b.output,
                    b.quant.is_some(),
                    &check_in,
                    &check_out,
                )?;
                let Some(p) = &b.quant else { return Ok(()) };
                let ok = p.input1_offset == -b.a.zero_point
                    && p.input2_offset == -b.b.zero_point
                    && p.output_offset == b.output.zero_point
                    && (0..=24).contains(&p.left_shift)
                    && [p.input1, p.input2, p.output].iter().all(Requant::is_valid);
                if !ok {
                    return bad("add parameters inconsistent with its operands");
                }
                clamp_range(p.act_min, p.act_max).map_err(err)
            }
            #[cfg(feature = "mul")]
            Op::Mul(b) => {
                self.binary(
                    step,
                    &b.a,
                    &b.b,
                    &b.output,
                    b.quant.is_some(),
                    &check_in,
                    &check_out,
                )?;
                let Some(p) = &b.quant else { return Ok(()) };
                let ok = p.input1_offset == -b.a.zero_point
                    && p.input2_offset == -b.b.zero_point
                    && p.output_offset == b.output.zero_point
                    && p.output.is_valid();
                if !ok {
                    return bad("mul parameters inconsistent with its operands");
                }
                clamp_range(p.act_min, p.act_max).map_err(err)
            }
            #[cfg(any(feature = "average-pool-2d", feature = "max-pool-2d"))]
            Op::AveragePool2d(p) | Op::MaxPool2d(p) => {
                let tin = check_in(&p.input)?;
                let tout = check_out(&p.output)?;
                let k = kind(&p.input, &p.output)?;
                let (i, o) = (p.input.shape.nhwc(), p.output.shape.nhwc());
                if p.input.shape.rank != 4 || p.output.shape.rank != 4 {
                    return bad("pooling needs rank-4 NHWC tensors");
                }
                if i.n != o.n || i.c != o.c || p.filter_h == 0 || p.filter_w == 0 {
                    return bad("pooling shapes or filter size inconsistent");
                }
                window(&p.window).map_err(err)?;
                if k == Kind::Int8 {
                    if tin.scale != tout.scale || tin.zero_point != tout.zero_point {
                        return bad("int8 pooling needs equal input and output quantization");
                    }
                    clamp_range(p.act_min, p.act_max).map_err(err)?;
                    if (p.filter_h as usize) * (p.filter_w as usize) > MAX_REDUCTION {
                        return bad("pooling window too large");
                    }
                }
                Ok(())
            }
            #[cfg(feature = "mean")]
            Op::Mean(u) => {
                check_in(&u.input)?;
                check_out(&u.output)?;
                let k = kind(&u.input, &u.output)?;
                let (i, o) = (u.input.shape.nhwc(), u.output.shape.nhwc());
                if u.input.shape.rank != 4
                    || u.output.shape.elements() != Some(i.n * i.c)
                    || o.c != i.c
                {
                    return bad("mean reduces H and W of a rank-4 tensor to N x C");
                }
                if i.h * i.w > MAX_REDUCTION {
                    return bad("mean window too large");
                }
                quant_presence(k, u.quant.is_some()).map_err(err)?;
                match &u.quant {
                    Some(p)
                        if p.num_elements as usize != i.h * i.w
                            || p.input_zero_point != u.input.zero_point
                            || p.output_zero_point != u.output.zero_point
                            || !p.requant.is_valid() =>
                    {
                        bad("mean parameters inconsistent with its operands")
                    }
                    _ => Ok(()),
                }
            }
            #[cfg(feature = "softmax")]
            Op::Softmax(s) => {
                check_in(&s.input)?;
                let tout = check_out(&s.output)?;
                let k = kind(&s.input, &s.output)?;
                if s.input.shape != s.output.shape {
                    return bad("softmax input and output shapes differ");
                }
                if k == Kind::Int8 && (tout.zero_point != -128 || tout.scale != 1.0 / 256.0) {
                    return bad("int8 softmax output must have scale 1/256 and zero point -128");
                }
                quant_presence(k, s.quant.is_some()).map_err(err)?;
                match &s.quant {
                    Some(p)
                        if p.input_multiplier < 0
                            || !(0..=31).contains(&p.input_left_shift)
                            || p.diff_min > 0 =>
                    {
                        bad("softmax parameters out of range")
                    }
                    _ => Ok(()),
                }
            }
            #[cfg(feature = "logistic")]
            Op::Logistic(u) => {
                let p = u.quant.map(|p| {
                    [
                        p.input_zero_point,
                        p.input_range_radius,
                        p.input_multiplier,
                        p.input_left_shift,
                    ]
                });
                self.sigmoid(
                    step,
                    &u.input,
                    &u.output,
                    p,
                    (-128, 1.0 / 256.0),
                    &check_in,
                    &check_out,
                )
            }
            #[cfg(feature = "tanh")]
            Op::Tanh(u) => {
                let p = u.quant.map(|p| {
                    [
                        p.input_zero_point,
                        p.input_range_radius,
                        p.input_multiplier,
                        p.input_left_shift,
                    ]
                });
                self.sigmoid(
                    step,
                    &u.input,
                    &u.output,
                    p,
                    (0, 1.0 / 128.0),
                    &check_in,
                    &check_out,
                )
            }
            #[cfg(feature = "relu")]
            Op::Relu(u, activation) => {
                self.unary(
                    step,
                    &u.input,
                    &u.output,
                    u.quant.is_some(),
                    &check_in,
                    &check_out,
                )?;
                let Some(p) = &u.quant else { return Ok(()) };
                // TFLite Micro's int8 ReLU6 clamps in the input's domain and ignores the output's
                // quantization; `ReluParams::prepare` expresses that as an exact identity carrying the
                // input zero point, which is valid whatever the output's zero point.
                let relu6_identity = *activation == Activation::Relu6
                    && p.output_zero_point == p.input_zero_point
                    && p.requant
                        == (Requant {
                            multiplier: 1 << 30,
                            shift: 1,
                        });
                if p.input_zero_point != u.input.zero_point
                    || (p.output_zero_point != u.output.zero_point && !relu6_identity)
                    || !p.requant.is_valid()
                {
                    return bad("relu parameters inconsistent with its operands");
                }
                clamp_range(p.act_min, p.act_max).map_err(err)
            }
            #[cfg(feature = "reshape")]
            Op::Reshape(r) => {
                check_in(&r.input)?;
                let tout = check_out(&r.output)?;
                kind(&r.input, &r.output)?;
                if r.input.shape.elements() != r.output.shape.elements()
                    || r.input.zero_point != r.output.zero_point
                {
                    return bad("reshape changes the element count or quantization");
                }
                if tout.in_place && r.input.offset != r.output.offset {
                    return bad("in-place reshape must share its input's offset");
                }
                Ok(())
            }
            #[cfg(feature = "concatenation")]
            Op::Concatenation(c) => {
                check_out(&c.output)?;
                let rank = c.output.shape.rank as usize;
                let axis = c.axis as usize;
                if axis >= rank || c.inputs.is_empty() {
                    return bad("concatenation axis outside the output's rank, or no inputs");
                }
                let mut total = 0usize;
                for part in c.inputs.iter() {
                    let part = part.map_err(|_| err("concatenation inputs do not decode"))?;
                    check_in(&part.input)?;
                    let k = kind(&part.input, &c.output)?;
                    let (i, o) = (part.input.shape, c.output.shape);
                    if i.rank != o.rank || (0..rank).any(|d| d != axis && i.dims[d] != o.dims[d]) {
                        return bad("concatenation input differs from the output off the axis");
                    }
                    if let Some(r) = &part.requant {
                        if k != Kind::Int8 || !r.requant.is_valid() {
                            return bad("invalid concatenation requantization");
                        }
                        if r.input_zero_point != part.input.zero_point
                            || r.output_zero_point != c.output.zero_point
                        {
                            return bad("concatenation requantization zero points differ from the operands'");
                        }
                    } else if k == Kind::Int8 && part.input.zero_point != c.output.zero_point {
                        return bad("int8 concatenation input needs requantization");
                    }
                    total += i.dims[axis] as usize;
                }
                if total != o_dim(&c.output.shape, axis) {
                    return bad("concatenated sizes do not add up to the output's");
                }
                Ok(())
            }
            #[cfg(feature = "pad")]
            Op::Pad(p) => {
                check_in(&p.input)?;
                check_out(&p.output)?;
                kind(&p.input, &p.output)?;
                let (i, o) = (p.input.shape.nhwc(), p.output.shape.nhwc());
                let dims = [(i.n, o.n), (i.h, o.h), (i.w, o.w), (i.c, o.c)];
                if p.input.shape.rank != p.output.shape.rank
                    || dims
                        .iter()
                        .zip(p.before)
                        .any(|(&(a, b), pre)| a + pre as usize > b)
                    || p.input.zero_point != p.output.zero_point
                {
                    return bad("pad sizes inconsistent with the shapes");
                }
                Ok(())
            }
            #[cfg(feature = "quantize")]
            Op::Quantize(q) => {
                let tin = check_in(&q.input)?;
                let tout = check_out(&q.output)?;
                if q.input.shape.elements() != q.output.shape.elements()
                    || q.output.dtype != DType::I8
                {
                    return bad("quantize needs equal sizes and an int8 output");
                }
                match (q.input.dtype, &q.requant) {
                    (DType::F32, None) if q.scale == tout.scale => Ok(()),
                    (DType::I8, Some(r))
                        if r.requant.is_valid()
                            && r.input_zero_point == tin.zero_point
                            && r.output_zero_point == tout.zero_point =>
                    {
                        Ok(())
                    }
                    _ => bad("quantize parameters inconsistent with its operands"),
                }
            }
            #[cfg(feature = "dequantize")]
            Op::Dequantize(d) => {
                let tin = check_in(&d.input)?;
                check_out(&d.output)?;
                if d.input.dtype != DType::I8
                    || d.output.dtype != DType::F32
                    || d.scale != tin.scale
                {
                    return bad("dequantize needs int8 -> f32 with the input's scale");
                }
                if d.input.shape.elements() != d.output.shape.elements() {
                    return bad("dequantize changes the element count");
                }
                Ok(())
            }
            // Operators built out do not decode: refused before.
            #[allow(unreachable_patterns)]
            _ => Err(Error::OperatorNotBuilt {
                op: step,
                name: op.name(),
                feature: op.feature(),
            }),
        }
    }

    fn conv(&self, step: u16, c: &Conv<'_>, depthwise: bool, kind: Kind) -> Result<(), Error> {
        let err = |reason| Error::InvalidOperator { op: step, reason };
        let bad = |reason| Err(err(reason));
        if c.input.shape.rank != 4 || c.output.shape.rank != 4 {
            return bad("convolution needs rank-4 NHWC tensors");
        }
        let (i, o) = (c.input.shape.nhwc(), c.output.shape.nhwc());
        let (kh, kw) = (c.kernel_h as usize, c.kernel_w as usize);
        if i.n != o.n || kh == 0 || kw == 0 {
            return bad("batch differs or kernel is empty");
        }
        window(&c.window).map_err(err)?;
        let (filter_elems, reduction) = if depthwise {
            if c.depth_multiplier == 0 || o.c != i.c * c.depth_multiplier as usize {
                return bad("depthwise output channels must be input channels x depth multiplier");
            }
            (kh * kw * o.c, kh * kw)
        } else {
            if c.depth_multiplier != 1 {
                return bad("Conv2D has depth multiplier 1");
            }
            (o.c * kh * kw * i.c, kh * kw * i.c)
        };
        self.weights(
            step,
            kind,
            c.filter,
            c.bias,
            c.multiplier,
            c.shift,
            filter_elems,
            reduction,
            o.c,
        )?;
        if kind == Kind::Int8 {
            clamp_range(c.act_min, c.act_max).map_err(err)?;
        }
        Ok(())
    }

    fn fully_connected(&self, step: u16, f: &FullyConnected<'_>, kind: Kind) -> Result<(), Error> {
        let err = |reason| Error::InvalidOperator { op: step, reason };
        let out_features = f.output.shape.last();
        let out_elems = f.output.shape.elements().unwrap_or(0);
        let in_elems = f.input.shape.elements().unwrap_or(0);
        let filter_elems = f.filter.len() / if kind == Kind::Int8 { 1 } else { 4 };
        if out_features == 0
            || !filter_elems.is_multiple_of(out_features)
            || !out_elems.is_multiple_of(out_features)
        {
            return Err(err("filter size is not a multiple of the output features"));
        }
        let in_features = filter_elems / out_features;
        let batches = out_elems / out_features;
        if in_features == 0 || batches.checked_mul(in_features) != Some(in_elems) {
            return Err(err("input size is not batches x filter input features"));
        }
        self.weights(
            step,
            kind,
            f.filter,
            f.bias,
            f.multiplier,
            f.shift,
            filter_elems,
            in_features,
            out_features,
        )?;
        if kind == Kind::Int8 {
            clamp_range(f.act_min, f.act_max).map_err(err)?;
        }
        Ok(())
    }

    /// Checks filter, bias and per-channel requantization arrays.
    #[allow(clippy::too_many_arguments)]
    fn weights(
        &self,
        step: u16,
        kind: Kind,
        filter: &[u8],
        bias: &[u8],
        multiplier: &[u8],
        shift: &[u8],
        filter_elems: usize,
        reduction: usize,
        channels: usize,
    ) -> Result<(), Error> {
        let bad = |reason| Err(Error::InvalidOperator { op: step, reason });
        let elem = if kind == Kind::Int8 { 1 } else { 4 };
        if Some(filter.len()) != filter_elems.checked_mul(elem) {
            return bad("filter size does not match the shapes");
        }
        if !bias.is_empty() && Some(bias.len()) != channels.checked_mul(4) {
            return bad("bias size does not match the output channels");
        }
        match kind {
            Kind::Float => {
                if !self.float {
                    return bad("f32 operator in a model without the float flag");
                }
                if !multiplier.is_empty() || !shift.is_empty() {
                    return bad("f32 operator with int8 multipliers");
                }
            }
            Kind::Int8 => {
                if reduction > MAX_REDUCTION {
                    return bad("accumulation over more than 32768 products");
                }
                let (Some(m), Some(s), Some(b)) =
                    (LeI32::new(multiplier), LeI32::new(shift), LeI32::new(bias))
                else {
                    return bad("multiplier, shift or bias not a whole number of int32");
                };
                if m.len() != s.len() || (m.len() != 1 && m.len() != channels) {
                    return bad(
                        "need one multiplier and shift per output channel, or one per tensor",
                    );
                }
                let valid = (0..m.len()).all(|c| {
                    Requant {
                        multiplier: m.get(c),
                        shift: s.get(c),
                    }
                    .is_valid()
                });
                if !valid {
                    return bad("multiplier or shift out of range");
                }
                if (0..b.len()).any(|c| !(-MAX_BIAS..=MAX_BIAS).contains(&b.get(c))) {
                    return bad("bias magnitude above MAX_BIAS (2^31 - 1 - 2^15 * 255 * 128)");
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn binary(
        &self,
        step: u16,
        a: &Operand,
        b: &Operand,
        out: &Operand,
        has_quant: bool,
        check_in: &dyn Fn(&Operand) -> Result<Tensor<'a>, Error>,
        check_out: &dyn Fn(&Operand) -> Result<Tensor<'a>, Error>,
    ) -> Result<Kind, Error> {
        let err = |reason| Error::InvalidOperator { op: step, reason };
        check_in(a)?;
        check_in(b)?;
        check_out(out)?;
        let k = match (a.dtype, b.dtype, out.dtype) {
            (DType::I8, DType::I8, DType::I8) => Kind::Int8,
            (DType::F32, DType::F32, DType::F32) => Kind::Float,
            _ => return Err(err("unsupported element types")),
        };
        if !self.float && k == Kind::Float {
            return Err(err("f32 operator in a model without the float flag"));
        }
        let (sa, sb, so) = (a.shape.nhwc(), b.shape.nhwc(), out.shape.nhwc());
        let dims = [
            (sa.n, sb.n, so.n),
            (sa.h, sb.h, so.h),
            (sa.w, sb.w, so.w),
            (sa.c, sb.c, so.c),
        ];
        let broadcast_ok = dims
            .iter()
            .all(|&(x, y, z)| (x == z || x == 1) && (y == z || y == 1) && z == x.max(y));
        if !broadcast_ok {
            return Err(err("input shapes do not broadcast to the output shape"));
        }
        quant_presence(k, has_quant).map_err(err)?;
        Ok(k)
    }

    fn unary(
        &self,
        step: u16,
        input: &Operand,
        output: &Operand,
        has_quant: bool,
        check_in: &dyn Fn(&Operand) -> Result<Tensor<'a>, Error>,
        check_out: &dyn Fn(&Operand) -> Result<Tensor<'a>, Error>,
    ) -> Result<(), Error> {
        let err = |reason| Error::InvalidOperator { op: step, reason };
        check_in(input)?;
        check_out(output)?;
        let k = match (input.dtype, output.dtype) {
            (DType::I8, DType::I8) => Kind::Int8,
            (DType::F32, DType::F32) if self.float => Kind::Float,
            _ => return Err(err("unsupported element types")),
        };
        if input.shape.elements() != output.shape.elements() {
            return Err(err("input and output sizes differ"));
        }
        quant_presence(k, has_quant).map_err(err)
    }

    /// Logistic and Tanh: `params` is `[input_zero_point, input_range_radius, input_multiplier,
    /// input_left_shift]` for int8; the int8 output has the fixed quantization `(zero_point, scale)`.
    #[allow(clippy::too_many_arguments)]
    fn sigmoid(
        &self,
        step: u16,
        input: &Operand,
        output: &Operand,
        params: Option<[i32; 4]>,
        fixed_output: (i32, f32),
        check_in: &dyn Fn(&Operand) -> Result<Tensor<'a>, Error>,
        check_out: &dyn Fn(&Operand) -> Result<Tensor<'a>, Error>,
    ) -> Result<(), Error> {
        let err = |reason| Error::InvalidOperator { op: step, reason };
        self.unary(step, input, output, params.is_some(), check_in, check_out)?;
        let Some([zero_point, radius, multiplier, shift]) = params else {
            return Ok(());
        };
        let tout = self.tensor_at(output.tensor).ok_or(err("output missing"))?;
        if (tout.zero_point, tout.scale) != fixed_output {
            return Err(err(
                "int8 logistic/tanh output has the wrong fixed quantization",
            ));
        }
        if zero_point != input.zero_point
            || radius < 0
            || multiplier < 0
            || !crate::quant::SHIFT_RANGE.contains(&shift)
        {
            return Err(err("logistic/tanh parameters inconsistent with the input"));
        }
        Ok(())
    }

    /// No two tensors live at the same step may share arena bytes (an in-place Reshape output may take
    /// exactly its input's bytes at the step where one ends and the other begins).
    fn plan(&self) -> Result<(), Error> {
        for (i, a) in self.graph.tensors.iter().enumerate() {
            let Ok(a) = a else { continue };
            for (j, b) in self.graph.tensors.iter().enumerate().skip(i + 1) {
                let Ok(b) = b else { continue };
                if a.last < b.first || b.last < a.first {
                    continue;
                }
                let (a0, a1) = (
                    a.offset as usize,
                    a.offset as usize + a.byte_len().unwrap_or(0),
                );
                let (b0, b1) = (
                    b.offset as usize,
                    b.offset as usize + b.byte_len().unwrap_or(0),
                );
                if a1 <= b0 || b1 <= a0 {
                    continue;
                }
                let handover = |x: &Tensor<'_>, y: &Tensor<'_>| {
                    y.in_place && x.last == y.first && x.offset == y.offset
                };
                if handover(&a, &b) || handover(&b, &a) {
                    continue;
                }
                return Err(Error::PlanOverlap {
                    first: i as u16,
                    second: j as u16,
                });
            }
        }
        Ok(())
    }
}

fn o_dim(shape: &Shape, axis: usize) -> usize {
    shape.dims[axis] as usize
}

fn window(w: &Window) -> Result<(), &'static str> {
    if w.stride_h == 0 || w.stride_w == 0 || w.dilation_h == 0 || w.dilation_w == 0 {
        return Err("strides and dilations must be at least 1");
    }
    Ok(())
}

fn clamp_range(min: i32, max: i32) -> Result<(), &'static str> {
    if -128 <= min && min <= max && max <= 127 {
        Ok(())
    } else {
        Err("activation clamp outside -128..=127 or empty")
    }
}

fn quant_presence(kind: Kind, has_quant: bool) -> Result<(), &'static str> {
    match (kind, has_quant) {
        (Kind::Int8, true) | (Kind::Float, false) => Ok(()),
        (Kind::Int8, false) => Err("int8 operator without its quantization parameters"),
        (Kind::Float, true) => Err("f32 operator with int8 parameters"),
    }
}

#[cfg(test)]
mod tests {
    use crate::Model;

    /// The golden models of `tests/golden/`.
    fn golden_models() -> std::vec::Vec<std::vec::Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden");
        let mut models = std::vec::Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            if let Ok(bytes) = std::fs::read(entry.unwrap().path().join("model.ferrite")) {
                models.push(bytes);
            }
        }
        assert!(!models.is_empty());
        models
    }

    #[test]
    #[cfg(all(feature = "all-ops", feature = "float"))]
    fn every_operator_is_built_under_its_feature_name() {
        for bytes in golden_models() {
            for op in Model::from_bytes(&bytes).unwrap().ops() {
                assert!(op.is_built());
                assert_eq!(op.feature(), op.name().to_lowercase().replace('_', "-"));
            }
        }
    }

    #[test]
    fn max_bias_plus_largest_sum_fits_i32() {
        let largest_sum = super::MAX_REDUCTION as i64 * 255 * 128;
        assert_eq!(super::MAX_BIAS as i64 + largest_sum, i32::MAX as i64);
        // TensorFlow's converter clamps biases to about 2^30 + 128; such models must load.
        assert!(super::MAX_BIAS as i64 >= (1 << 30) + 128);
    }
}
