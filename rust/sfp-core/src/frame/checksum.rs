//! The frames' checksum, XXH3-64 with seed 0, computed with AVX2 where the CPU has it.
//!
//! The `xxhash-rust` crate picks its SIMD width when it is compiled, and a portable build gets
//! SSE2: checking a decoded chunk was a tenth of the decode time. Inputs of more than 240 bytes
//! (XXH3's long form: stripes of 64 bytes accumulated into eight 64-bit lanes, scrambled every
//! block of 16 stripes) are hashed here with AVX2 when it is available; everything else, and the
//! scalar reference the tests compare against, is the crate's.

use xxhash_rust::xxh3::xxh3_64;

/// XXH3-64 of `bytes`.
pub fn checksum(bytes: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() > avx2::SHORT && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected on this CPU just now.
        return unsafe { avx2::hash_long(bytes) };
    }
    xxh3_64(bytes)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use xxhash_rust::const_xxh3::const_custom_default_secret;

    /// Longest input XXH3 hashes in its short forms.
    pub(super) const SHORT: usize = 240;
    const STRIPE: usize = 64;
    /// The secret advances this many bytes per stripe.
    const SECRET_STEP: usize = 8;
    const SECRET: [u8; 192] = const_custom_default_secret(0);
    const STRIPES_PER_BLOCK: usize = (SECRET.len() - STRIPE) / SECRET_STEP;
    const BLOCK: usize = STRIPE * STRIPES_PER_BLOCK;
    /// Where the secret for the last stripe and for merging the lanes starts.
    const LAST_STRIPE_SECRET: usize = SECRET.len() - STRIPE - 7;
    const MERGE_SECRET: usize = 11;
    const PRIME32_1: u64 = 0x9E37_79B1;
    const PRIME32_2: u64 = 0x85EB_CA77;
    const PRIME32_3: u64 = 0xC2B2_AE3D;
    const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
    const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
    const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
    const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;

    /// One stripe into the lanes: each lane adds the product of its key-mixed halves, and its
    /// neighbour's raw input.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn accumulate(acc: &mut [__m256i; 2], input: *const u8, secret: *const u8) {
        for (h, a) in acc.iter_mut().enumerate() {
            let data = _mm256_loadu_si256(input.add(32 * h).cast());
            let key = _mm256_loadu_si256(secret.add(32 * h).cast());
            let mixed = _mm256_xor_si256(data, key);
            let high = _mm256_shuffle_epi32::<0b00_11_00_01>(mixed);
            let product = _mm256_mul_epu32(mixed, high);
            let swapped = _mm256_shuffle_epi32::<0b01_00_11_10>(data);
            *a = _mm256_add_epi64(product, _mm256_add_epi64(*a, swapped));
        }
    }

    /// The end of a block: each lane mixed with its high bits and the secret, times a prime.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn scramble(acc: &mut [__m256i; 2], secret: *const u8) {
        let prime = _mm256_set1_epi32(PRIME32_1 as i32);
        for (h, a) in acc.iter_mut().enumerate() {
            let key = _mm256_loadu_si256(secret.add(32 * h).cast());
            let mixed = _mm256_xor_si256(_mm256_xor_si256(*a, _mm256_srli_epi64::<47>(*a)), key);
            let high = _mm256_shuffle_epi32::<0b00_11_00_01>(mixed);
            let low_product = _mm256_mul_epu32(mixed, prime);
            let high_product = _mm256_mul_epu32(high, prime);
            *a = _mm256_add_epi64(low_product, _mm256_slli_epi64::<32>(high_product));
        }
    }

    /// XXH3-64 (seed 0) of `bytes`, longer than [`SHORT`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn hash_long(bytes: &[u8]) -> u64 {
        let init: [u64; 8] = [
            PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1,
        ];
        let mut acc = [
            _mm256_loadu_si256(init.as_ptr().cast()),
            _mm256_loadu_si256(init.as_ptr().add(4).cast()),
        ];
        let len = bytes.len();
        let input = bytes.as_ptr();
        let secret = SECRET.as_ptr();
        let blocks = (len - 1) / BLOCK;
        for b in 0..blocks {
            for s in 0..STRIPES_PER_BLOCK {
                accumulate(
                    &mut acc,
                    input.add(b * BLOCK + s * STRIPE),
                    secret.add(s * SECRET_STEP),
                );
            }
            scramble(&mut acc, secret.add(SECRET.len() - STRIPE));
        }
        let stripes = ((len - 1) - blocks * BLOCK) / STRIPE;
        for s in 0..stripes {
            accumulate(
                &mut acc,
                input.add(blocks * BLOCK + s * STRIPE),
                secret.add(s * SECRET_STEP),
            );
        }
        accumulate(
            &mut acc,
            input.add(len - STRIPE),
            secret.add(LAST_STRIPE_SECRET),
        );
        let mut lanes = [0u64; 8];
        _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc[0]);
        _mm256_storeu_si256(lanes.as_mut_ptr().add(4).cast(), acc[1]);
        merge(&lanes, (len as u64).wrapping_mul(PRIME64_1))
    }

    fn secret_word(at: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&SECRET[at..at + 8]);
        u64::from_le_bytes(w)
    }

    /// The lanes folded pairwise with the secret into one word, then avalanched.
    fn merge(lanes: &[u64; 8], start: u64) -> u64 {
        let mut h = start;
        for i in 0..4 {
            let a = lanes[2 * i] ^ secret_word(MERGE_SECRET + 16 * i);
            let b = lanes[2 * i + 1] ^ secret_word(MERGE_SECRET + 16 * i + 8);
            let product = u128::from(a) * u128::from(b);
            h = h.wrapping_add((product as u64) ^ ((product >> 64) as u64));
        }
        h ^= h >> 37;
        h = h.wrapping_mul(0x1656_6791_9E37_79F9);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::checksum;
    use xxhash_rust::xxh3::xxh3_64;

    #[test]
    fn equals_the_reference_at_every_length_around_the_block_edges() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let bytes: Vec<u8> = (0..70_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect();
        let lengths = (0..3000).chain([1023, 1024, 1025, 4095, 4096, 4097, 65_536, 70_000]);
        for len in lengths {
            let part = &bytes[..len];
            assert_eq!(checksum(part), xxh3_64(part), "length {len}");
        }
        // Not aligned to anything either.
        assert_eq!(checksum(&bytes[3..60_003]), xxh3_64(&bytes[3..60_003]));
    }
}
