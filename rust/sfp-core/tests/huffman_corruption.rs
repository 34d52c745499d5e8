//! Corruption of Huffman exponent streams: every single-bit flip and every truncation of streams of
//! each kind (four bitstreams decoded by the fast loop or the careful one, one bitstream, a single symbol) decodes to `Error::Decode` or to codes within
//! the width that re-encode to themselves, and decoding hostile streams allocates no more than a
//! small multiple of the input plus the fixed decode tables, whatever symbol count is asked for.
//!
//! One test per binary: the allocation counter is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sfp_core::exponent::{huffman, Coder};
use sfp_core::testkit::alloc::{peak_during, CountingAlloc};
use sfp_core::testkit::check_stream;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Exponent-like codes: mostly just under the top of the width.
fn skewed(n: usize, width: u32) -> Vec<u16> {
    let top = (1u32 << width) - 1;
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            top.saturating_sub((s >> 20).trailing_zeros().min(top)) as u16
        })
        .collect()
}

#[test]
fn every_flip_and_truncation_of_huffman_streams_is_an_error_or_valid() {
    // Warm the thread's decode tables so they are not charged to a stream.
    let mut warm = [0u16; 4100];
    let mut stream = Vec::new();
    huffman::encode(&skewed(4100, 8), 8, &mut stream);
    huffman::decode(&stream, 8, &mut warm).unwrap();
    // 4100 codes: past the size from which the fast table is built, so flips reach the fast loop.
    let cases = [
        (skewed(4100, 8), 8),
        (skewed(300, 8), 8),
        (skewed(90, 9), 9),
        (vec![7; 50], 4),
    ];
    for (codes, width) in cases {
        let n = codes.len();
        let mut stream = Vec::new();
        huffman::encode(&codes, width, &mut stream);
        let mut decoded = 0usize;
        let ((), peak) = peak_during(|| {
            for len in 0..stream.len() {
                assert!(
                    !check_stream(Coder::Huffman, &stream[..len], width, n).unwrap(),
                    "width {width}: truncated to {len} decoded"
                );
            }
            let mut copy = stream.clone();
            for bit in 0..stream.len() * 8 {
                copy[bit / 8] ^= 1 << (bit % 8);
                let ok = check_stream(Coder::Huffman, &copy, width, n)
                    .unwrap_or_else(|e| panic!("width {width} bit {bit}: {e}"));
                decoded += usize::from(ok);
                copy[bit / 8] ^= 1 << (bit % 8);
            }
        });
        // The copy, the decoded and re-encoded codes, the code lengths and canonical codes, the
        // re-encoding's histogram (four partial tables of 2^width counts) and its encoder's code
        // and length arrays (2^width of each).
        let budget = 16 * stream.len() + 8 * n + (24 << width) + 4096;
        assert!(peak <= budget, "width {width}: peak {peak} > {budget}");
        println!(
            "width {width}, {n} codes, {} bytes: {decoded} of {} flips decode",
            stream.len(),
            stream.len() * 8
        );
    }
    // A header claiming the widest alphabet and a huge count allocates by the input, not the claim.
    let hostile = [4u8, 0, 0x80, 0x80, 0x04, 0x11];
    let mut out = vec![0u16; 1 << 20];
    let (r, peak) = peak_during(|| huffman::decode(&hostile, 16, &mut out));
    assert!(r.is_err());
    assert!(peak < 64, "peak {peak}");
}
