//! Every SIMD level decodes every stream as the scalar level does: the same codes, or the same
//! error, on real, random and damaged streams.

use super::*;
use crate::simd::{with_level, Level};

/// xorshift: deterministic pseudo-random words.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// The decode of `bytes` as `n` codes of `width` bits at `level`: the codes, or the error message.
fn decoded(
    level: Level,
    bytes: &[u8],
    width: u32,
    n: usize,
) -> std::result::Result<Vec<u16>, String> {
    let mut out = vec![0u16; n];
    match with_level(level, || decode(bytes, width, &mut out)) {
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("level unavailable: {e}")),
    }
}

/// Checks every available level against the scalar one on `bytes`; returns the scalar result.
fn same_at_every_level(
    bytes: &[u8],
    width: u32,
    n: usize,
) -> std::result::Result<Vec<u16>, String> {
    let scalar = decoded(Level::Scalar, bytes, width, n);
    for level in Level::available() {
        assert_eq!(
            decoded(level, bytes, width, n),
            scalar,
            "{level} differs from scalar: width {width}, {n} codes, {} bytes",
            bytes.len()
        );
    }
    scalar
}

/// Skewed codes of `width` bits with about `distinct` values in use.
fn skewed(n: usize, width: u32, distinct: u64, seed: u64) -> Vec<u16> {
    let mut r = rng(seed);
    let mask = (1u64 << width) - 1;
    (0..n)
        .map(|_| {
            let u = r();
            // A geometric pick among the first few, else uniform among `distinct`.
            let v = if u & 3 != 0 {
                u64::from((u >> 8).trailing_zeros())
            } else {
                (u >> 16) % distinct.max(1)
            };
            (v & mask) as u16
        })
        .collect()
}

/// The first `limit` float32 bits of the MiniLM weights (`../shared/corpus/` beside the checkout),
/// `None` when the file is absent.
fn minilm_f32_bits(limit: usize) -> Option<Vec<u32>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/minilm_l6_v2.safetensors");
    let bytes = std::fs::read(path).ok()?;
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = std::str::from_utf8(bytes.get(8..8 + len)?).ok()?;
    let data = bytes.get(8 + len..)?;
    let mut out = Vec::new();
    // Each tensor entry names its dtype before its data offsets.
    for entry in header.split("\"dtype\":").skip(1) {
        let offsets = entry.split("\"data_offsets\":[").nth(1)?;
        let mut it = offsets.split(']').next()?.split(',');
        let start: usize = it.next()?.trim().parse().ok()?;
        let end: usize = it.next()?.trim().parse().ok()?;
        if entry.trim_start().starts_with("\"F32\"") {
            let words = data.get(start..end)?.chunks_exact(4);
            out.extend(words.map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
        if out.len() >= limit {
            break;
        }
    }
    out.truncate(limit);
    (out.len() == limit).then_some(out)
}

const LENGTHS: [usize; 14] = [
    1, 2, 7, 8, 9, 15, 1023, 1024, 1025, 1031, 4096, 5000, 65_536, 70_001,
];

#[test]
fn every_level_decodes_random_streams_like_scalar() {
    for width in [1u32, 4, 8, 12, 16] {
        for &n in &LENGTHS {
            for distinct in [1u64, 3, 300, 1 << 12, 1 << 16] {
                let codes = skewed(n, width, distinct, n as u64 ^ u64::from(width) << 40);
                let mut stream = Vec::new();
                encode(&codes, width, &mut stream);
                assert_eq!(same_at_every_level(&stream, width, n), Ok(codes));
            }
        }
    }
}

#[test]
fn every_level_decodes_tables_of_every_scale() {
    // Wide alphabets with many distinct codes reach the finer tables (scale 14 to 16).
    for distinct in [1usize, 200, 2_000, 9_000, 20_000, 65_536] {
        let n = 3 * distinct + 1_001;
        let codes: Vec<u16> = (0..n).map(|i| ((i * 7_919) % distinct) as u16).collect();
        let mut stream = Vec::new();
        encode(&codes, 16, &mut stream);
        assert_eq!(same_at_every_level(&stream, 16, n), Ok(codes));
    }
    // Hand-made tables of scale 12 to 16: two codes, one with a single slot.
    for scale in MIN_SCALE..=MAX_SCALE {
        let freqs = [(1u32 << scale) - 1, 1];
        let table = Table {
            scale,
            lo: 5,
            freqs: freqs.to_vec(),
            total: 4_000,
        };
        let codes: Vec<u16> = (0..4_000)
            .map(|i| if i % 97 == 0 { 6 } else { 5 })
            .collect();
        let mut stream = Vec::new();
        encode_with_table(&codes, 4, &table, &mut stream);
        assert_eq!(stream[0] & !WIDE, scale as u8);
        assert_eq!(same_at_every_level(&stream, 4, codes.len()), Ok(codes));
    }
}

#[test]
fn every_level_decodes_real_weight_exponents_like_scalar() {
    let Some(bits) = minilm_f32_bits(1 << 18) else {
        eprintln!("MiniLM corpus absent: skipped");
        return;
    };
    type Symbol = fn(u32) -> u16;
    let alphabets: [(u32, Symbol); 3] = [
        (8, |b| ((b >> 23) & 0xff) as u16),
        (12, |b| (b >> 20) as u16),
        (8, |b| (b & 0xff) as u16),
    ];
    for (width, symbol) in alphabets {
        for n in [1_000usize, 65_536, 1 << 18] {
            let codes: Vec<u16> = bits[..n].iter().map(|&b| symbol(b)).collect();
            let mut stream = Vec::new();
            encode(&codes, width, &mut stream);
            assert_eq!(same_at_every_level(&stream, width, n), Ok(codes));
        }
    }
}

#[test]
fn every_level_fails_damaged_streams_like_scalar() {
    let n = 3_000;
    let codes = skewed(n, 8, 40, 7);
    let mut stream = Vec::new();
    encode(&codes, 8, &mut stream);
    let mut errors = 0;
    for cut in (0..stream.len())
        .step_by(7)
        .chain([stream.len() - 1, stream.len() - 2])
    {
        errors += usize::from(same_at_every_level(&stream[..cut], 8, n).is_err());
    }
    assert!(errors > 0, "no truncation was an error");
    let mut r = rng(11);
    for _ in 0..400 {
        let mut bad = stream.clone();
        let at = (r() as usize) % bad.len();
        bad[at] ^= 1 << (r() % 8);
        let _ = same_at_every_level(&bad, 8, n);
        // Too few or too many codes for the stream.
        let _ = same_at_every_level(&bad, 8, n - 8);
        let _ = same_at_every_level(&stream, 8, n + 1 + (r() as usize) % 16);
    }
    // Extra words after the stream: an error at every level.
    let mut longer = stream.clone();
    longer.extend_from_slice(&[0; 32]);
    assert!(same_at_every_level(&longer, 8, n).is_err());
}
