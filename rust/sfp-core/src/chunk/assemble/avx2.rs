//! [`super::Table::values`] with AVX2 for 16- and 32-bit elements, eight at a time: the prefixes
//! by one gather from a 32-bit copy of the prefix table, the stored low values narrowed from their
//! 64-bit slots and, under zero skip, moved to the elements that take one by a lane permutation
//! looked up by the skip mask. Only the checks-free case (no signed zero to police) runs here.

use std::arch::x86_64::*;

/// What the vector loop needs of a chunk's table.
pub(super) struct Lookup<'a> {
    /// The prefix of every symbol of `width` bits (`2^width` entries).
    pub prefix: &'a [u32],
    /// `2^width - 1`.
    pub mask: u32,
    /// Shift of a low value into place.
    pub drop: u32,
    /// Shift of a symbol down to its exponent code (zero skip tests it for 0).
    pub code_shift: u32,
    /// Bit of the sign in an element.
    pub sign_shift: u32,
    /// One sign bit per element, when the sign is not in the symbols.
    pub signs: Option<&'a [u8]>,
    /// With a linear table: 1 when the sign is the symbol's lowest bit, else 0.
    pub joint_sign: u32,
    /// With a linear table: the shift of the symbol's other bits into place.
    pub low_bits: u32,
}

/// How far the vector loop went: elements written and stored values read.
pub(super) struct Done {
    pub elements: usize,
    pub values: usize,
}

/// Writes whole groups of 64 elements of `SIZE` bytes (2 or 4) while each group's 64 stored
/// values are there to read; the caller finishes the rest. With `LINEAR` the prefixes are the
/// symbols shifted into place (`joint_sign` and `low_bits`), not gathered.
///
/// # Safety
/// The CPU must have AVX2, and `t.prefix` must hold `t.mask + 1` entries.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn values<const SIZE: usize, const SKIP: bool, const LINEAR: bool>(
    t: &Lookup<'_>,
    syms: &[u16],
    values: &[u64],
    out: &mut [u8],
) -> Done {
    // SAFETY (whole function): symbol indices are masked below the prefix table's length; a group
    // runs only with 64 symbols, 64 output elements and 64 stored values left from its start, and
    // each step of 8 reads at most 8 values past the group's running count.
    let mask = _mm256_set1_epi32(t.mask as i32);
    let drop = _mm_cvtsi32_si128(t.drop as i32);
    let code_shift = _mm_cvtsi32_si128(t.code_shift as i32);
    let sign_shift = _mm_cvtsi32_si128(t.sign_shift as i32);
    let bit_of_lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let one = _mm256_set1_epi32(1);
    let joint_sign = _mm_cvtsi32_si128(t.joint_sign as i32);
    let joint_sign_bit = _mm256_set1_epi32(t.joint_sign as i32);
    let low_bits = _mm_cvtsi32_si128(t.low_bits as i32);
    let zero = _mm256_setzero_si256();
    // The low two bytes of each 32-bit lane, packed into the lane's first eight bytes.
    let low_halves = _mm256_setr_epi8(
        0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 4, 5, 8, 9, 12, 13, -1, -1,
        -1, -1, -1, -1, -1, -1,
    );
    let groups = syms.len().min(out.len() / SIZE) / 64;
    let (mut i, mut k) = (0usize, 0usize);
    for g in 0..groups {
        if k + 64 > values.len() {
            break;
        }
        let signs = super::sign_word(t.signs, g);
        for step in 0..8 {
            let s = _mm256_cvtepu16_epi32(_mm_loadu_si128(syms.as_ptr().add(i).cast()));
            let s = _mm256_and_si256(s, mask);
            let p = if LINEAR {
                _mm256_or_si256(
                    _mm256_sll_epi32(_mm256_srl_epi32(s, joint_sign), low_bits),
                    _mm256_sll_epi32(_mm256_and_si256(s, joint_sign_bit), sign_shift),
                )
            } else {
                _mm256_i32gather_epi32::<4>(t.prefix.as_ptr().cast(), s)
            };
            let at = values.as_ptr().add(k);
            let lo = _mm256_loadu_si256(at.cast());
            let hi = _mm256_loadu_si256(at.add(4).cast());
            // The low halves of eight 64-bit values, in order.
            let v = _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(
                _mm256_castsi256_ps(lo),
                _mm256_castsi256_ps(hi),
            ));
            let mut v = _mm256_permute4x64_epi64::<0b11_01_10_00>(v);
            if SKIP {
                let skipped = _mm256_cmpeq_epi32(_mm256_srl_epi32(s, code_shift), zero);
                let keep = !(_mm256_movemask_ps(_mm256_castsi256_ps(skipped)) as u32) & 0xff;
                let take =
                    _mm256_load_si256(crate::kernel::SPREAD.0[keep as usize].as_ptr().cast());
                v = _mm256_andnot_si256(skipped, _mm256_permutevar8x32_epi32(v, take));
                k += keep.count_ones() as usize;
            } else {
                k += 8;
            }
            let byte = _mm256_set1_epi32(((signs >> (8 * step)) & 0xff) as i32);
            let sign = _mm256_and_si256(_mm256_srlv_epi32(byte, bit_of_lane), one);
            let e = _mm256_or_si256(
                _mm256_or_si256(p, _mm256_sll_epi32(v, drop)),
                _mm256_sll_epi32(sign, sign_shift),
            );
            let dst = out.as_mut_ptr().add(i * SIZE);
            if SIZE == 2 {
                let e = _mm256_shuffle_epi8(e, low_halves);
                let e = _mm256_permute4x64_epi64::<0b00_00_10_00>(e);
                _mm_storeu_si128(dst.cast(), _mm256_castsi256_si128(e));
            } else {
                _mm256_storeu_si256(dst.cast(), e);
            }
            i += 8;
        }
    }
    Done {
        elements: i,
        values: k,
    }
}
