//! `Model`: a validated view of a `.ferrite` file, borrowing its bytes (weights stay in flash).

use crate::format::{crc32, Graph, Header, Reader, Tensor, FLAG_FLOAT, HEADER_LEN};
use crate::ops::Op;
use crate::{validate, Error};

/// A model whose every index, shape, parameter and arena offset has been checked once.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    header: Header,
    graph: Graph<'a>,
}

impl<'a> Model<'a> {
    /// Parses and validates a model. `bytes` may extend past the file (e.g. a flash partition).
    ///
    /// Checks the header (magic, version, flags), the payload's length and CRC-32, then every tensor,
    /// operator and the memory plan. Any byte string gives `Ok` or an `Err`, never a panic.
    // Out of line: called once, its frame is gone before `invoke` (size reports count it).
    #[inline(never)]
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        let header = Header::parse(bytes)?;
        let end = HEADER_LEN
            .checked_add(header.payload_len as usize)
            .ok_or(Error::Truncated {
                needed: u32::MAX,
                available: bytes.len() as u32,
            })?;
        let payload = bytes.get(HEADER_LEN..end).ok_or(Error::Truncated {
            needed: end.min(u32::MAX as usize) as u32,
            available: bytes.len() as u32,
        })?;
        let found = crc32(payload);
        if found != header.payload_crc {
            return Err(Error::ChecksumMismatch {
                expected: header.payload_crc,
                found,
            });
        }
        if header.flags & FLAG_FLOAT != 0 && !cfg!(feature = "float") {
            return Err(Error::FloatKernelsDisabled);
        }
        let mut r = Reader::new(payload);
        let mut graph: Graph<'a> = r.read().ok_or(Error::Malformed {
            reason: "payload does not decode",
        })?;
        // The optional field after `metadata`: present when bytes follow it.
        if !r.rest().is_empty() {
            let text: &'a str = r.read().ok_or(Error::Malformed {
                reason: "the graph's preprocessing field does not decode",
            })?;
            graph.preprocessing = Some(text).filter(|t| !t.is_empty());
        }
        if !r.rest().is_empty() {
            return Err(Error::Malformed {
                reason: "trailing bytes after the payload's graph",
            });
        }
        validate::graph(&graph, &header)?;
        Ok(Model { header, graph })
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Arena bytes the memory plan needs.
    pub fn arena_size(&self) -> usize {
        self.header.arena_size as usize
    }

    /// The decoded payload.
    pub fn graph(&self) -> &Graph<'a> {
        &self.graph
    }

    /// How the host turned its data into the model's input, if the file records it (a text written by
    /// the tool that made the model; the runtime does not interpret it).
    pub fn preprocessing(&self) -> Option<&'a str> {
        self.graph.preprocessing
    }

    /// Number of graph inputs.
    pub fn inputs(&self) -> usize {
        self.graph.inputs.len()
    }

    /// Number of graph outputs.
    pub fn outputs(&self) -> usize {
        self.graph.outputs.len()
    }

    /// Tensor-table entry of graph input `index`.
    pub fn input(&self, index: usize) -> Result<Tensor<'a>, Error> {
        self.io_tensor(&self.graph.inputs, index)
    }

    /// Tensor-table entry of graph output `index`.
    pub fn output(&self, index: usize) -> Result<Tensor<'a>, Error> {
        self.io_tensor(&self.graph.outputs, index)
    }

    /// Tensor-table entry `index`.
    pub fn tensor(&self, index: usize) -> Option<Tensor<'a>> {
        self.graph.tensors.get(index)
    }

    /// The operators in execution order.
    pub fn ops(&self) -> impl Iterator<Item = Op<'a>> + '_ {
        self.graph.ops.iter().filter_map(Result::ok)
    }

    fn io_tensor(
        &self,
        list: &crate::format::Seq<'a, u16>,
        index: usize,
    ) -> Result<Tensor<'a>, Error> {
        let missing = Error::NoSuchTensor {
            index: index.min(u16::MAX as usize) as u16,
        };
        let t = list.get(index).ok_or(missing)?;
        self.tensor(t as usize).ok_or(missing)
    }
}
