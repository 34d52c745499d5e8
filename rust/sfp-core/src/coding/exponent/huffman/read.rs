//! Reading a stream: the verbatim form, and a coded stream's code lengths and bitstream directory,
//! each checked against the bytes before anything is allocated.

use super::{decode, MAX_LEN};
use crate::error::{Error, Result};

pub(super) fn decode_verbatim(rest: &[u8], width: u32, out: &mut [u16]) -> Result<()> {
    if rest.len() as u64 != 2 * out.len() as u64 {
        return Err(Error::decode(format!(
            "huffman stream: {} verbatim bytes for {} symbols",
            rest.len(),
            out.len()
        )));
    }
    for (o, b) in out.iter_mut().zip(rest.chunks_exact(2)) {
        *o = u16::from_le_bytes([b[0], b[1]]);
        if u32::from(*o) >> width != 0 {
            return Err(Error::decode(format!(
                "huffman stream: symbol {} does not fit {width} bits",
                *o
            )));
        }
    }
    Ok(())
}

/// A coded stream's code and bitstream directory, parsed and checked against its bytes.
pub(super) struct Parsed<'a, const N: usize> {
    pub lo: u16,
    pub lengths: Vec<u8>,
    pub payload: &'a [u8],
    pub split: decode::Split<N>,
}

/// Parses the code and the bitstream lengths of a coded stream (everything checked against
/// `rest` before anything is allocated), then decodes.
pub(super) fn decode_coded<const N: usize>(rest: &[u8], width: u32, out: &mut [u16]) -> Result<()> {
    let parsed = parse_coded::<N>(rest, width, out.len())?;
    let code = decode::Code {
        lo: parsed.lo,
        lengths: &parsed.lengths,
    };
    decode::decode_streams(&code, parsed.payload, &parsed.split, out)
}

/// The code and bitstream directory of a coded stream of `symbols` symbols of `width` bits.
pub(super) fn parse_coded<const N: usize>(
    rest: &[u8],
    width: u32,
    symbols: usize,
) -> Result<Parsed<'_, N>> {
    let mut pos = 0;
    let lo = crate::coding::varint::get(rest, &mut pos, "huffman", "header")?;
    let span = crate::coding::varint::get(rest, &mut pos, "huffman", "header")?;
    let alphabet = 1u64 << width;
    if span < 2 || lo >= alphabet || span > alphabet - lo {
        return Err(Error::decode(format!(
            "huffman stream: symbols {lo}..{lo}+{span} do not fit {width} bits"
        )));
    }
    let nibbles = rest
        .get(pos..pos + span.div_ceil(2) as usize)
        .ok_or_else(|| Error::decode("huffman stream: truncated code lengths"))?;
    pos += nibbles.len();
    let lengths: Vec<u8> = nibbles
        .iter()
        .flat_map(|&b| [b & 15, b >> 4])
        .take(span as usize)
        .collect();
    if span % 2 == 1 && nibbles.last().is_some_and(|&b| b >> 4 != 0) {
        return Err(Error::decode(
            "huffman stream: code length past the last symbol",
        ));
    }
    let kraft: u64 = lengths
        .iter()
        .filter(|&&l| l > 0)
        .map(|&l| 1u64 << (MAX_LEN - u32::from(l)))
        .sum();
    if kraft != 1 << MAX_LEN {
        return Err(Error::decode(format!(
            "huffman stream: code lengths have Kraft sum {kraft}/{}, not a complete code",
            1u64 << MAX_LEN
        )));
    }
    let mut sizes = [0usize; N];
    let mut counts = [0usize; N];
    for (size, count) in sizes.iter_mut().zip(counts.iter_mut()).take(N - 1) {
        let b = rest
            .get(pos..pos + 8)
            .ok_or_else(|| Error::decode("huffman stream: truncated bitstream lengths"))?;
        pos += 8;
        *count = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        *size = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    }
    let payload = &rest[pos..];
    let listed: u64 = sizes.iter().map(|&s| s as u64).sum();
    if listed > payload.len() as u64 {
        return Err(Error::decode(format!(
            "huffman stream: bitstream lengths sum to {listed}, beyond the {} bytes left",
            payload.len()
        )));
    }
    let claimed: u64 = counts.iter().map(|&c| c as u64).sum();
    if claimed > symbols as u64 {
        return Err(Error::decode(format!(
            "huffman stream: bitstreams claim {claimed} symbols, more than the {} expected",
            symbols
        )));
    }
    sizes[N - 1] = payload.len() - listed as usize;
    counts[N - 1] = symbols - claimed as usize;
    let mut split = decode::Split::<N> {
        bytes: std::array::from_fn(|_| 0..0),
        symbols: std::array::from_fn(|_| 0..0),
    };
    let (mut byte, mut symbol) = (0, 0);
    for k in 0..N {
        split.bytes[k] = byte..byte + sizes[k];
        split.symbols[k] = symbol..symbol + counts[k];
        byte += sizes[k];
        symbol += counts[k];
    }
    Ok(Parsed {
        lo: lo as u16,
        lengths,
        payload,
        split,
    })
}
