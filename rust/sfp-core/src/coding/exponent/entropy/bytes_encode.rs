//! The byte variant's encoder with AVX-512 and AVX2: the portable encoder's states, words and
//! bytes, sixteen (eight) states per register.
//!
//! The portable encoder divides by a code's frequency with a 64-bit reciprocal; a register of
//! sixteen 32-bit states divides with a 32-bit one (Granlund and Montgomery's: a multiply-high, a
//! subtract, two shifts; exact for every 32-bit state). Going through the codes backwards, each
//! register's renormalising states move their low 16 bits into the word buffer below the words
//! already written, in lane order, as the portable encoder's one-at-a-time steps put them (AVX-512:
//! a compress and an expand; AVX2: a permutation picked by the mask of them, [`TOP`]).

use std::arch::x86_64::*;

use super::{Table, BYTE_SCALE, MANY_LANES};

/// Per code, the divisor's constants in one 64-bit entry, so that one gather fetches them: `freq
/// | start << 12 | (l - 1) << 24 | (l > 0) << 28` with `l = ceil(log2 freq)` in the low half, the
/// 32-bit magic multiplier in the high half. A gather costs by its elements: two tables of 32-bit
/// entries took 1.26 (AVX-512) and 1.77 (AVX2) ns per code of the bfloat16 weights' top bytes on
/// an AMD Zen 4, histogram and table included; this one 1.09 and 1.22.
struct Divisors {
    entries: [u64; 256],
}

fn divisors(table: &Table) -> Option<Divisors> {
    let mut d = Divisors { entries: [0; 256] };
    let mut start = 0u32;
    for (i, &f) in table.freqs.iter().enumerate() {
        if f > 0 {
            // A code that takes every slot leaves the states where they are: the portable path.
            if f >= 1 << BYTE_SCALE {
                return None;
            }
            let l = 32 - (f - 1).leading_zeros();
            let magic = ((1u64 << 32) * ((1u64 << l) - u64::from(f)) / u64::from(f) + 1) as u32;
            let code = table.lo + i;
            let packed = f | (start << 12) | (l.saturating_sub(1) << 24) | (u32::from(l > 0) << 28);
            *d.entries.get_mut(code)? = u64::from(packed) | u64::from(magic) << 32;
        }
        start += f;
    }
    Some(d)
}

