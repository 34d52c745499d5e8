//! Chunks whose signs follow from their exponents (GELU activations) code sign and exponent
//! jointly; the result is still the identity, and the sign stream disappears.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sfp_core::{decode_into, encode, inspect, DType, ExponentCoding, Format, Options};

/// GELU of a deterministic pseudo-normal sequence, as float32 little-endian bytes.
fn gelu_bytes(n: usize) -> Vec<u8> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .flat_map(|_| {
            let z = (-2.0 * uniform().max(1e-300).ln()).sqrt()
                * (std::f64::consts::TAU * uniform()).cos();
            let g = 0.5 * z * (1.0 + (0.797_884_560_8 * (z + 0.044_715 * z * z * z)).tanh());
            (g as f32).to_le_bytes()
        })
        .collect()
}

fn frame(src: &[u8], coding: ExponentCoding) -> Vec<u8> {
    let fmt = Format {
        exponent_coding: coding,
        ..Format::default()
    };
    let shape = [(src.len() / 4) as u64];
    encode(
        src,
        DType::F32,
        &shape,
        &fmt,
        &Options {
            chunk_size: Some(1 << 16),
            threads: Some(1),
        },
    )
    .unwrap()
}

#[test]
fn gelu_chunks_code_signs_jointly_and_round_trip() {
    let src = gelu_bytes(200_000);
    for coding in [ExponentCoding::Auto, ExponentCoding::Entropy] {
        let f = frame(&src, coding);
        let info = inspect(&f).unwrap();
        assert!(
            info.chunks.iter().all(|c| c.sign_bytes == 0),
            "{coding:?}: a chunk kept its sign stream"
        );
        let mut back = vec![0u8; src.len()];
        decode_into(&f, &mut back, Some(1)).unwrap();
        assert_eq!(back, src);
    }
    // Joint coding is smaller than the separate streams it replaced (mantissas counted too: the coded
    // exponent stream may also carry top mantissa bits).
    let gecko = inspect(&frame(&src, ExponentCoding::Gecko)).unwrap();
    let auto = inspect(&frame(&src, ExponentCoding::Auto)).unwrap();
    let sep: usize = gecko.chunks.iter().map(|c| c.sign_bytes).sum();
    assert!(sep > 0);
    let joint: usize = auto
        .chunks
        .iter()
        .map(|c| c.exponent_bytes + c.mantissa_bytes)
        .sum();
    let gecko_exp: usize = gecko
        .chunks
        .iter()
        .map(|c| c.exponent_bytes + c.mantissa_bytes)
        .sum();
    assert!(joint < sep + gecko_exp);
}

#[test]
fn raw_and_gecko_keep_the_sign_stream() {
    let src = gelu_bytes(10_000);
    for coding in [ExponentCoding::Raw, ExponentCoding::Gecko] {
        let info = inspect(&frame(&src, coding)).unwrap();
        assert!(info.chunks.iter().all(|c| c.sign_bytes > 0));
    }
}
