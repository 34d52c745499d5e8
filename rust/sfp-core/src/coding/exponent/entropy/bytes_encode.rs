//! The byte variant's encoder with AVX-512: the portable encoder's states, words and bytes, sixteen
//! states per register.
//!
//! The portable encoder divides by a code's frequency with a 64-bit reciprocal; a register of
//! sixteen 32-bit states divides with a 32-bit one (Granlund and Montgomery's: a multiply-high, a
//! subtract, two shifts; exact for every 32-bit state). Going through the codes backwards, each
//! register's renormalising states move their low 16 bits into the word buffer below the words
//! already written, in lane order, as the portable encoder's one-at-a-time steps put them.

use std::arch::x86_64::*;

use super::{Table, BYTE_LANES, BYTE_SCALE, RANS_L};

/// Per code, the divisor's constants packed for a gather: `freq | start << 12 | (l - 1) << 24 |
/// (l > 0) << 28` with `l = ceil(log2 freq)`, and the 32-bit magic multiplier.
struct Divisors {
    packed: [u32; 256],
    magic: [u32; 256],
}

fn divisors(table: &Table) -> Option<Divisors> {
    let mut d = Divisors {
        packed: [0; 256],
        magic: [0; 256],
    };
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
            *d.packed.get_mut(code)? =
                f | (start << 12) | (l.saturating_sub(1) << 24) | (u32::from(l > 0) << 28);
            d.magic[code] = magic;
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
pub(super) unsafe fn rounds(
    codes: &[u16],
    table: &Table,
    states: &mut [u32; BYTE_LANES],
    words: &mut [u16],
    pos: &mut usize,
) -> bool {
    const REGS: usize = BYTE_LANES / 16;
    let Some(d) = divisors(table) else {
        return false;
    };
    let twelve = _mm512_set1_epi32(0xfff);
    let four = _mm512_set1_epi32(0xf);
    let slots = _mm512_set1_epi32(1 << BYTE_SCALE);
    let mut x: [__m512i; REGS] =
        std::array::from_fn(|r| _mm512_loadu_si512(states.as_ptr().add(16 * r).cast()));
    let full = codes.len() / BYTE_LANES;
    let mut p = *pos;
    for round in (0..full).rev() {
        let src = codes.as_ptr().add(round * BYTE_LANES);
        for r in (0..REGS).rev() {
            let c = _mm512_cvtepu16_epi32(_mm256_loadu_si256(src.add(16 * r).cast()));
            let c = _mm512_and_si512(c, _mm512_set1_epi32(0xff));
            let a = _mm512_i32gather_epi32::<4>(c, d.packed.as_ptr().cast());
            let m = _mm512_i32gather_epi32::<4>(c, d.magic.as_ptr().cast());
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
    let _ = RANS_L;
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
