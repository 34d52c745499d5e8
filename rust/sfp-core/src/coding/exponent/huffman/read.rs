//! Reading a stream's header: its kind, and for a coded stream the code lengths and the bitstream
//! directory, each checked against the bytes before anything is allocated. Both decoders (16-bit
//! symbols, and bytes through a map) read a stream through [`parse`].

use std::ops::Range;

use super::{MAX_LEN, SINGLE, STREAMS, VERBATIM};
use crate::error::{Error, Result};

/// A stream of a known number of symbols, parsed and checked.
pub(super) enum Stream<'a> {
    /// No bytes and no symbols.
    Empty,
    /// Every symbol is this one.
    Single(u16),
    /// Every symbol as a little-endian `u16`, each checked to fit the width.
    Verbatim(&'a [u8]),
    /// One bitstream.
    Coded(Coded<'a, 1>),
    /// [`STREAMS`] bitstreams.
    Split(Coded<'a, STREAMS>),
}

/// A coded stream's code and bitstream directory: symbol `lo + i` has code length `lengths[i]`
/// (0: absent), the lengths forming a complete prefix code.
pub(super) struct Coded<'a, const N: usize> {
    pub lo: u16,
    pub lengths: Vec<u8>,
    pub payload: &'a [u8],
    pub split: Split<N>,
}

/// Where the bitstreams lie in a coded stream's payload and where their symbols go in the output:
/// bitstream `k` is `payload[bytes[k]]` and decodes into `out[symbols[k]]`.
pub(super) struct Split<const N: usize> {
    pub bytes: [Range<usize>; N],
    pub symbols: [Range<usize>; N],
}

/// Parses the whole stream `bytes` of `symbols` symbols of `width` bits (the caller checked the
/// width against its decoder's widest).
///
/// # Errors
/// [`Error::Decode`] when the stream is empty but symbols are expected (or the reverse), has an
/// unknown kind, a symbol or code that does not fit `width` bits, a code-length table that is not
/// a complete prefix code, bitstream lengths beyond the stream, or bytes left over.
pub(super) fn parse(bytes: &[u8], width: u32, symbols: usize) -> Result<Stream<'_>> {
    let Some((&kind, rest)) = bytes.split_first() else {
        return if symbols == 0 {
            Ok(Stream::Empty)
        } else {
            Err(Error::decode(format!(
                "huffman stream: empty, but {symbols} symbols expected"
            )))
        };
    };
    if symbols == 0 {
        return Err(Error::decode(
            "huffman stream: bytes present for zero symbols",
        ));
    }
    match kind {
        SINGLE => single(rest, width),
        VERBATIM => verbatim(rest, width, symbols),
        1 => parse_coded(rest, width, symbols).map(Stream::Coded),
        k if usize::from(k) == STREAMS => parse_coded(rest, width, symbols).map(Stream::Split),
        other => Err(Error::decode(format!(
            "huffman stream: unknown kind {other}"
        ))),
    }
}

fn single(rest: &[u8], width: u32) -> Result<Stream<'_>> {
    let mut pos = 0;
    let s = crate::coding::varint::get(rest, &mut pos, "huffman", "header")?;
    if s >= 1u64 << width {
        return Err(Error::decode(format!(
            "huffman stream: symbol {s} does not fit {width} bits"
        )));
    }
    if pos != rest.len() {
        return Err(Error::decode(
            "huffman stream: bytes left over after a single-symbol stream",
        ));
    }
    Ok(Stream::Single(s as u16))
}

fn verbatim(rest: &[u8], width: u32, symbols: usize) -> Result<Stream<'_>> {
    if rest.len() as u64 != 2 * symbols as u64 {
        return Err(Error::decode(format!(
            "huffman stream: {} verbatim bytes for {symbols} symbols",
            rest.len()
        )));
    }
    if let Some(b) = rest
        .chunks_exact(2)
        .find(|b| u32::from(u16::from_le_bytes([b[0], b[1]])) >> width != 0)
    {
        return Err(Error::decode(format!(
            "huffman stream: symbol {} does not fit {width} bits",
            u16::from_le_bytes([b[0], b[1]])
        )));
    }
    Ok(Stream::Verbatim(rest))
}

/// The code and bitstream directory of a coded stream of `symbols` symbols of `width` bits.
fn parse_coded<const N: usize>(rest: &[u8], width: u32, symbols: usize) -> Result<Coded<'_, N>> {
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
            "huffman stream: bitstreams claim {claimed} symbols, more than the {symbols} expected"
        )));
    }
    sizes[N - 1] = payload.len() - listed as usize;
    counts[N - 1] = symbols - claimed as usize;
    let mut split = Split::<N> {
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
    Ok(Coded {
        lo: lo as u16,
        lengths,
        payload,
        split,
    })
}
