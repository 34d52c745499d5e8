//! A raw lane of a lane block into the block's 64-bit values: the lowest lane sets each value,
//! the others OR their bits in above it. Lanes are at most 8 bits, so eight fields are `width`
//! whole bytes; with AVX2 they are split by two variable shifts of one broadcast word.

use crate::coding::bitpack;
use crate::error::Result;
use crate::simd::Level;

/// Unpacks the raw lane `bytes` (`out.len()` fields of `width` <= 8 bits) into `out`, each field
/// shifted up by `lo` and stored (`lo` = 0) or ORed in.
///
/// # Errors
/// [`crate::Error::Decode`] when `bytes` is not the packed length of `out.len()` fields.
pub(super) fn raw_lane(
    level: Level,
    bytes: &[u8],
    width: u32,
    lo: u32,
    out: &mut [u64],
) -> Result<()> {
    bitpack::check_packed_len(bytes.len(), out.len(), width)?;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if matches!(level, Level::Avx2 | Level::Avx512) && (1..=8).contains(&width) && lo < 64 {
        // SAFETY: the level is active only on a CPU with AVX2 (checked by `simd::current`).
        done = unsafe {
            if lo == 0 {
                avx2::lane::<false>(bytes, width, lo, out)
            } else {
                avx2::lane::<true>(bytes, width, lo, out)
            }
        };
    }
    let _ = level;
    let rest = out.get_mut(done..).unwrap_or_default();
    let first = done / 8 * width as usize;
    let tail = bytes.get(first..).unwrap_or_default();
    if lo == 0 {
        bitpack::unpack(tail, rest.len(), width, |i, v| rest[i] = v)
    } else {
        bitpack::unpack(tail, rest.len(), width, |i, v| rest[i] |= v << lo)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Unpacks whole steps of eight fields while eight bytes can be read at the step's start;
    /// returns the fields written (a multiple of 8).
    ///
    /// # Safety
    /// The CPU must have AVX2; `width` is 1..=8 and `lo` below 64.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn lane<const OR: bool>(
        bytes: &[u8],
        width: u32,
        lo: u32,
        out: &mut [u64],
    ) -> usize {
        let w = u64::from(width);
        let low = _mm256_setr_epi64x(0, w as i64, 2 * w as i64, 3 * w as i64);
        let high = _mm256_add_epi64(low, _mm256_set1_epi64x(4 * w as i64));
        let mask = _mm256_set1_epi64x(((1u64 << width) - 1) as i64);
        let up = _mm_cvtsi32_si128(lo as i32);
        let step = width as usize;
        let steps = (out.len() / 8).min(bytes.len().saturating_sub(8) / step + 1);
        let steps = if bytes.len() < 8 { 0 } else { steps };
        for s in 0..steps {
            // SAFETY: step `s` reads 8 bytes from `s * width`, within `bytes` by the count of
            // steps, and writes values `8 s .. 8 s + 8`, within `out`.
            let word = std::ptr::read_unaligned(bytes.as_ptr().add(s * step).cast::<u64>());
            let b = _mm256_set1_epi64x(u64::from_le(word) as i64);
            let v0 = _mm256_sll_epi64(_mm256_and_si256(_mm256_srlv_epi64(b, low), mask), up);
            let v1 = _mm256_sll_epi64(_mm256_and_si256(_mm256_srlv_epi64(b, high), mask), up);
            let dst = out.as_mut_ptr().add(8 * s);
            if OR {
                let d0 = _mm256_loadu_si256(dst.cast());
                let d1 = _mm256_loadu_si256(dst.add(4).cast());
                _mm256_storeu_si256(dst.cast(), _mm256_or_si256(d0, v0));
                _mm256_storeu_si256(dst.add(4).cast(), _mm256_or_si256(d1, v1));
            } else {
                _mm256_storeu_si256(dst.cast(), v0);
                _mm256_storeu_si256(dst.add(4).cast(), v1);
            }
        }
        8 * steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values `raw_lane` leaves at `level` over a prefilled `out`, or the error message.
    fn unpacked(level: Level, bytes: &[u8], width: u32, lo: u32, n: usize) -> Result<Vec<u64>> {
        let mut out: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9E37_79B9)).collect();
        raw_lane(level, bytes, width, lo, &mut out).map(|()| out)
    }

    #[test]
    fn every_level_unpacks_raw_lanes_like_scalar() {
        let bytes: Vec<u8> = (0..2_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for width in 1..=8u32 {
            for lo in [0u32, 4, 8, 16, 56] {
                for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1_000, 1_601] {
                    let len = (n * width as usize).div_ceil(8);
                    let lane = &bytes[..len];
                    let scalar = unpacked(Level::Scalar, lane, width, lo, n).unwrap();
                    // The reference: each field read bit by bit.
                    for (i, &v) in scalar.iter().enumerate() {
                        let field = (0..width as usize).fold(0u64, |f, b| {
                            let bit = i * width as usize + b;
                            f | u64::from((lane[bit / 8] >> (bit % 8)) & 1) << b
                        });
                        let before = (i as u64).wrapping_mul(0x9E37_79B9);
                        let want = if lo == 0 { field } else { before | field << lo };
                        assert_eq!(v, want, "width {width} lo {lo} n {n} field {i}");
                    }
                    for level in Level::available() {
                        assert_eq!(unpacked(level, lane, width, lo, n).unwrap(), scalar);
                        // A lane one byte short or long is the same error at every level.
                        for bad in [len.saturating_sub(1), len + 1] {
                            if bad != len {
                                let e = unpacked(level, &bytes[..bad], width, lo, n);
                                let s = unpacked(Level::Scalar, &bytes[..bad], width, lo, n);
                                assert_eq!(e.unwrap_err().to_string(), s.unwrap_err().to_string());
                            }
                        }
                    }
                }
            }
        }
    }
}
