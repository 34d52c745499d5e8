//! Round trips of the degenerate cases, the length bound, the code lengths and every class of
//! malformed stream with its message.

use super::*;
use crate::simd::{with_level, Level};
use crate::testkit::rng;
use proptest::prelude::*;

/// Exponent-like symbols: mostly a few below the top of the width, geometric, some zeros.
fn skewed(n: usize, width: u32, seed: u64) -> Vec<u16> {
    let top = (1u64 << width) - 1;
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let u = r();
            if u.is_multiple_of(10) {
                return 0;
            }
            top.saturating_sub(u64::from((u >> 16).trailing_zeros())) as u16
        })
        .collect()
}

fn uniform(n: usize, width: u32, seed: u64) -> Vec<u16> {
    let mut r = rng(seed);
    (0..n).map(|_| (r() & ((1 << width) - 1)) as u16).collect()
}

/// Encodes, checks the size claims and every SIMD level's decode, returns the stream.
fn round_trip(symbols: &[u16], width: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode(symbols, width, &mut bytes);
    let hist = histogram(symbols, width);
    if let Some(t) = Table::from_histogram(&hist) {
        let (est, min) = (
            t.estimated_len(&hist, symbols.len()),
            t.min_len(&hist, symbols.len()),
        );
        assert!(
            min <= bytes.len() && bytes.len() <= est,
            "{min} <= {} <= {est}",
            bytes.len()
        );
        assert!(est - min < STREAMS, "estimate {est} min {min}");
    } else {
        assert!(bytes.is_empty());
    }
    for level in Level::available() {
        let mut back = vec![0xffffu16; symbols.len()];
        with_level(level, || decode(&bytes, width, &mut back))
            .unwrap()
            .unwrap_or_else(|e| panic!("{level} width {width} n {}: {e}", symbols.len()));
        assert_eq!(back, symbols, "{level} width {width}");
    }
    bytes
}

#[test]
fn degenerate_inputs_round_trip() {
    assert!(round_trip(&[], 8).is_empty());
    assert_eq!(round_trip(&[5], 8), [SINGLE, 5]);
    assert_eq!(round_trip(&vec![300; 1 << 20], 12), [SINGLE, 0xac, 0x02]);
    assert_eq!(round_trip(&[0, 1], 1).len(), 1 + 2 + 1 + 1);
    for width in 1..=MAX_WIDTH {
        let all: Vec<u16> = (0..1u32 << width).map(|s| s as u16).collect();
        let bytes = round_trip(&all, width);
        assert_eq!(bytes[0] == VERBATIM, width == 16, "width {width}");
        let mut twice = all.clone();
        twice.extend(skewed(5000, width, 3));
        round_trip(&twice, width);
    }
    for n in [
        2,
        3,
        4,
        5,
        MIN_SPLIT - 1,
        MIN_SPLIT,
        MIN_SPLIT + 1,
        MIN_SPLIT + 3,
        4099,
    ] {
        for width in [1, 3, 8, 9, 12] {
            let bytes = round_trip(&skewed(n, width, n as u64), width);
            assert!(bytes[0] == 1 || bytes[0] == SINGLE || n >= MIN_SPLIT);
            round_trip(&uniform(n, width, 7), width);
        }
    }
    // Width 0 has the one symbol 0; codes are masked to the width.
    round_trip(&[0; 10], 0);
    let mut bytes = Vec::new();
    encode(&[0x1ff, 0x0ff, 3], 8, &mut bytes);
    let mut back = [0u16; 3];
    decode(&bytes, 8, &mut back).unwrap();
    assert_eq!(back, [0xff, 0xff, 3]);
}

