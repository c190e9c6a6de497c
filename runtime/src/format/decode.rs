//! `Decode`: the runtime's own reader of the payload's postcard items (operators, tensors, index
//! lists), decoding the same bytes as serde's derive with none of its intermediate moves: `invoke`
//! decodes each operator with it, so its cost is the interpreter's per-operator overhead.
//!
//! Every rule is postcard's: unsigned integers as varints (at most 3 bytes for `u16`, 5 for `u32`,
//! the last one's unused bits zero), signed ones zigzag-encoded, `u8` and `bool` as one byte, `f32` as
//! 4 little-endian bytes, byte strings and strings as a varint length and the bytes, `Option` as a
//! byte 0 or 1 and the value, enums as a varint variant index and the variant's fields, structs as
//! their fields in declaration order. A test checks that it agrees with serde's decoding of every
//! operator of the test models and of corrupted encodings of them.

use super::{Activation, DType, Graph, Metadata, Operand, Seq, Shape, Tensor, Window, MAX_RANK};
use crate::quant::Requant;

/// A position in postcard bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// Decodes the next item.
    #[inline(always)]
    pub fn read<T: Decode<'a>>(&mut self) -> Option<T> {
        T::decode(self)
    }

    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    /// A varint of at most `max_bytes` bytes whose last byte is at most `last_max` (postcard's
    /// bounds for the type).
    #[inline(always)]
    fn varint(&mut self, max_bytes: usize, last_max: u8) -> Option<usize> {
        let first = self.byte()?;
        if first < 0x80 {
            return Some(first as usize);
        }
        self.varint_tail(first, max_bytes, last_max)
    }

    /// The rest of a varint of more than one byte (values of 128 and more: arena offsets, lengths of
    /// weight arrays, negative zero points). Two bytes never reach the last byte's bound: every type
    /// read takes at least three.
    #[inline(never)]
    fn varint_tail(&mut self, first: u8, max_bytes: usize, last_max: u8) -> Option<usize> {
        let b = self.byte()?;
        let out = (first & 0x7F) as usize | ((b & 0x7F) as usize) << 7;
        if b < 0x80 {
            return Some(out);
        }
        self.varint_long(out, max_bytes, last_max)
    }

    /// The rest of a varint of more than two bytes (multipliers, large offsets), `out` its first
    /// two bytes' bits: one pass over its bytes, the reader moved once at the end.
    #[inline(never)]
    fn varint_long(&mut self, mut out: usize, max_bytes: usize, last_max: u8) -> Option<usize> {
        let bytes = self.bytes;
        let mut shift = 14;
        // `read`: the bytes read after the first two; the varint has `read + 2` bytes so far.
        let mut read = 0;
        loop {
            let b = *bytes.get(read)?;
            out |= ((b & 0x7F) as usize) << shift;
            read += 1;
            if b < 0x80 {
                self.bytes = bytes.get(read..)?;
                return (read + 2 < max_bytes || b <= last_max).then_some(out);
            }
            if read + 2 == max_bytes {
                return None;
            }
            shift += 7;
        }
    }

    /// A varint `usize` (postcard's lengths): as many bytes as the platform's `usize` needs.
    #[inline(always)]
    fn len(&mut self) -> Option<usize> {
        const BITS: usize = usize::BITS as usize;
        self.varint(BITS.div_ceil(7), (1u8 << (BITS % 7)) - 1)
    }
}

/// A type read from postcard bytes by [`Reader`].
pub trait Decode<'a>: Sized {
    /// Decodes one value, advancing the reader; `None` if the bytes do not encode one.
    fn decode(r: &mut Reader<'a>) -> Option<Self>;
}

impl Decode<'_> for u8 {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Option<Self> {
        r.byte()
    }
}

impl Decode<'_> for bool {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Option<Self> {
        match r.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

impl Decode<'_> for u16 {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Option<Self> {
        r.varint(3, 0b11).map(|v| v as u16)
    }
}

