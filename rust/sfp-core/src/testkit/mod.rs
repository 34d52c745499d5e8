//! Harness logic shared by the fuzz targets in `fuzz/` and the tests that replay their corpora, the
//! golden frames and the corruption suite (compiled for tests and with the `testkit` feature only).
//!
//! Every check returns `Err(description)` instead of panicking, so the same code serves a fuzz target
//! (which panics on `Err`) and a test that counts outcomes.

pub mod alloc;
pub mod corrupt;
pub mod entropy_bytes;
pub mod golden;
pub mod input;
pub mod mantissa;
pub mod planes;
pub mod raw;
pub mod simd;

use crate::coding::exponent::Coder;
use crate::dtype::DType;
use crate::error::Error;
use crate::format::Format;
use crate::{decode_into, encode, inspect, quantize, quantize_in_place, Options};

/// What a check found wrong.
pub type Failure = String;

/// The frame's chunk-table entry plus the smallest chunk, in bytes: the least input one chunk costs.
pub const MIN_BYTES_PER_CHUNK: usize = 16 + 10;

/// What `f` gives at each SIMD level of this CPU, worst first.
pub fn at_every_level<T>(f: impl Fn() -> T) -> Vec<T> {
    crate::simd::Level::available()
        .into_iter()
        .filter_map(|level| crate::simd::with_level(level, &f).ok())
        .collect()
}

/// `n` skewed codes of `width` bits, as exponents are: the smallest of three uniform draws.
pub fn skewed_codes(n: usize, width: u32, seed: u64) -> Vec<u16> {
    let mut r = rng(seed);
    let m = 1u64 << width;
    (0..n)
        .map(|_| (r() % m).min(r() % m).min(r() % m) as u16)
        .collect()
}

/// Decoded sizes above this are checked against [`max_decoded_bytes`] but not decoded by the harness.
pub const TRY_LIMIT: usize = 1 << 27;

/// Deterministic pseudo-random words (xorshift) from `seed`, for tests.
pub fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

/// Damaged copies of `bytes`: every `stride`-th truncation, then every `stride`-th single bit
/// flipped.
pub fn damaged(bytes: &[u8], stride: usize) -> Vec<Vec<u8>> {
    let stride = stride.max(1);
    let cut = (0..bytes.len())
        .step_by(stride)
        .map(|c| bytes[..c].to_vec());
    let flipped = (0..8 * bytes.len()).step_by(stride).map(|bit| {
        let mut bad = bytes.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        bad
    });
    cut.chain(flipped).collect()
}

/// The most decoded bytes a frame of `input_len` bytes can claim and still pass header validation:
/// each chunk costs at least [`MIN_BYTES_PER_CHUNK`] bytes of input and holds at most
/// [`crate::frame::MAX_CHUNK`] values of at most 8 bytes.
pub fn max_decoded_bytes(input_len: usize) -> usize {
    (input_len / MIN_BYTES_PER_CHUNK).saturating_mul(crate::frame::MAX_CHUNK * 8)
}

/// How a decode attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// `inspect` rejected the frame (header, chunk table or chunk layout) with [`Error::Decode`].
    RejectedByInspect,
    /// `inspect` accepted it and `decode_into` rejected it with [`Error::Decode`] (checksum or streams).
    RejectedByDecode,
    /// It decoded (the bytes were a valid frame).
    Decoded,
    /// Valid header claiming more than [`TRY_LIMIT`] bytes (within the bound); not decoded.
    TooLargeToTry,
}

fn decode_error(stage: &str, e: Error) -> Result<(), Failure> {
    match e {
        Error::Decode(_) => Ok(()),
        other => Err(format!("{stage} returned a non-decode error: {other:?}")),
    }
}

