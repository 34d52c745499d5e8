//! Kernel throughput at every SIMD level this CPU has: quantize (new buffer and in place), flat
//! encode and decode, one thread, on 4 Mi float32 values shaped like weights; and the rANS entropy
//! coder alone on their 8-bit exponent codes (`rans/`: elements per second, so the time per code);
//! and the Huffman coder next to rANS (`huffman/`) on the exponent codes of real weights (MiniLM from
//! `../shared/corpus/` when present, else the synthetic ones): 8-bit exponents and 9-bit sign +
//! exponent symbols (bf16-like), at every SIMD level; it also prints each coder's least thread CPU
//! time of 30 runs (ns per code), which other jobs on a shared machine inflate much less than wall
//! time.
//! `cargo bench -p sfp-core --bench kernels [-- FILTER]`; compare levels within one run (the machine
//! is shared).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sfp_core::exponent::{entropy, huffman};
use sfp_core::simd::{with_level, Level};
use sfp_core::{
    decode_into, encode, quantize, quantize_in_place, DType, ExponentCoding, Format, Options,
    Rounding,
};

fn weights(n: usize) -> Vec<u8> {
    let mut s = 0x1234_5678_9abc_def0u64;
    (0..n)
        .flat_map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            ((u - 0.5) * 0.1).to_le_bytes()
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    let n = 1 << 22;
    let src = weights(n);
    let shape = [n as u64];
    let one = Options {
        chunk_size: None,
        threads: Some(1),
    };
    let formats = [
        (
            "m7-nearest",
            Format {
                man_bits: Some(7),
                exponent_coding: ExponentCoding::Raw,
                ..Format::LOSSLESS
            },
        ),
        (
            "m3-stochastic",
            Format {
                man_bits: Some(3),
                rounding: Rounding::Stochastic,
                exponent_coding: ExponentCoding::Raw,
                ..Format::LOSSLESS
            },
        ),
        (
            "e4m3-nearest",
            Format {
                exp_bits: Some(4),
                man_bits: Some(3),
                exponent_coding: ExponentCoding::Raw,
                ..Format::LOSSLESS
            },
        ),
    ];
    let mut g = c.benchmark_group("f32");
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.sample_size(10);
    for level in Level::available() {
        for (name, fmt) in &formats {
            let mut out = vec![0u8; src.len()];
            g.bench_function(BenchmarkId::new(format!("quantize/{name}"), level), |b| {
                b.iter(|| with_level(level, || quantize(&src, &mut out, DType::F32, fmt, Some(1))))
            });
            g.bench_function(
                BenchmarkId::new(format!("quantize_in_place/{name}"), level),
                |b| {
                    b.iter(|| {
                        with_level(level, || {
                            quantize_in_place(&mut out, DType::F32, fmt, Some(1))
                        })
                    })
                },
            );
            g.bench_function(BenchmarkId::new(format!("encode/{name}"), level), |b| {
                b.iter(|| with_level(level, || encode(&src, DType::F32, &shape, fmt, &one)))
            });
            let frame = encode(&src, DType::F32, &shape, fmt, &one).unwrap_or_default();
            g.bench_function(BenchmarkId::new(format!("decode/{name}"), level), |b| {
                b.iter(|| with_level(level, || decode_into(&frame, &mut out, Some(1))))
            });
        }
    }
    g.finish();
}

fn rans(c: &mut Criterion) {
    let src = weights(1 << 22);
    let codes: Vec<u16> = src
        .chunks_exact(4)
        .map(|e| ((u32::from_le_bytes([e[0], e[1], e[2], e[3]]) >> 23) & 0xff) as u16)
        .collect();
    let mut g = c.benchmark_group("rans");
    g.throughput(Throughput::Elements(codes.len() as u64));
    g.sample_size(10);
    let mut stream = Vec::new();
    g.bench_function("encode", |b| {
        b.iter(|| {
            stream.clear();
            entropy::encode(&codes, 8, &mut stream);
        })
    });
    let mut back = vec![0u16; codes.len()];
    g.bench_function("decode", |b| {
        b.iter(|| entropy::decode(&stream, 8, &mut back))
    });
    g.finish();
}

