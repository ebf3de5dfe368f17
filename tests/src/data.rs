//! Deterministic test data, checkable chunk by chunk without keeping it.

/// Byte `i` of the pattern identified by `seed`.
pub fn pattern_byte(seed: u64, i: u64) -> u8 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (x >> 56) as u8 ^ (i as u8)
}

/// `len` bytes of pattern `seed` starting at offset `start`.
pub fn pattern(seed: u64, start: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern_byte(seed, start + i)).collect()
}

/// Checks that `chunk`, found at `start`, matches pattern `seed`; returns the
/// first bad offset.
pub fn check_pattern(seed: u64, start: u64, chunk: &[u8]) -> Result<(), u64> {
    match chunk.iter().enumerate().find(|(i, b)| **b != pattern_byte(seed, start + *i as u64)) {
        Some((i, _)) => Err(start + i as u64),
        None => Ok(()),
    }
}
