//! Order-0 entropy coder for exponent codes: length-limited canonical Huffman over interleaved
//! bitstreams, built to decode faster than the rANS coder ([`super::entropy`]).
//!
//! The symbols are split into [`STREAMS`] runs (one run below [`MIN_SPLIT`] symbols),
//! each written as its own LSB-first bitstream, so the decoder runs that many independent
//! lookup chains at once. Codes are canonical and at most [`LIMIT`] bits long (longer when the
//! alphabet has more than `2^LIMIT` symbols, up to [`MAX_LEN`]), so the decoder's tables are small
//! (a few thousand entries) whatever the width; see `decode.rs` for the loops.
//!
//! Stream layout (all little-endian; empty when there are no symbols):
//! - a kind byte: 0 (single), 0xff (verbatim), or the number of bitstreams (1 or [`STREAMS`]);
//! - single (one distinct symbol, no bits): the symbol (varint);
//! - verbatim (more than `2^MAX_LEN` distinct symbols, which no code of [`MAX_LEN`] bits
//!   covers): every symbol as a `u16`;
//! - coded: `lo` (varint), `span` (varint), then `ceil(span / 2)` bytes of 4-bit code lengths of the
//!   symbols `lo..lo + span` (the first in the low nibble; 0: the symbol is absent), which must form
//!   a complete prefix code of at least two symbols; then, for each bitstream but the last, its
//!   symbol count and byte length (`u32` each; the last bitstream has the rest); then the
//!   bitstreams, over consecutive runs of the symbols, each symbol its bit-reversed canonical code,
//!   LSB first, padded with zero bits to a whole byte. The encoder splits the symbols where the
//!   bitstreams get equal bit lengths, so that the decoder's chains end together.

mod decode;
mod encode;
mod lengths;
mod read;

use crate::error::{Error, Result};

/// Widest symbol the coder takes.
pub const MAX_WIDTH: u32 = 16;
/// Widest symbol [`decode_bytes`] takes.
pub(crate) const MAX_BYTE_WIDTH: u32 = 8;
/// Longest code the encoder makes when the alphabet allows it (the decode table is then
/// `2^LIMIT` entries); measured against 12 in `docs/coding.md`.
pub const LIMIT: u32 = 11;
/// Longest code a stream may hold (its length is a 4-bit field).
pub const MAX_LEN: u32 = 15;
/// Bitstreams of a stream of at least [`MIN_SPLIT`] symbols.
pub const STREAMS: usize = 4;
/// Symbols from which the encoder splits a stream into [`STREAMS`] bitstreams.
pub const MIN_SPLIT: usize = 256;

/// Kind byte: one distinct symbol, no bits.
const SINGLE: u8 = 0;
/// Kind byte: every symbol as a `u16`.
const VERBATIM: u8 = 0xff;

/// Histogram of the symbols (masked to `width` bits), one bin per possible symbol.
pub fn histogram(symbols: &[u16], width: u32) -> Vec<u32> {
    super::entropy::histogram(symbols, width)
}

/// A code for one stream, built from the histogram of its symbols.
#[derive(Clone, Debug)]
pub struct Table {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    /// Only this symbol occurs.
    Single(u16),
    /// Too many distinct symbols for [`MAX_LEN`]-bit codes.
    Verbatim,
    Coded(Coded),
}

/// A Huffman code over the symbols `lo..lo + lengths.len()`.
#[derive(Clone, Debug)]
struct Coded {
    lo: u16,
    /// Code length per symbol (0: absent).
    lengths: Vec<u8>,
    /// Per symbol from 0 (as the histogram): the length in the low byte, the bit-reversed
    /// canonical code above, or [`encode::ABSENT`].
    codes: Vec<u32>,
    /// Payload bits of the histogram the code was built from.
    bits: u64,
}

impl Table {
    /// Builds the code of a histogram (one bin per symbol); `None` when it counts nothing.
    pub fn from_histogram(hist: &[u32]) -> Option<Table> {
        let lo = hist.iter().position(|&h| h > 0)?;
        let hi = hist.iter().rposition(|&h| h > 0)?;
        let used = &hist[lo..=hi];
        let present: Vec<u64> = used
            .iter()
            .filter(|&&h| h > 0)
            .map(|&h| u64::from(h))
            .collect();
        let kind = match present.len() {
            1 => Kind::Single(lo as u16),
            n if n > 1 << MAX_LEN => Kind::Verbatim,
            n => {
                let limit = LIMIT.max(usize::BITS - (n - 1).leading_zeros());
                let short = lengths::limited_lengths(&present, limit);
                let mut short = short.into_iter();
                let lengths: Vec<u8> = used
                    .iter()
                    .map(|&h| if h > 0 { short.next().unwrap_or(0) } else { 0 })
                    .collect();
                let mut codes = vec![encode::ABSENT; hist.len()];
                for ((slot, c), &l) in codes[lo..]
                    .iter_mut()
                    .zip(lengths::canonical_codes(&lengths))
                    .zip(&lengths)
                {
                    if l > 0 {
                        *slot = u32::from(l) | (u32::from(c) << 8);
                    }
                }
                let bits = used
                    .iter()
                    .zip(&lengths)
                    .map(|(&h, &l)| u64::from(h) * u64::from(l))
                    .sum();
                Kind::Coded(Coded {
                    lo: lo as u16,
                    lengths,
                    codes,
                    bits,
                })
            }
        };
        Some(Table { kind })
    }

