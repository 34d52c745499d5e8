//! The byte variant: [`MANY_LANES`] states over codes of at most 8 bits, with a table of
//! `2^`[`BYTE_SCALE`] slots, decoded into bytes.
//!
//! Its slot fits one 32-bit word (the frequency, the slot's offset in its code's range, the code),
//! so a decoder round gathers one word per state, and the 128 states keep enough rounds in flight
//! to hide the gathers' latency: 3.9 G codes per second with AVX-512 on the bfloat16 weights'
//! exponents, against 1.7 with 32 states (`docs/coding.md`). The variant is the planes' coder for
//! symbols of up to 8 bits ([`crate::chunk::planes`]), where its rate is the same whatever the
//! code lengths, unlike a Huffman table's.

use super::{finish, read_states, read_table, Slot, Table, BYTE_SCALE, MANY, MANY_LANES, RANS_L};
use crate::error::{Error, Result};

/// The widest code of the byte variant.
pub(crate) const MAX_BYTE_WIDTH: u32 = 8;
/// Slots of the byte variant's table.
const SLOTS: usize = 1 << BYTE_SCALE;
/// Offsets and codes in a packed slot: `freq << 20 | offset << 8 | code`.
const OFFSET_BITS: u32 = 12;
const CODE_BITS: u32 = 8;

/// The table of the byte variant for the histogram of codes of `width` bits (at most
/// [`MAX_BYTE_WIDTH`]); `None` when the histogram counts nothing.
pub(crate) fn byte_table(hist: &[u32]) -> Option<Table> {
    Table::at_scale(hist, BYTE_SCALE)
}

/// Codes `codes` (each below `2^width`, `width` at most [`MAX_BYTE_WIDTH`]) as a byte-variant
/// stream with `table` (from [`byte_table`] of their histogram), appending to `out`.
pub(crate) fn encode_bytes(codes: &[u16], width: u32, table: &Table, out: &mut Vec<u8>) {
    let width = width.min(MAX_BYTE_WIDTH);
    super::encode_as(codes, 0, width, (table, MANY_LANES, MANY), out);
}

/// The SIMD encoder rounds for `table`, where this CPU's level has them.
pub(super) fn encode_rounds<'a>(table: &'a Table) -> Option<super::Rounds<'a, MANY_LANES>> {
    #[cfg(target_arch = "x86_64")]
    match crate::simd::current() {
        // SAFETY (both): each level is only active after `Level::is_available` confirmed its
        // features; the encoder leaves `WORDS_SLACK` words below its lowest word.
        Ok(crate::simd::Level::Avx512) => {
            return Some(Box::new(move |codes, states, words, pos| unsafe {
                super::bytes_encode::avx512(codes, table, states, words, pos)
            }))
        }
        Ok(crate::simd::Level::Avx2) => {
            return Some(Box::new(move |codes, states, words, pos| unsafe {
                super::bytes_encode::avx2(codes, table, states, words, pos)
            }))
        }
        _ => {}
    }
    let _ = table;
    None
}

