//! Round trips and malformed streams for the mantissa coder.

use super::*;
use crate::testkit::rng;
use proptest::prelude::*;

/// Round-trips `values` with every lane coder; returns the rANS stream.
fn round_trip(values: &[u64], width: u32) -> Vec<u8> {
    let mut rans = Vec::new();
    for coder in [
        LaneCoder::Rans,
        LaneCoder::Huffman { saving_divisor: 0 },
        LaneCoder::Huffman { saving_divisor: 32 },
    ] {
        let mut out = Vec::new();
        encode(values, width, coder, &mut out);
        let mut back = vec![0u64; values.len()];
        decode(&out, width, &mut back).unwrap();
        assert_eq!(back, values, "width {width}, {coder:?}");
        if coder == LaneCoder::Rans {
            rans = out;
        }
    }
    rans
}

#[test]
fn skewed_lanes_are_huffman_coded_and_flat_ones_stay_flat() {
    let mut r = rng(3);
    let skewed: Vec<u64> = (0..BLOCK).map(|_| r() % 3).collect();
    let mut out = Vec::new();
    encode(
        &skewed,
        8,
        LaneCoder::Huffman { saving_divisor: 64 },
        &mut out,
    );
    assert_eq!(out[0], HUFFMAN);
    assert!(out.len() < BLOCK / 4, "{} bytes", out.len());
    let uniform: Vec<u64> = (0..BLOCK).map(|_| r() & 0xff).collect();
    out.clear();
    encode(
        &uniform,
        8,
        LaneCoder::Huffman { saving_divisor: 64 },
        &mut out,
    );
    assert_eq!((out[0], out.len()), (RAW, 5 + BLOCK));
}

#[test]
fn round_trips_edge_lengths_and_widths() {
    let mut r = rng(7);
    for width in [0u32, 1, 2, 7, 8, 9, 10, 16, 20, 23, 52, 64] {
        for n in [0usize, 1, 3, 63, 64, 65, BLOCK - 1, BLOCK, BLOCK + 1] {
            let uniform: Vec<u64> = (0..n).map(|_| r() & low_mask(width)).collect();
            round_trip(&uniform, width);
            let skewed: Vec<u64> = (0..n)
                .map(|i| if i % 5 == 0 { r() & low_mask(width) } else { 0 })
                .collect();
            round_trip(&skewed, width);
            round_trip(&vec![low_mask(width); n], width);
        }
    }
}

#[test]
fn low_entropy_lanes_are_coded_and_uniform_ones_stay_near_flat() {
    let mut r = rng(11);
    let n = 3 * BLOCK;
    let skewed: Vec<u64> = (0..n).map(|_| (r() % 3) << 8 | (r() & 0xff)).collect();
    let out = round_trip(&skewed, 16);
    // Lane 1 holds three symbols (~1.6 bits), lane 0 is uniform (8 bits): well under 16 bits.
    assert!(out.len() < n * 10 / 8, "{} bytes", out.len());
    let uniform: Vec<u64> = (0..n).map(|_| r() & 0x7f_ffff).collect();
    let out = round_trip(&uniform, 23);
    let flat = (n * 23).div_ceil(8);
    assert!(out.len() <= flat + 5 * 9, "{} vs {flat}", out.len());
}

#[test]
fn plans_round_trip_their_mode_and_reject_bad_modes() {
    for top in 0..=MAX_TOP {
        for zero_skip in [false, true] {
            for low_flat in [false, true] {
                let p = Plan {
                    top,
                    zero_skip,
                    low_flat,
                };
                assert_eq!(Plan::from_mode(p.mode(), 23).unwrap(), p);
            }
        }
    }
    let p = Plan {
        top: 2,
        zero_skip: true,
        low_flat: true,
    };
    assert_eq!(p.name(), "zeros+top2+flat");
    // Bit 4 says four top bits; with the low two bits set it would say more than four.
    assert_eq!(Plan::from_mode(16, 23).unwrap().top, 4);
    assert!(Plan::from_mode(16 | 1, 23).is_err());
    assert!(Plan::from_mode(16, 3).is_err());
    assert!(Plan::from_mode(32, 23).is_err());
    assert!(Plan::from_mode(3, 2).is_err());
    assert!(Plan::from_mode(0, 0).is_err());
}