/// Runs the states over the whole rounds of `codes` (those before the last `codes.len() % 128`,
/// which the caller has encoded), from the last round back, writing the words down from
/// `words[*pos]`; `false` (nothing done) when a code takes every slot.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL and DQ; `words` must have room for 15 words below the
/// lowest word the rounds write (`*pos` at least `15 +` the rounds' codes).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,popcnt")]
pub(super) unsafe fn avx512(
    codes: &[u16],
    table: &Table,
    states: &mut [u32; MANY_LANES],
    words: &mut [u16],
    pos: &mut usize,
) -> bool {
    const REGS: usize = MANY_LANES / 16;
    let Some(d) = divisors(table) else {
        return false;
    };
    let twelve = _mm512_set1_epi32(0xfff);
    let four = _mm512_set1_epi32(0xf);
    let slots = _mm512_set1_epi32(1 << BYTE_SCALE);
    // The low (high) halves of two registers of eight entries, in lane order.
    let low_halves = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let high_halves = _mm512_add_epi32(low_halves, _mm512_set1_epi32(1));
    let entries = d.entries.as_ptr().cast::<i64>();
    let mut x: [__m512i; REGS] =
        std::array::from_fn(|r| _mm512_loadu_si512(states.as_ptr().add(16 * r).cast()));
    let full = codes.len() / MANY_LANES;
    let mut p = *pos;
    for round in (0..full).rev() {
        let src = codes.as_ptr().add(round * MANY_LANES);
        for r in (0..REGS).rev() {
            let c = _mm512_cvtepu16_epi32(_mm256_loadu_si256(src.add(16 * r).cast()));
            let c = _mm512_and_si512(c, _mm512_set1_epi32(0xff));
            // Two gathers of eight 64-bit entries load half the elements of two of sixteen
            // 32-bit ones (a gather's cost grows with its elements).
            let lo = _mm512_i32gather_epi64::<8>(_mm512_castsi512_si256(c), entries);
            let hi = _mm512_i32gather_epi64::<8>(_mm512_extracti64x4_epi64::<1>(c), entries);
            let a = _mm512_permutex2var_epi32(lo, low_halves, hi);
            let m = _mm512_permutex2var_epi32(lo, high_halves, hi);
            let f = _mm512_and_si512(a, twelve);
            // x >= freq << 20 (= ((L >> 12) << 16) * freq, below 2^32).
            let need = _mm512_cmpge_epu32_mask(x[r], _mm512_slli_epi32::<20>(f));
            let k = need.count_ones() as usize;
            // The renormalising states' low words, in lane order, in the top `k` lanes: stored
            // ending at `p`, the lanes below land on words the next registers overwrite.
            let dense = _mm512_maskz_compress_epi32(need, x[r]);
            let top = _mm512_maskz_expand_epi32((0xffff_u32 << (16 - k)) as u16, dense);
            _mm256_storeu_si256(
                words.as_mut_ptr().add(p - 15).cast(),
                _mm512_cvtepi32_epi16(top),
            );
            p -= k;
            let x0 = _mm512_mask_srli_epi32(x[r], need, x[r], 16);
            // q = x0 / freq: t = mulhi(x0, magic); q = (t + ((x0 - t) >> sh1)) >> sh2.
            let even = _mm512_srli_epi64::<32>(_mm512_mul_epu32(x0, m));
            let odd = _mm512_mul_epu32(_mm512_srli_epi64::<32>(x0), _mm512_srli_epi64::<32>(m));
            let t = _mm512_mask_blend_epi32(0xaaaa, even, odd);
            let sh1 = _mm512_srli_epi32::<28>(a);
            let sh2 = _mm512_and_si512(_mm512_srli_epi32::<24>(a), four);
            let q = _mm512_srlv_epi32(
                _mm512_add_epi32(t, _mm512_srlv_epi32(_mm512_sub_epi32(x0, t), sh1)),
                sh2,
            );
            let start = _mm512_and_si512(_mm512_srli_epi32::<12>(a), twelve);
            // x0 + start + q * (2^12 - freq) = (q << 12) + x0 % freq + start.
            x[r] = _mm512_add_epi32(
                _mm512_add_epi32(x0, start),
                _mm512_mullo_epi32(q, _mm512_sub_epi32(slots, f)),
            );
        }
    }
    for (r, v) in x.iter().enumerate() {
        _mm512_storeu_si512(states.as_mut_ptr().add(16 * r).cast(), *v);
    }
    *pos = p;
    true
}

/// Per mask of eight lanes: the lane each output lane takes so that the set lanes, in order, fill
/// the top of the register (the lanes below take lane 0).
#[repr(C, align(32))]
struct Top([[u32; 8]; 256]);

