//! Maximum-level frames (joint symbols, coded mantissas, zero skip) decode to the same elements, or
//! the same error, at every SIMD level this CPU has: intact, with bytes flipped (checksums
//! repaired, so the damage reaches the chunk decoders) and truncated.

use sfp_core::simd::{with_level, Level};
use sfp_core::testkit::corrupt::repair_checksums;
use sfp_core::testkit::rng;
use sfp_core::{
    decode_into, encode, inspect, quantize_shaped, CodingLevel, DType, Format, Options,
};

/// `n` float32 values shaped like weights (a sum of uniforms), or ReLU activations of them.
fn values(n: usize, relu: bool, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let u: f32 = (0..4)
                .map(|_| (r() >> 40) as f32 / (1u64 << 24) as f32)
                .sum();
            let v = (u - 2.0) * 0.05;
            if relu {
                v.max(0.0)
            } else {
                v
            }
        })
        .collect()
}

/// The little-endian elements of `x` in `dtype` (bfloat16 and float16 by truncation).
fn elements(x: &[f32], dtype: DType) -> Vec<u8> {
    x.iter()
        .flat_map(|&v| {
            let b = v.to_bits();
            match dtype {
                DType::BF16 => ((b >> 16) as u16).to_le_bytes().to_vec(),
                DType::F16 => {
                    // A float16 near the value (exponent rebased, mantissa cut), enough to
                    // exercise the coder.
                    let e = ((b >> 23) & 0xff) as i32 - 127 + 15;
                    let m = (b >> 13) & 0x3ff;
                    let h = if e <= 0 {
                        0
                    } else {
                        (e.min(30) as u32) << 10 | m
                    } | (b >> 16) & 0x8000;
                    (h as u16).to_le_bytes().to_vec()
                }
                _ => b.to_le_bytes().to_vec(),
            }
        })
        .collect()
}

/// The decode of `frame` into `len` bytes at `level`: the bytes, or the error message.
fn decoded(level: Level, frame: &[u8], len: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; len];
    match with_level(level, || decode_into(frame, &mut out, Some(1))) {
        Ok(Ok(_)) => Ok(out),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("level unavailable: {e}")),
    }
}

/// Checks that every available level decodes `frame` as the scalar level does.
fn same_at_every_level(frame: &[u8], len: usize) -> Result<Vec<u8>, String> {
    let scalar = decoded(Level::Scalar, frame, len);
    for level in Level::available() {
        assert_eq!(
            decoded(level, frame, len),
            scalar,
            "{level} decodes a {}-byte frame differently from scalar",
            frame.len()
        );
    }
    scalar
}

#[test]
fn maximum_level_frames_decode_alike_at_every_level() {
    let max = Format {
        level: CodingLevel::Max,
        ..Format::LOSSLESS
    };
    let mut kinds = std::collections::BTreeSet::new();
    for (dtype, relu, n, chunk) in [
        (DType::BF16, false, 70_001, None),
        (DType::BF16, true, 70_001, None),
        (DType::BF16, true, 5_003, Some(1_000)),
        // Zero-skipped chunks of several lane blocks (about 150 000 stored values).
        (DType::BF16, true, 300_001, None),
        (DType::F32, true, 300_001, None),
        (DType::F16, false, 40_000, None),
        (DType::F16, true, 40_000, Some(7_777)),
        (DType::F32, false, 30_000, None),
        (DType::F32, true, 30_000, None),
    ] {
        let src = elements(&values(n, relu, n as u64), dtype);
        let opts = Options {
            chunk_size: chunk,
            threads: Some(1),
        };
        let frame = encode(&src, dtype, &[n as u64], &max, &opts).unwrap();
        for c in inspect(&frame).unwrap().chunks {
            kinds.insert(c.mantissa.map(|p| p.name()));
        }
        assert_eq!(same_at_every_level(&frame, src.len()), Ok(src.clone()));
        let mut r = rng(n as u64 + 1);
        let mut errors = 0;
        for _ in 0..60 {
            let mut bad = frame.clone();
            let at = 64 + (r() as usize) % (bad.len() - 64);
            bad[at] ^= 1 << (r() % 8);
            repair_checksums(&mut bad);
            errors += usize::from(same_at_every_level(&bad, src.len()).is_err());
        }
        for cut in [frame.len() - 1, frame.len() / 2, frame.len() - 100] {
            let mut short = frame[..cut].to_vec();
            repair_checksums(&mut short);
            assert!(same_at_every_level(&short, src.len()).is_err());
        }
        assert!(errors > 0, "no flipped frame of {dtype:?} was an error");
    }
    // The cases reach the coded-mantissa kinds the vector paths serve, with and without zero skip.
    let names: Vec<String> = kinds.into_iter().flatten().collect();
    assert!(names.iter().any(|k| k == "top3+lanes"), "{names:?}");
    assert!(names.iter().any(|k| k.starts_with("zeros+")), "{names:?}");
}

