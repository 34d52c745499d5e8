//! The core invariant, over random bit patterns and formats: decode(encode(x, f)) == quantize(x, f),
//! and the lossless format is the identity.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use sfp_core::{
    decode_into, encode, quantize, DType, ExponentCoding, Format, Options, Rounding, Underflow,
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
