//! Fuzzes the entropy exponent coder: arbitrary bytes must decode to an error or to codes that fit the
//! width (never a panic), and the input read as codes must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfp_core::exponent::Coder;

const CODER: Coder = Coder::Entropy;

fuzz_target!(|data: &[u8]| {
    let [w, n0, n1, rest @ ..] = data else { return };
    let width = u32::from(*w % 17);
    let n = usize::from(u16::from_le_bytes([*n0, *n1]) % 4097);
    // Decode: the stream is the rest; the count comes from the (trusted) caller.
    let mut out = vec![0u16; n];
    if CODER.decode(rest, width, &mut out).is_ok() {
        assert!(out.iter().all(|&c| width >= 16 || u32::from(c) < (1u32 << width)));
    }
    // Round trip: the rest as little-endian codes masked to the width.
    let mask = if width >= 16 { u16::MAX } else { ((1u32 << width) - 1) as u16 };
    let codes: Vec<u16> = rest.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]]) & mask).collect();
    let mut stream = Vec::new();
    CODER.encode(&codes, width, &mut stream);
    let mut back = vec![0u16; codes.len()];
    assert!(CODER.decode(&stream, width, &mut back).is_ok());
    assert_eq!(back, codes);
});
