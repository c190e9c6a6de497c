//! Host-side writer: encodes a [`Graph`] into `.ferrite` bytes (header, postcard payload, CRC-32).

use std::vec::Vec;

use super::{crc32, Graph, Header, FLAG_FLOAT, HEADER_LEN, VERSION};

/// Encodes a model file. `uses_float` sets the header flag that tells firmware it needs f32 kernels.
pub fn to_bytes(
    graph: &Graph<'_>,
    arena_size: u32,
    uses_float: bool,
) -> Result<Vec<u8>, postcard::Error> {
    let payload = postcard::to_allocvec(graph)?;
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
