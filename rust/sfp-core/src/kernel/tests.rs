//! SIMD-vs-reference parity: every kernel at every level this CPU has, against the per-element
//! reference (`Reducer::reduce`/`quantize`) and the streaming encoder the codec shipped with, so
//! frame bytes and quantized bits are unchanged by the kernels, the level and the thread count.

use xxhash_rust::xxh3::xxh3_64;

use crate::codec::{decode_into, encode, quantize, quantize_in_place, Options};
use crate::coding::bitpack::{packed_len, BitWriter};
use crate::coding::exponent::ExponentCoding;
use crate::dtype::{load, DType};
use crate::format::{CodingLevel, Format, Rounding, Underflow};
use crate::frame::Header;
use crate::pipeline::window::window_top_field;
use crate::reduce::{Reducer, Slot, Window};
use crate::simd::{with_level, Level};

/// Deterministic test bits: SplitMix64.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Random elements mixed with edge cases: zeros, specials, subnormals, extremes, near-carries,
/// values clustered around one binade (so windows matter).
pub(crate) fn inputs(dtype: DType, n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let width = 8 * dtype.size() as u32;
    let all = crate::coding::bitpack::low_mask(width);
    let m = dtype.man_bits();
    let sign = 1u64 << (width - 1);
    let inf = crate::coding::bitpack::low_mask(dtype.exp_bits()) << m;
    let edges = [
        0,
        sign,
        inf,
        inf | sign,
        inf | 1,
        inf | 3 | sign,
        1,
        sign | 5,
        inf - 1,
        (1 << m) - 1,
        1 << m,
        (inf - 1) | sign,
        (u64::from(dtype.bias() as u32) << m) | crate::coding::bitpack::low_mask(m),
    ];
    let mut out = Vec::with_capacity(n * dtype.size());
    for i in 0..n {
        let r = rng.next();
        let bits = match r % 8 {
            0 => edges[(r >> 8) as usize % edges.len()],
            1 | 2 => {
                // Near one binade with random mantissa, either sign.
                let e = u64::from(dtype.bias() as u32) - (r >> 20) % 12;
                (e << m) | (rng.next() & crate::coding::bitpack::low_mask(m)) | ((r & 1) * sign)
            }
            _ => rng.next() & all,
        };
        let _ = i;
        out.extend_from_slice(&bits.to_le_bytes()[..dtype.size()]);
    }
    out
}

/// Formats covering every mode, width class and window kind for `dtype`.
pub(crate) fn formats(dtype: DType) -> Vec<Format> {
    let (e, m) = (dtype.exp_bits(), dtype.man_bits());
    let mut out = vec![Format::LOSSLESS];
    for rounding in [Rounding::Truncate, Rounding::Nearest, Rounding::Stochastic] {
        for underflow in [Underflow::Flush, Underflow::Stochastic] {
            for (exp_bits, man_bits) in [
                (None, Some(0)),
                (None, Some(m / 2)),
                (None, Some(m)),
                (Some(e - 1), Some(1)),
                (Some(3), Some(m.min(7))),
                (Some(2), None),
                (Some(1), Some(2)),
            ] {
                out.push(Format {
                    exp_bits,
                    man_bits,
                    rounding,
                    underflow,
                    window_top: None,
                    seed: 42,
                    exponent_coding: ExponentCoding::Raw,
                    ..Format::LOSSLESS
                });
            }
            // `auto` at every coding level, windowed and not.
            for level in [CodingLevel::Fast, CodingLevel::Default, CodingLevel::Max] {
                out.push(Format {
                    exp_bits: Some(3),
                    man_bits: Some(1),
                    rounding,
                    underflow,
                    window_top: Some(-2),
                    seed: 7,
                    exponent_coding: ExponentCoding::Auto,
                    level,
                    ..Format::LOSSLESS
                });
                out.push(Format {
                    man_bits: Some(m.min(5)),
                    rounding,
                    underflow,
                    seed: 7,
                    level,
                    ..Format::LOSSLESS
                });
            }
        }
    }
    out
}

