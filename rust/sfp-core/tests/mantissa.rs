//! Mantissa coding: chunks whose mantissas are not uniform code them, the frame
//! still decodes to the identity, and `inspect` names each chunk's mantissa coding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sfp_core::testkit::golden::skewed_values;
use sfp_core::{decode_into, encode, inspect, DType, ExponentCoding, Format, Options};

fn frame(src: &[u8], dtype: DType, fmt: &Format) -> Vec<u8> {
    let n = (src.len() / dtype.size()) as u64;
    let opts = Options {
        chunk_size: Some(4096),
        threads: Some(1),
    };
    encode(src, dtype, &[n], fmt, &opts).unwrap()
}

#[test]
fn skewed_mantissas_are_coded_and_round_trip() {
    for dtype in DType::WIDE {
        let src = skewed_values(dtype, 20_000);
        for coding in [ExponentCoding::Auto, ExponentCoding::Entropy] {
            let fmt = Format {
                exponent_coding: coding,
                ..Format::LOSSLESS
            };
            let f = frame(&src, dtype, &fmt);
            let info = inspect(&f).unwrap();
            for c in &info.chunks {
                // Split streams skip the zeros' mantissas; planes (lossless 16- and 32-bit
                // words at the default level) store only the nonzero words behind a mask.
                match (&c.planes, c.mantissa) {
                    (Some(planes), _) => assert_eq!(planes.zero_mask_blocks, planes.blocks),
                    (None, Some(plan)) => assert!(plan.zero_skip, "{dtype:?}: zeros kept theirs"),
                    (None, None) => panic!("{dtype:?}: a flat chunk"),
                }
                assert!(c.mantissa_bytes < c.values * dtype.man_bits() as usize / 8);
            }
            let mut back = vec![0u8; src.len()];
            decode_into(&f, &mut back, Some(2)).unwrap();
            assert!(back == src, "{dtype:?} {coding:?}: not the identity");
        }
    }
}

#[test]
fn raw_and_gecko_keep_flat_mantissas() {
    for dtype in DType::WIDE {
        let src = skewed_values(dtype, 5000);
        for coding in [ExponentCoding::Raw, ExponentCoding::Gecko] {
            let fmt = Format {
                exponent_coding: coding,
                ..Format::LOSSLESS
            };
            let info = inspect(&frame(&src, dtype, &fmt)).unwrap();
            assert!(info.chunks.iter().all(|c| c.mantissa.is_none()));
        }
    }
}

#[test]
fn uniform_mantissas_stay_flat() {
    // A pseudo-random bit pattern: every field uniform, nothing to gain.
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let src: Vec<u8> = (0..40_000)
        .flat_map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (((s >> 32) as u32) & 0x3fff_ffff | 0x4000_0000).to_le_bytes()
        })
        .collect();
    let info = inspect(&frame(&src, DType::F32, &Format::LOSSLESS)).unwrap();
    assert!(info.chunks.iter().all(|c| c.mantissa.is_none()));
}

#[test]
fn reduced_formats_skip_the_mantissas_of_zeros() {
    // A window above the subnormals: the zero code is an exact zero, its mantissa is never stored.
    let src = skewed_values(DType::F32, 20_000);
    let fmt = Format {
        exp_bits: Some(4),
        man_bits: Some(5),
        ..Format::LOSSLESS
    };
    let f = frame(&src, DType::F32, &fmt);
    let info = inspect(&f).unwrap();
    assert!(info
        .chunks
        .iter()
        .all(|c| c.mantissa.is_some_and(|p| p.zero_skip)));
    let mut back = vec![0u8; src.len()];
    decode_into(&f, &mut back, Some(1)).unwrap();
    let mut q = vec![0u8; src.len()];
    sfp_core::quantize(&src, &mut q, DType::F32, &fmt, Some(1)).unwrap();
    assert!(back == q);
}
