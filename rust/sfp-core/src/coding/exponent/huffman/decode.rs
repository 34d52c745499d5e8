//! The decoder: lookup tables built from the code lengths, a fast loop over all streams at once
//! and a careful loop that finishes each stream.
//!
//! Streams are read LSB first into a 64-bit buffer with the branch-free refill of Giesen's "reading
//! bits in far too many ways": an unaligned 8-byte load shifted above the bits still held, and the
//! byte position advanced by the whole bytes that fit. After a refill the buffer holds at least 56
//! bits, so `56 / table_bits` lookups need no further check. The fast loop's table maps the next
//! `table_bits` bits to up to three symbols whose codes fit in them (stored as one 8-byte entry that
//! is written to the output whole); the careful loop's table maps them to one symbol and its length.

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
/// Most symbols one entry of the fast table holds.
const PER_ENTRY: usize = 3;

/// The decoder's lookup tables, reused from stream to stream.
#[derive(Default)]
pub(super) struct Tables {
    /// One symbol per entry: the symbol in the low 16 bits, its code length above.
    single: Vec<u32>,
    /// Up to three symbols per entry, as native-endian `u16`s in bytes 0..6, then the bits they
    /// take (byte 6) and their count (byte 7).
    multi: Vec<u64>,
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

/// Decodes the streams `streams[k]` into the parts `outs[k]` (symbol counts), then checks each
/// stream ends where its symbols do.
///
/// # Errors
/// [`Error::Decode`] when a stream runs out of bits, has bytes or bits left over, or the SIMD level
/// cannot be read.
pub(super) fn decode_streams<const N: usize>(
    code: &Code<'_>,
    streams: [&[u8]; N],
    outs: [&mut [u16]; N],
) -> Result<()> {
    let level = crate::simd::current()?;
    crate::runtime::memory::with_reused(&TABLES, |tables| {
        let max_len = code.lengths.iter().copied().max().unwrap_or(0);
        let bits = u32::from(max_len).max(MIN_TABLE_BITS);
        let (single, multi) = tables.build(code, bits)?;
        match bits {
            11 => run::<N, 11>(level, single, multi, streams, outs),
            12 => run::<N, 12>(level, single, multi, streams, outs),
            13 => run::<N, 13>(level, single, multi, streams, outs),
            14 => run::<N, 14>(level, single, multi, streams, outs),
            _ => run::<N, 15>(level, single, multi, streams, outs),
        }
    })
}

impl Tables {
    /// Fills both tables for `code`, indexed by `bits` stream bits, and returns them.
    fn build(&mut self, code: &Code<'_>, bits: u32) -> Result<(&[u32; FULL], &[u64; FULL])> {
        self.single.resize(FULL, 0);
        self.multi.resize(FULL, 0);
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
        let single = &self.single[..size];
        for (idx, slot) in self.multi[..size].iter_mut().enumerate() {
            let mut syms = [0u16; PER_ENTRY];
            let mut used = 0u32;
            let mut count = 0usize;
            while count < PER_ENTRY {
                let e = single[idx >> used];
                let len = e >> 16;
                if used + len > bits {
                    break;
                }
                syms[count] = e as u16;
                used += len;
                count += 1;
            }
            let mut b = [0u8; 8];
            for (dst, s) in b.chunks_exact_mut(2).zip(syms) {
                dst.copy_from_slice(&s.to_ne_bytes());
            }
            b[6] = used as u8;
            b[7] = count as u8;
            *slot = u64::from_ne_bytes(b);
        }
        let single = <&[u32; FULL]>::try_from(&self.single[..FULL]);
        let multi = <&[u64; FULL]>::try_from(&self.multi[..FULL]);
        match (single, multi) {
            (Ok(s), Ok(m)) => Ok((s, m)),
            _ => Err(Error::decode(
                "huffman stream: decode tables of the wrong size",
            )),
        }
    }
}

/// One stream's reader: `buf` holds `cnt` unread bits (and, above them, the stream's next bits or
/// zeros); `pos` is the first byte not yet counted in `cnt`.
#[derive(Clone, Copy, Default)]
struct Bits {
    buf: u64,
    cnt: u32,
    pos: usize,
}

impl Bits {
    /// The branch-free refill; `src` has at least 8 bytes from `pos`.
    #[inline(always)]
    fn refill(&mut self, word: u64) {
        self.buf |= word << self.cnt;
        self.pos += ((63 - self.cnt) >> 3) as usize;
        self.cnt |= 56;
    }

