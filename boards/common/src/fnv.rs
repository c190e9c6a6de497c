//! FNV-1a, 32 bit: a short fingerprint of an output to compare runs by eye.

const OFFSET_BASIS: u32 = 0x811c_9dc5;
const PRIME: u32 = 0x0100_0193;

/// FNV-1a hash (32 bit) of `bytes` continued from `hash` (start with [`fnv1a_start`]).
pub fn fnv1a_update(mut hash: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        hash ^= b as u32;
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// Initial state of the hash.
pub const fn fnv1a_start() -> u32 {
    OFFSET_BASIS
}

/// FNV-1a hash (32 bit) of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    fnv1a_update(fnv1a_start(), bytes)
}