/// The window the reference computes: per-element rounded fields, maximum.
fn reference_window(fmt: &Format, dtype: DType, src: &[u8]) -> Option<Window> {
    let t = fmt.resolve(dtype).ok()?;
    if !t.has_window() {
        return None;
    }
    let span = (1u64 << t.exp_bits) - 2;
    let top = match fmt.window_top {
        Some(top) => (top + dtype.bias()) as u64,
        None => {
            let r = Reducer::new(&t, None);
            let n = src.len() / dtype.size();
            (0..n)
                .filter_map(|i| {
                    let bits = load(src, dtype.size(), i);
                    (!r.is_special(bits)).then(|| {
                        let mag = bits & r.mag_mask;
                        let rounded = match r.rounding {
                            _ if r.drop == 0 => mag,
                            Rounding::Truncate => mag & !crate::coding::bitpack::low_mask(r.drop),
                            _ => {
                                // Reuse the reference's own rounding through a window-less reduce.
                                match r.reduce(bits, i as u64) {
                                    Slot::Value { code, .. } => {
                                        return u64::from(code).min(r.inf_field - 1)
                                    }
                                    Slot::Special => 0,
                                }
                            }
                        };
                        (rounded >> r.src_m).min(r.inf_field - 1)
                    })
                })
                .max()
                .unwrap_or(0)
                .max(span + 1)
        }
    };
    Some(Window {
        bottom: top - span,
        top,
    })
}

/// The streaming chunk encoder the codec shipped with (element by element, `BitWriter`).
fn reference_chunk(
    r: &Reducer,
    exp_bits: u32,
    man_bits: u32,
    (coding, level): (ExponentCoding, CodingLevel),
    src: &[u8],
    first: u64,
) -> Vec<u8> {
    let size = r.size();
    // Lossless chunks may be cut into planes, word by word, with no split kernel (its own tests
    // check its decoder); the maximum level keeps the smaller of the two.
    let planes = |level| {
        let mut out = Vec::new();
        let word = crate::chunk::planes::Word {
            bytes: size,
            bits: r.value_bits,
        };
        crate::chunk::planes::encode(src, word, level, &mut Default::default(), &mut out);
        out
    };
    if crate::chunk::uses_planes(r, coding, level) {
        return planes(level);
    }
    let split = reference_split(r, exp_bits, man_bits, (coding, level), src, first);
    if r.lossless && coding == ExponentCoding::Auto && size != 8 {
        let p = planes(CodingLevel::Default);
        if p.len() < split.len() {
            return p;
        }
    }
    split
}

fn reference_split(
    r: &Reducer,
    exp_bits: u32,
    man_bits: u32,
    (coding, level): (ExponentCoding, CodingLevel),
    src: &[u8],
    first: u64,
) -> Vec<u8> {
    let size = r.size();
    let n = src.len() / size;
    let mut codes = vec![0u16; n];
    let mut signs = Vec::new();
    let mut mantissas = Vec::new();
    let mut exceptions: Vec<u8> = Vec::new();
    let mut any_negative = false;
    {
        let mut sign_writer = BitWriter::new(1, &mut signs);
        let mut mant_writer = BitWriter::new(man_bits, &mut mantissas);
        for (i, code) in codes.iter_mut().enumerate() {
            let bits = load(src, size, i);
            match r.reduce(bits, first + i as u64) {
                Slot::Value {
                    sign,
                    code: c,
                    mant,
                } => {
                    *code = c;
                    any_negative |= sign;
                    sign_writer.push(u64::from(sign));
                    mant_writer.push(mant);
                }
                Slot::Special => {
                    sign_writer.push(0);
                    mant_writer.push(0);
                    exceptions.extend_from_slice(&(i as u32).to_le_bytes());
                    exceptions.extend_from_slice(&bits.to_le_bytes()[..size]);
                }
            }
        }
        sign_writer.finish();
        mant_writer.finish();
    }
    assert_eq!(mantissas.len(), packed_len(n, man_bits).unwrap());
    let mut exps = Vec::new();
    let chosen = crate::chunk::code_streams(
        (coding, level),
        (&codes, &signs, any_negative),
        (exp_bits, man_bits),
        &mut exps,
        &mut mantissas,
        &mut Default::default(),
    );
    let (flags, coder, plan) = (chosen.flags, chosen.coder, chosen.plan);
    let mut out = vec![flags, coder.id()];
    out.extend_from_slice(&(exps.len() as u32).to_le_bytes());
    out.extend_from_slice(&((exceptions.len() / (4 + size)) as u32).to_le_bytes());
    crate::chunk::put_mantissa_header(plan, mantissas.len(), &mut out);
    if flags & 1 == 1 {
        out.extend_from_slice(&signs);
    }
    out.extend_from_slice(&exps);
    out.extend_from_slice(&mantissas);
    out.extend_from_slice(&exceptions);
    out
}