/// Decodes arbitrary bytes the way `schrodinger_fp.decode` does (inspect, allocate, decode) and checks
/// that it ends in a value or [`Error::Decode`], that the allocation is within [`max_decoded_bytes`],
/// and that a frame that decodes does so identically on 1 and 3 threads and holds only values of its
/// own format (quantizing the result again changes nothing).
///
/// # Errors
/// A description of the first property that failed.
pub fn check_decode(data: &[u8]) -> Result<Outcome, Failure> {
    if crate::frame::container::is_container(data) {
        return check_decode_container(data);
    }
    let info = match inspect(data) {
        Ok(info) => info,
        Err(e) => return decode_error("inspect", e).map(|()| Outcome::RejectedByInspect),
    };
    let header = &info.header;
    let size = header.target.dtype.size();
    let bytes = header
        .len()
        .checked_mul(size)
        .ok_or("header length overflows")?;
    if bytes > max_decoded_bytes(data.len()) {
        return Err(format!(
            "{} input bytes claim {bytes} decoded bytes, above the bound {}",
            data.len(),
            max_decoded_bytes(data.len())
        ));
    }
    if bytes > TRY_LIMIT {
        return Ok(Outcome::TooLargeToTry);
    }
    let mut out = vec![0u8; bytes];
    match decode_into(data, &mut out, Some(1)) {
        Ok(h) if h == *header => {}
        Ok(h) => return Err(format!("decode saw header {h:?}, inspect {header:?}")),
        Err(e) => return decode_error("decode_into", e).map(|()| Outcome::RejectedByDecode),
    }
    let mut again = vec![0u8; bytes];
    decode_into(data, &mut again, Some(3)).map_err(|e| format!("3 threads failed: {e}"))?;
    if again != out {
        return Err("decoding on 3 threads differs from 1 thread".into());
    }
    let t = &header.target;
    let format = Format {
        window_top: info.window_top,
        ..t.format
    };
    quantize_in_place(&mut again, t.dtype, &format, Some(1))
        .map_err(|e| format!("quantizing the decoded array failed: {e}"))?;
    if let Some(i) = first_difference(&again, &out, size) {
        return Err(format!(
            "decoded value {i} ({:02x?}) is not in the frame's format {format:?}: quantizing \
             gives {:02x?}",
            &out[i * size..(i + 1) * size],
            &again[i * size..(i + 1) * size]
        ));
    }
    Ok(Outcome::Decoded)
}

/// [`check_decode`] of a container frame: its parts are frames, so the same bound holds for what
/// it may allocate, and what decodes does so identically on 1 and 3 threads.
fn check_decode_container(data: &[u8]) -> Result<Outcome, Failure> {
    let info = match crate::inspect_container(data) {
        Ok(info) => info,
        Err(e) => return decode_error("inspect_container", e).map(|()| Outcome::RejectedByInspect),
    };
    let bytes = info.header.nbytes();
    if bytes > max_decoded_bytes(data.len()) {
        return Err(format!(
            "{} input bytes claim {bytes} decoded bytes, above the bound {}",
            data.len(),
            max_decoded_bytes(data.len())
        ));
    }
    if bytes > TRY_LIMIT {
        return Ok(Outcome::TooLargeToTry);
    }
    let mut out = vec![0u8; bytes];
    if let Err(e) = decode_into(data, &mut out, Some(1)) {
        return decode_error("decode_into", e).map(|()| Outcome::RejectedByDecode);
    }
    let mut again = vec![0u8; bytes];
    decode_into(data, &mut again, Some(3)).map_err(|e| format!("3 threads failed: {e}"))?;
    if again != out {
        return Err("decoding on 3 threads differs from 1 thread".into());
    }
    Ok(Outcome::Decoded)
}

/// Index of the first element that differs, if any.
fn first_difference(a: &[u8], b: &[u8], size: usize) -> Option<usize> {
    a.chunks(size).zip(b.chunks(size)).position(|(x, y)| x != y)
}

/// Repairs the checksums of a (mutated) frame, then runs [`check_decode`]: arbitrary changes to the
/// header fields and streams then reach the chunk decoder instead of stopping at a checksum.
///
/// # Errors
/// As [`check_decode`].
pub fn check_decode_repaired(data: &[u8]) -> Result<Outcome, Failure> {
    let mut frame = data.to_vec();
    corrupt::repair_checksums(&mut frame);
    check_decode(&frame)
}

