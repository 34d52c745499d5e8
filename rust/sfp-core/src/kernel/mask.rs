//! Bit masks of a block's lanes. The vectoriser builds a 64-bit mask from 64 lanes by widening each
//! lane to 64 bits and shifting it into place, which took a fifth of [`super::split`]; the x86 levels
//! have an instruction that moves a vector's top bits into a mask at once.

use super::{Word, LANES};
#[cfg(target_arch = "x86_64")]
use crate::simd::Level;

/// The top bit of each lane of `lanes`, lane `i` at bit `i`, in the instructions of the level
/// `LEVEL` (a [`crate::simd::Level::id`]) that the calling kernel is compiled for.
#[inline(always)]
pub(super) fn top_bits<L: Word, const LEVEL: u8>(lanes: &[L; LANES]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if LEVEL == Level::Avx512.id() {
            // SAFETY: a kernel compiled for AVX-512 only runs where the CPU has it.
            return unsafe { x86::top_bits_avx512(lanes) };
        }
        if LEVEL == Level::Avx2.id() {
            // SAFETY: as above, for AVX2.
            return unsafe { x86::top_bits_avx2(lanes) };
        }
    }
    portable(lanes)
}

#[inline(always)]
fn portable<L: Word>(lanes: &[L; LANES]) -> u64 {
    let top = 8 * L::SIZE as u32 - 1;
    lanes
        .iter()
        .enumerate()
        .fold(0, |m, (i, &v)| m | (v >> top).to_u64() << i)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{portable, Word, LANES};
    use std::arch::x86_64::*;

    /// [`super::top_bits`] for 32- and 64-bit lanes: one mask move per 16 or 8 lanes.
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    pub(super) fn top_bits_avx512<L: Word>(lanes: &[L; LANES]) -> u64 {
        let v = lanes.as_ptr().cast::<__m512i>();
        let per = 64 / L::SIZE;
        let mut mask = 0u64;
        for k in 0..LANES / per {
            // SAFETY: vector `k` of the `LANES * L::SIZE` bytes of `lanes`.
            let x = unsafe { _mm512_loadu_si512(v.add(k)) };
            let bits = match L::SIZE {
                4 => u64::from(_mm512_movepi32_mask(x)),
                8 => u64::from(_mm512_movepi64_mask(x)),
                _ => return portable(lanes),
            };
            mask |= bits << (k * per);
        }
        mask
    }

    /// [`super::top_bits`] for 32- and 64-bit lanes: one mask move per 8 or 4 lanes.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn top_bits_avx2<L: Word>(lanes: &[L; LANES]) -> u64 {
        let v = lanes.as_ptr().cast::<__m256i>();
        let per = 32 / L::SIZE;
        let mut mask = 0u64;
        for k in 0..LANES / per {
            // SAFETY: vector `k` of the `LANES * L::SIZE` bytes of `lanes`.
            let x = unsafe { _mm256_loadu_si256(v.add(k)) };
            let bits = match L::SIZE {
                4 => _mm256_movemask_ps(_mm256_castsi256_ps(x)),
                8 => _mm256_movemask_pd(_mm256_castsi256_pd(x)),
                _ => return portable(lanes),
            };
            mask |= u64::from(bits as u32) << (k * per);
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::Level;

    fn check<L: Word>() {
        let top = L::ONE << (8 * L::SIZE as u32 - 1);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let lanes: [L; LANES] = std::array::from_fn(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // Other bits set too, so that only the top one may count.
                L::from_u64(state >> 7) | if state >> 63 == 1 { top } else { L::ZERO }
            });
            let want = lanes
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, &v)| m | u64::from(v >= top) << i);
            assert_eq!(top_bits::<L, { Level::Scalar.id() }>(&lanes), want);
            #[cfg(target_arch = "x86_64")]
            {
                if Level::Avx2.is_available() {
                    assert_eq!(top_bits::<L, { Level::Avx2.id() }>(&lanes), want);
                }
                if Level::Avx512.is_available() {
                    assert_eq!(top_bits::<L, { Level::Avx512.id() }>(&lanes), want);
                }
            }
        }
    }

    #[test]
    fn top_bits_agree_at_every_level_for_both_lane_words() {
        check::<u32>();
        check::<u64>();
    }
}