static TOP: Top = Top({
    let mut t = [[0u32; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let k = (m as u32).count_ones() as usize;
        let mut at = 8 - k;
        let mut lane = 0;
        while lane < 8 {
            if m >> lane & 1 != 0 {
                t[m][at] = lane as u32;
                at += 1;
            }
            lane += 1;
        }
        m += 1;
    }
    t
});

/// [`avx512`] with AVX2: sixteen registers of eight states, kept in `states` between rounds.
///
/// # Safety
/// The CPU must have AVX2; `words` must have room for 7 words below the lowest word the rounds
/// write.
#[target_feature(enable = "avx2,popcnt")]
pub(super) unsafe fn avx2(
    codes: &[u16],
    table: &Table,
    states: &mut [u32; MANY_LANES],
    words: &mut [u16],
    pos: &mut usize,
) -> bool {
    const REGS: usize = MANY_LANES / 8;
    let Some(d) = divisors(table) else {
        return false;
    };
    let twelve = _mm256_set1_epi32(0xfff);
    let four = _mm256_set1_epi32(0xf);
    let slots = _mm256_set1_epi32(1 << BYTE_SCALE);
    let byte = _mm256_set1_epi32(0xff);
    let entries = d.entries.as_ptr().cast::<i64>();
    // The low 16 bits of each 32-bit lane, in the low 8 bytes of each half.
    let low_words = _mm256_setr_epi8(
        0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 4, 5, 8, 9, 12, 13, -1, -1,
        -1, -1, -1, -1, -1, -1,
    );
    let full = codes.len() / MANY_LANES;
    let mut p = *pos;
    for round in (0..full).rev() {
        let src = codes.as_ptr().add(round * MANY_LANES);
        for r in (0..REGS).rev() {
            let st = states.as_mut_ptr().add(8 * r);
            let x = _mm256_loadu_si256(st.cast());
            let c = _mm256_and_si256(
                _mm256_cvtepu16_epi32(_mm_loadu_si128(src.add(8 * r).cast())),
                byte,
            );
            let lo = _mm256_i32gather_epi64::<8>(entries, _mm256_castsi256_si128(c));
            let hi = _mm256_i32gather_epi64::<8>(entries, _mm256_extracti128_si256::<1>(c));
            // Per 128-bit half: entries 0, 1, 4, 5 (2, 3, 6, 7); then in lane order.
            let (lo, hi) = (_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi));
            let a = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(
                _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi),
            ));
            let m = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(
                _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi),
            ));
            let f = _mm256_and_si256(a, twelve);
            // Unsigned x >= freq << 20: the larger of the two is x.
            let x_max = _mm256_slli_epi32::<20>(f);
            let need = _mm256_cmpeq_epi32(_mm256_max_epu32(x, x_max), x);
            let mask = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as usize;
            let k = mask.count_ones() as usize;
            let top =
                _mm256_permutevar8x32_epi32(x, _mm256_load_si256(TOP.0[mask].as_ptr().cast()));
            let w = _mm256_permute4x64_epi64::<0b1000>(_mm256_shuffle_epi8(top, low_words));
            _mm_storeu_si128(
                words.as_mut_ptr().add(p - 7).cast(),
                _mm256_castsi256_si128(w),
            );
            p -= k;
            let x0 = _mm256_blendv_epi8(x, _mm256_srli_epi32::<16>(x), need);
            let even = _mm256_srli_epi64::<32>(_mm256_mul_epu32(x0, m));
            let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>(x0), _mm256_srli_epi64::<32>(m));
            let t = _mm256_blend_epi32::<0b1010_1010>(even, odd);
            let sh1 = _mm256_srli_epi32::<28>(a);
            let sh2 = _mm256_and_si256(_mm256_srli_epi32::<24>(a), four);
            let q = _mm256_srlv_epi32(
                _mm256_add_epi32(t, _mm256_srlv_epi32(_mm256_sub_epi32(x0, t), sh1)),
                sh2,
            );
            let start = _mm256_and_si256(_mm256_srli_epi32::<12>(a), twelve);
            let x = _mm256_add_epi32(
                _mm256_add_epi32(x0, start),
                _mm256_mullo_epi32(q, _mm256_sub_epi32(slots, f)),
            );
            _mm256_storeu_si256(st.cast(), x);
        }
    }
    *pos = p;
    true
}

#[cfg(test)]
mod tests {
    /// The registers' division, one lane at a time: exact for every frequency of the byte variant
    /// and the states where rounding would show.
    #[test]
    fn the_32_bit_division_is_exact_for_every_frequency() {
        for f in 1u32..1 << super::BYTE_SCALE {
            let l = 32 - (f - 1).leading_zeros();
            let magic = ((1u64 << 32) * ((1u64 << l) - u64::from(f)) / u64::from(f) + 1) as u32;
            let (sh1, sh2) = (u32::from(l > 0), l.saturating_sub(1));
            let top = u32::MAX / f * f;
            for x in [
                0,
                1,
                f - 1,
                f,
                65_535,
                1 << 31,
                top - 1,
                top,
                u32::MAX - 1,
                u32::MAX,
            ] {
                let t = ((u64::from(x) * u64::from(magic)) >> 32) as u32;
                let q = (t + ((x - t) >> sh1)) >> sh2;
                assert_eq!(q, x / f, "x={x} f={f}");
            }
        }
    }
}
