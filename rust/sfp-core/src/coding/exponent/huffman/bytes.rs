//! The decoder for symbols of at most 8 bits, written as bytes: each symbol goes through the
//! caller's byte map (a planes cut's shift and rotation of it, say) straight into the output, so
//! the one-byte element types need no 16-bit staging and no pass after it.
//!
//! The loops are those of `decode.rs` with 8-byte entries of up to six symbols, tables indexed by
//! 11 bits (16 KiB). A 12-bit index decodes a few more codes per lookup, but a one-byte type's
//! block of 128 Ki values builds its table anew, and the larger table's construction took more
//! instructions than the lookups saved (measured on FP8 MiniLM weights: 9.9 against 4.8 million
//! for 2 Mi values, the lookups 49.9 against 50.4 million). The bytes a stream holds do not
//! depend on the decoder: this one reads exactly the streams [`super::decode`] reads.

use std::ops::Range;

use super::decode::Split;
use super::read::parse_coded;
use super::{lengths, MAX_LEN, SINGLE, STREAMS, VERBATIM};
use crate::error::{Error, Result};

/// The widest symbol this decoder takes.
pub(crate) const MAX_BYTE_WIDTH: u32 = 8;
/// Bits the decode tables are indexed by at least (see the module doc).
const MIN_TABLE_BITS: u32 = 11;
/// Entries of the largest table (indexed by [`MAX_LEN`] bits); only the first `2^table_bits` are
/// written and read, and a masked index needs no bounds check.
const FULL: usize = 1 << MAX_LEN;
/// Most symbols one entry of the fast table holds (its last two bytes are the entry's header).
const PER_ENTRY: usize = 6;
/// Symbols from which the fast table pays for its construction.
const FAST_MIN: usize = 4096;

/// One entry of the fast table: up to six mapped symbols, the bits their codes take and their
/// count. The entry is stored to the output whole; the bytes past the count are overwritten by the
/// next entry or by the careful loop.
#[derive(Clone, Copy, Default)]
#[repr(C, align(8))]
struct Entry {
    symbols: [u8; PER_ENTRY],
    used: u8,
    count: u8,
}

/// The decoder's lookup tables, reused from stream to stream.
#[derive(Default)]
struct Tables {
    /// One symbol per entry: the mapped symbol in the low byte, its code length above.
    single: Vec<u32>,
    multi: Vec<Entry>,
}

thread_local! {
    static TABLES: std::cell::RefCell<Tables> = const {
        std::cell::RefCell::new(Tables { single: Vec::new(), multi: Vec::new() })
    };
}

/// Decodes exactly `out.len()` symbols of `width` bits (at most [`MAX_BYTE_WIDTH`]) from the whole
/// stream `bytes`, writing `map[symbol]` for each.
///
/// # Errors
/// As [`super::decode`]: [`Error::Decode`] when the stream is malformed, truncated, ends before or
/// after its symbols, or `width` exceeds [`MAX_BYTE_WIDTH`]; [`Error::InvalidArgument`] when
/// `SFP_SIMD` names a level this CPU cannot run.
pub(crate) fn decode_bytes(
    bytes: &[u8],
    width: u32,
    map: &[u8; 256],
    out: &mut [u8],
) -> Result<()> {
    if width > MAX_BYTE_WIDTH {
        return Err(Error::decode(format!(
            "huffman stream: width {width} exceeds {MAX_BYTE_WIDTH}"
        )));
    }
    let Some((&kind, rest)) = bytes.split_first() else {
        return if out.is_empty() {
            Ok(())
        } else {
            Err(Error::decode(format!(
                "huffman stream: empty, but {} symbols expected",
                out.len()
            )))
        };
    };
    if out.is_empty() {
        return Err(Error::decode(
            "huffman stream: bytes present for zero symbols",
        ));
    }
    let alphabet = 1u64 << width;
    match kind {
        SINGLE => {
            let mut pos = 0;
            let s = crate::coding::varint::get(rest, &mut pos, "huffman", "header")?;
            if s >= alphabet {
                return Err(Error::decode(format!(
                    "huffman stream: symbol {s} does not fit {width} bits"
                )));
            }
            if pos != rest.len() {
                return Err(Error::decode(
                    "huffman stream: bytes left over after a single-symbol stream",
                ));
            }
            out.fill(map[s as usize]);
            Ok(())
        }
        VERBATIM => verbatim(rest, width, map, out),
        1 => coded::<1>(rest, width, map, out),
        k if usize::from(k) == STREAMS => coded::<STREAMS>(rest, width, map, out),
        other => Err(Error::decode(format!(
            "huffman stream: unknown kind {other}"
        ))),
    }
}

