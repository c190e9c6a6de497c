//! `Interpreter`: runs a validated model in a caller-provided arena. `invoke` only computes.
//!
//! Each operator runs through its module in `ops/` (compiled only with its Cargo feature, see
//! `Op::feature`); the helpers here give it its operands' bytes in the arena.
#![cfg_attr(not(feature = "all-ops"), allow(unused))]

use core::ops::Range;

use crate::format::{DType, Decode, Operand, Reader, Tensor, Window, ARENA_ALIGN};
use crate::kernels::{ConvGeometry, LeI32, OutputQuant};
use crate::ops::Op;
use crate::{quant, Error, Model};

/// Executes a [`Model`] in an arena that holds every activation tensor at its planned offset.
pub struct Interpreter<'m> {
    model: &'m Model<'m>,
    arena: &'m mut [u8],
}

/// What `invoke` returns if an operator differs from what validation accepted (it cannot, for a
/// model from [`Model::from_bytes`]).
pub(crate) const CORRUPT: Error = Error::Malformed {
    reason: "operator does not match its validated form",
};

impl<'m> Interpreter<'m> {
    /// Binds a model to an arena. The arena's start is aligned to 16 bytes by skipping leading bytes,
    /// so a buffer of `model.arena_size()` bytes suffices when it is 16-byte aligned (see [`crate::Arena`]).
    /// Fails with [`Error::ArenaTooSmall`], giving the size needed, when the arena is short.
    // Out of line: called once, its frame is gone before `invoke` (size reports count it).
    #[inline(never)]
    pub fn new(model: &'m Model<'m>, arena: &'m mut [u8]) -> Result<Self, Error> {
        let skip = arena.as_ptr().align_offset(ARENA_ALIGN).min(ARENA_ALIGN);
        let needed = model.arena_size() + skip;
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall {
                needed: needed as u32,
                available: arena.len() as u32,
            });
        }
        let arena = &mut arena[skip..needed];
        Ok(Interpreter { model, arena })
    }

    /// The model being run.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// Number of graph inputs.
    pub fn inputs(&self) -> usize {
        self.model.inputs()
    }

    /// Number of graph outputs.
    pub fn outputs(&self) -> usize {
        self.model.outputs()
    }

    /// Raw bytes of input `index` in the arena (fill them before [`Self::invoke`]; `invoke` may
    /// overwrite them).
    pub fn input_bytes_mut(&mut self, index: usize) -> Result<&mut [u8], Error> {
        let t = self.model.input(index)?;
        let r = byte_range(&t.operand(0))?;
        self.arena.get_mut(r).ok_or(CORRUPT)
    }

    /// Raw bytes of output `index` in the arena.
    pub fn output_bytes(&self, index: usize) -> Result<&[u8], Error> {
        let t = self.model.output(index)?;
        let r = byte_range(&t.operand(0))?;
        self.arena.get(r).ok_or(CORRUPT)
    }

    /// Input `index` as int8 values.
    pub fn input_i8_mut(&mut self, index: usize) -> Result<&mut [i8], Error> {
        self.expect_type(self.model.input(index)?, index, DType::I8)?;
        Ok(bytemuck::cast_slice_mut(self.input_bytes_mut(index)?))
    }

    /// Output `index` as int8 values.
    pub fn output_i8(&self, index: usize) -> Result<&[i8], Error> {
        self.expect_type(self.model.output(index)?, index, DType::I8)?;
        Ok(bytemuck::cast_slice(self.output_bytes(index)?))
    }

    /// Input `index` as int16 values (only for an int16 input tensor).
    pub fn input_i16_mut(&mut self, index: usize) -> Result<&mut [i16], Error> {
        self.expect_type(self.model.input(index)?, index, DType::I16)?;
        bytemuck::try_cast_slice_mut(self.input_bytes_mut(index)?).map_err(|_| CORRUPT)
    }

    /// Output `index` as int16 values (only for an int16 output tensor).
    pub fn output_i16(&self, index: usize) -> Result<&[i16], Error> {
        self.expect_type(self.model.output(index)?, index, DType::I16)?;
        bytemuck::try_cast_slice(self.output_bytes(index)?).map_err(|_| CORRUPT)
    }

    /// Input `index` as f32 values (only for an f32 input tensor).
    pub fn input_f32_mut(&mut self, index: usize) -> Result<&mut [f32], Error> {
        self.expect_type(self.model.input(index)?, index, DType::F32)?;
        bytemuck::try_cast_slice_mut(self.input_bytes_mut(index)?).map_err(|_| CORRUPT)
    }

    /// Output `index` as f32 values (only for an f32 output tensor).
    pub fn output_f32(&self, index: usize) -> Result<&[f32], Error> {
        self.expect_type(self.model.output(index)?, index, DType::F32)?;
        bytemuck::try_cast_slice(self.output_bytes(index)?).map_err(|_| CORRUPT)
    }

    /// Writes real values into input `index`, quantizing them with the tensor's scale and zero point
    /// (int8 or int16), or copying them into an f32 input.
    pub fn set_input_f32(&mut self, index: usize, values: &[f32]) -> Result<(), Error> {
        let t = self.model.input(index)?;
        check_len(&t, values.len())?;
        match t.dtype {
            DType::I8 => {
                let q = self.input_i8_mut(index)?;
                for (q, &v) in q.iter_mut().zip(values) {
                    *q = quant::quantize_f32(v, t.scale, t.zero_point, -128, 127) as i8;
                }
            }
            DType::I16 => {
                let q = self.input_i16_mut(index)?;
                for (q, &v) in q.iter_mut().zip(values) {
                    *q = quant::quantize_f32(v, t.scale, 0, -32768, 32767) as i16;
                }
            }
            DType::F32 => self.input_f32_mut(index)?.copy_from_slice(values),
            _ => {
                return Err(Error::WrongType {
                    index: index as u16,
                })
            }
        }
        Ok(())
    }

    /// Reads output `index` as real values, dequantizing an int8 or int16 output.
    pub fn output_to_f32(&self, index: usize, values: &mut [f32]) -> Result<(), Error> {
        let t = self.model.output(index)?;
        check_len(&t, values.len())?;
        match t.dtype {
            DType::I8 => {
                for (v, &q) in values.iter_mut().zip(self.output_i8(index)?) {
                    *v = quant::dequantize_f32(q as i32, t.scale, t.zero_point);
                }
            }
            DType::I16 => {
                for (v, &q) in values.iter_mut().zip(self.output_i16(index)?) {
                    *v = quant::dequantize_f32(q as i32, t.scale, 0);
                }
            }
            DType::F32 => values.copy_from_slice(self.output_f32(index)?),
            _ => {
                return Err(Error::WrongType {
                    index: index as u16,
                })
            }
        }
        Ok(())
    }

    /// The `K` largest values of int8 output `index` with their positions, largest first (ties: lower
    /// position first): the usual read-out of a classifier.
    pub fn output_top_k<const K: usize>(
        &self,
        index: usize,
    ) -> Result<heapless::Vec<(usize, i8), K>, Error> {
        let mut top: heapless::Vec<(usize, i8), K> = heapless::Vec::new();
        for (i, &v) in self.output_i8(index)?.iter().enumerate() {
            let at = top.iter().position(|&(_, w)| v > w).unwrap_or(top.len());
            if at < K {
                if top.is_full() {
                    top.pop();
                }
                // Cannot fail: there is room after the pop.
                let _ = top.insert(at, (i, v));
            }
        }
        Ok(top)
    }

    /// Runs every operator in order. The model was validated at load: this only computes.
    pub fn invoke(&mut self) -> Result<(), Error> {
        self.invoke_with(|_, _| {})
    }

    /// Like [`Self::invoke`], calling `after_op(step, op)` once each operator has run (for per-layer
    /// timing or tracing).
    pub fn invoke_with(&mut self, after_op: impl FnMut(usize, &Op<'_>)) -> Result<(), Error> {
        self.invoke_traced(|_, _| {}, after_op)
    }

    /// Like [`Self::invoke_with`], also calling `before_op(step, op)` once the operator is decoded
    /// from the model and before it runs: what lies between an `after_op` and the next
    /// `before_op` is the interpreter's own work (decoding and dispatch).
    pub fn invoke_traced(
        &mut self,
        mut before_op: impl FnMut(usize, &Op<'_>),
        mut after_op: impl FnMut(usize, &Op<'_>),
    ) -> Result<(), Error> {
        // Each operator decoded from the model's bytes: cheap, checked at load (`format::Decode`).
        let ops = &self.model.graph().ops;
        let mut reader = Reader::new(ops.encoded_bytes());
        for step in 0..ops.len() {
            // Bound by reference: the operator is not moved out of the decoded value.
            let decoded = Op::decode(&mut reader);
            let Some(op) = &decoded else {
                return Err(CORRUPT);
            };
            before_op(step, op);
            op.run(self.arena)?;
            after_op(step, op);
        }
        Ok(())
    }

    fn expect_type(&self, t: Tensor<'_>, index: usize, dtype: DType) -> Result<(), Error> {
        if t.dtype == dtype {
            Ok(())
        } else {
            Err(Error::WrongType {
                index: index as u16,
            })
        }
    }
}

fn check_len(t: &Tensor<'_>, found: usize) -> Result<(), Error> {
    let expected = t.shape.elements().unwrap_or(0);
    if expected == found {
        Ok(())
    } else {
        Err(Error::WrongLength {
            expected: expected as u32,
            found: found as u32,
        })
    }
}

/// Byte range of an operand in the arena.
fn byte_range(o: &Operand) -> Result<Range<usize>, Error> {
    let len = o
        .shape
        .elements()
        .and_then(|n| n.checked_mul(o.dtype.size()))
        .ok_or(CORRUPT)?;
    let start = o.offset as usize;
    Ok(start..start.checked_add(len).ok_or(CORRUPT)?)
}

/// Bytes `write` of the arena to write, and bytes `reads` to read, none of which may overlap
/// `write` (an in-place operator's band).
pub(crate) fn band_views<const N: usize>(
    arena: &mut [u8],
    write: Range<usize>,
    reads: [Range<usize>; N],
) -> Result<(&mut [u8], [&[u8]; N]), Error> {
    if write.start > write.end || write.end > arena.len() {
        return Err(CORRUPT);
    }
    let (head, rest) = arena.split_at_mut(write.start);
    let (out, tail) = rest.split_at_mut(write.len());
    let (head, tail): (&[u8], &[u8]) = (head, tail);
    let mut views: [&[u8]; N] = [&[]; N];
    for (view, r) in views.iter_mut().zip(reads) {
        *view = if r.end <= write.start {
            head.get(r)
        } else if r.start >= write.end {
            tail.get(r.start - write.end..r.end - write.end)
        } else {
            None
        }
        .ok_or(CORRUPT)?;
    }
    Ok((out, views))
}

/// The arena split around one operator's output: inputs are read from the bytes before or after it.
pub(crate) struct Views<'x> {
    head: &'x [u8],
    pub(crate) out: &'x mut [u8],
    tail: &'x [u8],
    out_range: Range<usize>,
}

impl<'x> Views<'x> {
    pub(crate) fn new(arena: &'x mut [u8], output: &Operand) -> Result<Self, Error> {
        let out_range = byte_range(output)?;
        if out_range.end > arena.len() {
            return Err(CORRUPT);
        }
        let (head, rest) = arena.split_at_mut(out_range.start);
        let (out, tail) = rest.split_at_mut(out_range.len());
        Ok(Views {
            head,
            out,
            tail,
            out_range,
        })
    }

    pub(crate) fn bytes(&self, o: &Operand) -> Result<&'x [u8], Error> {
        let r = byte_range(o)?;
        let (head, tail): (&'x [u8], &'x [u8]) = (self.head, self.tail);
        if r.end <= self.out_range.start {
            head.get(r).ok_or(CORRUPT)
        } else if r.start >= self.out_range.end {
            let end = self.out_range.end;
            tail.get(r.start - end..r.end - end).ok_or(CORRUPT)
        } else {
            Err(CORRUPT)
        }
    }

    pub(crate) fn i8(&self, o: &Operand) -> Result<&'x [i8], Error> {
        Ok(bytemuck::cast_slice(self.bytes(o)?))
    }

    pub(crate) fn out_i8(&mut self) -> &mut [i8] {
        bytemuck::cast_slice_mut(self.out)
    }

    #[cfg(feature = "int16")]
    pub(crate) fn i16(&self, o: &Operand) -> Result<&'x [i16], Error> {
        bytemuck::try_cast_slice(self.bytes(o)?).map_err(|_| CORRUPT)
    }

    #[cfg(feature = "int16")]
    pub(crate) fn out_i16(&mut self) -> Result<&mut [i16], Error> {
        bytemuck::try_cast_slice_mut(self.out).map_err(|_| CORRUPT)
    }

    #[cfg(feature = "float")]
    pub(crate) fn f32(&self, o: &Operand) -> Result<&'x [f32], Error> {
        bytemuck::try_cast_slice(self.bytes(o)?).map_err(|_| CORRUPT)
    }

    #[cfg(feature = "float")]
    pub(crate) fn out_f32(&mut self) -> Result<&mut [f32], Error> {
        bytemuck::try_cast_slice_mut(self.out).map_err(|_| CORRUPT)
    }
}

