//! The decoder of the vector and many-state variants: `N` states (32 or 128), as `N / 8` AVX2
//! registers of eight (or `N / 16` AVX-512 registers of sixteen).
//!
//! A round decodes one code per state: each register's slots are gathered from the table, the
//! states stepped with one multiply, and the states that fall below the rANS floor take the next
//! words of the stream in lane order (with AVX2 a mask of them picks a permutation that moves the
//! words to their lanes; AVX-512 expands them under the mask), so no state waits on another's
//! position in the stream. The portable path steps the states one at a time, in the same order.

use super::{finish, read_states, step_checked, Slot, FULL_TABLE};
use crate::error::{Error, Result};

/// Decodes the codes of a stream of `N` states whose table (of `2^scale` slots in `slots`) ends at
/// `pos`.
pub(super) fn decode<const N: usize>(
    bytes: &[u8],
    slots: &[Slot],
    scale: u32,
    pos: usize,
    out: &mut [u16],
) -> Result<()> {
    // Whole registers of sixteen states, at most the eight the rounds hold.
    const { assert!(N.is_multiple_of(16) && N <= 128) };
    let level = crate::simd::current()?;
    let (mut states, pos) = read_states::<N>(bytes, pos)?;
    let words = &bytes[pos..];
    let full = slots
        .get(..FULL_TABLE)
        .and_then(|s| <&[Slot; FULL_TABLE]>::try_from(s).ok())
        .ok_or_else(|| Error::decode("entropy stream: table smaller than its scale"))?;
    let mut wp = 0usize;
    let mut done = 0usize;
    #[cfg(target_arch = "x86_64")]
    match level {
        // SAFETY (both): each level is only active after `Level::is_available` confirmed its
        // features.
        crate::simd::Level::Avx512 => {
            done = unsafe { avx512::rounds::<N>(full, scale, words, &mut states, out, &mut wp) };
        }
        crate::simd::Level::Avx2 => {
            done = unsafe { avx2::rounds::<N>(full, scale, words, &mut states, out, &mut wp) };
        }
        _ => {}
    }
    let _ = level;
    let mask = (1u32 << scale) - 1;
    let mut overrun = false;
    for (i, o) in out.iter_mut().enumerate().skip(done) {
        let x = &mut states[i % N];
        step_checked(x, o, full, scale, mask, words, &mut wp, &mut overrun);
    }
    finish(&states, wp, words, overrun)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Slot, FULL_TABLE};

    /// Decodes whole rounds while a round's words (at most one per state) can be read without a
    /// check; returns the codes decoded. `states` and `wp` (the byte position in `words`) are
    /// left where the rounds stopped.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn rounds<const N: usize>(
        slots: &[Slot; FULL_TABLE],
        scale: u32,
        words: &[u8],
        states: &mut [u32; N],
        out: &mut [u16],
        wp: &mut usize,
    ) -> usize {
        let regs = N / 8;
        let mask = _mm256_set1_epi32(((1u32 << scale) - 1) as i32);
        let count = _mm_cvtsi32_si128(scale as i32);
        let low = _mm256_set1_epi32(0xffff);
        let zero = _mm256_setzero_si256();
        // A slot is 8 bytes: the frequency, then the code and the offset.
        let table = slots.as_ptr().cast::<i64>();
        let mut x: [__m256i; 16] = [zero; 16];
        for (r, xr) in x.iter_mut().enumerate().take(regs) {
            *xr = _mm256_loadu_si256(states.as_ptr().add(8 * r).cast());
        }
        let rounds = out.len() / N;
        let mut p = *wp;
        let mut round = 0;
        // A round reads 16 bytes at the position for each register, which moves at most 16 bytes
        // per register.
        while round < rounds && p + 2 * N + 16 <= words.len() {
            let dst = out.as_mut_ptr().add(round * N);
            let mut sym = [zero; 16];
            for r in 0..regs {
                // Indices below 2^scale <= FULL_TABLE: inside the table.
                let idx = _mm256_and_si256(x[r], mask);
                // One 64-bit gather per slot (half the loads of two 32-bit ones); the even and odd
                // halves of the two gathers, back in state order, are the frequencies and the
                // code-offset words.
                let lo = _mm256_i32gather_epi64::<8>(table, _mm256_castsi256_si128(idx));
                let hi = _mm256_i32gather_epi64::<8>(table, _mm256_extracti128_si256::<1>(idx));
                let (lo, hi) = (_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi));
                let freq = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(
                    _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi),
                ));
                let code_off = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(
                    _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi),
                ));
                sym[r] = _mm256_and_si256(code_off, low);
                // freq * (x >> scale) < 2^32 for every 32-bit state: no overflow.
                let y = _mm256_add_epi32(
                    _mm256_mullo_epi32(freq, _mm256_srl_epi32(x[r], count)),
                    _mm256_srli_epi32::<16>(code_off),
                );
                let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(y), zero);
                let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as u32;
                let next = _mm256_cvtepu16_epi32(_mm_loadu_si128(words.as_ptr().add(p).cast()));
                let take = _mm256_loadu_si256(crate::kernel::SPREAD.0[m as usize].as_ptr().cast());
                let refill = _mm256_or_si256(
                    _mm256_slli_epi32::<16>(y),
                    _mm256_permutevar8x32_epi32(next, take),
                );
                x[r] = _mm256_blendv_epi8(y, refill, need);
                p += 2 * m.count_ones() as usize;
            }
            for pair in 0..regs / 2 {
                let packed = _mm256_permute4x64_epi64::<0xD8>(_mm256_packus_epi32(
                    sym[2 * pair],
                    sym[2 * pair + 1],
                ));
                _mm256_storeu_si256(dst.add(16 * pair).cast(), packed);
            }
            round += 1;
        }
        for (r, v) in x.iter().enumerate().take(regs) {
            _mm256_storeu_si256(states.as_mut_ptr().add(8 * r).cast(), *v);
        }
        *wp = p;
        round * N
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Slot, FULL_TABLE};

    /// [`super::avx2::rounds`] with registers of sixteen states, the words moved to the states
    /// that take one by an expand under their mask.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,popcnt")]
    pub(super) unsafe fn rounds<const N: usize>(
        slots: &[Slot; FULL_TABLE],
        scale: u32,
        words: &[u8],
        states: &mut [u32; N],
        out: &mut [u16],
        wp: &mut usize,
    ) -> usize {
        let regs = N / 16;
        let mask = _mm512_set1_epi32(((1u32 << scale) - 1) as i32);
        let count = _mm_cvtsi32_si128(scale as i32);
        let floor = _mm512_set1_epi32(super::super::RANS_L as i32);
        // A slot is 8 bytes: the frequency, then the code and the offset.
        let table = slots.as_ptr().cast::<i64>();
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let mut x = [_mm512_setzero_si512(); 8];
        for (r, xr) in x.iter_mut().enumerate().take(regs) {
            *xr = _mm512_loadu_si512(states.as_ptr().add(16 * r).cast());
        }
        let rounds = out.len() / N;
        let mut p = *wp;
        let mut round = 0;
        // A register reads 32 bytes at its position, which moves at most 32 bytes per register:
        // inside the bound the AVX2 rounds keep.
        while round < rounds && p + 2 * N + 16 <= words.len() {
            let dst = out.as_mut_ptr().add(round * N);
            for (r, xr) in x.iter_mut().enumerate().take(regs) {
                // Indices below 2^scale <= FULL_TABLE: inside the table.
                let idx = _mm512_and_si512(*xr, mask);
                // One 64-bit gather per slot (half the loads of two 32-bit ones), then the
                // frequencies and the code-offset words picked from the even and odd halves.
                let lo = _mm512_i32gather_epi64::<8>(_mm512_castsi512_si256(idx), table);
                let hi = _mm512_i32gather_epi64::<8>(_mm512_extracti64x4_epi64::<1>(idx), table);
                let freq = _mm512_permutex2var_epi32(lo, even, hi);
                let code_off = _mm512_permutex2var_epi32(lo, odd, hi);
                // freq * (x >> scale) < 2^32 for every 32-bit state: no overflow.
                let y = _mm512_add_epi32(
                    _mm512_mullo_epi32(freq, _mm512_srl_epi32(*xr, count)),
                    _mm512_srli_epi32::<16>(code_off),
                );
                let need = _mm512_cmplt_epu32_mask(y, floor);
                let next = _mm512_cvtepu16_epi32(_mm256_loadu_si256(words.as_ptr().add(p).cast()));
                let refill = _mm512_maskz_expand_epi32(need, next);
                *xr = _mm512_mask_or_epi32(y, need, _mm512_slli_epi32::<16>(y), refill);
                p += 2 * need.count_ones() as usize;
                // The code is the low half of each lane: the narrowing keeps it.
                _mm256_storeu_si256(dst.add(16 * r).cast(), _mm512_cvtepi32_epi16(code_off));
            }
            round += 1;
        }
        for (r, v) in x.iter().enumerate().take(regs) {
            _mm512_storeu_si512(states.as_mut_ptr().add(16 * r).cast(), *v);
        }
        *wp = p;
        round * N
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::{decode, encode, states_of, MANY_LANES, MANY_MIN, VECTOR_LANES, VECTOR_MIN};
    use crate::testkit::{at_every_level, damaged, skewed_codes as skewed};

    /// What decoding `bytes` as `n` codes of `width` gives at each SIMD level of this CPU.
    fn decoded(bytes: &[u8], width: u32, n: usize) -> Vec<Result<Vec<u16>, String>> {
        at_every_level(|| {
            let mut out = vec![0u16; n];
            decode(bytes, width, &mut out)
                .map(|()| out)
                .map_err(|e| e.to_string())
        })
    }

    #[test]
    fn long_streams_take_the_vector_and_many_state_variants_and_decode_alike_at_every_level() {
        for (n, width, states) in [
            (VECTOR_MIN, 8, VECTOR_LANES),
            (VECTOR_MIN + 37, 12, VECTOR_LANES),
            (MANY_MIN - 1, 3, VECTOR_LANES),
            (MANY_MIN, 13, MANY_LANES),
            (MANY_MIN + 77, 5, MANY_LANES),
        ] {
            let codes = skewed(n, width, n as u64);
            let streams = at_every_level(|| {
                let mut bytes = Vec::new();
                encode(&codes, width, &mut bytes);
                bytes
            });
            assert!(streams.iter().all(|s| s == &streams[0]), "{n} codes");
            let bytes = &streams[0];
            assert_eq!(states_of(bytes), states, "{n} codes of {width} bits");
            for got in decoded(bytes, width, n) {
                assert!(got.as_ref() == Ok(&codes), "{n} codes of {width} bits");
            }
        }
        let mut bytes = Vec::new();
        encode(&skewed(VECTOR_MIN - 1, 8, 1), 8, &mut bytes);
        assert!(states_of(&bytes) < VECTOR_LANES);
    }

    #[test]
    fn damaged_vector_and_many_state_streams_are_errors_or_codes_and_every_level_agrees() {
        for (n, width) in [(VECTOR_MIN + 3, 6), (MANY_MIN + 3, 10)] {
            damaged_streams_agree(n, width);
        }
    }

    fn damaged_streams_agree(n: usize, width: u32) {
        let mut bytes = Vec::new();
        encode(&skewed(n, width, 9), width, &mut bytes);
        // Every truncation and bit flip is an error (or, for a flipped word, other codes) at every
        // level alike: the SIMD rounds stop where the portable steps would read past the end.
        for bad in damaged(&bytes, 4999) {
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
        // Another state count reads the states and words at the wrong places.
        let mut other = bytes.clone();
        other[0] ^= 0x80;
        assert!(decoded(&other, width, n).iter().all(Result::is_err));
    }
}
