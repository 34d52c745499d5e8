//! The plain exponent coder: each code packed flat at `width` bits.

use crate::coding::bitpack;
use crate::error::Result;

/// Packs each code at `width` bits.
pub fn encode(codes: &[u16], width: u32, out: &mut Vec<u8>) {
    if width <= 16 {
        bitpack::pack_u16(codes, width, out);
    } else {
        bitpack::pack(codes.iter().map(|&c| u64::from(c)), width, out);
    }
}

/// Unpacks `out.len()` codes of `width` bits.
///
/// # Errors
/// [`crate::Error::Decode`] when `bytes` is not exactly the packed length.
pub fn decode(bytes: &[u8], width: u32, out: &mut [u16]) -> Result<()> {
    if width <= 16 {
        return bitpack::unpack_u16(bytes, width, out);
    }
    // Wider fields (not produced by the codec) keep their low 16 bits, as codes are u16.
    bitpack::unpack(bytes, out.len(), width, |i, v| out[i] = v as u16)
}
