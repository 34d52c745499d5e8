//! The decoders: lookup tables built from the code lengths, a fast loop over all bitstreams at
//! once and a careful loop that finishes each bitstream; one code for both kinds of output (16-bit
//! symbols, and symbols of at most 8 bits written as bytes through a map, [`Entry`]).
//!
//! Streams are read LSB first: a refill is an unaligned 8-byte load at the stream's bit position
//! (byte `pos / 8`), shifted right by `pos % 8`, which leaves at least 56 valid bits, so
//! `56 / table_bits` lookups follow with no check. The fast loop's table maps the next `table_bits`
//! bits to the symbols whose codes fit in them, stored to the output as one entry; the careful
//! loop's table maps them to one symbol and its length.
//!
//! Byte output has 8-byte entries of up to six symbols, and tables indexed by 11 bits too (16 KiB).
//! A 12-bit index decodes a few more codes per lookup, but a one-byte type's block of 128 Ki values
//! builds its table anew, and the larger table's construction took more instructions than the
//! lookups saved (measured on FP8 MiniLM weights: 9.9 against 4.8 million for 2 Mi values, the
//! lookups 49.9 against 50.4 million).

use std::cell::RefCell;
use std::thread::LocalKey;

use super::read::{Coded, Split, Stream};
use super::{lengths, MAX_LEN, STREAMS};
use crate::error::{Error, Result};

/// Bits the decode tables are indexed by at least: short codes share an entry with the codes that
/// follow them, so a wider index decodes more symbols per lookup (measured: 11 bits, see
/// `docs/coding.md`).
const MIN_TABLE_BITS: u32 = 11;
/// Entries of the largest table (indexed by [`MAX_LEN`] bits). The tables are always this size so
/// that indexing them with a masked value needs no bounds check; only the first `2^table_bits`
/// entries are written and read.
const FULL: usize = 1 << MAX_LEN;
/// Symbols from which the fast table pays for its construction (2^11 entries of several symbols
/// each); shorter streams are decoded on the careful path alone.
const FAST_MIN: usize = 4096;

/// One entry of the fast table, for one kind of output: up to [`Entry::PER_ENTRY`] symbols, then
/// the bits they take and their count (two bytes read apart, so that neither needs a shift). The
/// entry is stored to the output whole; the lanes past the count are overwritten by the next entry
/// or by the careful loop. Its size is a power of two, so the masked stream bits, shifted, are its
/// byte offset in the table.
pub(super) trait Entry: Copy + Default + 'static {
    /// What the decoder writes per symbol.
    type Symbol: Copy + Into<u32>;
    /// Most symbols one entry holds.
    const PER_ENTRY: usize;
    /// The output symbol held in the low bits of a single-symbol table entry.
    fn symbol(single: u32) -> Self::Symbol;
    /// Writes lane `lane` (below [`Entry::PER_ENTRY`]).
    fn put(&mut self, lane: usize, symbol: Self::Symbol);
    /// Sets the header: the entry's first `count` lanes hold symbols whose codes take `used` bits.
    fn close(&mut self, used: u32, count: usize);
    fn used(&self) -> u32;
    fn count(&self) -> usize;
    /// This thread's tables for this kind of entry, reused from stream to stream.
    fn tables() -> &'static LocalKey<RefCell<Tables<Self>>>;
}

/// An entry type and its thread's tables: `$lanes` symbols of `$symbol`, then the header.
macro_rules! entry {
    ($(#[$doc:meta])* $name:ident, $symbol:ty, $lanes:literal, $align:literal, $tables:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default)]
        #[repr(C, align($align))]
        pub(super) struct $name {
            symbols: [$symbol; $lanes],
            used: u8,
            count: u8,
        }

        thread_local! {
            static $tables: RefCell<Tables<$name>> = const { RefCell::new(Tables::new()) };
        }

        impl Entry for $name {
            type Symbol = $symbol;
            const PER_ENTRY: usize = $lanes;
            fn symbol(single: u32) -> $symbol {
                single as $symbol
            }
            fn put(&mut self, lane: usize, symbol: $symbol) {
                self.symbols[lane] = symbol;
            }
            fn close(&mut self, used: u32, count: usize) {
                self.used = used as u8;
                self.count = count as u8;
            }
            #[inline(always)]
            fn used(&self) -> u32 {
                u32::from(self.used)
            }
            #[inline(always)]
            fn count(&self) -> usize {
                usize::from(self.count)
            }
            fn tables() -> &'static LocalKey<RefCell<Tables<Self>>> {
                &$tables
            }
        }
    };
}

entry!(
    /// Entries of 16-bit symbols: three, and the header, in 8 bytes (a 16 KiB table of 11 bits:
    /// seven in 16 bytes decoded more per lookup, but their table filled the first-level cache and
    /// decoded slower, `docs/coding.md`).
    Wide, u16, 3, 8, WIDE
);
entry!(
    /// Entries of byte symbols: six, and the header, in 8 bytes.
    Narrow, u8, 6, 8, NARROW
);