/// The whole frame the shipped encoder wrote.
fn reference_frame(src: &[u8], dtype: DType, fmt: &Format, chunk: usize) -> Vec<u8> {
    let t = fmt.resolve(dtype).unwrap();
    let window = reference_window(fmt, dtype, src);
    let r = Reducer::new(&t, window);
    let chunks: Vec<Vec<u8>> = src
        .chunks(chunk * dtype.size())
        .enumerate()
        .map(|(c, part)| {
            reference_chunk(
                &r,
                t.exp_bits,
                t.man_bits,
                (fmt.exponent_coding, fmt.level),
                part,
                (c * chunk) as u64,
            )
        })
        .collect();
    let header = Header {
        target: t,
        window_top: window_top_field(window),
        shape: vec![(src.len() / dtype.size()) as u64],
        chunk_size: chunk,
        chunks: chunks
            .iter()
            .map(|c| (c.len() as u64, xxh3_64(c)))
            .collect(),
        header_len: 0,
    };
    let mut out = header.to_bytes();
    chunks.iter().for_each(|c| out.extend_from_slice(c));
    out
}

fn reference_quantize(src: &[u8], dtype: DType, fmt: &Format) -> Vec<u8> {
    let t = fmt.resolve(dtype).unwrap();
    let r = Reducer::new(&t, reference_window(fmt, dtype, src));
    let size = dtype.size();
    (0..src.len() / size)
        .flat_map(|i| r.quantize(load(src, size, i), i as u64).to_le_bytes()[..size].to_vec())
        .collect()
}

fn check(dtype: DType, fmt: &Format, src: &[u8], chunk: usize) {
    let n = src.len() / dtype.size();
    let shape = [n as u64];
    let expected_q = reference_quantize(src, dtype, fmt);
    let expected_f = reference_frame(src, dtype, fmt, chunk);
    for level in Level::available() {
        with_level(level, || {
            let what = format!("{dtype:?} {fmt:?} n={n} chunk={chunk} level={level}");
            let mut q = vec![0u8; src.len()];
            quantize(src, &mut q, dtype, fmt, Some(1)).unwrap();
            assert!(q == expected_q, "quantize differs: {what}");
            let mut inplace = src.to_vec();
            quantize_in_place(&mut inplace, dtype, fmt, Some(2)).unwrap();
            assert!(inplace == expected_q, "in-place quantize differs: {what}");
            let opts = Options {
                chunk_size: Some(chunk),
                threads: Some(1),
            };
            let frame = encode(src, dtype, &shape, fmt, &opts).unwrap();
            assert!(frame == expected_f, "frame bytes differ: {what}");
            let two = Options {
                chunk_size: Some(chunk),
                threads: Some(2),
            };
            assert!(
                encode(src, dtype, &shape, fmt, &two).unwrap() == frame,
                "threads change the frame: {what}"
            );
            let mut d = vec![0u8; src.len()];
            decode_into(&frame, &mut d, Some(2)).unwrap();
            assert!(d == expected_q, "decode differs: {what}");
        })
        .unwrap();
    }
}