fn verbatim(rest: &[u8], width: u32, map: &[u8; 256], out: &mut [u8]) -> Result<()> {
    if rest.len() as u64 != 2 * out.len() as u64 {
        return Err(Error::decode(format!(
            "huffman stream: {} verbatim bytes for {} symbols",
            rest.len(),
            out.len()
        )));
    }
    for (o, b) in out.iter_mut().zip(rest.chunks_exact(2)) {
        let s = u16::from_le_bytes([b[0], b[1]]);
        if u32::from(s) >> width != 0 {
            return Err(Error::decode(format!(
                "huffman stream: symbol {s} does not fit {width} bits"
            )));
        }
        *o = map[usize::from(s)];
    }
    Ok(())
}

fn coded<const N: usize>(rest: &[u8], width: u32, map: &[u8; 256], out: &mut [u8]) -> Result<()> {
    let parsed = parse_coded::<N>(rest, width, out.len())?;
    let level = crate::simd::current()?;
    let (payload, split) = (parsed.payload, &parsed.split);
    let in_bounds = split
        .bytes
        .iter()
        .all(|r| r.start <= r.end && r.end <= payload.len())
        && split
            .symbols
            .iter()
            .all(|r| r.start <= r.end && r.end <= out.len());
    if !in_bounds {
        return Err(Error::decode(
            "huffman stream: bitstreams beyond the stream",
        ));
    }
    crate::runtime::memory::with_reused(&TABLES, |tables| {
        let max_len = parsed.lengths.iter().copied().max().unwrap_or(0);
        let bits = u32::from(max_len).max(MIN_TABLE_BITS);
        tables.build_single(parsed.lo, &parsed.lengths, map, bits);
        let mut pos: [usize; N] = std::array::from_fn(|k| 8 * split.bytes[k].start);
        let mut at: [usize; N] = std::array::from_fn(|k| split.symbols[k].start);
        if out.len() >= FAST_MIN {
            let multi = tables.build_multi(bits)?;
            let run = match bits {
                11 => run::<N, 11>,
                12 => run::<N, 12>,
                13 => run::<N, 13>,
                14 => run::<N, 14>,
                _ => run::<N, 15>,
            };
            run(level, multi, payload, split, out, &mut pos, &mut at);
        }
        let single = tables.single_table()?;
        let mask = (1u64 << bits) - 1;
        for k in 0..N {
            let bytes = split.bytes[k].clone();
            let symbols: Range<usize> = split.symbols[k].clone();
            let from = (pos[k] - 8 * bytes.start, at[k] - symbols.start);
            careful(single, mask, &payload[bytes], &mut out[symbols], from).map_err(|what| {
                Error::decode(format!("huffman stream: stream {k} of {N} {what}"))
            })?;
        }
        Ok(())
    })
}

impl Tables {
    /// Fills the single-symbol table for the code `lengths` of the symbols from `lo`, indexed by
    /// `bits` stream bits.
    fn build_single(&mut self, lo: u16, code_lengths: &[u8], map: &[u8; 256], bits: u32) {
        self.single.resize(FULL, 0);
        let size = 1usize << bits;
        let codes = lengths::canonical_codes(code_lengths);
        for (i, (&len, &c)) in code_lengths.iter().zip(&codes).enumerate() {
            if len == 0 {
                continue;
            }
            // `lo + i` fits the width (at most 8 bits): the parser checked the span.
            let symbol = map[(usize::from(lo) + i) & 0xff];
            let entry = u32::from(symbol) | (u32::from(len) << 8);
            for slot in self.single[..size]
                .iter_mut()
                .skip(usize::from(c))
                .step_by(1 << len)
            {
                *slot = entry;
            }
        }
    }