/// Little-endian float32 bits of every F32 tensor of a safetensors file (8-byte header length,
/// JSON header, raw data), at most `limit` values; `None` when the file is absent or unreadable.
fn safetensors_f32(path: &std::path::Path, limit: usize) -> Option<Vec<u32>> {
    let bytes = std::fs::read(path).ok()?;
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = std::str::from_utf8(bytes.get(8..8 + len)?).ok()?;
    let data = bytes.get(8 + len..)?;
    let mut out = Vec::new();
    // Each tensor entry names its dtype before its data offsets.
    for entry in header.split("\"dtype\":").skip(1) {
        let f32 = entry.trim_start().starts_with("\"F32\"");
        let offsets = entry.split("\"data_offsets\":[").nth(1)?;
        let mut it = offsets.split(']').next()?.split(',');
        let start: usize = it.next()?.trim().parse().ok()?;
        let end: usize = it.next()?.trim().parse().ok()?;
        if f32 {
            out.extend(
                data.get(start..end)?
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        if out.len() >= limit {
            break;
        }
    }
    out.truncate(limit);
    (!out.is_empty()).then_some(out)
}

/// Seconds of CPU time this thread has used (wall time off Linux): a shared machine's other jobs
/// stretch wall time but not it.
fn thread_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `clock_gettime` writes one `timespec` through the valid pointer it is given.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
        }
    }
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

/// The least thread CPU time of `runs` runs of `f`, in nanoseconds per code.
fn best_ns(runs: usize, codes: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let t = thread_seconds();
        f();
        best = best.min(thread_seconds() - t);
    }
    best * 1e9 / codes as f64
}

fn huffman(c: &mut Criterion) {
    let n = 1 << 22;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/minilm_l6_v2.safetensors");
    let (source, bits) = match safetensors_f32(&path, n) {
        Some(b) => ("minilm", b),
        None => (
            "synthetic",
            weights(n)
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
    };
    let alphabets: [(&str, u32, Vec<u16>); 2] = [
        (
            "exp8",
            8,
            bits.iter().map(|b| ((b >> 23) & 0xff) as u16).collect(),
        ),
        (
            "sign_exp9",
            9,
            bits.iter().map(|b| (b >> 23) as u16).collect(),
        ),
    ];
    let mut g = c.benchmark_group("huffman");
    g.sample_size(10);
    for (name, width, codes) in &alphabets {
        g.throughput(Throughput::Elements(codes.len() as u64));
        let (mut h, mut r) = (Vec::new(), Vec::new());
        huffman::encode(codes, *width, &mut h);
        entropy::encode(codes, *width, &mut r);
        eprintln!(
            "huffman/{name} ({source}, {} codes): huffman {} bytes, rans {} bytes ({:.4}x)",
            codes.len(),
            h.len(),
            r.len(),
            h.len() as f64 / r.len() as f64
        );
        let mut stream = Vec::new();
        let mut back = vec![0u16; codes.len()];
        let runs = 30;
        let n = codes.len();
        let ns = [
            best_ns(runs, n, || {
                stream.clear();
                huffman::encode(codes, *width, &mut stream);
            }),
            best_ns(runs, n, || {
                stream.clear();
                entropy::encode(codes, *width, &mut stream);
            }),
            best_ns(runs, n, || {
                let _ = huffman::decode(&h, *width, &mut back);
            }),
            best_ns(runs, n, || {
                let _ = with_level(Level::Scalar, || huffman::decode(&h, *width, &mut back));
            }),
            best_ns(runs, n, || {
                let _ = entropy::decode(&r, *width, &mut back);
            }),
        ];
        eprintln!(
            "huffman/{name} thread CPU time, best of {runs}, ns per code: encode huffman {:.3} \
             rans {:.3} ({:.2}x); decode huffman {:.3} (scalar {:.3}) rans {:.3} ({:.2}x)",
            ns[0],
            ns[1],
            ns[1] / ns[0],
            ns[2],
            ns[3],
            ns[4],
            ns[4] / ns[2]
        );
        g.bench_function(format!("{name}/encode/huffman"), |b| {
            b.iter(|| {
                stream.clear();
                huffman::encode(codes, *width, &mut stream);
            })
        });
        g.bench_function(format!("{name}/encode/rans"), |b| {
            b.iter(|| {
                stream.clear();
                entropy::encode(codes, *width, &mut stream);
            })
        });
        for level in Level::available() {
            g.bench_function(
                BenchmarkId::new(format!("{name}/decode/huffman"), level),
                |b| b.iter(|| with_level(level, || huffman::decode(&h, *width, &mut back))),
            );
        }
        g.bench_function(format!("{name}/decode/rans"), |b| {
            b.iter(|| entropy::decode(&r, *width, &mut back))
        });
    }
    g.finish();
}

criterion_group!(benches, kernels, rans, huffman);
criterion_main!(benches);
