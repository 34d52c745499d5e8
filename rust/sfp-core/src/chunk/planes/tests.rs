#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// Weight-like words: a few exponents, random signs and mantissas, some zeros.
fn words(n: usize, word_bytes: usize, zeros: u64, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut out = Vec::with_capacity(n * word_bytes);
    for _ in 0..n {
        let x = r();
        let v = if x % 100 < zeros {
            0u32
        } else if word_bytes == 2 {
            // bfloat16-like: exponent 118..126.
            let e = 118 + (x >> 8) % 9;
            ((x >> 20) as u32 & 0x8000) | ((e as u32) << 7) | (x >> 32) as u32 & 0x7f
        } else {
            let e = 118 + (x >> 8) % 9;
            ((x >> 20) as u32 & 0x8000_0000) | ((e as u32) << 23) | (x >> 32) as u32 & 0x7f_ffff
        };
        out.extend_from_slice(&v.to_le_bytes()[..word_bytes]);
    }
    out
}

fn word(bytes: usize) -> Word {
    Word {
        bytes,
        bits: 8 * bytes as u32,
    }
}

fn encode_with(src: &[u8], word_bytes: usize, planes: Planes) -> Vec<u8> {
    encode_cut::<false>(src, word_bytes, planes)
}

/// [`encode_with`] through the encoder's AVX2 loops.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi2")]
fn encode_with_avx2(src: &[u8], word_bytes: usize, planes: Planes) -> Vec<u8> {
    encode_cut::<true>(src, word_bytes, planes)
}

#[inline(always)]
fn encode_cut<const AVX2: bool>(src: &[u8], word_bytes: usize, planes: Planes) -> Vec<u8> {
    let mut s = Scratch::default();
    let mut out = vec![PLANES];
    for block in src.chunks(BLOCK * word_bytes) {
        split::load_words(block, word_bytes, &mut s.words);
        out.extend_from_slice(&[planes.symbol_bits as u8, planes.options()]);
        split::encode_block::<AVX2>(planes, &mut s, &mut out);
    }
    out
}

/// The words decoded at every SIMD level, with cached and with streaming stores.
fn decode_all(frame: &[u8], word_bytes: usize, n: usize) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for level in crate::simd::Level::available() {
        for stores in [Stores::Cached, Stores::Streaming] {
            let mut out = vec![0xa5u8; n * word_bytes];
            decode(
                level,
                frame,
                word(word_bytes),
                &mut Scratch::default(),
                &mut out,
                stores,
            )
            .unwrap();
            all.push(out);
        }
    }
    all
}

fn every_cut(word_bytes: usize) -> Vec<Planes> {
    let word_bits = 8 * word_bytes as u32;
    let mut cuts = Vec::new();
    for symbol_bits in 0..=MAX_SYMBOL_BITS {
        for coded_lanes in 0..=MAX_LANES {
            if 8 * coded_lanes > word_bits - symbol_bits {
                continue;
            }
            for rotated in [false, true] {
                for zero_mask in [false, true] {
                    // rANS codes symbols of 1 to 8 bits.
                    for rans_symbols in [false, true] {
                        if rans_symbols && !(1..=8).contains(&symbol_bits) {
                            continue;
                        }
                        cuts.push(Planes {
                            word_bits,
                            symbol_bits,
                            coded_lanes,
                            rotated,
                            zero_mask,
                            rans_symbols,
                        });
                    }
                }
            }
        }
    }
    cuts
}

