//! The decoder: lookup tables built from the code lengths, a fast loop over all streams at once
//! and a careful loop that finishes each stream.
//!
//! Streams are read LSB first: a refill is an unaligned 8-byte load at the stream's bit position
//! (byte `pos / 8`), shifted right by `pos % 8`, which leaves at least 56 valid bits, so
//! `56 / table_bits` lookups follow with no check. The fast loop's table maps the next `table_bits`
//! bits to up to seven symbols whose codes fit in them, stored to the output as one 16-byte entry;
//! the careful loop's table maps them to one symbol and its length.

use std::ops::Range;

use super::{lengths, MAX_LEN};
use crate::error::{Error, Result};

/// Bits the decode tables are indexed by at least: short codes share an entry with the codes that
/// follow them, so a wider index decodes more symbols per lookup (measured: 11 bits, see
/// `docs/coding.md`).
pub(super) const MIN_TABLE_BITS: u32 = 11;
/// Entries of the largest table (indexed by [`MAX_LEN`] bits). The tables are always this size so
/// that indexing them with a masked value needs no bounds check; only the first `2^table_bits`
/// entries are written and read.
const FULL: usize = 1 << MAX_LEN;
/// Most symbols one entry of the fast table holds (its eighth lane is the entry's header).
const PER_ENTRY: usize = 7;
/// Symbols from which the fast table pays for its construction (2^11 entries of up to seven
/// symbols each); shorter streams are decoded on the careful path alone.
const FAST_MIN: usize = 4096;

/// One entry of the fast table: up to seven symbols, then the bits they take and their count
/// (two bytes read apart, so that neither needs a shift). The entry is stored to the output whole;
/// the lanes past the count are overwritten by the next entry.
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct Entry {
    symbols: [u16; PER_ENTRY],
    used: u8,
    count: u8,
}

/// The decoder's lookup tables, reused from stream to stream.
#[derive(Default)]
pub(super) struct Tables {
    /// One symbol per entry: the symbol in the low 16 bits, its code length above.
    single: Vec<u32>,
    multi: Vec<Entry>,
}

thread_local! {
    static TABLES: std::cell::RefCell<Tables> = const {
        std::cell::RefCell::new(Tables { single: Vec::new(), multi: Vec::new() })
    };
}

/// A code read from a stream header: symbol `lo + i` has code length `lengths[i]` (0: absent);
/// the lengths form a complete prefix code.
pub(super) struct Code<'a> {
    pub lo: u16,
    pub lengths: &'a [u8],
}

/// Where the bitstreams lie in a coded stream's payload and where their symbols go in the output:
/// bitstream `k` is `payload[bytes[k]]` and decodes into `out[symbols[k]]`.
pub(super) struct Split<const N: usize> {
    pub bytes: [Range<usize>; N],
    pub symbols: [Range<usize>; N],
}

/// Decodes every bitstream of `payload` into its part of `out`, then checks each ends where its
/// symbols do.
///
/// # Errors
/// [`Error::Decode`] when a stream runs out of bits or has bytes or bits left over;
/// [`Error::InvalidArgument`] when `SFP_SIMD` names an unusable level.
pub(super) fn decode_streams<const N: usize>(
    code: &Code<'_>,
    payload: &[u8],
    split: &Split<N>,
    out: &mut [u16],
) -> Result<()> {
    let level = crate::simd::current()?;
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
        let max_len = code.lengths.iter().copied().max().unwrap_or(0);
        let bits = u32::from(max_len).max(MIN_TABLE_BITS);
        tables.build_single(code, bits);
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
            let symbols = split.symbols[k].clone();
            let from = Position {
                bit: pos[k] - 8 * bytes.start,
                symbol: at[k] - symbols.start,
            };
            careful(single, mask, &payload[bytes], &mut out[symbols], from).map_err(|what| {
                Error::decode(format!("huffman stream: stream {k} of {N} {what}"))
            })?;
        }
        Ok(())
    })
}

/// Where a bitstream's decoding stands: its bit position and its output position.
struct Position {
    bit: usize,
    symbol: usize,
}

impl Tables {
    /// Fills the single-symbol table for `code`, indexed by `bits` stream bits.
    fn build_single(&mut self, code: &Code<'_>, bits: u32) {
        self.single.resize(FULL, 0);
        let size = 1usize << bits;
        let codes = lengths::canonical_codes(code.lengths);
        for (i, (&len, &c)) in code.lengths.iter().zip(&codes).enumerate() {
            if len == 0 {
                continue;
            }
            let entry = (u32::from(code.lo) + i as u32) | (u32::from(len) << 16);
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
    /// takes symbols while their codes fit in the entry's bits.
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
                let len = e >> 16;
                if used + len > bits {
                    break;
                }
                slot.symbols[count] = e as u16;
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
    out: &mut [u16],
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
    out: &mut [u16],
    pos: &mut [usize; N],
    at: &mut [usize; N],
) {
    fast::<N, TB>(multi, payload, split, out, pos, at)
}

/// Rounds over all streams: per stream one refill (an unaligned 8-byte load at the bit position),
/// then `56 / TB` lookups, each storing its entry whole. Blocks of rounds are sized so that no
/// stream can read past its last 8 bytes or write past its part, however short its codes; the
/// joint loop ends when a stream has less than one round left, the others then go on alone, and
/// [`careful`] finishes every stream.
/// `pos[k]` is stream `k`'s bit position in `payload`, `at[k]` its output position in `out`.
///
/// A refill keeps 56 bits, placed 4 bits up so that the masked bits are the entry's byte offset
/// as they stand, and sets a marker bit above them: a round consumes at most 56 bits, so after
/// it the marker's leading zeros count the bits consumed, and the lookups need not add up their
/// lengths. All streams are addressed from one input and one output pointer, so that the chains
/// fit in registers.
#[inline(always)]
fn fast<const N: usize, const TB: u32>(
    multi: &[Entry; FULL],
    payload: &[u8],
    split: &Split<N>,
    out: &mut [u16],
    pos: &mut [usize; N],
    at: &mut [usize; N],
) {
    const KEPT: u64 = (1 << 56) - 1;
    // Entries are 16 bytes: the index's bits sit this far up.
    const UP: u32 = 4;
    const MARKER: u64 = 1 << (56 + UP);
    let per_refill = (56 / TB) as usize;
    let bits_per_round = per_refill * TB as usize;
    // A round writes at most this far past its start: each lookup stores 8 lanes and moves 7.
    let reach = PER_ENTRY * per_refill + 1;
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
            let by_output = split.symbols[k].end.saturating_sub(at[k] + 1) / (reach - 1);
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
                    // storing at most `reach` lanes past its start and moving at most `reach - 1`,
                    // so every store ends inside the stream's part of `out`.
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
    // The streams that did not end the joint rounds go on alone (one chain, but still the fast
    // table) until they too are within a round of their end.
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

/// Finishes one stream from `from` a symbol at a time, then checks that it ends where its symbols
/// do (whole bytes consumed, padding bits zero); the error says what is wrong.
fn careful(
    single: &[u32; FULL],
    mask: u64,
    src: &[u8],
    out: &mut [u16],
    from: Position,
) -> std::result::Result<(), String> {
    let mut pos = from.bit;
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
    for o in out.iter_mut().skip(from.symbol) {
        if held < longest {
            buf = peek(pos);
            held = 57;
        }
        let e = single[(buf & mask) as usize];
        let len = e >> 16;
        if pos + len as usize > end {
            return Err("ends before its symbols".into());
        }
        *o = e as u16;
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
