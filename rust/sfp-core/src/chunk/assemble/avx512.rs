//! [`super::avx2::values`] with AVX-512, sixteen elements at a time: the stored low values narrowed
//! from their 64-bit slots by a truncating move and, under zero skip, expanded to the elements
//! that take one under the mask of nonzero codes; the sign bits of a step are a mask too.

use std::arch::x86_64::*;

use super::avx2::{Done, Lookup};

/// [`super::avx2::values`] (same arguments, result and groups of 64) with AVX-512.
///
/// # Safety
/// The CPU must have AVX-512 F and BW, and `t.prefix` must hold `t.mask + 1` entries.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn values<const SIZE: usize, const SKIP: bool, const LINEAR: bool>(
    t: &Lookup<'_>,
    syms: &[u16],
    values: &[u64],
    out: &mut [u8],
) -> Done {
    // SAFETY (whole function): symbol indices are masked below the prefix table's length; a group
    // runs only with 64 symbols, 64 output elements and 64 stored values left from its start, and
    // each step of 16 reads at most 16 values past the group's running count, which moves at most
    // 16 a step.
    let mask = _mm512_set1_epi32(t.mask as i32);
    let drop = _mm_cvtsi32_si128(t.drop as i32);
    let code_shift = _mm_cvtsi32_si128(t.code_shift as i32);
    let sign_bit = _mm512_sll_epi32(_mm512_set1_epi32(1), _mm_cvtsi32_si128(t.sign_shift as i32));
    let joint_sign = _mm_cvtsi32_si128(t.joint_sign as i32);
    let joint_sign_bit = _mm512_set1_epi32(t.joint_sign as i32);
    let sign_shift = _mm_cvtsi32_si128(t.sign_shift as i32);
    let low_bits = _mm_cvtsi32_si128(t.low_bits as i32);
    let zero = _mm512_setzero_si512();
    let groups = syms.len().min(out.len() / SIZE) / 64;
    let (mut i, mut k) = (0usize, 0usize);
    for g in 0..groups {
        if k + 64 > values.len() {
            break;
        }
        let signs = super::sign_word(t.signs, g);
        for step in 0..4 {
            let s = _mm512_cvtepu16_epi32(_mm256_loadu_si256(syms.as_ptr().add(i).cast()));
            let s = _mm512_and_si512(s, mask);
            let p = if LINEAR {
                _mm512_or_si512(
                    _mm512_sll_epi32(_mm512_srl_epi32(s, joint_sign), low_bits),
                    _mm512_sll_epi32(_mm512_and_si512(s, joint_sign_bit), sign_shift),
                )
            } else {
                _mm512_i32gather_epi32::<4>(s, t.prefix.as_ptr().cast())
            };
            let at = values.as_ptr().add(k);
            let lo = _mm512_cvtepi64_epi32(_mm512_loadu_si512(at.cast()));
            let hi = _mm512_cvtepi64_epi32(_mm512_loadu_si512(at.add(8).cast()));
            let mut v = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
            if SKIP {
                let kept = _mm512_cmpneq_epi32_mask(_mm512_srl_epi32(s, code_shift), zero);
                v = _mm512_maskz_expand_epi32(kept, v);
                k += kept.count_ones() as usize;
            } else {
                k += 16;
            }
            let e = _mm512_or_si512(p, _mm512_sll_epi32(v, drop));
            let negative = ((signs >> (16 * step)) & 0xffff) as __mmask16;
            let e = _mm512_mask_or_epi32(e, negative, e, sign_bit);
            let dst = out.as_mut_ptr().add(i * SIZE);
            if SIZE == 2 {
                _mm256_storeu_si256(dst.cast(), _mm512_cvtepi32_epi16(e));
            } else {
                _mm512_storeu_si512(dst.cast(), e);
            }
            i += 16;
        }
    }
    Done {
        elements: i,
        values: k,
    }
}