impl Decode<'_> for u32 {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Option<Self> {
        r.varint(5, 0b1111).map(|v| v as u32)
    }
}

/// Out of line, as a fused activation and a window (below): each operator reads a few, and their
/// inlined copies in every operator's decoding cost more code than the calls cost time.
impl Decode<'_> for i32 {
    #[inline(never)]
    fn decode(r: &mut Reader<'_>) -> Option<Self> {
        let n = u32::decode(r)?;
        Some(((n >> 1) as i32) ^ -((n & 1) as i32))
    }
}

impl Decode<'_> for f32 {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Option<Self> {
        let b = r.take(4)?;
        Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl<'a> Decode<'a> for &'a [u8] {
    #[inline(never)]
    fn decode(r: &mut Reader<'a>) -> Option<Self> {
        let n = r.len()?;
        r.take(n)
    }
}

impl<'a> Decode<'a> for &'a str {
    fn decode(r: &mut Reader<'a>) -> Option<Self> {
        core::str::from_utf8(r.read()?).ok()
    }
}

impl<'a, T: Decode<'a>> Decode<'a> for Option<T> {
    #[inline(always)]
    fn decode(r: &mut Reader<'a>) -> Option<Self> {
        match r.byte()? {
            0 => Some(None),
            1 => Some(Some(r.read()?)),
            _ => None,
        }
    }
}

impl<'a, const N: usize> Decode<'a> for [u16; N] {
    #[inline(always)]
    fn decode(r: &mut Reader<'a>) -> Option<Self> {
        let mut out = [0u16; N];
        for x in &mut out {
            *x = r.read()?;
        }
        Some(out)
    }
}

impl<'a, const N: usize> Decode<'a> for [u8; N] {
    fn decode(r: &mut Reader<'a>) -> Option<Self> {
        r.take(N)?.try_into().ok()
    }
}

impl<'a, T> Decode<'a> for Seq<'a, T> {
    fn decode(r: &mut Reader<'a>) -> Option<Self> {
        let count = r.read()?;
        Some(Seq::from_parts(count, r.read()?))
    }
}

/// A unit-only enum: its variant index as a varint `u32`.
macro_rules! decode_unit_enum {
    (#[$attr:meta] $ty:ident: $($variant:ident),+) => {
        impl Decode<'_> for $ty {
            #[$attr]
            fn decode(r: &mut Reader<'_>) -> Option<Self> {
                const VARIANTS: &[$ty] = &[$($ty::$variant),+];
                let index: u32 = r.read()?;
                VARIANTS.get(index as usize).copied()
            }
        }
    };
}

