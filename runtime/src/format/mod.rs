//! The `.ferrite` file: a fixed little-endian header, then a postcard payload (see `runtime/FORMAT.md`).

mod crc32;
mod decode;
mod graph;
mod seq;
#[cfg(any(feature = "host", test))]
pub mod write;

pub use crc32::crc32;
pub(crate) use decode::decode_fields;
pub use decode::{Decode, Reader};
pub use graph::*;
#[cfg(any(feature = "host", test))]
pub use seq::SeqBuf;
pub use seq::{Seq, SeqIter};

use crate::Error;

/// First four bytes of every `.ferrite` file.
pub const MAGIC: [u8; 4] = *b"FRTE";
/// The one format version this runtime reads and writes.
pub const VERSION: u16 = 1;
/// Size of the fixed header in bytes.
pub const HEADER_LEN: usize = 24;
/// Header flag: some operators run f32 kernels (the runtime needs the `float` feature).
pub const FLAG_FLOAT: u16 = 1 << 0;
/// Every header flag this runtime knows.
pub const KNOWN_FLAGS: u16 = FLAG_FLOAT;

/// The decoded fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Format version (always [`VERSION`] once parsed).
    pub version: u16,
    /// Header flags: [`FLAG_FLOAT`] or 0.
    pub flags: u16,
    /// Bytes of arena the memory plan needs (activations only).
    pub arena_size: u32,
    /// Length of the postcard payload that follows the header, in bytes.
    pub payload_len: u32,
    /// CRC-32 of the payload ([`crc32`]).
    pub payload_crc: u32,
}

const fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

const fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Header {
    /// Reads and checks the header: length, magic, version, flags and reserved bytes.
    /// The payload and its checksum are checked by [`crate::Model::from_bytes`].
    pub const fn parse(bytes: &[u8]) -> Result<Header, Error> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated {
                needed: HEADER_LEN as u32,
                available: bytes.len() as u32,
            });
        }
        if bytes[0] != MAGIC[0]
            || bytes[1] != MAGIC[1]
            || bytes[2] != MAGIC[2]
            || bytes[3] != MAGIC[3]
        {
            return Err(Error::BadMagic);
        }
        let version = read_u16(bytes, 4);
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        let flags = read_u16(bytes, 6);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::UnknownFlags { flags });
        }
        let reserved = read_u32(bytes, 20);
        if reserved != 0 {
            return Err(Error::ReservedNotZero { value: reserved });
        }
        Ok(Header {
            version,
            flags,
            arena_size: read_u32(bytes, 8),
            payload_len: read_u32(bytes, 12),
            payload_crc: read_u32(bytes, 16),
        })
    }

    /// Total file length: header plus payload.
    pub const fn file_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }

    /// Encodes the header.
    pub const fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let fields: [(usize, [u8; 4]); 4] = [
            (8, self.arena_size.to_le_bytes()),
            (12, self.payload_len.to_le_bytes()),
            (16, self.payload_crc.to_le_bytes()),
            (20, [0; 4]),
        ];
        out[0] = MAGIC[0];
        out[1] = MAGIC[1];
        out[2] = MAGIC[2];
        out[3] = MAGIC[3];
        let v = self.version.to_le_bytes();
        out[4] = v[0];
        out[5] = v[1];
        let f = self.flags.to_le_bytes();
        out[6] = f[0];
        out[7] = f[1];
        let mut i = 0;
        while i < fields.len() {
            let (at, b) = fields[i];
            out[at] = b[0];
            out[at + 1] = b[1];
            out[at + 2] = b[2];
            out[at + 3] = b[3];
            i += 1;
        }
        out
    }
}

/// Arena bytes a model needs, read from its header; 0 if the bytes are not a valid header.
///
/// Usable in a `const` item so firmware sizes its arena at compile time:
///
/// ```
/// # const MODEL: &[u8] = &[];
/// static mut ARENA: ferrite_runtime::Arena<{ ferrite_runtime::arena_size(MODEL) }> =
///     ferrite_runtime::Arena::new();
/// ```
pub const fn arena_size(model: &[u8]) -> usize {
    match Header::parse(model) {
        Ok(h) => h.arena_size as usize,
        Err(_) => 0,
    }
}

/// Total length of the model file at the start of `bytes` (header plus payload); 0 if the header is invalid.
/// Useful when a model sits in a flash partition larger than the file.
pub const fn file_len(model: &[u8]) -> usize {
    match Header::parse(model) {
        Ok(h) => h.file_len(),
        Err(_) => 0,
    }
}

/// Alignment the interpreter gives the arena's start (it skips leading bytes of a less aligned buffer).
pub const ARENA_ALIGN: usize = 16;

/// A 16-byte aligned arena of `N` bytes, for `static` or stack allocation.
#[repr(C, align(16))]
pub struct Arena<const N: usize>([u8; N]);

impl<const N: usize> Arena<N> {
    /// A zeroed arena.
    pub const fn new() -> Self {
        Self([0; N])
    }

    /// The arena's bytes, to pass to [`crate::Interpreter::new`].
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}