thread_local! {
    /// The decoder's slots and their packed form, reused from stream to stream.
    static TABLES: std::cell::RefCell<(Vec<Slot>, Vec<u32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Decodes exactly `out.len()` codes of at most `width` bits from the byte-variant stream `bytes`,
/// writing `map[code]` for each (the map is folded into the decode table: no pass after it).
///
/// # Errors
/// [`Error::Decode`] when the stream is not of the byte variant (its state count, its scale, a
/// width over [`MAX_BYTE_WIDTH`]), is malformed or truncated, or has bytes left over.
pub(crate) fn decode_bytes(
    bytes: &[u8],
    width: u32,
    map: &[u8; 256],
    out: &mut [u8],
) -> Result<()> {
    if !super::has_codes(bytes, width, MAX_BYTE_WIDTH, out.len())? {
        return Ok(());
    }
    crate::runtime::memory::with_reused(&TABLES, |(slots, packed)| {
        let (scale, pos) = read_table(bytes, width, slots)?;
        if super::states_of(bytes) != MANY_LANES || scale != BYTE_SCALE {
            return Err(Error::decode(format!(
                "entropy stream: not of the byte variant ({MANY_LANES} states, scale {BYTE_SCALE})"
            )));
        }
        let (mut states, pos) = read_states::<MANY_LANES>(bytes, pos)?;
        let words = &bytes[pos..];
        // One code takes every slot: the states never move and no word is read.
        if slots[0].freq as usize == SLOTS {
            out.fill(map[usize::from(slots[0].sym)]);
            return finish(&states, 0, words, false);
        }
        packed.clear();
        packed.extend(slots[..SLOTS].iter().map(|s| {
            // Codes below 2^width <= 256: the parser checked them.
            let code = map[usize::from(s.sym) & 0xff];
            (s.freq << (OFFSET_BITS + CODE_BITS))
                | (u32::from(s.off) << CODE_BITS)
                | u32::from(code)
        }));
        let table = <&[u32; SLOTS]>::try_from(&packed[..])
            .map_err(|_| Error::decode("entropy stream: table of the wrong size"))?;
        let mut wp = 0usize;
        let done = decode_rounds(table, words, &mut states, out, &mut wp)?;
        let overrun = steps(table, &mut states, words, &mut wp, done, out);
        finish(&states, wp, words, overrun)
    })
}

/// The SIMD rounds of this CPU's level over whole rounds while their words can be read unchecked;
/// returns the codes decoded (none on the portable path).
fn decode_rounds(
    table: &[u32; SLOTS],
    words: &[u8],
    states: &mut [u32; MANY_LANES],
    out: &mut [u8],
    wp: &mut usize,
) -> Result<usize> {
    let level = crate::simd::current()?;
    #[cfg(target_arch = "x86_64")]
    match level {
        // SAFETY: each level is only active after `Level::is_available` confirmed its features.
        crate::simd::Level::Avx512 => return Ok(unsafe { avx512(table, words, states, out, wp) }),
        crate::simd::Level::Avx2 => return Ok(unsafe { avx2(table, words, states, out, wp) }),
        _ => {}
    }
    let _ = (level, table, words, states, out, wp);
    Ok(0)
}

/// Decodes `out[from..]` one code at a time, state `i % MANY_LANES` for code `i`, with the end of
/// the stream checked; returns whether a renormalisation ran past it.
fn steps(
    table: &[u32; SLOTS],
    states: &mut [u32; MANY_LANES],
    words: &[u8],
    wp: &mut usize,
    from: usize,
    out: &mut [u8],
) -> bool {
    let mut overrun = false;
    for (i, o) in out.iter_mut().enumerate().skip(from) {
        let x = &mut states[i % MANY_LANES];
        let e = table[(*x as usize) & (SLOTS - 1)];
        *o = e as u8;
        let y = (e >> (OFFSET_BITS + CODE_BITS))
            .wrapping_mul(*x >> BYTE_SCALE)
            .wrapping_add((e >> CODE_BITS) & ((1 << OFFSET_BITS) - 1));
        let need = y < RANS_L;
        let w = match words.get(*wp..*wp + 2) {
            Some(w) => u32::from(u16::from_le_bytes([w[0], w[1]])),
            None => {
                overrun |= need;
                0
            }
        };
        *x = if need { (y << 16) | w } else { y };
        *wp += 2 * usize::from(need);
    }
    overrun
}

/// Bytes a round may read: at most one word per state.
const ROUND_BYTES: usize = 2 * MANY_LANES;

/// The rounds with AVX-512: eight registers of sixteen states. Per register, one gather of the
/// packed slots, a multiply, and for the states below the floor the next words, moved to their
/// lanes by an expand (in lane order, as the portable steps take them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,popcnt")]
unsafe fn avx512(
    table: &[u32; SLOTS],
    words: &[u8],
    states: &mut [u32; MANY_LANES],
    out: &mut [u8],
    wp: &mut usize,
) -> usize {
    use std::arch::x86_64::*;
    const REGS: usize = MANY_LANES / 16;
    let slot_mask = _mm512_set1_epi32((SLOTS - 1) as i32);
    let floor = _mm512_set1_epi32(RANS_L as i32);
    let mut x: [__m512i; REGS] =
        std::array::from_fn(|r| _mm512_loadu_si512(states.as_ptr().add(16 * r).cast()));
    let rounds = out.len() / MANY_LANES;
    let mut p = *wp;
    let mut round = 0;
    // A register reads 32 bytes at its position, which is at most 15 words past where the round's
    // last register starts: inside the round's `ROUND_BYTES`.
    while round < rounds && p + ROUND_BYTES <= words.len() {
        let dst = out.as_mut_ptr().add(round * MANY_LANES);
        for (r, xr) in x.iter_mut().enumerate() {
            // Indices below `SLOTS`: inside the table.
            let e = _mm512_i32gather_epi32::<4>(
                _mm512_and_si512(*xr, slot_mask),
                table.as_ptr().cast(),
            );
            // freq * (x >> 12) + offset < 2^32 for every 32-bit state: no overflow.
            let y = _mm512_add_epi32(
                _mm512_mullo_epi32(
                    _mm512_srli_epi32::<{ OFFSET_BITS + CODE_BITS }>(e),
                    _mm512_srli_epi32::<BYTE_SCALE>(*xr),
                ),
                _mm512_and_si512(_mm512_srli_epi32::<CODE_BITS>(e), slot_mask),
            );
            let need = _mm512_cmplt_epu32_mask(y, floor);
            let next = _mm512_cvtepu16_epi32(_mm256_loadu_si256(words.as_ptr().add(p).cast()));
            let refill = _mm512_maskz_expand_epi32(need, next);
            *xr = _mm512_mask_or_epi32(y, need, _mm512_slli_epi32::<16>(y), refill);
            p += 2 * need.count_ones() as usize;
            _mm_storeu_si128(dst.add(16 * r).cast(), _mm512_cvtepi32_epi8(e));
        }
        round += 1;
    }
    for (r, v) in x.iter().enumerate() {
        _mm512_storeu_si512(states.as_mut_ptr().add(16 * r).cast(), *v);
    }
    *wp = p;
    round * MANY_LANES
}

/// The rounds with AVX2: sixteen registers of eight states, as [`avx512`] with a permutation
/// for the expand (`kernel::SPREAD`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn avx2(
    table: &[u32; SLOTS],
    words: &[u8],
    states: &mut [u32; MANY_LANES],
    out: &mut [u8],
    wp: &mut usize,
) -> usize {
    use std::arch::x86_64::*;
    const REGS: usize = MANY_LANES / 8;
    let slot_mask = _mm256_set1_epi32((SLOTS - 1) as i32);
    let zero = _mm256_setzero_si256();
    // The low byte of each 32-bit lane, in the low four bytes of each half.
    let codes = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let rounds = out.len() / MANY_LANES;
    let mut p = *wp;
    let mut round = 0;
    // A register reads 16 bytes at its position: inside the round's `ROUND_BYTES`, as above.
    while round < rounds && p + ROUND_BYTES <= words.len() {
        let dst = out.as_mut_ptr().add(round * MANY_LANES);
        for r in 0..REGS {
            let xr = _mm256_loadu_si256(states.as_ptr().add(8 * r).cast());
            let e =
                _mm256_i32gather_epi32::<4>(table.as_ptr().cast(), _mm256_and_si256(xr, slot_mask));
            let y = _mm256_add_epi32(
                _mm256_mullo_epi32(
                    _mm256_srli_epi32::<{ (OFFSET_BITS + CODE_BITS) as i32 }>(e),
                    _mm256_srli_epi32::<{ BYTE_SCALE as i32 }>(xr),
                ),
                _mm256_and_si256(_mm256_srli_epi32::<{ CODE_BITS as i32 }>(e), slot_mask),
            );
            let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(y), zero);
            let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as usize;
            let next = _mm256_cvtepu16_epi32(_mm_loadu_si128(words.as_ptr().add(p).cast()));
            let spread = _mm256_loadu_si256(crate::kernel::SPREAD.0[m].as_ptr().cast());
            let refill = _mm256_or_si256(
                _mm256_slli_epi32::<16>(y),
                _mm256_permutevar8x32_epi32(next, spread),
            );
            _mm256_storeu_si256(
                states.as_mut_ptr().add(8 * r).cast(),
                _mm256_blendv_epi8(y, refill, need),
            );
            p += 2 * m.count_ones() as usize;
            let c = _mm256_shuffle_epi8(e, codes);
            let eight =
                _mm_unpacklo_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256::<1>(c));
            _mm_storel_epi64(dst.add(8 * r).cast(), eight);
        }
        round += 1;
    }
    *wp = p;
    round * MANY_LANES
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::coding::exponent::entropy::histogram;
    use crate::coding::exponent::IDENTITY;
    use crate::testkit::{at_every_level, damaged, skewed_codes as skewed};

    fn encoded(codes: &[u16], width: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        if let Some(table) = byte_table(&histogram(codes, width)) {
            encode_bytes(codes, width, &table, &mut bytes);
        }
        bytes
    }

    /// What decoding `bytes` as `n` codes gives at each SIMD level of this CPU.
    fn decoded(bytes: &[u8], width: u32, n: usize) -> Vec<std::result::Result<Vec<u8>, String>> {
        at_every_level(|| {
            let mut out = vec![0u8; n];
            decode_bytes(bytes, width, &IDENTITY, &mut out)
                .map(|()| out)
                .map_err(|e| e.to_string())
        })
    }

    #[test]
    fn every_level_encodes_the_same_bytes_and_decodes_the_codes() {
        for (n, width) in [
            (1, 1),
            (127, 8),
            (128, 3),
            (129, 8),
            (5000, 5),
            (1 << 17, 8),
            ((1 << 17) + 77, 7),
        ] {
            let codes = skewed(n, width, n as u64);
            let streams = at_every_level(|| encoded(&codes, width));
            assert!(streams.iter().all(|s| s == &streams[0]), "{n} codes");
            assert_eq!(streams[0][0] & MANY, MANY);
            let want: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
            for got in decoded(&streams[0], width, n) {
                assert!(got.as_ref() == Ok(&want), "{n} codes of {width} bits");
            }
        }
    }

    #[test]
    fn a_code_that_takes_every_slot_decodes_without_words() {
        let codes = vec![5u16; 3000];
        let bytes = encoded(&codes, 4);
        for got in decoded(&bytes, 4, codes.len()) {
            assert_eq!(got, Ok(vec![5u8; 3000]));
        }
    }

    #[test]
    fn damaged_streams_are_errors_or_codes_and_every_level_agrees() {
        let (n, width) = ((1 << 15) + 3, 6);
        let bytes = encoded(&skewed(n, width, 9), width);
        for bad in damaged(&bytes, 997) {
            let results = decoded(&bad, width, n);
            assert!(
                results.iter().all(|r| r == &results[0]),
                "{} bytes",
                bad.len()
            );
            if bad.len() < bytes.len() {
                assert!(results[0].is_err(), "truncated to {} bytes", bad.len());
            }
        }
    }

    #[test]
    fn other_variants_and_wider_codes_are_not_read_as_bytes() {
        let codes = skewed(1 << 17, 8, 4);
        let mut vector = Vec::new();
        super::super::encode(&codes, 8, &mut vector);
        let mut out = vec![0u8; codes.len()];
        assert!(decode_bytes(&vector, 8, &IDENTITY, &mut out).is_err());
        let bytes = encoded(&codes, 8);
        assert!(decode_bytes(&bytes, 9, &IDENTITY, &mut out).is_err());
    }

    #[test]
    fn byte_streams_read_as_16_bit_codes_and_many_state_streams_of_other_scales_do_not_as_bytes() {
        let codes = skewed(1 << 17, 8, 4);
        // The byte variant is a many-state stream: the 16-bit decoder reads it too.
        for got in at_every_level(|| {
            let mut wide = vec![0u16; codes.len()];
            super::super::decode(&encoded(&codes, 8), 8, &mut wide).map(|()| wide)
        }) {
            assert!(got.as_ref() == Ok(&codes));
        }
        // A many-state stream of 12-bit codes has a table wider than the byte variant's.
        let wide_codes = skewed(1 << 18, 12, 5);
        let mut many = Vec::new();
        super::super::encode(&wide_codes, 12, &mut many);
        assert_eq!(super::super::states_of(&many), MANY_LANES);
        let mut out = vec![0u8; wide_codes.len()];
        assert!(decode_bytes(&many, 8, &IDENTITY, &mut out).is_err());
        assert!(decode_bytes(&many, 12, &IDENTITY, &mut out).is_err());
    }
}