/// Encodes arbitrary values in an arbitrary format (both read from `data` by [`input::Case`]) and
/// checks `decode(encode(x, f)) == quantize(x, f)` bit for bit, `== x` when lossless, that the frame
/// bytes do not depend on the thread count, the values not on the chunk size, that `quantize_in_place`
/// agrees with `quantize`, and that a format the dtype cannot take is an [`Error::InvalidArgument`].
///
/// # Errors
/// A description of the first property that failed.
pub fn check_roundtrip(data: &[u8]) -> Result<(), Failure> {
    let case = input::Case::read(data);
    let (dtype, format, shape) = (case.dtype, case.format, case.shape());
    let options = Options {
        chunk_size: Some(case.chunk_size),
        threads: Some(1),
    };
    let frame = match encode(&case.values, dtype, &shape, &format, &options) {
        Ok(f) => f,
        Err(Error::InvalidArgument(m)) => {
            return match format.resolve(dtype) {
                Err(_) => Ok(()),
                Ok(_) => Err(format!("encode rejected a valid format {format:?}: {m}")),
            }
        }
        Err(e) => return Err(format!("encode failed: {e:?}")),
    };
    let threaded = encode(
        &case.values,
        dtype,
        &shape,
        &format,
        &Options {
            threads: Some(3),
            ..options
        },
    )
    .map_err(|e| format!("encode on 3 threads failed: {e}"))?;
    if threaded != frame {
        return Err("frame bytes depend on the thread count".into());
    }
    let mut expected = vec![0u8; case.values.len()];
    quantize(&case.values, &mut expected, dtype, &format, Some(2))
        .map_err(|e| format!("quantize failed: {e}"))?;
    let mut in_place = case.values.clone();
    quantize_in_place(&mut in_place, dtype, &format, Some(1))
        .map_err(|e| format!("quantize_in_place failed: {e}"))?;
    if in_place != expected {
        return Err("quantize_in_place differs from quantize".into());
    }
    let size = dtype.size();
    if format
        .resolve(dtype)
        .map_err(|e| e.to_string())?
        .is_lossless()
    {
        if let Some(i) = first_difference(&expected, &case.values, size) {
            return Err(format!("lossless quantize changed value {i}"));
        }
    }
    let other_chunk = if case.chunk_size == 1 { 7 } else { 1 };
    for (what, f) in [
        ("frame", frame),
        (
            "frame with another chunk size",
            encode(
                &case.values,
                dtype,
                &shape,
                &format,
                &Options {
                    chunk_size: Some(other_chunk),
                    threads: Some(1),
                },
            )
            .map_err(|e| format!("encode with chunk size {other_chunk} failed: {e}"))?,
        ),
    ] {
        let mut out = vec![0u8; case.values.len()];
        decode_into(&f, &mut out, Some(2)).map_err(|e| format!("decoding the {what}: {e}"))?;
        if let Some(i) = first_difference(&out, &expected, size) {
            return Err(format!(
                "{what}: decode(encode(x)) differs from quantize(x) at {i} ({dtype:?}, {format:?}, \
                 chunk {}): got {:02x?}, expected {:02x?}, source {:02x?}",
                case.chunk_size,
                &out[i * size..(i + 1) * size],
                &expected[i * size..(i + 1) * size],
                &case.values[i * size..(i + 1) * size],
            ));
        }
        if check_decode(&f)? != Outcome::Decoded {
            return Err(format!("the {what} does not pass check_decode"));
        }
    }
    Ok(())
}

/// Round-trips arbitrary codes through `coder` (width and codes read from `data`) and feeds the raw
/// bytes to its decoder as a stream: encoding then decoding must give the codes back, and decoding
/// arbitrary bytes must end in codes within the width or [`Error::Decode`], and codes that decode
/// must re-encode to a stream that decodes to the same codes.
///
/// # Errors
/// A description of the first property that failed.
pub fn check_coder(coder: Coder, data: &[u8]) -> Result<(), Failure> {
    let (width, codes) = input::codes(data);
    let mut stream = Vec::new();
    coder.encode(&codes, width, &mut stream);
    let mut back = vec![0u16; codes.len()];
    coder
        .decode(&stream, width, &mut back)
        .map_err(|e| format!("{coder:?} cannot decode its own stream: {e}"))?;
    if back != codes {
        return Err(format!(
            "{coder:?} round trip at width {width} changed the codes"
        ));
    }
    // The same bytes as a hostile stream of a count taken from the input.
    let n = data.get(1).map_or(0, |&b| usize::from(b) * 17);
    let body = data.get(2..).unwrap_or(&[]);
    check_stream(coder, body, width, n).map(drop)
}

/// Decodes `bytes` as a stream of `n` codes of `width` bits by `coder` and checks that it ends in
/// [`Error::Decode`] or in codes within the width that re-encode to a stream decoding to the same
/// codes; returns whether it decoded.
///
/// # Errors
/// A description of the first property that failed.
pub fn check_stream(coder: Coder, bytes: &[u8], width: u32, n: usize) -> Result<bool, Failure> {
    let mut decoded = vec![0u16; n];
    match coder.decode(bytes, width, &mut decoded) {
        Ok(()) if decoded.iter().any(|&c| u32::from(c) >> width != 0) => Err(format!(
            "{coder:?} decoded a code beyond {width} bits from a hostile stream"
        )),
        Ok(()) => {
            let mut again = Vec::new();
            coder.encode(&decoded, width, &mut again);
            let mut twice = vec![0u16; n];
            coder
                .decode(&again, width, &mut twice)
                .map_err(|e| format!("{coder:?} cannot decode a re-encoded stream: {e}"))?;
            if twice != decoded {
                return Err(format!("{coder:?}: re-encoding decoded codes changed them"));
            }
            Ok(true)
        }
        Err(e) => decode_error("coder decode", e).map(|()| false),
    }
}

/// Every element type, for harnesses that pick one from a byte.
pub fn dtype_from_byte(b: u8) -> DType {
    DType::WIDE[usize::from(b) % DType::WIDE.len()]
}
