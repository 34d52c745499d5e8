//! Replays the checked-in fuzz corpora (`fuzz/corpus/<target>/`) through the same checks the fuzz
//! targets run, so CI keeps every input a fuzzer ever found interesting without nightly or cargo-fuzz.
//!
//! With `SFP_WRITE_SEEDS=1`, first writes seed inputs built from the golden cases into the corpora
//! (real frames for the decoders, so that mutations start past the checksums).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use sfp_core::exponent::Coder;
use sfp_core::testkit::{self, golden, Failure};
use sfp_core::{encode, Options};

/// A fuzz target's check.
type Check = fn(&[u8]) -> Result<(), Failure>;

/// The check each fuzz target runs; a corpus directory without one here fails the test.
fn check_for(target: &str) -> Option<Check> {
    Some(match target {
        "decode" => |d| testkit::check_decode(d).map(drop),
        "decode_repaired" => |d| testkit::check_decode_repaired(d).map(drop),
        "roundtrip" => testkit::check_roundtrip,
        "exponent_raw" => |d| testkit::check_coder(Coder::Raw, d),
        "exponent_gecko" => |d| testkit::check_coder(Coder::Gecko, d),
        "exponent_entropy" => |d| testkit::check_coder(Coder::Entropy, d),
        "exponent_huffman" => |d| testkit::check_coder(Coder::Huffman, d),
        "entropy_bytes" => testkit::entropy_bytes::check_entropy_bytes,
        "mantissa" => testkit::mantissa::check_mantissa,
        "planes" => testkit::planes::check_planes,
        "simd_parity" => testkit::simd::check_simd_parity,
        _ => return None,
    })
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

fn write_seeds() {
    let dir = corpus_dir();
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let d = dir.join(target);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("seed-{name}")), bytes).unwrap();
    };
    for case in golden::cases() {
        // Keep seeds small: a handful of values per chunk, several chunks.
        let size = case.dtype.size();
        let values = &case.values[..case.values.len().min(40 * size)];
        let n = (values.len() / size) as u64;
        let options = Options {
            chunk_size: Some(16),
            threads: Some(1),
        };
        let frame = encode(values, case.dtype, &[n], &case.format, &options).unwrap();
        put("decode", &case.name, &frame);
        put("decode_repaired", &case.name, &frame);
    }
    for (i, dtype) in sfp_core::DType::WIDE.into_iter().enumerate() {
        for (j, head) in [
            [0u8, 0xff, 1, 0],
            [3, 2, 0x0a, 0x85],
            [2, 1, 2, 0],
            [1, 0, 4, 0],
        ]
        .into_iter()
        .enumerate()
        {
            let mut input = vec![i as u8, head[0], head[1], head[2], head[3], 7, 5, 1];
            input.extend_from_slice(&golden::values(dtype, 64));
            put("roundtrip", &format!("{}-{j}", dtype.name()), &input);
        }
    }
    for width in [1u8, 4, 5, 8, 11, 16] {
        let mut skewed = vec![width, 0x80 | 40];
        skewed.extend((0..200u32).map(|i| (i * 7 % 251) as u8));
        let mut flat = vec![width, 12];
        flat.extend((0..200u32).map(|i| (i * 31 % 253) as u8));
        for target in [
            "exponent_raw",
            "exponent_gecko",
            "exponent_entropy",
            "exponent_huffman",
        ] {
            put(target, &format!("w{width}-skewed"), &skewed);
            put(target, &format!("w{width}-flat"), &flat);
        }
    }
    // Real Huffman streams (four bitstreams, one) as the hostile body, so mutations reach the
    // bitstreams past the header checks.
    for (width, count) in [(8u8, 18u8), (9, 3)] {
        let n = usize::from(count) * 17;
        let codes: Vec<u16> = (0..n)
            .map(|i| ((1u32 << width) - 1 - (i as u32 * 7 % 13).trailing_zeros()) as u16)
            .collect();
        let mut input = vec![width, count];
        sfp_core::exponent::huffman::encode(&codes, u32::from(width), &mut input);
        put("exponent_huffman", &format!("w{width}-stream"), &input);
    }
    // A real rANS stream of a few codes spread over 12 bits (its table lists them alone) as the
    // hostile body.
    let codes: Vec<u16> = (0..20 * 17u16).map(|i| i * 7 % 6 * 700).collect();
    let mut input = vec![12u8, 20];
    sfp_core::exponent::entropy::encode(&codes, 12, &mut input);
    assert!(input[2] & 0x40 != 0, "the seed's table is not sparse");
    put("exponent_entropy", "w12-sparse-stream", &input);
    // A real 128-state stream (the byte variant's layout, which 16-bit codes are read from too).
    let codes: Vec<u16> = (0..9 * 17u16).map(|i| (i * 5 % 7).min(4)).collect();
    let mut input = vec![5u8, 9];
    sfp_core::testkit::entropy_bytes::encode_for_seed(&codes, 5, &mut input);
    assert_eq!(input[2] & 0xa0, 0xa0, "the seed has not 128 states");
    put("exponent_entropy", "w5-many-stream", &input);
    // Exponent-like bytes (a few values, skewed) for the byte variant, with a real stream of them
    // as the hostile body.
    for width in [1u8, 5, 8] {
        let codes: Vec<u8> = (0..600u32)
            .map(|i| {
                (i.wrapping_mul(2_654_435_761) >> 24)
                    .trailing_zeros()
                    .min(u32::from(width)) as u8
            })
            .collect();
        let mut input = vec![width - 1, 9];
        input.extend_from_slice(&codes);
        put("entropy_bytes", &format!("w{width}-codes"), &input);
        let wide: Vec<u16> = codes.iter().map(|&c| u16::from(c)).collect();
        let mut stream = vec![width - 1, 9];
        sfp_core::testkit::entropy_bytes::encode_for_seed(&wide, u32::from(width), &mut stream);
        put("entropy_bytes", &format!("w{width}-stream"), &stream);
    }
    // Weight-like words (a few exponents, random mantissas), some zeroed; and a real chunk as the
    // hostile body.
    for (head, zeros) in [(0u8, 16u8), (1, 16), (2, 19), (3, 18)] {
        let word_bytes = if head & 1 == 0 { 2 } else { 4 };
        let mut input = vec![head, zeros];
        for i in 0..16 * u32::from(zeros) {
            let w = 0x3c00_0000u32 | (i % 5) << 23 | i.wrapping_mul(2_654_435_761) >> 9;
            input.extend_from_slice(&w.to_le_bytes()[4 - word_bytes..]);
        }
        put("planes", &format!("words{head}-z{zeros}"), &input);
        let mut chunk = vec![head, zeros];
        sfp_core::testkit::planes::encode_for_seed(&input[2..], word_bytes, &mut chunk);
        put("planes", &format!("chunk{head}"), &chunk);
    }
    for width in [1u8, 4, 7, 10, 23, 52] {
        for shift in [0u8, 40, 60] {
            let mut input = vec![width, shift];
            input.extend((0..400u32).map(|i| (i * 37 % 251) as u8));
            put("mantissa", &format!("w{width}-s{shift}"), &input);
        }
    }
}

#[test]
fn fuzz_corpora_replay_cleanly() {
    if std::env::var_os("SFP_WRITE_SEEDS").is_some() {
        write_seeds();
    }
    let mut targets: Vec<PathBuf> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    targets.sort();
    let mut total = 0;
    for dir in &targets {
        let target = dir.file_name().unwrap().to_string_lossy().to_string();
        let check = check_for(&target)
            .unwrap_or_else(|| panic!("fuzz/corpus/{target} has no replay check in this test"));
        let mut inputs: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        inputs.sort();
        for input in &inputs {
            let data = fs::read(input).unwrap();
            if let Err(e) = check(&data) {
                panic!("{}: {e}", input.display());
            }
        }
        println!("{target}: {} inputs", inputs.len());
        total += inputs.len();
    }
    assert!(
        total > 0,
        "no corpus inputs found under {}",
        corpus_dir().display()
    );
}
