//! Byte output against 16-bit output: the same symbols (through the map) from every stream, and
//! the same verdict on every damaged stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::super::{decode, decode_bytes, encode, MAX_BYTE_WIDTH, SINGLE, VERBATIM};
use crate::error::Result;
use crate::simd::{with_level, Level};
use crate::testkit::{damaged, rng};

/// A map that moves every bit, so a symbol written unmapped would show.
fn scramble() -> [u8; 256] {
    std::array::from_fn(|s| (s as u8).rotate_left(3) ^ 0x5a)
}

/// FP8-like symbols of `width` bits: a few frequent values near the top, a tail of the others.
fn skewed(n: usize, width: u32, seed: u64) -> Vec<u16> {
    let mut r = rng(seed);
    let top = (1u64 << width) - 1;
    (0..n)
        .map(|_| {
            let u = r();
            let s = if u.is_multiple_of(7) {
                (u >> 8) & top
            } else {
                top.saturating_sub(u64::from((u >> 16).trailing_zeros() % 4))
                    ^ ((u >> 24) & top & 3)
            };
            s as u16
        })
        .collect()
}

/// What the byte decoder writes for `bytes` at `level`, or its error.
fn bytes_at(level: Level, bytes: &[u8], width: u32, n: usize) -> Result<Vec<u8>> {
    let mut out = vec![0xa5u8; n];
    with_level(level, || decode_bytes(bytes, width, &scramble(), &mut out))??;
    Ok(out)
}

/// The 16-bit decoder's symbols for `bytes`, mapped, or its error.
fn words_mapped(bytes: &[u8], width: u32, n: usize) -> Result<Vec<u8>> {
    let mut out = vec![0u16; n];
    decode(bytes, width, &mut out)?;
    let map = scramble();
    Ok(out.iter().map(|&s| map[usize::from(s)]).collect())
}

#[test]
fn every_width_and_length_decodes_the_16_bit_decoders_symbols() {
    let map = scramble();
    for width in 1..=MAX_BYTE_WIDTH {
        for n in [1, 2, 7, 255, 256, 1000, 4095, 4096, 4097, 20_000] {
            let symbols = skewed(n, width, u64::from(width) * 1000 + n as u64);
            let mut bytes = Vec::new();
            encode(&symbols, width, &mut bytes);
            let expected: Vec<u8> = symbols.iter().map(|&s| map[usize::from(s)]).collect();
            for level in Level::available() {
                let out = bytes_at(level, &bytes, width, n).unwrap();
                assert!(out == expected, "{level} width {width} n {n}");
            }
        }
    }
}

#[test]
fn single_symbol_verbatim_and_empty_streams_decode() {
    let map = scramble();
    let mut bytes = Vec::new();
    encode(&[5; 300], 3, &mut bytes);
    assert_eq!(bytes[0], SINGLE);
    assert_eq!(
        bytes_at(Level::Scalar, &bytes, 3, 300).unwrap(),
        vec![map[5]; 300]
    );
    let verbatim: Vec<u8> = [VERBATIM, 7, 0, 200, 0].to_vec();
    assert_eq!(
        bytes_at(Level::Scalar, &verbatim, 8, 2).unwrap(),
        vec![map[7], map[200]]
    );
    let err = bytes_at(Level::Scalar, &verbatim, 7, 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("symbol 200 does not fit 7 bits"), "{err}");
    assert!(bytes_at(Level::Scalar, &[], 8, 0).unwrap().is_empty());
    let err = bytes_at(Level::Scalar, &[], 8, 3).unwrap_err().to_string();
    assert!(err.contains("empty, but 3 symbols expected"), "{err}");
    let err = bytes_at(Level::Scalar, &bytes, 9, 300)
        .unwrap_err()
        .to_string();
    assert!(err.contains("width 9 exceeds 8"), "{err}");
}

#[test]
fn damaged_streams_get_the_16_bit_decoders_verdict_at_every_level() {
    // Long enough for the fast loop (4096 symbols and more), and short streams for the careful one.
    for (n, stride) in [(300usize, 1usize), (6000, 5)] {
        let symbols = skewed(n, 6, n as u64);
        let mut bytes = Vec::new();
        encode(&symbols, 6, &mut bytes);
        let cases = damaged(&bytes, stride);
        for bad in &cases {
            let expected = words_mapped(bad, 6, n);
            for level in Level::available() {
                match (bytes_at(level, bad, 6, n), &expected) {
                    (Ok(a), Ok(b)) => assert!(a == *b, "{level}"),
                    (Err(_), Err(_)) => {}
                    (a, b) => panic!("{level}: bytes {:?} words {:?}", a.is_ok(), b.is_ok()),
                }
            }
        }
    }
}