#[test]
fn long_streams_use_four_bitstreams_and_short_codes() {
    let symbols = skewed(1 << 16, 8, 1);
    let bytes = round_trip(&symbols, 8);
    assert_eq!(usize::from(bytes[0]), STREAMS);
    let hist = histogram(&symbols, 8);
    let t = Table::from_histogram(&hist).unwrap();
    assert!(t.max_code_len() <= LIMIT);
    // Within 1% of the order-0 entropy plus the header (skewed data has short codes).
    let n = symbols.len() as f64;
    let entropy: f64 = hist
        .iter()
        .filter(|&&h| h > 0)
        .map(|&h| -f64::from(h) * (f64::from(h) / n).log2())
        .sum();
    assert!(
        (bytes.len() as f64) < entropy / 8.0 * 1.04 + 200.0,
        "{} vs {entropy}",
        bytes.len()
    );
}

fn kraft(lengths: &[u8], limit: u32) -> u64 {
    lengths
        .iter()
        .map(|&l| 1u64 << (limit - u32::from(l)))
        .sum()
}

#[test]
fn lengths_are_huffman_and_limited_and_complete() {
    assert_eq!(
        lengths::limited_lengths(&[8, 4, 2, 1, 1], 11),
        [1, 2, 3, 4, 4]
    );
    assert_eq!(lengths::limited_lengths(&[5, 5], 11), [1, 1]);
    assert_eq!(lengths::limited_lengths(&[1, 1, 1, 1], 11), [2, 2, 2, 2]);
    // Fibonacci frequencies give the deepest tree; the limit cuts it.
    let mut fib = vec![1u64, 1];
    while fib.len() < 40 {
        fib.push(fib[fib.len() - 1] + fib[fib.len() - 2]);
    }
    let free = lengths::limited_lengths(&fib, 63);
    assert_eq!(free.iter().max(), Some(&39));
    for limit in [6, 8, 11, 12, 15] {
        let cut = lengths::limited_lengths(&fib, limit);
        assert_eq!(kraft(&cut, limit), 1 << limit, "limit {limit}");
        assert!(cut.iter().all(|&l| (1..=limit as u8).contains(&l)));
        // More frequent symbols never get longer codes.
        assert!(cut.windows(2).all(|w| w[0] >= w[1]), "{cut:?}");
    }
    // Exactly 2^limit symbols: every code at the limit.
    let flat = lengths::limited_lengths(&[3; 2048], 11);
    assert!(flat.iter().all(|&l| l == 11));
    let mut r = rng(9);
    for n in [2usize, 3, 17, 300, 2048] {
        let freqs: Vec<u64> = (0..n).map(|_| 1 + (r() % 1000) * (r() % 1000)).collect();
        let l = lengths::limited_lengths(&freqs, 11);
        assert_eq!(kraft(&l, 11), 1 << 11, "n {n}");
    }
}

#[test]
fn canonical_codes_are_prefix_free_in_length_then_symbol_order() {
    let lengths = [2u8, 0, 1, 3, 3];
    let codes = lengths::canonical_codes(&lengths);
    // MSB-first canonical: sym2 = 0, sym0 = 10, sym3 = 110, sym4 = 111; stored bit-reversed.
    assert_eq!(codes, [0b01, 0, 0b0, 0b011, 0b111]);
}

/// The stream of 300 skewed 8-bit symbols with its header fields located.
fn sample() -> (Vec<u16>, Vec<u8>) {
    let symbols = skewed(300, 8, 5);
    let mut bytes = Vec::new();
    encode(&symbols, 8, &mut bytes);
    (symbols, bytes)
}

fn decode_err(bytes: &[u8], width: u32, n: usize) -> String {
    let mut out = vec![0u16; n];
    match decode(bytes, width, &mut out) {
        Ok(()) => panic!("decoded {bytes:02x?}"),
        Err(Error::Decode(m)) => m,
        Err(e) => panic!("not a decode error: {e:?}"),
    }
}