/// The decoder's lookup tables.
pub(super) struct Tables<E> {
    /// One symbol per entry: the output symbol in the low 16 bits, its code length above.
    single: Vec<u32>,
    multi: Vec<E>,
    /// The single-symbol entries `multi` was built from: consecutive streams of one tensor often
    /// have the same code, and then the fast table is already there.
    multi_from: Vec<u32>,
}

impl<E> Tables<E> {
    const fn new() -> Self {
        Tables {
            single: Vec::new(),
            multi: Vec::new(),
            multi_from: Vec::new(),
        }
    }
}

impl<E> Default for Tables<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// Decodes `stream` into `out` (the number of symbols it was parsed for), writing `map(symbol)`
/// for each.
///
/// # Errors
/// [`Error::Decode`] when a bitstream runs out of bits or has bytes or bits left over;
/// [`Error::InvalidArgument`] when `SFP_SIMD` names an unusable level.
pub(super) fn decode<E: Entry>(
    stream: Stream<'_>,
    map: impl Fn(u16) -> E::Symbol,
    out: &mut [E::Symbol],
) -> Result<()> {
    match stream {
        Stream::Empty => {}
        Stream::Single(s) => out.fill(map(s)),
        Stream::Verbatim(bytes) => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = map(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        Stream::Coded(coded) => decode_streams::<E, 1>(&coded, map, out)?,
        Stream::Split(coded) => decode_streams::<E, STREAMS>(&coded, map, out)?,
    }
    Ok(())
}

/// Decodes every bitstream of a coded stream into its part of `out`, then checks each ends where
/// its symbols do.
fn decode_streams<E: Entry, const N: usize>(
    coded: &Coded<'_, N>,
    map: impl Fn(u16) -> E::Symbol,
    out: &mut [E::Symbol],
) -> Result<()> {
    let level = crate::simd::current()?;
    let (payload, split) = (coded.payload, &coded.split);
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
    crate::runtime::memory::with_reused(E::tables(), |tables| {
        let max_len = coded.lengths.iter().copied().max().unwrap_or(0);
        let bits = u32::from(max_len).max(MIN_TABLE_BITS);
        tables.build_single(coded, &map, bits);
        let mut pos: [usize; N] = std::array::from_fn(|k| 8 * split.bytes[k].start);
        let mut at: [usize; N] = std::array::from_fn(|k| split.symbols[k].start);
        if out.len() >= FAST_MIN {
            let multi = tables.build_multi(bits)?;
            let run = match bits {
                11 => run::<E, N, 11>,
                12 => run::<E, N, 12>,
                13 => run::<E, N, 13>,
                14 => run::<E, N, 14>,
                _ => run::<E, N, 15>,
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
            careful::<E>(single, mask, &payload[bytes], &mut out[symbols], from).map_err(
                |what| Error::decode(format!("huffman stream: stream {k} of {N} {what}")),
            )?;
        }
        Ok(())
    })
}

/// Where a bitstream's decoding stands: its bit position and its output position.
struct Position {
    bit: usize,
    symbol: usize,
}

impl<E: Entry> Tables<E> {
    /// Fills the single-symbol table for `coded`'s code, indexed by `bits` stream bits.
    fn build_single<const N: usize>(
        &mut self,
        coded: &Coded<'_, N>,
        map: &impl Fn(u16) -> E::Symbol,
        bits: u32,
    ) {
        self.single.resize(FULL, 0);
        let size = 1usize << bits;
        let codes = lengths::canonical_codes(&coded.lengths);
        for (i, (&len, &c)) in coded.lengths.iter().zip(&codes).enumerate() {
            if len == 0 {
                continue;
            }
            // `lo + i` fits the width: the parser checked the span.
            let symbol: u32 = map(coded.lo + i as u16).into();
            let entry = symbol | (u32::from(len) << 16);
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
    /// the one below took more instructions and more time than this.) The single-symbol entries
    /// name the table, so when they are those of the last build, it is kept.
    fn build_multi(&mut self, bits: u32) -> Result<&[E; FULL]> {
        self.multi.resize(FULL, E::default());
        let size = 1usize << bits;
        let single = self.single.get(..size).unwrap_or_default();
        if self.multi_from != single {
            self.multi_from.clear();
            self.multi_from.extend_from_slice(single);
            Self::fill_multi(single, bits, &mut self.multi[..size]);
        }
        <&[E; FULL]>::try_from(self.multi.get(..FULL).unwrap_or_default())
            .map_err(|_| Error::decode("huffman stream: decode table of the wrong size"))
    }

    fn fill_multi(single: &[u32], bits: u32, multi: &mut [E]) {
        for (idx, slot) in multi.iter_mut().enumerate() {
            let mut used = 0u32;
            let mut count = 0usize;
            while count < E::PER_ENTRY {
                let Some(&e) = single.get(idx >> used) else {
                    break;
                };
                let len = e >> 16;
                if used + len > bits {
                    break;
                }
                slot.put(count, E::symbol(e));
                used += len;
                count += 1;
            }
            slot.close(used, count);
        }
    }
}

/// [`fast`] compiled for the SIMD level (BMI2's shifts take the count in any register).
fn run<E: Entry, const N: usize, const TB: u32>(
    level: crate::simd::Level,
    multi: &[E; FULL],
    payload: &[u8],
    split: &Split<N>,
    out: &mut [E::Symbol],
    pos: &mut [usize; N],
    at: &mut [usize; N],
) {
    #[cfg(target_arch = "x86_64")]
    if matches!(level, crate::simd::Level::Avx2 | crate::simd::Level::Avx512) {
        // SAFETY: both levels are only active after `Level::is_available` confirmed BMI2 and
        // LZCNT on this CPU (`simd::current` checks it).
        return unsafe { fast_bmi2::<E, N, TB>(multi, payload, split, out, pos, at) };
    }
    let _ = level;
    fast::<E, N, TB>(multi, payload, split, out, pos, at)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2,lzcnt")]
fn fast_bmi2<E: Entry, const N: usize, const TB: u32>(
    multi: &[E; FULL],
    payload: &[u8],
    split: &Split<N>,
    out: &mut [E::Symbol],
    pos: &mut [usize; N],
    at: &mut [usize; N],
) {
    fast::<E, N, TB>(multi, payload, split, out, pos, at)
}

/// Rounds over all streams: per stream one refill (an unaligned 8-byte load at the bit position),
/// then `56 / TB` lookups, each storing its entry whole. Blocks of rounds are sized so that no
/// stream can read past its last 8 bytes or write past its part, however short its codes; the
/// joint loop ends when a stream has less than one round left, the others then go on alone, and
/// [`careful`] finishes every stream.
/// `pos[k]` is stream `k`'s bit position in `payload`, `at[k]` its output position in `out`.
///
/// A refill keeps 56 bits, placed up so that the masked bits are the entry's byte offset as they
/// stand, and sets a marker bit above them: a round consumes at most 56 bits, so after it the
/// marker's leading zeros count the bits consumed, and the lookups need not add up their lengths.
/// All streams are addressed from one input and one output pointer, so that the chains fit in
/// registers.
#[inline(always)]
fn fast<E: Entry, const N: usize, const TB: u32>(
    multi: &[E; FULL],
    payload: &[u8],
    split: &Split<N>,
    out: &mut [E::Symbol],
    pos: &mut [usize; N],
    at: &mut [usize; N],
) {
    const KEPT: u64 = (1 << 56) - 1;
    // The index's bits sit this far up: entries are `2^UP` bytes (at most 128).
    let up = std::mem::size_of::<E>().trailing_zeros();
    let marker = 1u64 << (56 + up);
    let per_refill = (56 / TB) as usize;
    let bits_per_round = per_refill * TB as usize;
    // A round moves at most `step` symbols, and an entry stored at the last position reaches
    // `over` lanes past where it moves.
    let step = E::PER_ENTRY * per_refill;
    let over = std::mem::size_of::<E>() / std::mem::size_of::<E::Symbol>() - E::PER_ENTRY;
    let offsets = ((1u64 << TB) - 1) << up;
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
            let by_output = split.symbols[k].end.saturating_sub(at[k] + over) / step;
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
                buf[k] = ((u64::from_le(w) >> (p[k] & 7)) & KEPT) << up | marker;
            }
            for _ in 0..per_refill {
                for k in 0..N {
                    // SAFETY: the offset is an entry's, of an index of `TB <= MAX_LEN` bits: inside
                    // the table.
                    let e = unsafe { &*table.add((buf[k] & offsets) as usize).cast::<E>() };
                    // SAFETY: this block runs at most `by_output` rounds for stream `k`, each
                    // moving at most `step` lanes and storing at most `over` lanes past that, so
                    // every store ends inside the stream's part of `out`.
                    unsafe { dst.add(a[k]).cast::<E>().write_unaligned(*e) };
                    a[k] += e.count();
                    buf[k] >>= e.used();
                }
            }
            for k in 0..N {
                p[k] += (buf[k].leading_zeros() - (7 - up)) as usize;
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
            fast::<E, 1, TB>(multi, payload, &one, out, &mut p, &mut a);
            pos[k] = p[0];
            at[k] = a[0];
        }
    }
}

/// Finishes one stream from `from` a symbol at a time, then checks that it ends where its symbols
/// do (whole bytes consumed, padding bits zero); the error says what is wrong.
fn careful<E: Entry>(
    single: &[u32; FULL],
    mask: u64,
    src: &[u8],
    out: &mut [E::Symbol],
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
        *o = E::symbol(e);
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