    /// The longest code (0 for a single symbol, 16 for the verbatim form).
    #[cfg(test)]
    pub fn max_code_len(&self) -> u32 {
        match &self.kind {
            Kind::Single(_) => 0,
            Kind::Verbatim => 16,
            Kind::Coded(c) => u32::from(c.lengths.iter().copied().max().unwrap_or(0)),
        }
    }

    /// Bytes of the kind byte and the code description.
    fn header_len(&self) -> usize {
        match &self.kind {
            Kind::Single(s) => 1 + crate::coding::varint::len(u64::from(*s)),
            Kind::Verbatim => 1,
            Kind::Coded(c) => {
                1 + crate::coding::varint::len(u64::from(c.lo))
                    + crate::coding::varint::len(c.lengths.len() as u64)
                    + c.lengths.len().div_ceil(2)
            }
        }
    }

    /// The payload bits of `hist` under this code, and the bitstreams of `n` symbols.
    fn payload(&self, hist: &[u32], n: usize) -> (u64, usize) {
        match &self.kind {
            Kind::Single(_) => (0, 0),
            Kind::Verbatim => (16 * n as u64, 0),
            Kind::Coded(c) => {
                let bits = hist
                    .iter()
                    .skip(usize::from(c.lo))
                    .zip(&c.lengths)
                    .map(|(&h, &l)| u64::from(h) * u64::from(l))
                    .sum();
                (bits, streams_for(n))
            }
        }
    }

    /// Bits the codes of the symbols counted in `hist` take (no header): what a sample's table
    /// predicts for a whole chunk, scaled.
    pub fn coded_bits(&self, hist: &[u32]) -> u64 {
        let n = hist.iter().map(|&h| h as usize).sum();
        self.payload(hist, n).0
    }

    /// The stream length for `n` symbols with histogram `hist` (the one the table was built
    /// from), without encoding: an upper bound, at most `STREAMS - 1` bytes (the padding of all
    /// bitstreams but one) above the real length.
    pub fn estimated_len(&self, hist: &[u32], n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let (bits, streams) = self.payload(hist, n);
        let slack = streams.saturating_sub(1);
        self.header_len() + 8 * slack + bits.div_ceil(8) as usize + slack
    }

    /// A lower bound on the stream length, at most `STREAMS - 1` bytes below
    /// [`Table::estimated_len`].
    #[cfg(test)]
    pub fn min_len(&self, hist: &[u32], n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let (bits, streams) = self.payload(hist, n);
        self.header_len() + 8 * streams.saturating_sub(1) + bits.div_ceil(8) as usize
    }
}

/// Bitstreams the encoder writes for `n` symbols.
fn streams_for(n: usize) -> usize {
    if n >= MIN_SPLIT {
        STREAMS
    } else {
        1
    }
}

/// Huffman-codes `symbols` (each masked to `width` bits, `width` at most [`MAX_WIDTH`]), appending
/// the stream to `out`.
pub fn encode(symbols: &[u16], width: u32, out: &mut Vec<u8>) {
    let width = width.min(MAX_WIDTH);
    let hist = histogram(symbols, width);
    encode_counted(symbols, width, &hist, out);
}

/// [`encode`] with `hist`, the [`histogram`] of `symbols` at `width` (a caller that counted the
/// symbols while making them saves a pass).
pub(crate) fn encode_counted(symbols: &[u16], width: u32, hist: &[u32], out: &mut Vec<u8>) {
    let width = width.min(MAX_WIDTH);
    if let Some(table) = Table::from_histogram(hist) {
        let start = out.len();
        let mask = mask_of(width);
        let coded = match &table.kind {
            // The table codes every symbol it counted, so the loop need not look for a missing one.
            Kind::Coded(c) => encode_coded(symbols, mask, c, false, out),
            _ => encode_with_table(symbols, width, &table, out),
        };
        if coded.is_err() {
            // Unreachable (the table codes every symbol of its own histogram, and a bitstream
            // over 4 GiB needs more symbols than a chunk holds); the verbatim form always works.
            debug_assert!(false, "huffman table does not code its own symbols");
            out.truncate(start);
            encode_verbatim(symbols, mask, out);
        }
    }
}

fn mask_of(width: u32) -> u16 {
    ((1u32 << width.min(MAX_WIDTH)) - 1) as u16
}

