//! The plain exponent coder: each code packed flat at `width` bits.

use crate::bitpack;
use crate::error::Result;

/// Packs each code at `width` bits.
pub fn encode(codes: &[u16], width: u32, out: &mut Vec<u8>) {
    bitpack::pack(codes.iter().map(|&c| u64::from(c)), width, out);
}

/// Unpacks `out.len()` codes of `width` bits.
///
/// # Errors
/// [`crate::Error::Decode`] when `bytes` is not exactly the packed length.
pub fn decode(bytes: &[u8], width: u32, out: &mut [u16]) -> Result<()> {
    // `width` is at most 11 bits, so every field fits a u16.
    bitpack::unpack(bytes, out.len(), width, |i, v| out[i] = v as u16)
}