#[test]
fn kernels_match_the_reference_at_every_level() {
    for dtype in DType::WIDE {
        for (k, fmt) in formats(dtype).iter().enumerate() {
            for (n, chunk) in [
                (0usize, 64usize),
                (1, 64),
                (63, 64),
                (200, 64),
                (1000, 333),
                (2100, 1 << 20),
            ] {
                let src = inputs(dtype, n, (k * 1000 + n) as u64);
                check(dtype, fmt, &src, chunk);
            }
        }
    }
}

#[test]
fn packers_match_the_streaming_writer() {
    let mut rng = Rng(3);
    for width in 0..=64u32 {
        for n in [0usize, 1, 63, 64, 65, 130, 1000] {
            let values: Vec<u64> = (0..n).map(|_| rng.next()).collect();
            let mut fast = Vec::new();
            crate::coding::bitpack::pack(values.iter().copied(), width, &mut fast);
            let mut slow = Vec::new();
            let mut w = BitWriter::new(width, &mut slow);
            values.iter().for_each(|&v| w.push(v));
            w.finish();
            assert_eq!(fast, slow, "width {width} n {n}");
        }
    }
}

#[test]
fn flat_chunks_without_signs_and_unaligned_buffers_match_the_reference() {
    for dtype in DType::WIDE {
        let size = dtype.size();
        // Chunks of 100 values: the first all positive (no sign stream), the others mixed.
        let mut src = inputs(dtype, 300, 7);
        for e in src[..100 * size].chunks_exact_mut(size) {
            e[size - 1] &= 0x7F;
        }
        for fmt in formats(dtype) {
            if fmt.exponent_coding != ExponentCoding::Raw {
                continue;
            }
            check(dtype, &fmt, &src, 100);
            // Decoding into a buffer that is not aligned for the element type.
            let shape = [300u64];
            let frame = encode(&src, dtype, &shape, &fmt, &Options::default()).unwrap();
            let mut aligned = vec![0u8; src.len()];
            decode_into(&frame, &mut aligned, Some(1)).unwrap();
            let mut shifted = vec![0u8; src.len() + 1];
            decode_into(&frame, &mut shifted[1..], Some(1)).unwrap();
            assert!(shifted[1..] == aligned[..], "{dtype:?} {fmt:?}");
        }
    }
}

#[test]
fn streaming_stores_decode_the_values_cached_stores_do() {
    use crate::kernel::TRUNCATE;
    use crate::pipeline::{decode_chunks, open};
    use crate::runtime::memory::Stores;
    for dtype in DType::WIDE {
        let size = dtype.size();
        let mut all = formats(dtype);
        for level in [CodingLevel::Fast, CodingLevel::Default, CodingLevel::Max] {
            all.push(Format {
                level,
                ..Format::LOSSLESS
            });
        }
        for (k, fmt) in all.iter().enumerate() {
            // Chunks of 256 values keep every chunk 16-byte aligned, of 333 only the first; the
            // last chunk is short, so blocks end inside a 16-byte piece.
            for chunk in [256usize, 333] {
                let n = 3 * chunk + 7;
                let src = inputs(dtype, n, 90 + k as u64);
                let opts = Options {
                    chunk_size: Some(chunk),
                    threads: Some(1),
                };
                let frame = encode(&src, dtype, &[n as u64], fmt, &opts).unwrap();
                let mut expected = vec![0u8; src.len()];
                decode_into(&frame, &mut expected, Some(1)).unwrap();
                let (header, reducer) = open(&frame).unwrap();
                for level in Level::available() {
                    for offset in [0, size] {
                        // 64-byte aligned, then `offset` bytes in.
                        let mut buf = vec![0u8; src.len() + 128];
                        let start = buf.as_ptr().align_offset(64) + offset;
                        let out = &mut buf[start..start + src.len()];
                        crate::by_word!(
                            size,
                            TRUNCATE,
                            decode_chunks(level, &reducer, &header, &frame, Stores::Streaming, out)
                        )
                        .unwrap();
                        assert!(
                            *out == expected[..],
                            "{dtype:?} {fmt:?} chunk {chunk} at {level}, {offset} bytes off"
                        );
                    }
                }
            }
        }
    }
}
