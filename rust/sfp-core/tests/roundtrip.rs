//! The core invariant, over random bit patterns and formats: decode(encode(x, f)) == quantize(x, f),
//! and the lossless format is the identity.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use sfp_core::{
    decode_into, encode, quantize, quantize_in_place, DType, ExponentCoding, Format, Options,
    Rounding, Underflow,
};

fn bytes_of(bits: &[u64], size: usize) -> Vec<u8> {
    bits.iter()
        .flat_map(|b| b.to_le_bytes()[..size].to_vec())
        .collect()
}

fn dtype_strategy() -> impl Strategy<Value = DType> {
    prop::sample::select(DType::WIDE.to_vec())
}

fn format_for(dtype: DType) -> impl Strategy<Value = Format> {
    let rounding = prop::sample::select(vec![
        Rounding::Truncate,
        Rounding::Nearest,
        Rounding::Stochastic,
    ]);
    let underflow = prop::sample::select(vec![Underflow::Flush, Underflow::Stochastic]);
    (
        prop::option::of(1..=dtype.exp_bits()),
        prop::option::of(0..=dtype.man_bits()),
        rounding,
        underflow,
        any::<u64>(),
    )
        .prop_map(|(exp_bits, man_bits, rounding, underflow, seed)| Format {
            exp_bits,
            man_bits,
            rounding,
            underflow,
            window_top: None,
            seed,
            exponent_coding: ExponentCoding::Auto,
            ..Format::LOSSLESS
        })
}

/// Raw bit patterns biased toward the interesting ones: zeros, specials, subnormals, extremes.
fn bits_strategy(dtype: DType) -> impl Strategy<Value = Vec<u64>> {
    let width = 8 * dtype.size() as u32;
    let all = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let sign = 1u64 << (width - 1);
    let inf = ((1u64 << dtype.exp_bits()) - 1) << dtype.man_bits();
    let special = prop::sample::select(vec![
        0,
        sign,
        inf,
        inf | sign,
        inf | 1,
        inf | 3 | sign,
        1,
        sign | 5,
        inf - 1,
    ]);
    let element = prop_oneof![4 => any::<u64>().prop_map(move |b| b & all), 1 => special];
    prop::collection::vec(element, 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn decode_of_encode_is_quantize(
        (dtype, fmt, bits, chunk) in dtype_strategy().prop_flat_map(|d| (Just(d), format_for(d), bits_strategy(d), 1usize..70))
    ) {
        let src = bytes_of(&bits, dtype.size());
        let shape = [bits.len() as u64];
        let frame = encode(&src, dtype, &shape, &fmt, &Options { chunk_size: Some(chunk), threads: None }).unwrap();
        let mut decoded = vec![0u8; src.len()];
        decode_into(&frame, &mut decoded, None).unwrap();
        let mut quantized = vec![0u8; src.len()];
        quantize(&src, &mut quantized, dtype, &fmt, None).unwrap();
        prop_assert_eq!(&decoded, &quantized);
        // Chunking changes the frame, never the values.
        let whole = encode(&src, dtype, &shape, &fmt, &Options::default()).unwrap();
        let mut again = vec![0u8; src.len()];
        decode_into(&whole, &mut again, None).unwrap();
        prop_assert_eq!(&again, &quantized);
        // Quantization is idempotent.
        let mut twice = vec![0u8; src.len()];
        quantize(&quantized, &mut twice, dtype, &Format { seed: fmt.seed ^ 1, ..fmt }, None).unwrap();
        if fmt.window_top.is_none() && fmt.underflow == Underflow::Flush {
            prop_assert_eq!(&twice, &quantized);
        }
    }

    #[test]
    fn lossless_is_identity((dtype, bits) in dtype_strategy().prop_flat_map(|d| (Just(d), bits_strategy(d)))) {
        let src = bytes_of(&bits, dtype.size());
        let frame = encode(&src, dtype, &[bits.len() as u64], &Format::LOSSLESS, &Options::default()).unwrap();
        let mut out = vec![0u8; src.len()];
        decode_into(&frame, &mut out, None).unwrap();
        prop_assert_eq!(out, src);
    }
}

/// One thread runs small work on the calling thread and large work on a pool, in one task or many:
/// frames and values must not depend on which. Stochastic rounding and underflow make every value
/// depend on its flat index, so a task that starts at the wrong index shows.
#[test]
fn thread_counts_change_no_frame_and_no_value() {
    let mut state = 0x2545_f491_u32;
    let values: Vec<f32> = (0..(3 << 16) + 77)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as i32 as f32) * 2f32.powi(-40)
        })
        .collect();
    let src: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let fmt = Format {
        exp_bits: Some(4),
        man_bits: Some(3),
        rounding: Rounding::Stochastic,
        underflow: Underflow::Stochastic,
        seed: 7,
        exponent_coding: ExponentCoding::Raw,
        ..Format::LOSSLESS
    };
    for n in [100, 1 << 16, values.len()] {
        let part = &src[..4 * n];
        let shape = [n as u64];
        let mut reference = vec![0u8; part.len()];
        quantize(part, &mut reference, DType::F32, &fmt, Some(2)).unwrap();
        for threads in [Some(1), Some(3), None] {
            let mut q = vec![0u8; part.len()];
            quantize(part, &mut q, DType::F32, &fmt, threads).unwrap();
            assert!(q == reference, "quantize, {n} values, threads {threads:?}");
            let mut in_place = part.to_vec();
            quantize_in_place(&mut in_place, DType::F32, &fmt, threads).unwrap();
            assert!(
                in_place == reference,
                "in place, {n} values, threads {threads:?}"
            );
        }
        for chunk_size in [None, Some(1 << 15)] {
            let frame_of = |threads| {
                let options = Options {
                    chunk_size,
                    threads,
                };
                encode(part, DType::F32, &shape, &fmt, &options).unwrap()
            };
            let frame = frame_of(Some(2));
            for threads in [Some(1), None] {
                assert!(
                    frame_of(threads) == frame,
                    "{n} values, {chunk_size:?}, {threads:?}"
                );
                let mut out = vec![0u8; part.len()];
                decode_into(&frame, &mut out, threads).unwrap();
                assert!(
                    out == reference,
                    "decode, {n} values, {chunk_size:?}, {threads:?}"
                );
            }
        }
    }
}
