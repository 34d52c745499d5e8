//! Counter-based random bits: a pure function of (seed, element index, stream), so stochastic rounding
//! never depends on threads, chunking or SIMD level.

/// Stream for mantissa rounding.
pub(crate) const MANTISSA_STREAM: u64 = 0x6d61_6e74;
/// Stream for stochastic underflow.
pub(crate) const UNDERFLOW_STREAM: u64 = 0x756e_6466;

/// 64 random bits for element `index` in `stream` under `seed`.
#[inline(always)]
pub(crate) fn random_bits(seed: u64, index: u64, stream: u64) -> u64 {
    mix(seed ^ mix(index.wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))))
}

/// SplitMix64's finaliser (a bijection with full avalanche), applied after a golden-ratio step.
#[inline(always)]
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_balanced_and_streams_differ() {
        let n = 100_000u64;
        let ones: u32 = (0..n)
            .map(|i| random_bits(7, i, MANTISSA_STREAM).count_ones())
            .sum();
        let mean = f64::from(ones) / n as f64;
        assert!((mean - 32.0).abs() < 0.1, "mean popcount {mean}");
        assert_ne!(
            random_bits(7, 3, MANTISSA_STREAM),
            random_bits(7, 3, UNDERFLOW_STREAM)
        );
        assert_ne!(
            random_bits(7, 3, MANTISSA_STREAM),
            random_bits(8, 3, MANTISSA_STREAM)
        );
    }
}
