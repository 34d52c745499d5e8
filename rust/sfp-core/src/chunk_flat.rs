//! The flat chunk coders (`exponent_coding="raw"`, mantissas packed flat): the fields go straight
//! between the elements and the chunk's packed streams, with no code array or staging buffer in
//! between. The bytes are the ones the general coders of [`super`] write and read for such a chunk.

use super::{Parsed, Placed, CHUNK_HEADER, HAS_SIGNS};
use crate::bitpack::{check_packed_len, packed_len, packer, unpacker};
use crate::error::Result;
use crate::exponent::Coder;
use crate::kernel::{self, Codes, Params, Split, Word};
use crate::reduce::Reducer;
use crate::simd::Level;

/// Encodes `src` (the first element at flat index `first`) into `slot` as a raw-coded chunk with flat
/// mantissas; `None` when the slot cannot hold the streams (the caller's general path then runs).
#[allow(clippy::too_many_arguments)]
pub(super) fn encode<W: Word, const M: u8>(
    level: Level,
    p: &Params<W>,
    exp_bits: u32,
    man_bits: u32,
    src: &[u8],
    first: u64,
    slot: &mut [u8],
) -> Option<Placed> {
    let n = src.len() / W::SIZE;
    let sign_len = n.div_ceil(8);
    let exp_len = packed_len(n, exp_bits).ok()?;
    let fixed = CHUNK_HEADER + sign_len + exp_len + packed_len(n, man_bits).ok()?;
    let (header, rest) = slot.get_mut(..fixed)?.split_at_mut(CHUNK_HEADER);
    let (signs, rest) = rest.split_at_mut(sign_len);
    let (exps, mants) = rest.split_at_mut(exp_len);
    let mut exceptions = Vec::new();
    let negative = kernel::split::run::<W, M>(
        level,
        p,
        src,
        first,
        &mut Split {
            signs,
            codes: Codes::Packed(exps, packer(exp_bits), exp_bits),
            mants,
            exceptions: &mut exceptions,
            pack: packer(man_bits),
            man_bits,
        },
    );
    header[0] = if negative { HAS_SIGNS } else { 0 };
    header[1] = Coder::Raw.id();
    header[2..6].copy_from_slice(&(exp_len as u32).to_le_bytes());
    let count = exceptions.len() / (4 + W::SIZE);
    header[6..10].copy_from_slice(&(count as u32).to_le_bytes());
    let mut len = fixed;
    if !negative {
        // Written in place of the sign stream it turned out not to need (rare for real tensors).
        slot.copy_within(CHUNK_HEADER + sign_len..fixed, CHUNK_HEADER);
        len -= sign_len;
    }
    Some(match slot.get_mut(len..len + exceptions.len()) {
        Some(dst) => {
            dst.copy_from_slice(&exceptions);
            Placed::InSlot(len + exceptions.len())
        }
        None => Placed::Own([&slot[..len], &exceptions].concat()),
    })
}

/// Decodes a raw-coded chunk with flat mantissas into `out`; `Ok(false)` when the chunk is coded
/// otherwise, or holds a zero code with a nonzero mantissa (the general decoder then runs and reports
/// it).
///
/// # Errors
/// [`crate::Error::Decode`] when the exponent stream has the wrong length.
pub(super) fn decode<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    p: &Params<W>,
    bits: (u32, u32),
    parsed: &Parsed<'_>,
    out: &mut [u8],
) -> Result<bool> {
    let (exp_bits, man_bits) = bits;
    let layout = &parsed.layout;
    if layout.coder != Coder::Raw || parsed.joint_sign || layout.mantissa.is_some() {
        return Ok(false);
    }
    check_packed_len(parsed.exponents.len(), layout.values, exp_bits)?;
    let stray = kernel::expand_flat::run::<W, M>(
        level,
        p,
        parsed.signs,
        (parsed.exponents, unpacker(exp_bits), exp_bits),
        (parsed.mantissas, unpacker(man_bits), man_bits),
        out,
    );
    Ok(!(stray && man_bits > 0 && r.zero_code_is_zero()))
}
