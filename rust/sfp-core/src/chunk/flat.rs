//! The flat chunk coders (`exponent_coding="raw"`, mantissas packed flat): the fields go straight
//! between the elements and the chunk's packed streams, with no code array or staging buffer in
//! between. The bytes are the ones the general coders of [`super`] write and read for such a chunk.
//! A flat chunk's size follows from its length, whether any value is negative and how many specials
//! it holds ([`len`]), so the encoder writes it straight into its place in the frame.

use super::{Parsed, CHUNK_HEADER, HAS_SIGNS};
use crate::coding::bitpack::{check_packed_len, packed_len, packer, unpacker};
use crate::coding::exponent::Coder;
use crate::error::{Error, Result};
use crate::kernel::{self, Codes, Params, Split, Word};
use crate::reduce::Reducer;
use crate::runtime::memory::Stores;
use crate::simd::Level;

/// Bytes of a flat chunk of `n` values of `size` bytes with a sign stream when `negative` and
/// `specials` exceptions.
///
/// # Errors
/// [`Error::InvalidArgument`] when the size overflows `usize`.
pub(crate) fn len(
    n: usize,
    size: usize,
    bits: (u32, u32),
    negative: bool,
    specials: usize,
) -> Result<usize> {
    let signs = if negative { n.div_ceil(8) } else { 0 };
    let streams = [
        signs,
        packed_len(n, bits.0)?,
        packed_len(n, bits.1)?,
        specials.saturating_mul(4 + size),
    ];
    streams
        .iter()
        .try_fold(CHUNK_HEADER, |a, &b| a.checked_add(b))
        .ok_or_else(|| Error::invalid(format!("a chunk of {n} values overflows usize")))
}

/// Encodes `src` (the first element at flat index `first`) into `dst`, exactly [`len`] bytes for
/// the `negative` and special count that [`kernel::scan_flat`] found, as a raw-coded chunk with
/// flat mantissas.
///
/// # Errors
/// [`Error::InvalidArgument`] when `dst` does not match the chunk (a bug: the scan and the split
/// disagree).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode<W: Word, const M: u8>(
    level: Level,
    p: &Params<W>,
    bits: (u32, u32),
    src: &[u8],
    first: u64,
    negative: bool,
    dst: &mut [u8],
) -> Result<()> {
    let (exp_bits, man_bits) = bits;
    let n = src.len() / W::SIZE;
    let mismatch = || Error::invalid("a flat chunk does not match its predicted size");
    let sign_len = if negative { n.div_ceil(8) } else { 0 };
    let exp_len = packed_len(n, exp_bits)?;
    let streams = CHUNK_HEADER + sign_len + exp_len + packed_len(n, man_bits)?;
    let (fixed, exception_dst) = dst.split_at_mut_checked(streams).ok_or_else(mismatch)?;
    let (header, rest) = fixed.split_at_mut(CHUNK_HEADER);
    // Without negative values the sign stream is absent: the kernel writes into an empty one.
    let (signs, rest) = rest.split_at_mut(sign_len);
    let (exps, mants) = rest.split_at_mut(exp_len);
    let mut exceptions = Vec::new();
    let any_negative = kernel::split::run::<W, M>(
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
    if any_negative != negative || exceptions.len() != exception_dst.len() {
        return Err(mismatch());
    }
    exception_dst.copy_from_slice(&exceptions);
    header[0] = if negative { HAS_SIGNS } else { 0 };
    header[1] = Coder::Raw.id();
    header[2..6].copy_from_slice(&(exp_len as u32).to_le_bytes());
    let count = exceptions.len() / (4 + W::SIZE);
    header[6..10].copy_from_slice(&(count as u32).to_le_bytes());
    Ok(())
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
    stores: Stores,
    out: &mut [u8],
) -> Result<bool> {
    let (exp_bits, man_bits) = bits;
    let layout = &parsed.layout;
    if layout.coder != Coder::Raw || parsed.joint_sign || layout.mantissa.is_some() {
        return Ok(false);
    }
    check_packed_len(parsed.exponents.len(), layout.values, exp_bits)?;
    let check = man_bits > 0 && r.zero_code_is_zero();
    let stray = kernel::expand_flat::run::<W, M>(
        level,
        p,
        parsed.signs,
        (parsed.exponents, unpacker(exp_bits), exp_bits),
        (parsed.mantissas, unpacker(man_bits), man_bits),
        check,
        stores,
        out,
    );
    Ok(!stray)
}
