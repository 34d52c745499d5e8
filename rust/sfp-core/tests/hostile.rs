//! Hostile headers and chunks, each with valid checksums so that validation itself is tested: every
//! one is a clear `Error::Decode` reached with bounded work and allocation (a few KB at most, however
//! large the claim), never a panic.
//!
//! One test per binary: the allocation counter is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sfp_core::testkit::alloc::{peak_during, CountingAlloc};
use sfp_core::testkit::raw::RawHeader;
use sfp_core::testkit::{check_decode, max_decoded_bytes, Outcome, MIN_BYTES_PER_CHUNK};
use sfp_core::{decode_into, inspect, DType, Error};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A float32 e4m2 header (window top 2^0) for `n` values in chunks of `chunk`.
fn lossy(n: u64, chunk: u32) -> RawHeader {
    RawHeader {
        exp_bits: 4,
        man_bits: 2,
        window_top: 127,
        ..RawHeader::float32(&[n], chunk)
    }
}

/// A chunk: flags, coder id, exponent stream, exception count, then the rest of the streams.
fn chunk(flags: u8, coder: u8, exps: &[u8], exceptions: u32, rest: &[u8]) -> Vec<u8> {
    let mut c = vec![flags, coder];
    c.extend_from_slice(&(exps.len() as u32).to_le_bytes());
    c.extend_from_slice(&exceptions.to_le_bytes());
    c.extend_from_slice(exps);
    c.extend_from_slice(rest);
    c
}

/// Float32 exception entry: u32 index, then the element's bits.
fn exception(index: u32, bits: u32) -> Vec<u8> {
    [index.to_le_bytes(), bits.to_le_bytes()].concat()
}

