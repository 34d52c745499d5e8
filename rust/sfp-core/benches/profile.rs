//! Whole-codec throughput on a raw little-endian float file (the MiniLM weights concatenated,
//! say), one thread, best of N; profile it with `perf record` on
//! this binary): `cargo bench -p sfp-core --bench profile -- FILE [REPEATS] [FILTER]`.
//! `SFP_PROF_DTYPE=f32|bf16|f16|f64|e4m3|e5m2` names the element type (default f32).
//! `SFP_PROF_CPU=1` times process CPU seconds instead of wall time (less disturbed on a shared
//! machine), `SFP_PROF_4K=1` uses plain allocations instead of huge-page-advised ones, and the filter
//! `dump` writes frames and quantized arrays of many formats to a folder (5th argument) so two
//! builds can be compared byte for byte with `cmp`.

use std::time::Instant;

use sfp_core::{
    decode_into, encode, quantize, quantize_in_place, CodingLevel, DType, ExponentCoding, Format,
    Options,
};

/// CPU seconds used by the whole process so far (less disturbed by other jobs than wall time).
fn cpu() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Best of `reps` runs, in CPU seconds when SFP_PROF_CPU is set, else wall seconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    let use_cpu = std::env::var_os("SFP_PROF_CPU").is_some();
    let mut b = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        let c = cpu();
        f();
        let d = if use_cpu {
            cpu() - c
        } else {
            t.elapsed().as_secs_f64()
        };
        b = b.min(d);
    }
    b
}

/// A zeroed buffer: huge-page-backed unless SFP_PROF_4K is set.
fn buffer(len: usize) -> Vec<u8> {
    if std::env::var_os("SFP_PROF_4K").is_some() {
        vec![0u8; len]
    } else {
        sfp_core::memory::zeroed(len)
    }
}