/// Lossy formats at the maximum level: their exponent codes are not the exponent fields, so the
/// vector loops take each element's leading bits from the symbol's table (lossless chunks compute
/// them from the symbol); both decode to the quantized elements at every level.
#[test]
fn maximum_level_window_frames_decode_alike_at_every_level() {
    let mut kinds = std::collections::BTreeSet::new();
    for (dtype, relu, exp_bits, man_bits) in [
        (DType::BF16, false, Some(5), 7),
        (DType::BF16, true, Some(4), 5),
        (DType::F32, false, Some(6), 12),
        (DType::F16, false, Some(4), 8),
        // Whole exponents and low mantissas of one raw lane (at most 8 bits), which the vector
        // loops read where they are packed.
        (DType::F32, false, None, 8),
        (DType::F32, true, None, 5),
        (DType::F16, false, None, 6),
        (DType::BF16, false, None, 3),
    ] {
        let n = 70_001;
        let format = Format {
            exp_bits,
            man_bits: Some(man_bits),
            level: CodingLevel::Max,
            ..Format::LOSSLESS
        };
        let src = elements(&values(n, relu, 7 + n as u64), dtype);
        let opts = Options {
            chunk_size: None,
            threads: Some(1),
        };
        let frame = encode(&src, dtype, &[n as u64], &format, &opts).unwrap();
        for c in inspect(&frame).unwrap().chunks {
            kinds.insert(c.mantissa.map(|p| p.name()));
        }
        let mut want = vec![0u8; src.len()];
        quantize_shaped(&src, &mut want, dtype, &[n as u64], &format, Some(1)).unwrap();
        assert_eq!(
            same_at_every_level(&frame, src.len()),
            Ok(want),
            "{dtype:?}"
        );
    }
    let names: Vec<String> = kinds.into_iter().flatten().collect();
    assert!(names.iter().any(|k| k.contains("top")), "{names:?}");
}

/// Values with skewed top four mantissa bits: the maximum level joins all four to the exponent
/// (where the element has them), and the frames decode alike at every level.
#[test]
fn four_top_bits_are_chosen_where_they_pay_and_decode_alike_at_every_level() {
    for dtype in [DType::BF16, DType::F16, DType::F32, DType::F64] {
        let n = 3000;
        let src = sfp_core::testkit::golden::skewed_top4_values(dtype, n);
        let max = Format {
            level: CodingLevel::Max,
            ..Format::LOSSLESS
        };
        let opts = Options {
            chunk_size: Some(1500),
            threads: Some(1),
        };
        let frame = encode(&src, dtype, &[n as u64], &max, &opts).unwrap();
        let names: Vec<String> = inspect(&frame)
            .unwrap()
            .chunks
            .iter()
            .filter_map(|c| c.mantissa.map(|p| p.name()))
            .collect();
        assert!(
            names.iter().all(|k| k.contains("top4")),
            "{dtype:?}: {names:?}"
        );
        assert_eq!(same_at_every_level(&frame, src.len()), Ok(src.clone()));
    }
}
