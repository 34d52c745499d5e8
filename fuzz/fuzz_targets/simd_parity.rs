//! Arbitrary elements and formats: every SIMD level this CPU has must produce the scalar level's
//! quantized bits and frame bytes, and decode its own frame back to them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfp_core::simd::{with_level, Level};
use sfp_core::{DType, ExponentCoding, Format, Options, Rounding, Underflow};

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let dtype = DType::ALL[usize::from(data[0]) % 4];
    let exp_bits = match data[1] % (dtype.exp_bits() as u8 + 1) {
        0 => None,
        e => Some(u32::from(e)),
    };
    let man_bits = match data[2] % (dtype.man_bits() as u8 + 2) {
        0 => None,
        m => Some(u32::from(m - 1)),
    };
    let rounding = Rounding::ALL[usize::from(data[3]) % Rounding::ALL.len()];
    let underflow = Underflow::ALL[usize::from(data[4]) % Underflow::ALL.len()];
    let chunk = 1 + usize::from(data[5]) * 7;
    let fmt = Format {
        exp_bits,
        man_bits,
        rounding,
        underflow,
        window_top: None,
        seed: u64::from(data[3]) << 8 | u64::from(data[4]),
        exponent_coding: ExponentCoding::Raw,
        ..Format::LOSSLESS
    };
    let body = &data[6..];
    let src = &body[..body.len() - body.len() % dtype.size()];
    let shape = [(src.len() / dtype.size()) as u64];
    let opts = Options {
        chunk_size: Some(chunk),
        threads: Some(1),
    };
    let run = |level: Level| {
        with_level(level, || {
            let mut q = vec![0u8; src.len()];
            let ok = sfp_core::quantize(src, &mut q, dtype, &fmt, Some(1)).is_ok();
            let frame = sfp_core::encode(src, dtype, &shape, &fmt, &opts).ok();
            let mut d = vec![0u8; src.len()];
            if let Some(f) = &frame {
                sfp_core::decode_into(f, &mut d, Some(1)).expect("own frame decodes");
                assert_eq!(d, q, "decode(encode) != quantize at {level}");
            }
            (ok, q, frame)
        })
        .expect("available level")
    };
    let scalar = run(Level::Scalar);
    for level in Level::available() {
        assert_eq!(run(level), scalar, "level {level} differs from scalar");
    }
});