#[test]
fn split_and_rebuild_invert_each_other() {
    let mut r = rng(3);
    for man_bits in [1u32, 2, 3, 7, 10, 23, 52] {
        for top in 0..=MAX_TOP.min(man_bits) {
            for zero_skip in [false, true] {
                let plan = Plan {
                    top,
                    zero_skip,
                    low_flat: false,
                };
                let n = 1000;
                let codes: Vec<u16> = (0..n).map(|_| (r() % 4) as u16).collect();
                let mants: Vec<u64> = codes
                    .iter()
                    .map(|&c| if c == 0 { 0 } else { r() & low_mask(man_bits) })
                    .collect();
                let mut packed = Vec::new();
                bitpack::pack(mants.iter().copied(), man_bits, &mut packed);
                let (joint, low) = split(plan, &codes, &packed, man_bits).unwrap();
                let mut stream = Vec::new();
                encode(&low, man_bits - top, LaneCoder::Rans, &mut stream);
                let tops: Vec<u16> = joint.iter().map(|&j| j & ((1 << top) - 1)).collect();
                if top > 0 {
                    let back: Vec<u16> = joint.iter().map(|&j| j >> top).collect();
                    assert_eq!(back, codes);
                }
                let mut rebuilt = Vec::new();
                rebuild(plan, &stream, &codes, &tops, man_bits, &mut rebuilt).unwrap();
                assert_eq!(rebuilt, packed, "man_bits {man_bits} plan {plan:?}");
            }
        }
    }
}

#[test]
fn zero_skip_is_refused_when_a_zero_code_has_a_mantissa() {
    let codes = [0u16, 1, 0];
    let mut packed = Vec::new();
    bitpack::pack([0u64, 5, 3], 7, &mut packed);
    let plan = Plan {
        top: 0,
        zero_skip: true,
        low_flat: false,
    };
    assert!(split(plan, &codes, &packed, 7).is_none());
}

#[test]
fn choose_codes_relu_zeros_and_leaves_uniform_data_flat() {
    let mut r = rng(5);
    let n = 1 << 16;
    let codes: Vec<u16> = (0..n)
        .map(|_| {
            if r().is_multiple_of(2) {
                0
            } else {
                120 + (r() % 8) as u16
            }
        })
        .collect();
    let mants: Vec<u64> = codes
        .iter()
        .map(|&c| if c == 0 { 0 } else { r() & 0x7f })
        .collect();
    let mut packed = Vec::new();
    bitpack::pack(mants.iter().copied(), 7, &mut packed);
    let plan = choose(&codes, &packed, 8, 7, true).unwrap();
    assert!(plan.zero_skip);
    let dense: Vec<u16> = (0..n).map(|_| 120 + (r() % 8) as u16).collect();
    let mut uniform = Vec::new();
    bitpack::pack((0..n).map(|_| r() & 0x7f), 7, &mut uniform);
    assert_eq!(choose(&dense, &uniform, 8, 7, true), None);
}

#[test]
fn malformed_streams_are_decode_errors() {
    let mut r = rng(9);
    let values: Vec<u64> = (0..5000).map(|_| (r() % 7) << 3).collect();
    let mut good = Vec::new();
    encode(&values, 10, LaneCoder::Rans, &mut good);
    let mut out = vec![0u64; values.len()];
    for cut in 0..good.len() {
        assert!(decode(&good[..cut], 10, &mut out).is_err(), "cut {cut}");
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(decode(&longer, 10, &mut out).is_err());
    let mut bad = good.clone();
    bad[0] = 9;
    assert!(decode(&bad, 10, &mut out).is_err());
    assert!(decode(&good, 65, &mut out).is_err());
    assert!(decode(&good, 10, &mut out[..10]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_sequence_round_trips(
        width in 0u32..=64,
        raw in proptest::collection::vec(any::<u64>(), 0..600),
        spread in 0u32..=64,
    ) {
        let values: Vec<u64> = raw.iter().map(|&v| v & low_mask(width.min(spread))).collect();
        round_trip(&values, width);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        width in 0u32..=70,
        n in 0usize..200,
    ) {
        let mut out = vec![0u64; n];
        let _ = decode(&bytes, width, &mut out);
    }

    #[test]
    fn mutated_streams_never_panic(
        raw in proptest::collection::vec(any::<u8>(), 1..400),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let values: Vec<u64> = raw.iter().map(|&v| u64::from(v % 5)).collect();
        let mut good = Vec::new();
        encode(&values, 9, LaneCoder::Rans, &mut good);
        for (at, x) in flips {
            let i = at % good.len();
            good[i] ^= x;
        }
        let mut out = vec![0u64; values.len()];
        let _ = decode(&good, 9, &mut out);
    }
}