    fn single_table(&self) -> Result<&[u32; FULL]> {
        <&[u32; FULL]>::try_from(self.single.get(..FULL).unwrap_or_default())
            .map_err(|_| Error::decode("huffman stream: decode table of the wrong size"))
    }

    /// Fills the fast table from the single-symbol one (built for the same `bits`): each entry
    /// takes symbols while their codes fit in the entry's bits. (Building each level of bits from
    /// the one below took more instructions and more time than this.)
    fn build_multi(&mut self, bits: u32) -> Result<&[Entry; FULL]> {
        self.multi.resize(FULL, Entry::default());
        let size = 1usize << bits;
        let single = self.single.get(..size).unwrap_or_default();
        for (idx, slot) in self.multi[..size].iter_mut().enumerate() {
            let mut used = 0u32;
            let mut count = 0usize;
            while count < PER_ENTRY {
                let Some(&e) = single.get(idx >> used) else {
                    break;
                };
                let len = e >> 8;
                if used + len > bits {
                    break;
                }
                slot.symbols[count] = e as u8;
                used += len;
                count += 1;
            }
            slot.used = used as u8;
            slot.count = count as u8;
        }
        <&[Entry; FULL]>::try_from(self.multi.get(..FULL).unwrap_or_default())
            .map_err(|_| Error::decode("huffman stream: decode table of the wrong size"))
    }
}

