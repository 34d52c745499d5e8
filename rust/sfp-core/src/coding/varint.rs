//! LEB128 varints, as the entropy coders' stream headers store counts, offsets and frequencies.

use crate::error::{Error, Result};

/// Bytes of `v` as a varint.
pub(crate) fn len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Appends `v` as a varint.
pub(crate) fn put(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*pos`, advancing it; errors name the `stream` and the `field` it was in.
///
/// # Errors
/// [`Error::Decode`] when the bytes end inside it or it runs past 64 bits.
pub(crate) fn get(bytes: &[u8], pos: &mut usize, stream: &str, field: &str) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes
            .get(*pos)
            .ok_or_else(|| Error::decode(format!("{stream} stream: truncated {field}")))?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Error::decode(format!("{stream} stream: varint too long")))
}