#[test]
fn each_malformed_stream_names_what_is_wrong() {
    let e = |bytes: &[u8], n: usize| decode_err(bytes, 8, n);
    assert_eq!(e(&[], 3), "huffman stream: empty, but 3 symbols expected");
    assert_eq!(
        e(&[SINGLE, 1], 0),
        "huffman stream: bytes present for zero symbols"
    );
    assert_eq!(e(&[7], 3), "huffman stream: unknown kind 7");
    assert_eq!(
        decode_err(&[SINGLE, 1], 17, 1),
        "huffman stream: width 17 exceeds 16"
    );
    assert_eq!(e(&[SINGLE, 0x80], 1), "huffman stream: truncated header");
    assert_eq!(
        e(&[SINGLE, 0xac, 0x02], 1),
        "huffman stream: symbol 300 does not fit 8 bits"
    );
    assert_eq!(
        e(&[SINGLE, 1, 0], 1),
        "huffman stream: bytes left over after a single-symbol stream"
    );
    assert_eq!(
        e(&[VERBATIM, 1, 0, 2], 2),
        "huffman stream: 3 verbatim bytes for 2 symbols"
    );
    assert_eq!(
        e(&[VERBATIM, 1, 0, 0, 1], 2),
        "huffman stream: symbol 256 does not fit 8 bits"
    );
    assert_eq!(
        e(&[1, 0xfa, 0x01, 10], 2),
        "huffman stream: symbols 250..250+10 do not fit 8 bits"
    );
    assert_eq!(
        e(&[1, 0, 1], 2),
        "huffman stream: symbols 0..0+1 do not fit 8 bits"
    );
    assert_eq!(
        e(&[1, 0, 4, 0x11], 2),
        "huffman stream: truncated code lengths"
    );
    // Lengths 1, 1, 1: Kraft sum 3/2. Lengths 1, 2: incomplete (an unused pattern).
    assert_eq!(
        e(&[1, 0, 3, 0x11, 0x01, 0], 2),
        "huffman stream: code lengths have Kraft sum 49152/32768, not a complete code"
    );
    assert_eq!(
        e(&[1, 0, 2, 0x21, 0], 2),
        "huffman stream: code lengths have Kraft sum 24576/32768, not a complete code"
    );
    assert_eq!(
        e(&[1, 0, 3, 0x11, 0x10, 0], 2),
        "huffman stream: code length past the last symbol"
    );
    // Two symbols of length 1: symbol 0 is bit 0, symbol 1 bit 1.
    assert!(decode(&[1, 0, 2, 0x11, 0b10], 8, &mut [0u16; 2]).is_ok());
    assert_eq!(
        e(&[1, 0, 2, 0x11, 0b10], 9),
        "huffman stream: stream 0 of 1 ends before its symbols"
    );
    assert_eq!(
        e(&[1, 0, 2, 0x11, 0b10, 0], 2),
        "huffman stream: stream 0 of 1 has 1 bytes left over"
    );
    assert_eq!(
        e(&[1, 0, 2, 0x11, 0b110], 2),
        "huffman stream: stream 0 of 1 has padding bits that are not zero"
    );
    let (symbols, bytes) = sample();
    let n = symbols.len();
    assert_eq!(usize::from(bytes[0]), STREAMS);
    // Kind, lo, span, the lengths: where the bitstream lengths start.
    let mut pos = 1;
    crate::coding::varint::get(&bytes, &mut pos, "huffman", "header").unwrap();
    let span = crate::coding::varint::get(&bytes, &mut pos, "huffman", "header").unwrap();
    let header = pos + span.div_ceil(2) as usize;
    assert_eq!(
        e(&bytes[..header + 5], n),
        "huffman stream: truncated bitstream lengths"
    );
    let mut long = bytes.clone();
    long[header + 4..header + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let m = e(&long, n);
    assert!(
        m.starts_with("huffman stream: bitstream lengths sum to 4294967"),
        "{m}"
    );
    assert!(
        m.ends_with(&format!(
            "beyond the {} bytes left",
            bytes.len() - header - 24
        )),
        "{m}"
    );
    let mut many = bytes.clone();
    many[header..header + 4].copy_from_slice(&300u32.to_le_bytes());
    let m = e(&many, n);
    assert!(m.starts_with("huffman stream: bitstreams claim 4"), "{m}");
    assert!(m.ends_with("symbols, more than the 300 expected"), "{m}");
    assert_eq!(
        e(&bytes[..bytes.len() - 1], n),
        "huffman stream: stream 3 of 4 ends before its symbols"
    );
    let mut shifted = bytes.clone();
    let first = u32::from_le_bytes(shifted[header + 4..header + 8].try_into().unwrap());
    shifted[header + 4..header + 8].copy_from_slice(&(first + 1).to_le_bytes());
    assert_eq!(
        e(&shifted, n),
        "huffman stream: stream 0 of 4 has 1 bytes left over"
    );
}

#[test]
fn every_truncation_and_bit_flip_is_an_error_or_valid_symbols() {
    let (symbols, bytes) = sample();
    let mut out = vec![0u16; symbols.len()];
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut], 8, &mut out).is_err(), "cut {cut}");
    }
    for bit in 0..bytes.len() * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        for width in [8, 5] {
            if decode(&bad, width, &mut out).is_ok() {
                assert!(out.iter().all(|&s| u32::from(s) >> width == 0), "bit {bit}");
            }
        }
    }
}

