//! The wide decoder's rounds with AVX2: the eight states in one vector, one state per lane.
//!
//! A round gathers the eight slots (frequency, and symbol with offset, as two 32-bit gathers from
//! the scalar decoder's own table), steps every state, and renormalises the states that fell below
//! the floor from the next eight words: each such state takes the next word in lane order, as the
//! scalar decoder does, through a lane permutation looked up by the compare mask. The words are
//! read from a fixed 16-byte window, so a round runs only while that many bytes are left; the
//! caller finishes the stream on the scalar path (which checks its end).

use std::arch::x86_64::*;

use super::{Slot, FULL_TABLE, WIDE_LANES};

/// Where the vector rounds stopped.
pub(super) struct Progress {
    /// The states after the last round.
    pub states: [u32; WIDE_LANES],
    /// Bytes of renormalisation words consumed.
    pub word_bytes: usize,
    /// Codes written (whole rounds).
    pub codes: usize,
}

/// For each compare mask (bit `i`: state `i` renormalises), the word each lane takes: state `i`
/// takes word `popcount(mask & (2^i - 1))`, the count of renormalising states before it.
#[repr(C, align(32))]
struct Take([[u32; WIDE_LANES]; 256]);

const fn take_table() -> Take {
    let mut t = [[0u32; WIDE_LANES]; 256];
    let mut m = 0;
    while m < 256 {
        let mut used = 0;
        let mut i = 0;
        while i < WIDE_LANES {
            if (m >> i) & 1 == 1 {
                t[m][i] = used;
                used += 1;
            }
            i += 1;
        }
        m += 1;
    }
    Take(t)
}

static TAKE: Take = take_table();

// The gathers read `Slot` as two 32-bit fields: the frequency, then the symbol with the offset
// above it.
const _: () = assert!(std::mem::size_of::<Slot>() == 8);
const _: () = assert!(std::mem::offset_of!(Slot, freq) == 0);
const _: () = assert!(std::mem::offset_of!(Slot, sym) == 4);
const _: () = assert!(std::mem::offset_of!(Slot, off) == 6);

/// Runs whole rounds over `out` from the states `st` while a round's 16 bytes of words are left.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn rounds(
    slots: &[Slot; FULL_TABLE],
    scale: u32,
    words: &[u8],
    st: [u32; WIDE_LANES],
    out: &mut [u16],
) -> Progress {
    // SAFETY (whole function): every slot index is masked to `scale` <= 16 bits, below the table's
    // 2^16 entries; every word load reads 16 bytes at `wp` with `wp + 16 <= words.len()`; every
    // store writes 8 codes at `done` with `done + 8 <= out.len()`; `TAKE` rows are 32-byte aligned.
    let mut x = _mm256_loadu_si256(st.as_ptr().cast());
    let mask = _mm256_set1_epi32(((1u64 << scale) - 1) as i32);
    let count = _mm_cvtsi32_si128(scale as i32);
    let zero = _mm256_setzero_si256();
    let low16 = _mm256_set1_epi32(0xffff);
    let freqs = slots.as_ptr().cast::<i32>();
    let syms = freqs.add(1);
    let end = out.len() - out.len() % WIDE_LANES;
    let (mut wp, mut done) = (0usize, 0usize);
    while done < end && wp + 2 * WIDE_LANES <= words.len() {
        let idx = _mm256_and_si256(x, mask);
        let freq = _mm256_i32gather_epi32::<8>(freqs, idx);
        let sym_off = _mm256_i32gather_epi32::<8>(syms, idx);
        let y = _mm256_add_epi32(
            _mm256_mullo_epi32(freq, _mm256_srl_epi32(x, count)),
            _mm256_srli_epi32::<16>(sym_off),
        );
        let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(y), zero);
        let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as u32;
        let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(words.as_ptr().add(wp).cast()));
        let take = _mm256_load_si256(TAKE.0[m as usize].as_ptr().cast());
        let w = _mm256_permutevar8x32_epi32(w, take);
        let renormalised = _mm256_or_si256(_mm256_slli_epi32::<16>(y), w);
        x = _mm256_blendv_epi8(y, renormalised, need);
        // The symbols are the low halves of `sym_off`: pack them to 16 bits (each 128-bit half
        // packs its four), then join the halves.
        let s = _mm256_and_si256(sym_off, low16);
        let s = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(s, s));
        _mm_storeu_si128(out.as_mut_ptr().add(done).cast(), _mm256_castsi256_si128(s));
        wp += 2 * m.count_ones() as usize;
        done += WIDE_LANES;
    }
    let mut states = [0u32; WIDE_LANES];
    _mm256_storeu_si256(states.as_mut_ptr().cast(), x);
    Progress {
        states,
        word_bytes: wp,
        codes: done,
    }
}