/// [`fast`] compiled for the SIMD level (BMI2's shifts take the count in any register).
fn run<const N: usize, const TB: u32>(
    level: crate::simd::Level,
    multi: &[Entry; FULL],
    payload: &[u8],
    split: &Split<N>,
    out: &mut [u8],
    pos: &mut [usize; N],
    at: &mut [usize; N],
) {
    #[cfg(target_arch = "x86_64")]
    if matches!(level, crate::simd::Level::Avx2 | crate::simd::Level::Avx512) {
        // SAFETY: both levels are only active after `Level::is_available` confirmed BMI2 and
        // LZCNT on this CPU (`simd::current` checks it).
        return unsafe { fast_bmi2::<N, TB>(multi, payload, split, out, pos, at) };
    }
    let _ = level;
    fast::<N, TB>(multi, payload, split, out, pos, at)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2,lzcnt")]
fn fast_bmi2<const N: usize, const TB: u32>(
    multi: &[Entry; FULL],
    payload: &[u8],
    split: &Split<N>,
    out: &mut [u8],
    pos: &mut [usize; N],
    at: &mut [usize; N],
) {
    fast::<N, TB>(multi, payload, split, out, pos, at)
}

/// The rounds of `decode.rs`'s fast loop over 8-byte entries: per stream one refill, then
/// `56 / TB` lookups, each storing its entry whole; blocks of rounds sized so that no stream reads
/// past its last 8 bytes or writes past its part. The refill's bits sit 3 bits up (an entry's byte
/// offset as they stand) under a marker bit whose leading zeros count the bits consumed.
#[inline(always)]
fn fast<const N: usize, const TB: u32>(
    multi: &[Entry; FULL],
    payload: &[u8],
    split: &Split<N>,
    out: &mut [u8],
    pos: &mut [usize; N],
    at: &mut [usize; N],
) {
    const KEPT: u64 = (1 << 56) - 1;
    // Entries are 8 bytes: the index's bits sit this far up.
    const UP: u32 = 3;
    const MARKER: u64 = 1 << (56 + UP);
    let per_refill = (56 / TB) as usize;
    let bits_per_round = per_refill * TB as usize;
    // A round moves at most this far, and stores up to 2 bytes past where it moves (an entry's 8
    // bytes from a position that moves by at most 6).
    let step = PER_ENTRY * per_refill;
    let offsets = ((1u64 << TB) - 1) << UP;
    let table = multi.as_ptr().cast::<u8>();
    let src = payload.as_ptr();
    let dst = out.as_mut_ptr();
    loop {
        let mut rounds = usize::MAX;
        for k in 0..N {
            // The last refill may start 8 bytes before the end.
            let readable = (8 * split.bytes[k].end).checked_sub(64);
            let by_input = match readable.and_then(|r| r.checked_sub(pos[k])) {
                Some(left) => left / bits_per_round + 1,
                None => 0,
            };
            let by_output = split.symbols[k].end.saturating_sub(at[k] + 2) / step;
            rounds = rounds.min(by_input).min(by_output);
        }
        if rounds == 0 {
            break;
        }
        let mut p = *pos;
        let mut a = *at;
        for _ in 0..rounds {
            let mut buf = [0u64; N];
            for k in 0..N {
                // SAFETY: this block runs at most `by_input` rounds for stream `k`, each consuming
                // at most `bits_per_round` bits, so every refill starts at or before the stream's
                // last 8 bytes.
                let w = unsafe { src.add(p[k] >> 3).cast::<u64>().read_unaligned() };
                buf[k] = ((u64::from_le(w) >> (p[k] & 7)) & KEPT) << UP | MARKER;
            }
            for _ in 0..per_refill {
                for k in 0..N {
                    // SAFETY: the offset is an entry's, of an index of `TB <= MAX_LEN` bits: inside
                    // the table.
                    let e = unsafe { &*table.add((buf[k] & offsets) as usize).cast::<Entry>() };
                    // SAFETY: this block runs at most `by_output` rounds for stream `k`, each
                    // moving at most `step` and storing at most 2 bytes past that, so every store
                    // ends inside the stream's part of `out`.
                    unsafe { dst.add(a[k]).cast::<Entry>().write_unaligned(*e) };
                    a[k] += usize::from(e.count);
                    buf[k] >>= e.used;
                }
            }
            for k in 0..N {
                p[k] += (buf[k].leading_zeros() - (7 - UP)) as usize;
            }
        }
        *pos = p;
        *at = a;
    }
    // The streams that did not end the joint rounds go on alone until they too are within a
    // round of their end.
    if N > 1 {
        for k in 0..N {
            let one = Split {
                bytes: [split.bytes[k].clone()],
                symbols: [split.symbols[k].clone()],
            };
            let mut p = [pos[k]];
            let mut a = [at[k]];
            fast::<1, TB>(multi, payload, &one, out, &mut p, &mut a);
            pos[k] = p[0];
            at[k] = a[0];
        }
    }
}

/// Finishes one stream from `(bit, symbol)` a symbol at a time, then checks that it ends where its
/// symbols do (whole bytes consumed, padding bits zero); the error says what is wrong.
fn careful(
    single: &[u32; FULL],
    mask: u64,
    src: &[u8],
    out: &mut [u8],
    (bit, symbol): (usize, usize),
) -> std::result::Result<(), String> {
    let mut pos = bit;
    let end = 8 * src.len();
    // The next bits at `pos`, zeros past the end.
    let peek = |pos: usize| -> u64 {
        let at = pos >> 3;
        let w = match src.get(at..at + 8) {
            Some(w) => [w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]],
            None => {
                let rest = src.get(at..).unwrap_or_default();
                let mut w = [0u8; 8];
                w[..rest.len().min(8)].copy_from_slice(&rest[..rest.len().min(8)]);
                w
            }
        };
        u64::from_le_bytes(w) >> (pos & 7)
    };
    // A peek holds at least 57 bits: refill when fewer than a longest code are left.
    let longest = mask.count_ones();
    let mut buf = peek(pos);
    let mut held = 57u32;
    for o in out.iter_mut().skip(symbol) {
        if held < longest {
            buf = peek(pos);
            held = 57;
        }
        let e = single[(buf & mask) as usize];
        let len = e >> 8;
        if pos + len as usize > end {
            return Err("ends before its symbols".into());
        }
        *o = e as u8;
        buf >>= len;
        held -= len;
        pos += len as usize;
    }
    let used = pos.div_ceil(8);
    if used < src.len() {
        return Err(format!("has {} bytes left over", src.len() - used));
    }
    if pos < end && peek(pos) & ((1u64 << (end - pos)) - 1) != 0 {
        return Err("has padding bits that are not zero".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