/// The error of inspecting, then (if inspect passes) decoding `frame`.
fn error_of(frame: &[u8]) -> String {
    let result = inspect(frame).and_then(|info| {
        let n = info.header.len() * info.header.target.dtype.size();
        assert!(
            n <= 1 << 20,
            "a hostile frame got past inspect claiming {n} bytes"
        );
        decode_into(frame, &mut vec![0u8; n], Some(1))
    });
    match result {
        Err(Error::Decode(m)) => m,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

fn cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let good = chunk(0, 0, &[0x21, 0x43], 0, &[0x1b]);
    let mut v = vec![
        ("empty input", vec![], "truncated: magic"),
        (
            "foreign magic",
            b"PK\x03\x04 not a frame at all....".to_vec(),
            "not a schrodinger-fp frame",
        ),
    ];
    let mut add = |name, mut h: RawHeader, chunks: &[&[u8]], msg| {
        v.push((name, h.frame(chunks), msg));
    };
    let base = || RawHeader::float32(&[4], 4);
    add(
        "version 0",
        RawHeader {
            version: 0,
            ..base()
        },
        &[],
        "frame version 0 is not supported",
    );
    // Version 2 is the container frame (tested with its own parser); 3 is unknown.
    add(
        "version 3",
        RawHeader {
            version: 3,
            ..base()
        },
        &[],
        "frame version 3 is not supported",
    );
    add(
        "version 65535",
        RawHeader {
            version: u16::MAX,
            ..base()
        },
        &[],
        "version 65535",
    );
    add(
        "dtype id 11",
        RawHeader {
            dtype: 11,
            ..base()
        },
        &[],
        "unknown dtype id 11",
    );
    add(
        "ndim 33",
        RawHeader { ndim: 33, ..base() },
        &[],
        "ndim 33 exceeds 32",
    );
    add(
        "exp_bits 0",
        RawHeader {
            exp_bits: 0,
            ..base()
        },
        &[],
        "exp_bits=0",
    );
    add(
        "exp_bits 9 on float32",
        RawHeader {
            exp_bits: 9,
            ..base()
        },
        &[],
        "exp_bits=9 exceeds",
    );
    add(
        "man_bits 24 on float32",
        RawHeader {
            man_bits: 24,
            ..base()
        },
        &[],
        "man_bits=24",
    );
    add(
        "rounding id 3",
        RawHeader {
            rounding: 3,
            ..base()
        },
        &[],
        "unknown rounding id 3",
    );
    add(
        "underflow id 2",
        RawHeader {
            underflow: 2,
            ..base()
        },
        &[],
        "unknown underflow id 2",
    );
    add(
        "reserved field set",
        RawHeader {
            reserved: 1,
            ..base()
        },
        &[],
        "reserved header field",
    );
    add(
        "window without reduction",
        RawHeader {
            window_top: 5,
            ..base()
        },
        &[],
        "window top",
    );
    add(
        "window top 0 with reduction",
        RawHeader {
            window_top: 0,
            ..lossy(4, 4)
        },
        &[],
        "window top",
    );
    add(
        "window top 255 (inf field)",
        RawHeader {
            window_top: 255,
            ..lossy(4, 4)
        },
        &[],
        "window top",
    );
    add(
        "chunk size 0",
        RawHeader {
            chunk_size: 0,
            ..base()
        },
        &[],
        "chunk size 0",
    );
    add(
        "chunk size 2^20+1",
        RawHeader {
            chunk_size: (1 << 20) + 1,
            ..base()
        },
        &[],
        "chunk size",
    );
    add(
        "shape overflows u64",
        RawHeader::float32(&[u64::MAX, 3], 1 << 20),
        &[],
        "too large",
    );
    add(
        "shape overflows usize bytes",
        RawHeader::float32(&[1 << 62], 1 << 20),
        &[],
        "too large",
    );
    // 2^52 values in u32::MAX chunks of 2^20: consistent, but the table is not there.
    let mut huge = RawHeader::float32(&[(1u64 << 52) - (1 << 20)], 1 << 20);
    huge.chunks = vec![(0, 0); 4];
    v.push((
        "2^32-1 chunks, table absent",
        huge.to_bytes(),
        "truncated: chunk table needs",
    ));
    let mut add = |name, mut h: RawHeader, chunks: &[&[u8]], msg| {
        v.push((name, h.frame(chunks), msg));
    };
    add(
        "chunk count lies",
        RawHeader {
            n_chunks: 3,
            ..base()
        },
        &[],
        "3 chunks cannot hold 4",
    );
    add(
        "shape lies (ndim 2, one dim)",
        RawHeader { ndim: 2, ..base() },
        &[&good],
        "",
    );
    let mut overflow = base();
    overflow.n_chunks = 2;
    overflow.shape = vec![8];
    overflow.chunks = vec![(u64::MAX, 0), (2, 0)];
    v.push((
        "chunk lengths overflow",
        overflow.to_bytes(),
        "more than 2^64",
    ));
    let mut long = lossy(4, 4);
    let mut frame = long.frame(&[&good]);
    frame.truncate(frame.len() - 1);
    let fixed = {
        long.chunks[0].0 = 13;
        let mut f = long.to_bytes();
        f.extend_from_slice(&good[..12]);
        f
    };
    v.push((
        "chunk longer than the input",
        fixed,
        "chunk lengths add up to 13, but 12",
    ));
    let mut add = |name, mut h: RawHeader, chunks: &[&[u8]], msg| {
        v.push((name, h.frame(chunks), msg));
    };
    add(
        "zero-length chunk",
        lossy(8, 4),
        &[&[], &good],
        "truncated: chunk flags",
    );
    add(
        "unknown chunk flags",
        lossy(4, 4),
        &[&chunk(16, 0, &[0x21, 0x43], 0, &[0x1b])],
        "unknown chunk flags",
    );
    add(
        "planes chunk in a lossy frame",
        lossy(4, 4),
        &[&[8u8, 9, 1, 0, 0, 0, 0][..]],
        "a planes chunk in a frame that is not lossless",
    );
    add(
        "sign stream and joint sign together",
        lossy(4, 4),
        &[&chunk(3, 0, &[0x21, 0x43], 0, &[0x1b])],
        "unknown chunk flags",
    );
    add(
        "unknown coder id",
        lossy(4, 4),
        &[&chunk(0, 200, &[0x21, 0x43], 0, &[0x1b])],
        "unknown exponent coder id 200",
    );
    add(
        "exponent stream past the chunk",
        lossy(4, 4),
        &[&chunk(0, 0, &[0x21, 0x43], 0, &[])],
        "truncated: mantissa stream",
    );
    add(
        "stray bytes",
        lossy(4, 4),
        &[&chunk(0, 0, &[0x21, 0x43], 0, &[0x1b, 0])],
        "1 stray bytes",
    );
    add(
        "raw stream too short",
        lossy(4, 4),
        &[&chunk(0, 0, &[0x21], 0, &[0x1b])],
        "should be 2 bytes",
    );
    add(
        "more exceptions than values",
        lossy(4, 4),
        &[&chunk(0, 0, &[0x21, 0x43], 5, &[0x1b])],
        "5 exceptions in a chunk of 4",
    );
    add(
        "exceptions in a lossless frame",
        RawHeader::float32(&[1], 1),
        &[&chunk(0, 0, &[0], 1, &[0; 11])],
        "1 exceptions in a chunk of 1",
    );
    let nan = 0x7fc0_0000;
    let exc = |i: u32, bits: u32| [&[0x1b][..], &exception(i, bits)].concat();
    add(
        "exception index beyond the chunk",
        lossy(4, 4),
        &[&chunk(0, 0, &[0x21, 0x43], 1, &exc(4, nan))],
        "exception index 4",
    );
    add(
        "exceptions out of order",
        lossy(4, 4),
        &[&chunk(
            0,
            0,
            &[0x21, 0x43],
            2,
            &[&exc(2, nan)[..], &exception(1, nan)].concat(),
        )],
        "exception index 1 is out of order",
    );
    add(
        "mantissa on the zero code above the subnormals",
        lossy(4, 4),
        &[&chunk(0, 0, &[0x20, 0x43], 0, &[0x1b])],
        "zero exponent code and a nonzero mantissa",
    );
    add(
        "exception that is a number",
        lossy(4, 4),
        &[&chunk(0, 0, &[0x21, 0x43], 1, &exc(0, 0x3f80_0000))],
        "not a NaN or infinity",
    );
    v
}

#[test]
fn hostile_frames_are_clear_decode_errors_with_bounded_allocation() {
    // Warm the thread pools so that their one-time allocations are not charged to a case.
    let mut warm = lossy(4, 4);
    assert_eq!(
        check_decode(&warm.frame(&[&chunk(0, 0, &[0x21, 0x43], 0, &[0x1b])])),
        Ok(Outcome::Decoded)
    );
    for (name, frame, msg) in cases() {
        let (err, peak) = peak_during(|| error_of(&frame));
        assert!(
            err.contains(msg),
            "{name}: message {err:?} does not contain {msg:?}"
        );
        assert!(
            peak <= 4096 + 4 * frame.len(),
            "{name}: allocated {peak} bytes"
        );
        assert_ne!(check_decode(&frame), Ok(Outcome::Decoded), "{name}");
        assert!(check_decode(&frame).is_ok(), "{name}");
    }

    // The bound on what a small input can claim. Every chunk costs a table entry and a chunk header
    // (MIN_BYTES_PER_CHUNK bytes) and holds at most 2^20 values, so the claim is at most
    // 8 MiB per 26 input bytes. Build the worst 1 KB frame: float64, e1m0, empty streams.
    let n_chunks = (1024 - 40 - 8) / MIN_BYTES_PER_CHUNK as u64;
    let mut h = RawHeader {
        dtype: DType::F64.id(),
        exp_bits: 1,
        man_bits: 0,
        window_top: 1023,
        ..RawHeader::float32(&[n_chunks << 20], 1 << 20)
    };
    let empty = chunk(0, 0, &[], 0, &[]);
    let chunks: Vec<&[u8]> = (0..n_chunks).map(|_| &empty[..]).collect();
    let frame = h.frame(&chunks);
    assert!(frame.len() <= 1024);
    let info = inspect(&frame).unwrap();
    let claimed = info.header.len() * 8;
    assert_eq!(
        claimed,
        (37 * 8) << 20,
        "a 1 KB frame claims {claimed} bytes"
    );
    assert!(claimed <= max_decoded_bytes(frame.len()));
    assert_eq!(check_decode(&frame), Ok(Outcome::TooLargeToTry));
    let mut out = vec![0u8; claimed];
    let err = decode_into(&frame, &mut out, Some(1)).unwrap_err();
    assert!(err.to_string().contains("should be"), "{err}");
}
