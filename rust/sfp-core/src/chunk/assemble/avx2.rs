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

/// The table's constants in registers, for both loops.
struct Consts {
    mask: __m256i,
    drop: __m128i,
    sign_shift: __m128i,
    bit_of_lane: __m256i,
    one: __m256i,
    joint_sign: __m128i,
    joint_sign_bit: __m256i,
    low_bits: __m128i,
    /// The low two bytes of each 32-bit lane, packed into the lane's first eight bytes.
    low_halves: __m256i,
}

#[target_feature(enable = "avx2")]
#[inline]
fn consts(t: &Lookup<'_>) -> Consts {
    Consts {
        mask: _mm256_set1_epi32(t.mask as i32),
        drop: _mm_cvtsi32_si128(t.drop as i32),
        sign_shift: _mm_cvtsi32_si128(t.sign_shift as i32),
        bit_of_lane: _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        one: _mm256_set1_epi32(1),
        joint_sign: _mm_cvtsi32_si128(t.joint_sign as i32),
        joint_sign_bit: _mm256_set1_epi32(t.joint_sign as i32),
        low_bits: _mm_cvtsi32_si128(t.low_bits as i32),
        low_halves: _mm256_setr_epi8(
            0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 4, 5, 8, 9, 12, 13, -1,
            -1, -1, -1, -1, -1, -1, -1,
        ),
    }
}

/// Eight symbols from `at`, masked below the prefix table's length.
///
/// # Safety
/// `at` must be valid for reading eight symbols.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn symbols(c: &Consts, at: *const u16) -> __m256i {
    _mm256_and_si256(_mm256_cvtepu16_epi32(_mm_loadu_si128(at.cast())), c.mask)
}

/// Stores the eight elements of symbols `s` with their low values `v` and the sign bits
/// `negative` (bit `j` for element `j`) at `dst`: each symbol's prefix (computed with `LINEAR`,
/// else gathered), the low value shifted up to it, the sign bit.
///
/// # Safety
/// `dst` must be valid for writing eight elements of `SIZE` bytes; `s` must be masked
/// ([`symbols`]) and `t.prefix` hold `t.mask + 1` entries.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn put<const SIZE: usize, const LINEAR: bool>(
    c: &Consts,
    t: &Lookup<'_>,
    s: __m256i,
    v: __m256i,
    negative: u64,
    dst: *mut u8,
) {
    let p = if LINEAR {
        _mm256_or_si256(
            _mm256_sll_epi32(_mm256_srl_epi32(s, c.joint_sign), c.low_bits),
            _mm256_sll_epi32(_mm256_and_si256(s, c.joint_sign_bit), c.sign_shift),
        )
    } else {
        _mm256_i32gather_epi32::<4>(t.prefix.as_ptr().cast(), s)
    };
    let byte = _mm256_set1_epi32((negative & 0xff) as i32);
    let sign = _mm256_and_si256(_mm256_srlv_epi32(byte, c.bit_of_lane), c.one);
    let e = _mm256_or_si256(
        _mm256_or_si256(p, _mm256_sll_epi32(v, c.drop)),
        _mm256_sll_epi32(sign, c.sign_shift),
    );
    if SIZE == 2 {
        let e = _mm256_shuffle_epi8(e, c.low_halves);
        let e = _mm256_permute4x64_epi64::<0b00_00_10_00>(e);
        _mm_storeu_si128(dst.cast(), _mm256_castsi256_si128(e));
    } else {
        _mm256_storeu_si256(dst.cast(), e);
    }
}

/// How each of sixteen 32-bit lanes takes its field of `bits` (1-8) from the bytes of a step, LSB
/// first: lane `j`'s field starts at bit `j * bits`, in byte `j * bits / 8`, and takes the next
/// byte too when it crosses into it; the byte shuffle's picks (-1 for none) and the shifts down
/// that follow. The first eight lanes are the same for a step of eight.
pub(super) fn field_picks(bits: u32) -> ([i8; 64], [i32; 16]) {
    let mut pick = [-1i8; 64];
    let mut shift = [0i32; 16];
    for j in 0..16 {
        let bit = j as u32 * bits;
        pick[4 * j] = (bit / 8) as i8;
        if bit % 8 + bits > 8 {
            pick[4 * j + 1] = (bit / 8 + 1) as i8;
        }
        shift[j] = (bit % 8) as i32;
    }
    (pick, shift)
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
    let c = consts(t);
    let code_shift = _mm_cvtsi32_si128(t.code_shift as i32);
    let zero = _mm256_setzero_si256();
    let groups = syms.len().min(out.len() / SIZE) / 64;
    let (mut i, mut k) = (0usize, 0usize);
    for g in 0..groups {
        if k + 64 > values.len() {
            break;
        }
        let signs = super::sign_word(t.signs, g);
        for step in 0..8 {
            let s = symbols(&c, syms.as_ptr().add(i));
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
            put::<SIZE, LINEAR>(
                &c,
                t,
                s,
                v,
                signs >> (8 * step),
                out.as_mut_ptr().add(i * SIZE),
            );
            i += 8;
        }
    }
    Done {
        elements: i,
        values: k,
    }
}

/// [`values`] without zero skip, the low values read where they are packed (`bits` of 1-8 each,
/// LSB first) instead of from 64-bit slots: a step's eight fields are `bits` bytes, and each lane
/// takes the one or two bytes of its field by a byte shuffle of them and shifts it down. Returns
/// the elements written, whole groups of 64 while a step's 16 bytes can be read.
///
/// # Safety
/// The CPU must have AVX2, `bits` must be 1..=8 and `t.prefix` must hold `t.mask + 1` entries.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn packed<const SIZE: usize, const LINEAR: bool>(
    t: &Lookup<'_>,
    syms: &[u16],
    bytes: &[u8],
    bits: u32,
    out: &mut [u8],
) -> usize {
    // The step's bytes are in both 128-bit lanes, which a byte shuffle indexes within; the first
    // eight lanes of the table are this step's.
    let (pick, shift) = field_picks(bits);
    let pick = _mm256_loadu_si256(pick.as_ptr().cast());
    let shift = _mm256_loadu_si256(shift.as_ptr().cast());
    let field = _mm256_set1_epi32(((1u32 << bits) - 1) as i32);
    let c = consts(t);
    let step_bytes = bits as usize;
    let groups = syms.len().min(out.len() / SIZE) / 64;
    let mut i = 0usize;
    for g in 0..groups {
        let base = 8 * step_bytes * g;
        // The group's last step reads 16 bytes from `7 step_bytes` on.
        if base + 7 * step_bytes + 16 > bytes.len() {
            break;
        }
        let signs = super::sign_word(t.signs, g);
        for step in 0..8 {
            // SAFETY: the step's 16 bytes are inside `bytes` (checked above for the group's last
            // step); the group's 64 symbols and elements are there (`groups`).
            let window = _mm_loadu_si128(bytes.as_ptr().add(base + step * step_bytes).cast());
            let window = _mm256_broadcastsi128_si256(window);
            let v = _mm256_and_si256(
                _mm256_srlv_epi32(_mm256_shuffle_epi8(window, pick), shift),
                field,
            );
            let s = symbols(&c, syms.as_ptr().add(i));
            put::<SIZE, LINEAR>(
                &c,
                t,
                s,
                v,
                signs >> (8 * step),
                out.as_mut_ptr().add(i * SIZE),
            );
            i += 8;
        }
    }
    i
}