// Every operand has an element type (inlined); each operator one fused activation at most.
decode_unit_enum!(#[inline(always)] DType: I8, I16, I32, F32);
decode_unit_enum!(#[inline(never)] Activation: None, Relu, Relu6, ReluN1To1);

/// Implements [`Decode`] for a struct as its fields in the order given, which must be their
/// declaration order (serde's; the struct literal makes the compiler check that none is missing).
/// An attribute before the type applies to the function.
macro_rules! decode_fields {
    ($(#[$attr:meta])? $ty:ident $(<$lt:lifetime>)? { $($field:ident),+ $(,)? }) => {
        impl<'a> $crate::format::Decode<'a> for $ty $(<$lt>)? {
            $(#[$attr])?
            fn decode(r: &mut $crate::format::Reader<'a>) -> Option<Self> {
                Some($ty { $($field: r.read()?,)+ })
            }
        }
    };
}
pub(crate) use decode_fields;

impl Decode<'_> for Shape {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Option<Self> {
        let rank = r.read()?;
        let dims: [u16; MAX_RANK] = r.read()?;
        Some(Shape { rank, dims })
    }
}

impl Decode<'_> for Window {
    #[inline(never)]
    fn decode(r: &mut Reader<'_>) -> Option<Self> {
        let [stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left] =
            r.read::<[u16; 6]>()?;
        Some(Window {
            stride_h,
            stride_w,
            dilation_h,
            dilation_w,
            pad_top,
            pad_left,
        })
    }
}

decode_fields!(
    #[inline(never)]
    Operand {
        tensor,
        offset,
        shape,
        dtype,
        zero_point
    }
);
decode_fields!(#[inline] Tensor<'a> { name, dtype, shape, scale, zero_point, offset, first, last, in_place });
decode_fields!(Requant { multiplier, shift });
decode_fields!(Metadata<'a> { producer, source_sha256, source_layout });

/// The graph's fields up to `metadata`; the optional fields after it are read by
/// [`crate::Model::from_bytes`], which knows where the payload ends.
impl<'a> Decode<'a> for Graph<'a> {
    fn decode(r: &mut Reader<'a>) -> Option<Self> {
        Some(Graph {
            tensors: r.read()?,
            ops: r.read()?,
            inputs: r.read()?,
            outputs: r.read()?,
            metadata: r.read()?,
            preprocessing: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Decode, Reader};
    #[cfg(all(feature = "all-ops", feature = "float", feature = "int16"))]
    use crate::format::Tensor;
    #[cfg(all(feature = "all-ops", feature = "float", feature = "int16"))]
    use crate::ops::{ConcatInput, Op};
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};
    #[cfg(all(feature = "all-ops", feature = "float", feature = "int16"))]
    use std::sync::OnceLock;
    use std::vec::Vec;

    /// `T` read from `bytes` by [`Reader`] and by postcard's serde decoder: both fail, or both give
    /// the same value (compared by its encoding) and leave the same bytes.
    fn agree<'a, T>(bytes: &'a [u8])
    where
        T: Decode<'a> + Deserialize<'a> + Serialize + core::fmt::Debug,
    {
        let mut r = Reader::new(bytes);
        let ours = T::decode(&mut r).map(|v| (v, r.rest()));
        let serde = postcard::take_from_bytes::<T>(bytes).ok();
        match (&ours, &serde) {
            (None, None) => {}
            (Some((a, rest_a)), Some((b, rest_b))) => {
                assert_eq!(
                    postcard::to_allocvec(a).unwrap(),
                    postcard::to_allocvec(b).unwrap(),
                    "{bytes:02x?}"
                );
                assert_eq!(rest_a.len(), rest_b.len(), "{bytes:02x?}");
            }
            _ => panic!("{bytes:02x?}: Reader {ours:?}, serde {serde:?}"),
        }
    }

    /// Every model file of `tests/golden/` and `tests/bench/`.
    #[cfg(all(feature = "all-ops", feature = "float", feature = "int16"))]
    fn models() -> &'static [Vec<u8>] {
        static MODELS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        MODELS.get_or_init(|| {
            let mut models = Vec::new();
            for dir in ["golden", "bench"] {
                let dir = std::format!("{}/../tests/{dir}", env!("CARGO_MANIFEST_DIR"));
                for entry in std::fs::read_dir(dir).unwrap() {
                    if let Ok(bytes) = std::fs::read(entry.unwrap().path().join("model.ferrite")) {
                        models.push(bytes);
                    }
                }
            }
            assert!(models.len() > 20);
            models
        })
    }

    /// The encoded operators of every model: each one's bytes to the end of the operator list.
    #[cfg(all(feature = "all-ops", feature = "float", feature = "int16"))]
    fn encoded_ops() -> &'static [&'static [u8]] {
        static OPS: OnceLock<Vec<&'static [u8]>> = OnceLock::new();
        OPS.get_or_init(|| {
            let mut out = Vec::new();
            for bytes in models() {
                let model = crate::Model::from_bytes(bytes).unwrap();
                let mut it = model.graph().ops.iter();
                loop {
                    let at = it.rest();
                    if it.next().is_none() {
                        break;
                    }
                    out.push(at);
                }
            }
            out
        })
    }

    #[test]
    #[cfg(all(feature = "all-ops", feature = "float", feature = "int16"))]
    #[cfg_attr(miri, ignore = "reads the models from disk; Miri has no file system")]
    fn reads_every_list_of_the_test_models_as_serde_does() {
        for bytes in models() {
            let model = crate::Model::from_bytes(bytes).unwrap();
            let graph = model.graph();
            // Each item from its start to the end of its list (later items are the rest).
            fn each<'a, T>(bytes: &'a [u8], count: usize)
            where
                T: Decode<'a> + Deserialize<'a> + Serialize + core::fmt::Debug,
            {
                let mut r = Reader::new(bytes);
                for _ in 0..count {
                    agree::<T>(r.rest());
                    T::decode(&mut r).unwrap();
                }
                assert!(r.rest().is_empty());
            }
            agree::<crate::format::Graph<'_>>(&bytes[crate::format::HEADER_LEN..]);
            each::<Tensor<'_>>(graph.tensors.encoded_bytes(), graph.tensors.len());
            each::<Op<'_>>(graph.ops.encoded_bytes(), graph.ops.len());
            each::<u16>(graph.inputs.encoded_bytes(), graph.inputs.len());
            each::<u16>(graph.outputs.encoded_bytes(), graph.outputs.len());
            for op in model.ops() {
                if let Op::Concatenation(c) = op {
                    each::<ConcatInput>(c.inputs.encoded_bytes(), c.inputs.len());
                }
            }
        }
    }

    proptest! {
        #![proptest_config(crate::proptest_config(4000))]

        /// Operators of the test models, or their whole payloads, with one byte of the first 64
        /// changed, or cut short there: the same verdict and value as serde's.
        #[test]
        #[cfg(all(feature = "all-ops", feature = "float", feature = "int16"))]
        #[cfg_attr(miri, ignore = "reads the models from disk; Miri has no file system")]
        fn reads_corrupted_operators_and_graphs_as_serde_does(
            graph in any::<bool>(),
            which in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<bool>(),
        ) {
            let mut bytes = if graph {
                let models = models();
                models[which.index(models.len())][crate::format::HEADER_LEN..].to_vec()
            } else {
                let ops = encoded_ops();
                ops[which.index(ops.len())].to_vec()
            };
            let at = at.index(bytes.len().min(64));
            if cut {
                bytes.truncate(at);
            } else {
                bytes[at] = byte;
            }
            if graph {
                agree::<crate::format::Graph<'_>>(&bytes);
            } else {
                agree::<Op<'_>>(&bytes);
            }
        }

        /// Short byte strings read as each primitive: the same verdict and value as serde's.
        #[test]
        fn reads_primitives_as_serde_does(bytes in prop::collection::vec(any::<u8>(), 0..12)) {
            // Mostly varint continuation bytes, so long varints are common.
            let bytes: Vec<u8> = bytes.iter().map(|&b| if b < 0xC0 { b | 0x80 } else { b & 0x7F }).collect();
            for b in [&bytes[..], &bytes[bytes.len() / 2..]] {
                agree::<u8>(b);
                agree::<bool>(b);
                agree::<u16>(b);
                agree::<u32>(b);
                agree::<i32>(b);
                agree::<f32>(b);
                agree::<&[u8]>(b);
                agree::<Option<u16>>(b);
                agree::<[u16; 4]>(b);
                agree::<[u8; 4]>(b);
                agree::<crate::format::DType>(b);
                agree::<crate::format::Activation>(b);
                agree::<crate::format::Window>(b);
                agree::<crate::format::Operand>(b);
            }
        }
    }

    #[test]
    fn varint_bounds_are_postcards() {
        // u16: three bytes at most, the third at most 0b11; u32: five, the fifth at most 0b1111.
        for bytes in [
            &[0x80, 0x00][..],
            &[0xFF, 0xFF, 0x03],
            &[0xFF, 0xFF, 0x04],
            &[0x80, 0x80, 0x80],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0x10],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02],
        ] {
            agree::<u16>(bytes);
            agree::<u32>(bytes);
            agree::<i32>(bytes);
            agree::<&[u8]>(bytes);
        }
    }
}