/// Encodes `symbols` (masked to `width` bits) with `table`, appending the stream to `out`.
///
/// # Errors
/// [`Error::InvalidArgument`] when a symbol has no code in `table` (it was built from another
/// histogram) or a bitstream would exceed 4 GiB; `out` is then left as it was.
pub fn encode_with_table(
    symbols: &[u16],
    width: u32,
    table: &Table,
    out: &mut Vec<u8>,
) -> Result<()> {
    if symbols.is_empty() {
        return Ok(());
    }
    let mask = mask_of(width);
    match &table.kind {
        Kind::Single(s) => {
            if let Some(&other) = symbols.iter().find(|&&x| x & mask != *s) {
                return Err(Error::invalid(format!(
                    "huffman: symbol {} has no code in a table of the one symbol {s}",
                    other & mask
                )));
            }
            out.push(SINGLE);
            crate::coding::varint::put(u64::from(*s), out);
        }
        Kind::Verbatim => encode_verbatim(symbols, mask, out),
        Kind::Coded(c) => {
            let start = out.len();
            let result = encode_coded(symbols, mask, c, true, out);
            if result.is_err() {
                out.truncate(start);
            }
            result?;
        }
    }
    Ok(())
}

fn encode_verbatim(symbols: &[u16], mask: u16, out: &mut Vec<u8>) {
    out.reserve(1 + 2 * symbols.len());
    out.push(VERBATIM);
    out.extend(symbols.iter().flat_map(|&s| (s & mask).to_le_bytes()));
}

fn encode_coded(
    symbols: &[u16],
    mask: u16,
    c: &Coded,
    checked: bool,
    out: &mut Vec<u8>,
) -> Result<()> {
    // The bytes do not depend on the level, and `encode` has no error path for an unusable
    // `SFP_SIMD`: the portable loop then writes the same stream.
    let level = crate::simd::current().unwrap_or(crate::simd::Level::Scalar);
    let n = symbols.len();
    let streams = streams_for(n);
    out.push(streams as u8);
    crate::coding::varint::put(u64::from(c.lo), out);
    crate::coding::varint::put(c.lengths.len() as u64, out);
    out.extend(
        c.lengths
            .chunks(2)
            .map(|p| p[0] | (p.get(1).copied().unwrap_or(0) << 4)),
    );
    let sizes_at = out.len();
    out.resize(sizes_at + 8 * (streams - 1), 0);
    let max_len = c.lengths.iter().copied().max().unwrap_or(0);
    let code = encode::Code::new(&c.codes, mask, max_len);
    let mut next = 0usize;
    let mut written = 0u64;
    for k in 0..streams {
        // Bitstreams of equal bit length (by the table's count) finish decoding together.
        let target = if k + 1 == streams {
            u64::MAX
        } else {
            (c.bits * (k as u64 + 1) / streams as u64).saturating_sub(written)
        };
        let start = out.len();
        let coded = encode::bitstream(level, &symbols[next..], &code, target, checked, out);
        if let Some(s) = coded.missing {
            return Err(Error::invalid(format!(
                "huffman: symbol {s} has no code in the table"
            )));
        }
        next += coded.symbols;
        written += coded.bits;
        if k + 1 < streams {
            let count = u32::try_from(coded.symbols);
            let len = u32::try_from(out.len() - start);
            let (Ok(count), Ok(len)) = (count, len) else {
                return Err(Error::invalid("huffman: a bitstream exceeds 4 GiB"));
            };
            let at = sizes_at + 8 * k;
            out[at..at + 4].copy_from_slice(&count.to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
        }
    }
    Ok(())
}

/// Decodes exactly `out.len()` symbols from the whole stream `bytes`.
///
/// # Errors
/// [`Error::Decode`] when the stream is malformed (unknown kind, a code-length table that is not a
/// complete prefix code or names symbols beyond `width` bits, bitstream lengths beyond the
/// stream), truncated, ends before or after its symbols, or `width` exceeds [`MAX_WIDTH`];
/// [`Error::InvalidArgument`] when `SFP_SIMD` names a level this CPU cannot run.
pub fn decode(bytes: &[u8], width: u32, out: &mut [u16]) -> Result<()> {
    let stream = read::parse(bytes, check_width(width, MAX_WIDTH)?, out.len())?;
    decode::decode::<decode::Wide>(stream, |s| s, out)
}

/// [`decode`] for symbols of at most [`MAX_BYTE_WIDTH`] bits, writing `map[symbol]` for each as
/// a byte: each symbol goes through the caller's map (a planes cut's shift and rotation of it, say)
/// straight into the output, so the one-byte element types need no 16-bit staging and no pass
/// after it. It reads exactly the streams [`decode`] reads.
///
/// # Errors
/// As [`decode`], and when `width` exceeds [`MAX_BYTE_WIDTH`].
pub(crate) fn decode_bytes(
    bytes: &[u8],
    width: u32,
    map: &[u8; 256],
    out: &mut [u8],
) -> Result<()> {
    let stream = read::parse(bytes, check_width(width, MAX_BYTE_WIDTH)?, out.len())?;
    // The parser checked every symbol fits `width <= 8` bits.
    decode::decode::<decode::Narrow>(stream, |s| map[usize::from(s) & 0xff], out)
}

fn check_width(width: u32, widest: u32) -> Result<u32> {
    if width > widest {
        return Err(Error::decode(format!(
            "huffman stream: width {width} exceeds {widest}"
        )));
    }
    Ok(width)
}

#[cfg(test)]
mod tests;