pub(crate) fn le_i32(bytes: &[u8]) -> Result<LeI32<'_>, Error> {
    LeI32::new(bytes).ok_or(CORRUPT)
}

#[cfg(feature = "int16")]
pub(crate) fn le_i64(bytes: &[u8]) -> Result<crate::kernels::LeI64<'_>, Error> {
    crate::kernels::LeI64::new(bytes).ok_or(CORRUPT)
}

#[cfg(feature = "float")]
pub(crate) fn le_f32(bytes: &[u8]) -> Result<crate::kernels::LeF32<'_>, Error> {
    crate::kernels::LeF32::new(bytes).ok_or(CORRUPT)
}

pub(crate) fn geometry(
    input: &Operand,
    output: &Operand,
    kernel_h: u16,
    kernel_w: u16,
    w: &Window,
) -> ConvGeometry {
    ConvGeometry {
        input: input.shape.nhwc(),
        output: output.shape.nhwc(),
        kernel_h: kernel_h as usize,
        kernel_w: kernel_w as usize,
        stride_h: w.stride_h as usize,
        stride_w: w.stride_w as usize,
        dilation_h: w.dilation_h as usize,
        dilation_w: w.dilation_w as usize,
        pad_top: w.pad_top as usize,
        pad_left: w.pad_left as usize,
    }
}

pub(crate) fn output_quant<'a>(
    input: &Operand,
    output: &Operand,
    act_min: i32,
    act_max: i32,
    multiplier: &'a [u8],
    shift: &'a [u8],
) -> Result<OutputQuant<'a>, Error> {
    Ok(OutputQuant {
        input_offset: -input.zero_point,
        output_offset: output.zero_point,
        act_min,
        act_max,
        multiplier: le_i32(multiplier)?,
        shift: le_i32(shift)?,
    })
}

/// `(outer, inner)` sizes around `axis` of a shape: elements before it times its size, and after it.
pub(crate) fn split_at_axis(o: &Operand, axis: usize) -> (usize, usize) {
    let dims = o.shape.dims();
    let outer: usize = dims[..axis].iter().map(|&d| d as usize).product();
    let inner: usize = dims[axis..].iter().map(|&d| d as usize).product();
    (outer, inner)
}