    /// A refill that reads only bytes of `src`, zeros past its end.
    fn refill_careful(&mut self, src: &[u8]) {
        let rest = src.get(self.pos..).unwrap_or_default();
        let mut word = [0u8; 8];
        let take = rest.len().min(8);
        word[..take].copy_from_slice(&rest[..take]);
        let whole = (((63 - self.cnt) >> 3) as usize).min(take);
        self.buf |= u64::from_le_bytes(word) << self.cnt;
        self.pos += whole;
        self.cnt += 8 * whole as u32;
    }
}

/// [`decode_all`] compiled for the SIMD level (BMI2's shifts take the count in any register).
fn run<const N: usize, const TB: u32>(
    level: crate::simd::Level,
    single: &[u32; FULL],
    multi: &[u64; FULL],
    streams: [&[u8]; N],
    outs: [&mut [u16]; N],
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if matches!(level, crate::simd::Level::Avx2 | crate::simd::Level::Avx512) {
        // SAFETY: both levels are only active after `Level::is_available` confirmed BMI2 on this
        // CPU (`simd::current` checks it).
        return unsafe { decode_bmi2::<N, TB>(single, multi, streams, outs) };
    }
    let _ = level;
    decode_all::<N, TB>(single, multi, streams, outs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2")]
fn decode_bmi2<const N: usize, const TB: u32>(
    single: &[u32; FULL],
    multi: &[u64; FULL],
    streams: [&[u8]; N],
    outs: [&mut [u16]; N],
) -> Result<()> {
    decode_all::<N, TB>(single, multi, streams, outs)
}

#[inline(always)]
fn decode_all<const N: usize, const TB: u32>(
    single: &[u32; FULL],
    multi: &[u64; FULL],
    streams: [&[u8]; N],
    mut outs: [&mut [u16]; N],
) -> Result<()> {
    let mut bits = [Bits::default(); N];
    let mut at = [0usize; N];
    fast::<N, TB>(multi, &streams, &mut outs, &mut bits, &mut at);
    for (k, ((src, out), (b, a))) in streams
        .iter()
        .zip(outs.iter_mut())
        .zip(bits.iter_mut().zip(at))
        .enumerate()
    {
        careful::<TB>(single, src, out, b, a)
            .map_err(|what| Error::decode(format!("huffman stream: stream {k} of {N} {what}")))?;
    }
    Ok(())
}

/// Rounds over all streams while each has 8 bytes to read and room for a round's symbols: one
/// refill, then `56 / TB` lookups per stream, each writing its entry's symbols whole.
#[inline(always)]
fn fast<const N: usize, const TB: u32>(
    multi: &[u64; FULL],
    streams: &[&[u8]; N],
    outs: &mut [&mut [u16]; N],
    bits: &mut [Bits; N],
    at: &mut [usize; N],
) {
    let per_refill = (56 / TB) as usize;
    // Each lookup writes 4 symbols (the entry) and moves at most 3.
    let room = PER_ENTRY * per_refill + 1;
    let mask = (1u64 << TB) - 1;
    loop {
        let mut words = [0u64; N];
        for k in 0..N {
            let Some(w) = streams[k].get(bits[k].pos..bits[k].pos + 8) else {
                return;
            };
            if at[k] + room > outs[k].len() {
                return;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            words[k] = u64::from_le_bytes(b);
        }
        for k in 0..N {
            bits[k].refill(words[k]);
        }
        for _ in 0..per_refill {
            for k in 0..N {
                let e = multi[(bits[k].buf & mask) as usize];
                let meta = e.to_ne_bytes();
                // SAFETY: `at[k] + room <= outs[k].len()` held at the start of the round and each
                // of the `per_refill` lookups moves `at[k]` by at most `PER_ENTRY`, so the 4
                // symbols written here end at most at `at[k] + room`, inside `outs[k]`.
                unsafe {
                    outs[k]
                        .as_mut_ptr()
                        .add(at[k])
                        .cast::<u64>()
                        .write_unaligned(e);
                }
                at[k] += usize::from(meta[7]);
                bits[k].buf >>= meta[6];
                bits[k].cnt -= u32::from(meta[6]);
            }
        }
    }
}

/// Finishes one stream a symbol at a time, then checks that it ends where its symbols do (whole
/// bytes consumed, padding bits zero); the error says what is wrong.
fn careful<const TB: u32>(
    single: &[u32; FULL],
    src: &[u8],
    out: &mut [u16],
    bits: &mut Bits,
    at: usize,
) -> std::result::Result<(), String> {
    let mask = (1u64 << TB) - 1;
    for o in out.iter_mut().skip(at) {
        if bits.cnt < TB {
            bits.refill_careful(src);
        }
        let e = single[(bits.buf & mask) as usize];
        let len = e >> 16;
        if len > bits.cnt {
            return Err("ends before its symbols".into());
        }
        *o = e as u16;
        bits.buf >>= len;
        bits.cnt -= len;
    }
    let unread = src.len().saturating_sub(bits.pos);
    if unread > 0 || bits.cnt >= 8 {
        return Err(format!(
            "has {} bytes left over",
            unread + bits.cnt as usize / 8
        ));
    }
    if bits.buf & ((1u64 << bits.cnt) - 1) != 0 {
        return Err("has padding bits that are not zero".into());
    }
    Ok(())
}
