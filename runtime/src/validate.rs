//! Load-time validation: after it passes, `invoke` indexes every slice in bounds without checking again.
//!
//! The tensor table, every operand against it, the plan, and the shared checks each operator's own
//! `validate` (in `ops/`) calls through [`Check`].
//!
//! An operator the runtime was built without (see `Op::feature`) does not decode and is refused by
//! name; the checks of each operator are compiled only with its feature, and helpers only those checks
//! use are then unused.
#![cfg_attr(not(feature = "all-ops"), allow(unused))]

use crate::format::{
    DType, Graph, Header, Operand, Tensor, Window, ARENA_ALIGN, FLAG_FLOAT, MAX_RANK,
};
use crate::kernels::{LeI32, LeI64};
use crate::ops::{undecodable, Op};
use crate::quant::Requant;
use crate::Error;

/// Largest number of products summed into one int32 accumulator: `2^15` keeps
/// `sum(|(x - zp) * w|) <= 2^15 * 255 * 128 < 2^30`, leaving room for a bias up to [`MAX_BIAS`].
pub const MAX_REDUCTION: usize = 1 << 15;
/// Largest magnitude of an int32 bias: what is left of `i32::MAX` after the largest possible sum of
/// products, so the accumulator never overflows (1,077,936,127, a little above `2^30`: TensorFlow's
/// converter clamps biases to about `2^30 + 128`, which real models such as MLPerf Tiny's VWW reach).
pub const MAX_BIAS: i32 = i32::MAX - (MAX_REDUCTION as i32) * 255 * 128;
/// Largest magnitude of an int64 bias (int16x8): the accumulator stays inside TFLite's
/// `MultiplyByQuantizedMultiplier(int64)` domain, `|acc| < 2^47`, after the largest sum of
/// products `2^15 * 32768 * 128`.
pub const MAX_BIAS_64: i64 = (1 << 47) - 1 - (MAX_REDUCTION as i64) * 32768 * 128;
/// Largest shift of an int16x8 multiplier: TFLite's 64-bit `MultiplyByQuantizedMultiplier` takes
/// shifts below 8.
pub const MAX_SHIFT_64: i32 = 7;