fn main() -> sfp_core::Result<()> {
    // `cargo bench` adds `--bench`; skip flags.
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let path = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "/tmp/minilm_f32.raw".into());
    let reps: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let what = args.get(3).cloned().unwrap_or_default();
    let file = std::fs::read(&path).map_err(|e| sfp_core::Error::InvalidArgument(e.to_string()))?;
    // Huge-page-backed buffers, as numpy's large arrays are.
    let mut src = buffer(file.len());
    src.copy_from_slice(&file);
    drop(file);
    let dtype = match std::env::var("SFP_PROF_DTYPE").as_deref() {
        Ok("bf16") => DType::BF16,
        Ok("f16") => DType::F16,
        Ok("f64") => DType::F64,
        Ok("e4m3") => DType::F8E4M3,
        Ok("e5m2") => DType::F8E5M2,
        _ => DType::F32,
    };
    let n = src.len() / dtype.size();
    let gb = src.len() as f64 / 1e9;
    let shape = [n as u64];
    let one = Options {
        chunk_size: None,
        threads: Some(1),
    };
    let mut dst = buffer(src.len());
    let t = best(reps, || dst.copy_from_slice(&src));
    println!("memcpy pre {:.2} GB/s", gb / t);
    let t = best(reps, || {
        let v = src.clone();
        std::hint::black_box(&v);
    });
    println!("memcpy new {:.2} GB/s", gb / t);
    let formats = [
        (
            "lossless raw",
            Format {
                exponent_coding: ExponentCoding::Raw,
                ..Format::LOSSLESS
            },
        ),
        (
            "lossless l1",
            Format {
                level: CodingLevel::Fast,
                ..Format::LOSSLESS
            },
        ),
        ("lossless l2", Format::LOSSLESS),
        (
            "lossless l3",
            Format {
                level: CodingLevel::Max,
                ..Format::LOSSLESS
            },
        ),
        (
            "m7 raw",
            Format {
                man_bits: Some(7),
                exponent_coding: ExponentCoding::Raw,
                ..Format::LOSSLESS
            },
        ),
        (
            "m7 auto",
            Format {
                man_bits: Some(7),
                ..Format::LOSSLESS
            },
        ),
        (
            "e4m3 raw",
            Format {
                exp_bits: Some(4),
                man_bits: Some(3),
                exponent_coding: ExponentCoding::Raw,
                ..Format::LOSSLESS
            },
        ),
        (
            "e4m3 auto",
            Format {
                exp_bits: Some(4),
                man_bits: Some(3),
                ..Format::LOSSLESS
            },
        ),
    ];
    if what == "dump" {
        // Frames of every coder and a few formats, for byte-for-byte comparison between builds.
        let dir = args.get(4).cloned().unwrap_or_else(|| "/tmp/frames".into());
        let _ = std::fs::create_dir_all(&dir);
        let mut k = 0;
        for coding in ExponentCoding::ALL {
            for (e, m) in [
                (None, None),
                (None, Some(7)),
                (Some(4), Some(3)),
                (Some(3), Some(1)),
                (None, Some(0)),
            ] {
                for rounding in [sfp_core::Rounding::Nearest, sfp_core::Rounding::Stochastic] {
                    let f = Format {
                        exp_bits: e,
                        man_bits: m,
                        rounding,
                        exponent_coding: *coding,
                        ..Format::LOSSLESS
                    };
                    // In SFP_PROF_DTYPE, so the 16-bit kernels are compared too.
                    for (dt, bytes) in [(dtype, &src[..]), (dtype, &src[..4_000_000])] {
                        let shape = [(bytes.len() / dt.size()) as u64];
                        let frame = encode(bytes, dt, &shape, &f, &one).unwrap_or_default();
                        let _ = std::fs::write(format!("{dir}/{k}.bin"), &frame);
                        let mut q = vec![0u8; bytes.len()];
                        let _ = quantize(bytes, &mut q, dt, &f, Some(1));
                        let _ = std::fs::write(format!("{dir}/{k}.q"), &q);
                        k += 1;
                    }
                }
            }
        }
        println!("{k} frames in {dir}");
        return Ok(());
    }
    for (name, f) in formats {
        if !what.is_empty() && !name.contains(&what) {
            continue;
        }
        // A failed call (a bad SFP_SIMD, say) ends the run: timing an error would print nonsense.
        let mut frame = encode(&src, dtype, &shape, &f, &one)?;
        decode_into(&frame, &mut dst, Some(1))?;
        let te = if std::env::var("SFP_PROF_ONLY").is_ok_and(|o| o == "dec") {
            f64::INFINITY
        } else {
            best(reps, || {
                frame = encode(&src, dtype, &shape, &f, &one).unwrap_or_default()
            })
        };
        // SFP_PROF_ONLY=enc or =dec runs one side only (for perf), reporting 0 for the other.
        let only = std::env::var("SFP_PROF_ONLY").unwrap_or_default();
        let td = if only == "enc" {
            f64::INFINITY
        } else {
            best(reps, || {
                let _ = decode_into(&frame, &mut dst, Some(1));
            })
        };
        println!(
            "{name:14} ratio {:.4} enc {:.2} GB/s dec {:.2} GB/s",
            src.len() as f64 / frame.len() as f64,
            gb / te,
            gb / td
        );
        if name.starts_with("m7 raw") || name.starts_with("e4m3") {
            let tq = best(reps, || {
                let _ = quantize(&src, &mut dst, dtype, &f, Some(1));
            });
            let tn = best(reps, || {
                let mut v = vec![0u8; src.len()];
                let _ = quantize(&src, &mut v, dtype, &f, Some(1));
                std::hint::black_box(&v);
            });
            let mut buf = buffer(src.len());
            buf.copy_from_slice(&src);
            let ti = best(reps, || {
                let _ = quantize_in_place(&mut buf, dtype, &f, Some(1));
            });
            println!(
                "{name:14} quantize pre {:.2} new {:.2} inplace {:.2} GB/s",
                gb / tq,
                gb / tn,
                gb / ti
            );
        }
    }
    Ok(())
}
