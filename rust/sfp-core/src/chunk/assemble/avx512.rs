//! [`super::avx2::values`] with AVX-512, sixteen elements at a time: the stored low values narrowed
//! from their 64-bit slots by a truncating move and, under zero skip, expanded to the elements
//! that take one under the mask of nonzero codes; the sign bits of a step are a mask too.

use std::arch::x86_64::*;

use super::avx2::{Done, Lookup};

/// The table's constants in registers, for both loops.
struct Consts {
    mask: __m512i,
    drop: __m128i,
    sign_bit: __m512i,
    joint_sign: __m128i,
    joint_sign_bit: __m512i,
    sign_shift: __m128i,
    low_bits: __m128i,
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn consts(t: &Lookup<'_>) -> Consts {
    Consts {
        mask: _mm512_set1_epi32(t.mask as i32),
        drop: _mm_cvtsi32_si128(t.drop as i32),
        sign_bit: _mm512_sll_epi32(_mm512_set1_epi32(1), _mm_cvtsi32_si128(t.sign_shift as i32)),
        joint_sign: _mm_cvtsi32_si128(t.joint_sign as i32),
        joint_sign_bit: _mm512_set1_epi32(t.joint_sign as i32),
        sign_shift: _mm_cvtsi32_si128(t.sign_shift as i32),
        low_bits: _mm_cvtsi32_si128(t.low_bits as i32),
    }
}

/// Sixteen symbols from `at`, masked below the prefix table's length.
///
/// # Safety
/// `at` must be valid for reading sixteen symbols.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn symbols(c: &Consts, at: *const u16) -> __m512i {
    _mm512_and_si512(_mm512_cvtepu16_epi32(_mm256_loadu_si256(at.cast())), c.mask)
}

/// Stores the sixteen elements of symbols `s` with their low values `v` and the signs
/// `negative` at `dst`: each symbol's prefix (computed with `LINEAR`, else gathered), the low
/// value shifted up to it, the sign bit where the mask has it.
///
/// # Safety
/// `dst` must be valid for writing sixteen elements of `SIZE` bytes; `s` must be masked
/// ([`symbols`]) and `t.prefix` hold `t.mask + 1` entries.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn put<const SIZE: usize, const LINEAR: bool>(
    c: &Consts,
    t: &Lookup<'_>,
    s: __m512i,
    v: __m512i,
    negative: __mmask16,
    dst: *mut u8,
) {
    let p = if LINEAR {
        _mm512_or_si512(
            _mm512_sll_epi32(_mm512_srl_epi32(s, c.joint_sign), c.low_bits),
            _mm512_sll_epi32(_mm512_and_si512(s, c.joint_sign_bit), c.sign_shift),
        )
    } else {
        _mm512_i32gather_epi32::<4>(s, t.prefix.as_ptr().cast())
    };
    let e = _mm512_or_si512(p, _mm512_sll_epi32(v, c.drop));
    let e = _mm512_mask_or_epi32(e, negative, e, c.sign_bit);
    if SIZE == 2 {
        _mm256_storeu_si256(dst.cast(), _mm512_cvtepi32_epi16(e));
    } else {
        _mm512_storeu_si512(dst.cast(), e);
    }
}

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
    let c = consts(t);
    let code_shift = _mm_cvtsi32_si128(t.code_shift as i32);
    let zero = _mm512_setzero_si512();
    let groups = syms.len().min(out.len() / SIZE) / 64;
    let (mut i, mut k) = (0usize, 0usize);
    for g in 0..groups {
        if k + 64 > values.len() {
            break;
        }
        let signs = super::sign_word(t.signs, g);
        for step in 0..4 {
            let s = symbols(&c, syms.as_ptr().add(i));
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
            let negative = ((signs >> (16 * step)) & 0xffff) as __mmask16;
            put::<SIZE, LINEAR>(&c, t, s, v, negative, out.as_mut_ptr().add(i * SIZE));
            i += 16;
        }
    }
    Done {
        elements: i,
        values: k,
    }
}

/// [`values`] without zero skip, the low values read where they are packed (`bits` of 1-8 each,
/// LSB first) instead of from 64-bit slots: a step's sixteen fields are `2 bits` bytes, and each
/// lane takes the one or two bytes of its field by a byte shuffle of them and shifts it down.
/// Returns the elements written, whole groups of 64 while a step's 16 bytes can be read.
///
/// # Safety
/// The CPU must have AVX-512 F and BW, `bits` must be 1..=8 and `t.prefix` must hold `t.mask + 1`
/// entries.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn packed<const SIZE: usize, const LINEAR: bool>(
    t: &Lookup<'_>,
    syms: &[u16],
    bytes: &[u8],
    bits: u32,
    out: &mut [u8],
) -> usize {
    // The step's bytes are broadcast to every 128-bit lane, which a byte shuffle indexes within.
    let (pick, shift) = super::avx2::field_picks(bits);
    let pick = _mm512_loadu_si512(pick.as_ptr().cast());
    let shift = _mm512_loadu_si512(shift.as_ptr().cast());
    let field = _mm512_set1_epi32(((1u32 << bits) - 1) as i32);
    let c = consts(t);
    let step_bytes = 2 * bits as usize;
    let groups = syms.len().min(out.len() / SIZE) / 64;
    let mut i = 0usize;
    for g in 0..groups {
        let base = 4 * step_bytes * g;
        // The group's last step reads 16 bytes from `3 step_bytes` on.
        if base + 3 * step_bytes + 16 > bytes.len() {
            break;
        }
        let signs = super::sign_word(t.signs, g);
        for step in 0..4 {
            // SAFETY: the step's 16 bytes are inside `bytes` (checked above for the group's last
            // step); the group's 64 symbols and elements are there (`groups`).
            let window = _mm_loadu_si128(bytes.as_ptr().add(base + step * step_bytes).cast());
            let window = _mm512_broadcast_i32x4(window);
            let v = _mm512_and_si512(
                _mm512_srlv_epi32(_mm512_shuffle_epi8(window, pick), shift),
                field,
            );
            let s = symbols(&c, syms.as_ptr().add(i));
            let negative = ((signs >> (16 * step)) & 0xffff) as __mmask16;
            put::<SIZE, LINEAR>(&c, t, s, v, negative, out.as_mut_ptr().add(i * SIZE));
            i += 16;
        }
    }
    i
}