pub(crate) fn graph(graph: &Graph<'_>, header: &Header) -> Result<(), Error> {
    let malformed = |reason| Error::Malformed { reason };
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
    // The end of the last tensor in the arena, and whether any tensor is f32.
    let mut plan_end = 0;
    let mut any_float = false;
    let mut tensors = graph.tensors.iter();
    for i in 0..graph.tensors.len() {
        let Some(Ok(t)) = tensors.next() else {
            return Err(malformed("tensor table does not decode"));
        };
        ctx.tensor(i as u16, &t)?;
        // In range: `tensor` checked that the tensor ends inside the arena.
        plan_end = plan_end.max(t.offset as usize + t.byte_len().unwrap_or(0));
        any_float |= t.dtype == DType::F32;
    }
    if !tensors.rest().is_empty() {
        return Err(malformed("tensor table does not decode"));
    }
    // The header's arena is what the plan needs: a larger one would have firmware reserve (and a host
    // allocate) memory nothing uses.
    let plan = plan_end
        .checked_next_multiple_of(ARENA_ALIGN)
        .unwrap_or(usize::MAX);
    if ctx.arena_size > plan {
        return Err(Error::ArenaLargerThanPlan {
            header: header.arena_size,
            plan: plan as u32,
        });
    }
    if ctx.float && !any_float {
        return Err(malformed(
            "header flag 0x0001 (f32 kernels) is set, but no tensor is f32",
        ));
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
    // Each operator decoded and checked in order: one the runtime cannot decode is named by its tag
    // where the tag is the reason.
    let mut ops = graph.ops.iter();
    let mut step = 0u16;
    loop {
        let at = ops.rest();
        match ops.next() {
            None => break,
            Some(Ok(op)) => ctx.op(step, &op)?,
            Some(Err(_)) => {
                return Err(
                    undecodable(step, at).unwrap_or(malformed("operator list does not decode"))
                )
            }
        }
        step = step.saturating_add(1);
    }
    if !ops.rest().is_empty() {
        return Err(malformed("operator list does not decode"));
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
pub(crate) enum Kind {
    Int8,
    /// int16 activations with int8 weights (TFLite's 16x8).
    Int16,
    Float,
}

impl Kind {
    /// The clamp bounds of this kind's integer outputs.
    pub(crate) fn int_range(self) -> (i32, i32) {
        match self {
            Kind::Int16 => (i16::MIN as i32, i16::MAX as i32),
            _ => (-128, 127),
        }
    }
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
            DType::I16 => {
                if !cfg!(feature = "int16") {
                    return Err(Error::Int16KernelsDisabled { tensor: index });
                }
                if !(t.scale.is_finite() && t.scale > 0.0) {
                    return bad("int16 tensor needs a finite positive scale");
                }
                if t.zero_point != 0 {
                    return bad("int16 tensor with a zero point (int16 activations are symmetric)");
                }
            }
            DType::I32 => return bad("int32 activations are not supported"),
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

    /// Checks an operator's operands against the tensor table and their lifetimes, then the
    /// operator's own checks.
    fn op(&self, step: u16, op: &Op<'_>) -> Result<(), Error> {
        op.inputs(|o| self.operand(step, o, false).map(drop))?;
        let out = self.operand(step, op.output(), true)?;
        let check = Check { ctx: self, step };
        if out.in_place && !matches!(op, Op::Reshape(_)) && !cfg!(feature = "in-place") {
            return check.bad(
                "operator runs in place: this runtime was built without its `in-place` feature",
            );
        }
        if out.in_place && op.in_place_sources()[0].is_none() {
            return check.bad(
                "only Reshape, convolutions, poolings and element-wise operators may run in place",
            );
        }
        op.validate(&check)?;
        if !op.bands_fit() {
            return check.bad(
                "in-place operator needs batch 1, one overlapped input, shapes without broadcasting and room for bands of one row (a convolution that runs in one pass: its room before its input; a depthwise one: to run over its input)",
            );
        }
        Ok(())
    }

    /// Whether tensor `y` is planned in place over tensor `x` (index `xi`), which dies where `y` is
    /// made: `y`'s producer lists `x` among its in-place sources.
    fn handover(&self, xi: usize, x: &Tensor<'_>, y: &Tensor<'_>) -> bool {
        y.in_place
            && x.last == y.first
            && self.graph.ops.get(y.first as usize).is_some_and(|op| {
                op.in_place_sources()
                    .iter()
                    .flatten()
                    .any(|o| o.tensor as usize == xi)
            })
    }

    /// No two tensors live at the same step may share arena bytes, but an in-place output may overlap
    /// its operator's in-place source where one ends and the other begins (the operator's own checks
    /// say how: a Reshape at the same offset, a convolution with room for its bands).
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
                if self.handover(i, &a, &b) || self.handover(j, &b, &a) {
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

/// What an operator's own checks see: the model's tables and the operator's step. Its operands have
/// been checked against the tensor table before.
pub(crate) struct Check<'c, 'g, 'a> {
    ctx: &'c Context<'g, 'a>,
    step: u16,
}

impl<'a> Check<'_, '_, 'a> {
    /// The error for this operator.
    pub(crate) fn fail(&self, reason: &'static str) -> Error {
        Error::InvalidOperator {
            op: self.step,
            reason,
        }
    }

    /// The error for this operator, as a result.
    pub(crate) fn bad<T>(&self, reason: &'static str) -> Result<T, Error> {
        Err(self.fail(reason))
    }

    /// The error for an operator this runtime was built without (unused when all are built).
    #[cfg_attr(feature = "all-ops", allow(dead_code))]
    pub(crate) fn not_built(&self, op: &Op<'_>) -> Error {
        Error::OperatorNotBuilt {
            op: self.step,
            name: op.name(),
            feature: op.feature(),
        }
    }

    /// The tensor-table entry of an operand (its scale is not in the operand).
    pub(crate) fn tensor(&self, o: &Operand) -> Result<Tensor<'a>, Error> {
        self.ctx
            .tensor_at(o.tensor)
            .ok_or(self.fail("operand index outside the tensor table"))
    }

    /// The kernel family of a one-input operator: both int8 or both f32.
    pub(crate) fn kind(&self, input: &Operand, output: &Operand) -> Result<Kind, Error> {
        match (input.dtype, output.dtype) {
            (DType::I8, DType::I8) => Ok(Kind::Int8),
            (DType::F32, DType::F32) if cfg!(feature = "float") => Ok(Kind::Float),
            _ => self.bad("unsupported input/output element types"),
        }
    }

    /// [`Self::kind`] for an operator that also has int16x8 kernels: both int16 is
    /// [`Kind::Int16`].
    pub(crate) fn kind16(&self, input: &Operand, output: &Operand) -> Result<Kind, Error> {
        match (input.dtype, output.dtype) {
            (DType::I16, DType::I16) if cfg!(feature = "int16") => Ok(Kind::Int16),
            _ => self.kind(input, output),
        }
    }

    /// Conv2D, DepthwiseConv2D and FullyConnected: [`Self::kind16`], or an int8 input with a wide
    /// output (int16, zero point 0): `Kind::Int8` and `true`. A wide output keeps the requantized
    /// accumulator in int16 for the LOOKUP that reads it (int8 weights, int32 bias and
    /// requantization as int8, the clamp in int16's range).
    pub(crate) fn kind_wide(
        &self,
        input: &Operand,
        output: &Operand,
    ) -> Result<(Kind, bool), Error> {
        match (input.dtype, output.dtype) {
            (DType::I8, DType::I16) if cfg!(feature = "int16") => Ok((Kind::Int8, true)),
            _ => Ok((self.kind16(input, output)?, false)),
        }
    }

    /// Checks filter, bias and per-channel requantization arrays.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn weights(
        &self,
        kind: Kind,
        filter: &[u8],
        bias: &[u8],
        multiplier: &[u8],
        shift: &[u8],
        filter_elems: usize,
        reduction: usize,
        channels: usize,
    ) -> Result<(), Error> {
        let elem = if kind == Kind::Float { 4 } else { 1 };
        if Some(filter.len()) != filter_elems.checked_mul(elem) {
            return self.bad("filter size does not match the shapes");
        }
        let bias_elem = if kind == Kind::Int16 { 8 } else { 4 };
        if !bias.is_empty() && Some(bias.len()) != channels.checked_mul(bias_elem) {
            return self.bad("bias size does not match the output channels");
        }
        match kind {
            Kind::Float => {
                if !self.ctx.float {
                    return self.bad("f32 operator in a model without the float flag");
                }
                if !multiplier.is_empty() || !shift.is_empty() {
                    return self.bad("f32 operator with int8 multipliers");
                }
            }
            Kind::Int8 | Kind::Int16 => {
                if reduction > MAX_REDUCTION {
                    return self.bad("accumulation over more than 32768 products");
                }
                let (Some(m), Some(s)) = (LeI32::new(multiplier), LeI32::new(shift)) else {
                    return self.bad("multiplier or shift not a whole number of int32");
                };
                if m.len() != s.len() || (m.len() != 1 && m.len() != channels) {
                    return self.bad(
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
                    return self.bad("multiplier or shift out of range");
                }
                if kind == Kind::Int16 {
                    if (0..s.len()).any(|c| s.get(c) > MAX_SHIFT_64) {
                        return self.bad("int16x8 multiplier shift above 7");
                    }
                    let b =
                        LeI64::new(bias).ok_or(self.fail("bias not a whole number of int64"))?;
                    if (0..b.len()).any(|c| !(-MAX_BIAS_64..=MAX_BIAS_64).contains(&b.get(c))) {
                        return self.bad("int64 bias magnitude above MAX_BIAS_64");
                    }
                } else {
                    let b =
                        LeI32::new(bias).ok_or(self.fail("bias not a whole number of int32"))?;
                    if (0..b.len()).any(|c| !(-MAX_BIAS..=MAX_BIAS).contains(&b.get(c))) {
                        return self
                            .bad("bias magnitude above MAX_BIAS (2^31 - 1 - 2^15 * 255 * 128)");
                    }
                }
            }
        }
        Ok(())
    }

    /// An element-wise binary operator with int8, int16x8 and f32 kernels (Add, Sub, Mul, Maximum,
    /// Minimum): element
    /// types, broadcasting, parameters present for the integer types.
    pub(crate) fn binary16(
        &self,
        a: &Operand,
        b: &Operand,
        out: &Operand,
        has_quant: bool,
    ) -> Result<Kind, Error> {
        let k = match (a.dtype, b.dtype, out.dtype) {
            (DType::I8, DType::I8, DType::I8) => Kind::Int8,
            (DType::I16, DType::I16, DType::I16) if cfg!(feature = "int16") => Kind::Int16,
            (DType::F32, DType::F32, DType::F32) if cfg!(feature = "float") => Kind::Float,
            _ => return self.bad("unsupported element types"),
        };
        if !self.ctx.float && k == Kind::Float {
            return self.bad("f32 operator in a model without the float flag");
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
            return self.bad("input shapes do not broadcast to the output shape");
        }
        quant_presence(k, has_quant).map_err(|r| self.fail(r))?;
        Ok(k)
    }

    /// An element-wise unary operator: element types, sizes, parameters present for int8.
    pub(crate) fn unary(
        &self,
        input: &Operand,
        output: &Operand,
        has_quant: bool,
    ) -> Result<Kind, Error> {
        self.unary_of(input, output, has_quant, false)
    }

    /// [`Self::unary`] for an operator that also has int16x8 kernels.
    pub(crate) fn unary16(
        &self,
        input: &Operand,
        output: &Operand,
        has_quant: bool,
    ) -> Result<Kind, Error> {
        self.unary_of(input, output, has_quant, true)
    }

    fn unary_of(
        &self,
        input: &Operand,
        output: &Operand,
        has_quant: bool,
        int16: bool,
    ) -> Result<Kind, Error> {
        let k = match (input.dtype, output.dtype) {
            (DType::I8, DType::I8) => Kind::Int8,
            (DType::I16, DType::I16) if int16 && cfg!(feature = "int16") => Kind::Int16,
            (DType::F32, DType::F32) if self.ctx.float && cfg!(feature = "float") => Kind::Float,
            _ => return self.bad("unsupported element types"),
        };
        if input.shape.elements() != output.shape.elements() {
            return self.bad("input and output sizes differ");
        }
        quant_presence(k, has_quant).map_err(|r| self.fail(r))?;
        Ok(k)
    }

    /// Logistic and Tanh: `params` is `[input_zero_point, input_range_radius, input_multiplier,
    /// input_left_shift]`; the int8 output has the fixed quantization `(zero_point, scale)`, the int16
    /// output the scale 1/32768.
    ///
    /// int16 (TFLite's int16 Prepare values): zero point and radius 0, multiplier in `0..=32767` and
    /// shift in `0..=31`; multiplier 0 (an input scale of a power of two) stands for `3 << shift`,
    /// which must stay within 32767 too. The kernels' `x * multiplier + 2^(shift - 1)` then fits `i32`.
    pub(crate) fn sigmoid(
        &self,
        input: &Operand,
        output: &Operand,
        params: Option<[i32; 4]>,
        fixed_output: (i32, f32),
    ) -> Result<(), Error> {
        let kind = self.unary16(input, output, params.is_some())?;
        let Some([zero_point, radius, multiplier, shift]) = params else {
            return Ok(());
        };
        let tout = self.tensor(output)?;
        if kind == Kind::Int16 {
            if tout.scale != 1.0 / 32768.0 {
                return self.bad("int16 logistic/tanh output must have scale 1/32768");
            }
            let multiplier_ok = match multiplier {
                0 => shift <= 13,
                m => (1..=32767).contains(&m),
            };
            if zero_point != 0 || radius != 0 || !multiplier_ok || !(0..=31).contains(&shift) {
                return self.bad("int16 logistic/tanh parameters out of range");
            }
            return Ok(());
        }
        if (tout.zero_point, tout.scale) != fixed_output {
            return self.bad("int8 logistic/tanh output has the wrong fixed quantization");
        }
        if zero_point != input.zero_point
            || radius < 0
            || multiplier < 0
            || !crate::quant::SHIFT_RANGE.contains(&shift)
        {
            return self.bad("logistic/tanh parameters inconsistent with the input");
        }
        Ok(())
    }
}

pub(crate) fn window(w: &Window) -> Result<(), &'static str> {
    if w.stride_h == 0 || w.stride_w == 0 || w.dilation_h == 0 || w.dilation_w == 0 {
        return Err("strides and dilations must be at least 1");
    }
    Ok(())
}

pub(crate) fn clamp_range(min: i32, max: i32) -> Result<(), &'static str> {
    if -128 <= min && min <= max && max <= 127 {
        Ok(())
    } else {
        Err("activation clamp outside -128..=127 or empty")
    }
}

/// [`clamp_range`] in the output type of `kind` (int16: `-32768..=32767`).
pub(crate) fn clamp_range_of(kind: Kind, min: i32, max: i32) -> Result<(), &'static str> {
    let (lo, hi) = kind.int_range();
    if lo <= min && min <= max && max <= hi {
        Ok(())
    } else if kind == Kind::Int16 {
        Err("activation clamp outside -32768..=32767 or empty")
    } else {
        clamp_range(min, max)
    }
}

pub(crate) fn quant_presence(kind: Kind, has_quant: bool) -> Result<(), &'static str> {
    match (kind, has_quant) {
        (Kind::Int8 | Kind::Int16, true) | (Kind::Float, false) => Ok(()),
        (Kind::Int8, false) => Err("int8 operator without its quantization parameters"),
        (Kind::Int16, false) => Err("int16 operator without its quantization parameters"),
        (Kind::Float, true) => Err("f32 operator with int8 parameters"),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(feature = "all-ops", feature = "float"))]
    use crate::Model;

    /// The golden models of `tests/golden/`.
    #[cfg(all(feature = "all-ops", feature = "float"))]
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
    #[cfg_attr(
        miri,
        ignore = "reads the golden models from disk; Miri's isolation has no file system"
    )]
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
