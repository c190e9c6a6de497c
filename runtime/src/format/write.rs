//! Host-side writer: encodes a [`Graph`] into `.ferrite` bytes (header, postcard payload, CRC-32).

use std::vec::Vec;

use super::{crc32, Graph, Header, FLAG_FLOAT, HEADER_LEN, VERSION};

/// Encodes a model file. `uses_float` sets the header flag that tells firmware it needs f32 kernels.
///
/// The graph's optional trailing field (`preprocessing`) follows its other fields only when it is
/// present and not empty: a model without it is byte for byte what an older writer gave.
pub fn to_bytes(
    graph: &Graph<'_>,
    arena_size: u32,
    uses_float: bool,
) -> Result<Vec<u8>, postcard::Error> {
    let mut payload = postcard::to_allocvec(graph)?;
    if let Some(text) = graph.preprocessing.filter(|t| !t.is_empty()) {
        payload.extend_from_slice(&postcard::to_allocvec(text)?);
    }
    let header = Header {
        version: VERSION,
        flags: if uses_float { FLAG_FLOAT } else { 0 },
        arena_size,
        payload_len: payload.len() as u32,
        payload_crc: crc32(&payload),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}
