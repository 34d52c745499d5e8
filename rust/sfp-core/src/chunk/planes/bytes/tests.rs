//! The one-byte decoder against the elements and against the 16-bit words' decoder: every cut,
//! both lossless levels' choices, odd lengths, several blocks, and damaged chunks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::super::{decode, encode, split, Word, MAX_LANES, MAX_SYMBOL_BITS, PLANES};
use super::*;
use crate::format::CodingLevel;
use crate::runtime::memory::Stores;
use crate::testkit::{damaged, rng};

/// FP8-like elements of `bits` bits: a few exponents under the top, random signs and mantissas,
/// `zeros` percent zeros.
fn elements(n: usize, bits: u32, zeros: u64, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let x = r();
            if x % 100 < zeros {
                return 0;
            }
            let top = (1u64 << bits) - 1;
            let exp = (top >> 3).saturating_sub((x >> 8) % 3) << 2;
            (((x >> 20) & 1) << (bits - 1) | exp | ((x >> 32) & 3)) as u8 & top as u8
        })
        .collect()
}

/// The elements as the 16-bit words the encoder reads.
fn widened(src: &[u8]) -> Vec<u8> {
    src.iter().flat_map(|&b| [b, 0]).collect()
}

fn encode_cut(src: &[u8], cut: Planes) -> Vec<u8> {
    let mut s = Scratch::default();
    let mut out = vec![PLANES];
    for block in widened(src).chunks(BLOCK * 2) {
        split::load_words(block, 2, &mut s.words);
        out.extend_from_slice(&[cut.symbol_bits as u8, cut.options()]);
        split::encode_block::<false>(cut, &mut s, &mut out);
    }
    out
}

fn every_cut(bits: u32) -> Vec<Planes> {
    let mut cuts = Vec::new();
    for symbol_bits in 0..=MAX_SYMBOL_BITS.min(bits) {
        for coded_lanes in 0..=MAX_LANES {
            if 8 * coded_lanes > bits - symbol_bits {
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
                            word_bits: bits,
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

/// The elements decoded at `level`, or the error.
fn bytes_at(level: Level, chunk: &[u8], bits: u32, n: usize) -> Result<Vec<u8>> {
    let mut out = vec![0xa5u8; n];
    decode_bytes(level, chunk, bits, &mut Scratch::default(), &mut out).map(|()| out)
}

/// The elements the 16-bit words' decoder gives, or its error.
fn through_words(chunk: &[u8], bits: u32, n: usize) -> Result<Vec<u8>> {
    let mut words = vec![0u8; 2 * n];
    let word = Word { bytes: 2, bits };
    decode(
        Level::Scalar,
        chunk,
        word,
        &mut Scratch::default(),
        &mut words,
        Stores::Cached,
    )?;
    Ok(words.chunks_exact(2).map(|w| w[0]).collect())
}

#[test]
fn every_cut_of_every_one_byte_width_decodes_at_every_level() {
    for bits in [8u32, 6, 4] {
        for n in [0, 1, 7, 8, 9, 15, 17, 100, 200, 1000, 4999] {
            let src = elements(n, bits, 10, u64::from(bits) * 100 + n as u64);
            for cut in every_cut(bits) {
                let chunk = encode_cut(&src, cut);
                for level in Level::available() {
                    let out = bytes_at(level, &chunk, bits, n).unwrap();
                    assert!(out == src, "{cut:?} {n} elements at {level}");
                }
            }
        }
    }
}

#[test]
fn chosen_cuts_of_several_blocks_decode_at_both_levels() {
    for bits in [8u32, 6, 4] {
        // Three blocks, the last one short and odd.
        let n = 2 * BLOCK + 4321;
        let src = elements(n, bits, 3, u64::from(bits));
        let word = Word { bytes: 2, bits };
        for level in [CodingLevel::Fast, CodingLevel::Default] {
            let mut chunk = Vec::new();
            encode(
                &widened(&src),
                word,
                level,
                &mut Scratch::default(),
                &mut chunk,
            );
            for l in Level::available() {
                assert!(
                    bytes_at(l, &chunk, bits, n).unwrap() == src,
                    "{bits} bits at {l}"
                );
            }
        }
    }
}

#[test]
fn damaged_chunks_get_the_16_bit_decoders_verdict_at_every_level() {
    let cuts = [
        (7, true, true, false),
        (6, true, false, false),
        (8, false, true, false),
        (0, false, false, false),
        (8, false, false, true),
        (7, true, true, true),
    ];
    for (n, stride) in [(200usize, 1usize), (5000, 11)] {
        let src = elements(n, 8, 15, n as u64);
        for (symbol_bits, rotated, zero_mask, rans_symbols) in cuts {
            let cut = Planes {
                word_bits: 8,
                symbol_bits,
                coded_lanes: 0,
                rotated,
                zero_mask,
                rans_symbols,
            };
            let chunk = encode_cut(&src, cut);
            let mut cases = damaged(&chunk, stride);
            let mut longer = chunk.clone();
            longer.push(0);
            cases.push(longer);
            for bad in &cases {
                let expected = through_words(bad, 8, n);
                for level in Level::available() {
                    match (bytes_at(level, bad, 8, n), &expected) {
                        (Ok(a), Ok(b)) => assert!(a == *b, "{cut:?} at {level}"),
                        (Err(_), Err(_)) => {}
                        (a, b) => {
                            panic!(
                                "{cut:?} at {level}: {:?} against {:?}",
                                a.is_ok(),
                                b.is_ok()
                            )
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn malformed_one_byte_chunks_are_errors_naming_what_is_wrong() {
    let src = elements(300, 8, 30, 9);
    let cut = Planes {
        word_bits: 8,
        symbol_bits: 7,
        coded_lanes: 0,
        rotated: true,
        zero_mask: true,
        rans_symbols: false,
    };
    let chunk = encode_cut(&src, cut);
    let err = |bytes: &[u8]| {
        bytes_at(Level::Scalar, bytes, 8, 300)
            .unwrap_err()
            .to_string()
    };
    let mut bad = chunk.clone();
    bad[1] = 9;
    assert!(
        err(&bad).contains("a symbol of 9 bits does not fit a 8-bit word"),
        "{}",
        err(&bad)
    );
    let mut bad = chunk.clone();
    // Coded lanes (after the flags, the cut and the stored count): none fits below 7 of 8 bits.
    bad[7] = 1;
    assert!(err(&bad).contains("do not fit"), "{}", err(&bad));
    let mut bad = chunk.clone();
    bad[3] ^= 1;
    assert!(err(&bad).contains("zero mask marks"), "{}", err(&bad));
    let mut bad = chunk.clone();
    bad.push(0);
    assert!(err(&bad).contains("stray bytes"), "{}", err(&bad));
}