#[test]
fn every_cut_round_trips_at_every_level() {
    for word_bytes in [2, 4] {
        // 5000: past the fast Huffman loop's threshold, for the byte and 16-bit decoders.
        for n in [0, 1, 7, 8, 15, 16, 17, 100, 1000, 5000] {
            let src = words(n, word_bytes, 20, n as u64);
            for cut in every_cut(word_bytes) {
                let frame = encode_with(&src, word_bytes, cut);
                for out in decode_all(&frame, word_bytes, n) {
                    assert!(out == src, "{cut:?}, {n} words");
                }
                let sizes = layout(&frame, word(word_bytes), n).unwrap();
                let blocks = n.div_ceil(BLOCK);
                assert_eq!(sizes.blocks, blocks);
                assert_eq!(sizes.coded_lanes, blocks * cut.coded_lanes as usize);
                assert_eq!(sizes.rotated_blocks, blocks * usize::from(cut.rotated));
                assert_eq!(sizes.zero_mask_blocks, blocks * usize::from(cut.zero_mask));
                if n > 0 {
                    assert_eq!(sizes.symbol_bits, (cut.symbol_bits, cut.symbol_bits));
                }
                assert_eq!(
                    sizes.header + sizes.mask + sizes.symbols + sizes.lanes + sizes.flat,
                    frame.len()
                );
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_avx2_encoder_writes_the_portable_bytes() {
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("bmi2")) {
        return;
    }
    for word_bytes in [2, 4] {
        for n in [1, 7, 8, 9, 63, 64, 65, 1000, BLOCK + 17] {
            for zeros in [0, 30, 90, 100] {
                let src = words(n, word_bytes, zeros, n as u64 + zeros);
                for cut in every_cut(word_bytes) {
                    let portable = encode_with(&src, word_bytes, cut);
                    // SAFETY: AVX2 and BMI2 were detected above.
                    let avx2 = unsafe { encode_with_avx2(&src, word_bytes, cut) };
                    assert!(portable == avx2, "{cut:?}, {n} words, {zeros}% zeros");
                }
            }
        }
    }
}

#[test]
fn chosen_cuts_round_trip_across_blocks_and_shrink_weights() {
    for word_bytes in [2, 4] {
        let n = BLOCK + 1234;
        for zeros in [0, 50] {
            let src = words(n, word_bytes, zeros, 7);
            for level in [CodingLevel::Fast, CodingLevel::Default] {
                let mut frame = Vec::new();
                encode(
                    &src,
                    word(word_bytes),
                    level,
                    &mut Scratch::default(),
                    &mut frame,
                );
                for simd in crate::simd::Level::available() {
                    let mut again = Vec::new();
                    crate::simd::with_level(simd, || {
                        encode(
                            &src,
                            word(word_bytes),
                            level,
                            &mut Scratch::default(),
                            &mut again,
                        )
                    })
                    .unwrap();
                    assert!(again == frame, "the encoder at {simd} writes other bytes");
                }
                for out in decode_all(&frame, word_bytes, n) {
                    assert!(out == src);
                }
                // 9 exponents of 256 and (with zeros) a zero mask: well under the raw size.
                assert!(
                    frame.len() * 100 < src.len() * 95,
                    "{} of {}",
                    frame.len(),
                    src.len()
                );
                let sizes = layout(&frame, word(word_bytes), n).unwrap();
                let masked = if zeros > 0 { sizes.blocks } else { 0 };
                assert_eq!(sizes.zero_mask_blocks, masked, "{sizes:?}");
            }
        }
    }
}

#[test]
fn malformed_chunks_are_errors_naming_what_is_wrong() {
    let src = words(300, 2, 30, 3);
    let cut = Planes {
        word_bits: 16,
        symbol_bits: 9,
        coded_lanes: 0,
        rotated: true,
        zero_mask: true,
        rans_symbols: false,
    };
    let frame = encode_with(&src, 2, cut);
    let err = |bytes: &[u8]| {
        let mut out = vec![0u8; 600];
        decode(
            crate::simd::Level::Scalar,
            bytes,
            word(2),
            &mut Scratch::default(),
            &mut out,
            Stores::Cached,
        )
        .unwrap_err()
        .to_string()
    };
    let mut bad = frame.clone();
    bad[1] = 13;
    assert!(err(&bad).contains("does not fit"), "{}", err(&bad));
    let mut bad = frame.clone();
    // Coded lanes (after the flags, the cut and the stored count): no byte lane fits below 9 of
    // 16 bits.
    bad[7] = 1;
    assert!(err(&bad).contains("do not fit"), "{}", err(&bad));
    let mut bad = frame.clone();
    bad[2] |= 0x08;
    assert!(err(&bad).contains("unknown planes options"));
    let mut bad = frame.clone();
    bad[2] |= 0x04;
    assert!(
        err(&bad).contains("rANS symbols of 9 bits"),
        "{}",
        err(&bad)
    );
    let mut bad = frame.clone();
    bad[3] ^= 1; // the stored word count
    assert!(err(&bad).contains("zero mask marks"), "{}", err(&bad));
    let mut bad = frame.clone();
    bad.push(0);
    assert!(err(&bad).contains("stray bytes"));
    for cut in 0..frame.len() {
        let mut out = vec![0u8; 600];
        assert!(decode(
            crate::simd::Level::Scalar,
            &frame[..cut],
            word(2),
            &mut Scratch::default(),
            &mut out,
            Stores::Cached,
        )
        .is_err());
    }
}

#[test]
fn every_bit_flip_is_an_error_or_some_words() {
    let src = words(200, 4, 10, 5);
    let huffman = Planes {
        word_bits: 32,
        symbol_bits: 9,
        coded_lanes: 1,
        rotated: false,
        zero_mask: true,
        rans_symbols: false,
    };
    let rans = Planes {
        symbol_bits: 8,
        rans_symbols: true,
        ..huffman
    };
    for frame in [encode_with(&src, 4, huffman), encode_with(&src, 4, rans)] {
        every_flip_agrees(&frame);
    }
}

/// Every bit flip of a 200-word chunk of 32-bit words decodes alike at every SIMD level.
fn every_flip_agrees(frame: &[u8]) {
    for bit in 0..8 * frame.len() {
        let mut bad = frame.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        let outs: Vec<_> = crate::simd::Level::available()
            .into_iter()
            .map(|level| {
                let mut out = vec![0u8; 800];
                decode(
                    level,
                    &bad,
                    word(4),
                    &mut Scratch::default(),
                    &mut out,
                    Stores::Cached,
                )
                .map(|()| out)
            })
            .collect();
        // Whatever the outcome, every SIMD level agrees on it.
        for o in &outs[1..] {
            assert_eq!(o.is_ok(), outs[0].is_ok());
            if let (Ok(a), Ok(b)) = (o, &outs[0]) {
                assert!(a == b);
            }
        }
    }
}

#[test]
fn one_byte_types_in_16_bit_words_round_trip_and_shrink() {
    // FP8-like bytes (a few exponents) and 4-bit codes, held in the low bits of 16-bit words.
    for bits in [8u32, 6, 4] {
        let mut r = rng(u64::from(bits));
        let src: Vec<u8> = (0..50_000)
            .flat_map(|_| {
                let x = r();
                let v = if bits == 8 {
                    ((x & 0x80) | (0x30 + (x >> 8) % 12)) as u16
                } else {
                    ((x >> 8) % (1 << bits) / (1 + (x >> 20) % 3)) as u16
                };
                v.to_le_bytes()
            })
            .collect();
        let word = Word { bytes: 2, bits };
        for level in [CodingLevel::Fast, CodingLevel::Default] {
            let mut frame = Vec::new();
            encode(&src, word, level, &mut Scratch::default(), &mut frame);
            for l in crate::simd::Level::available() {
                let mut out = vec![0u8; src.len()];
                decode(
                    l,
                    &frame,
                    word,
                    &mut Scratch::default(),
                    &mut out,
                    Stores::Streaming,
                )
                .unwrap();
                assert!(out == src, "{bits} bits at {l}");
            }
            assert!(
                8 * frame.len() < src.len() / 2 * bits as usize,
                "{bits} bits"
            );
        }
    }
}