#[test]
fn table_bound_holds_for_another_count_and_rejects_foreign_symbols() {
    let symbols = skewed(1000, 8, 2);
    let hist = histogram(&symbols, 8);
    let table = Table::from_histogram(&hist).unwrap();
    let mut out = vec![9u8];
    let err = encode_with_table(&[1, 2, 3], 8, &table, &mut out).unwrap_err();
    assert!(
        err.to_string().contains("has no code in the table"),
        "{err}"
    );
    assert_eq!(out, [9]);
    let single = Table::from_histogram(&histogram(&[4, 4], 8)).unwrap();
    let err = encode_with_table(&[4, 5], 8, &single, &mut out).unwrap_err();
    assert_eq!(
        err.to_string(),
        "huffman: symbol 5 has no code in a table of the one symbol 4"
    );
    assert!(Table::from_histogram(&[0; 16]).is_none());
}

#[test]
fn a_hostile_split_decodes_every_symbol_on_the_careful_path() {
    // Four bitstreams where the first three hold no bytes and no symbols: the last has them all.
    let mut bytes = vec![STREAMS as u8, 0, 2, 0x11];
    bytes.extend_from_slice(&[0; 24]);
    bytes.push(0b101);
    let mut out = [9u16; 3];
    decode(&bytes, 1, &mut out).unwrap();
    assert_eq!(out, [1, 0, 1]);
}

fn symbols_strategy() -> impl Strategy<Value = (u32, Vec<u16>)> {
    (1u32..=MAX_WIDTH).prop_flat_map(|width| {
        let max = ((1u32 << width) - 1) as u16;
        let any = prop::collection::vec(0..=max, 0..3000);
        let near_top = prop::collection::vec(
            prop_oneof![8 => max.saturating_sub(3)..=max, 1 => Just(0u16), 1 => 0..=max],
            0..3000,
        );
        let single = (0..=max, 0usize..3000).prop_map(|(s, n)| vec![s; n]);
        (Just(width), prop_oneof![any, near_top, single])
    })
}

proptest! {
    #[test]
    fn prop_round_trips((width, symbols) in symbols_strategy()) {
        round_trip(&symbols, width);
    }

    #[test]
    fn prop_garbage_is_an_error_or_valid_symbols(
        bytes in prop::collection::vec(any::<u8>(), 0..80),
        n in 0usize..300,
        width in 0u32..=17,
    ) {
        let mut out = vec![0u16; n];
        if decode(&bytes, width, &mut out).is_ok() {
            prop_assert!(out.iter().all(|&s| u32::from(s) >> width == 0));
        }
    }
}
