//! The public operations: encode, decode, quantize, inspect.

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

use crate::chunk::{self, ChunkLayout};
use crate::dtype::{load, store, DType};
use crate::error::{Error, Result};
use crate::format::{Format, Target};
use crate::frame::{Header, MAX_CHUNK, MAX_NDIM};
use crate::reduce::{window_for, window_from_top, window_top_field, Reducer};
use crate::threads;

/// Values per chunk unless asked otherwise.
pub const DEFAULT_CHUNK: usize = MAX_CHUNK;

/// How to run an operation; nothing here changes the output bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Values per chunk (1..=2^20); `None` for [`DEFAULT_CHUNK`]. Changes the frame, never the values.
    pub chunk_size: Option<usize>,
    /// Worker threads; `None` for one per core.
    pub threads: Option<usize>,
}

impl Options {
    fn chunk(&self) -> Result<usize> {
        let c = self.chunk_size.unwrap_or(DEFAULT_CHUNK);
        if c == 0 || c > MAX_CHUNK {
            return Err(Error::invalid(format!(
                "chunk_size={c} is outside 1..={MAX_CHUNK}"
            )));
        }
        Ok(c)
    }
}

/// Checks that `bytes` holds a whole number of `dtype` elements matching `shape`.
fn check_len(bytes: usize, dtype: DType, shape: &[u64]) -> Result<()> {
    if shape.len() > MAX_NDIM {
        return Err(Error::invalid(format!(
            "ndim={} exceeds {MAX_NDIM}",
            shape.len()
        )));
    }
    let n = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let expected = n.and_then(|n| n.checked_mul(dtype.size() as u64));
    if expected != Some(bytes as u64) {
        return Err(Error::invalid(format!(
            "shape {shape:?} of {} needs {} bytes, the buffer has {bytes}",
            dtype.name(),
            expected.map_or_else(|| "more than 2^64".to_string(), |e| e.to_string())
        )));
    }
    Ok(())
}

/// Encodes an array (little-endian `dtype` elements in C order) into a self-describing frame.
///
/// # Errors
/// [`Error::InvalidArgument`] when the format does not fit `dtype`, `shape` does not match the buffer,
/// or an option is out of range.
pub fn encode(
    src: &[u8],
    dtype: DType,
    shape: &[u64],
    format: &Format,
    options: &Options,
) -> Result<Vec<u8>> {
    check_len(src.len(), dtype, shape)?;
    let target = format.resolve(dtype)?;
    let chunk = options.chunk()?;
    threads::run(options.threads, || {
        let window = window_for(&target, src, chunk)?;
        let reducer = Reducer::new(&target, window);
        let size = dtype.size();
        let chunks: Vec<Vec<u8>> = src
            .par_chunks(chunk * size)
            .enumerate()
            .map(|(c, part)| {
                chunk::encode(
                    &reducer,
                    target.exp_bits,
                    target.man_bits,
                    format.exponent_coding,
                    part,
                    (c * chunk) as u64,
                )
            })
            .collect();
        let header = Header {
            target,
            window_top: window_top_field(window),
            shape: shape.to_vec(),
            chunk_size: chunk,
            chunks: chunks
                .iter()
                .map(|c| (c.len() as u64, xxh3_64(c)))
                .collect(),
            header_len: 0,
        };
        let mut out = header.to_bytes();
        out.reserve_exact(chunks.iter().map(Vec::len).sum());
        chunks.iter().for_each(|c| out.extend_from_slice(c));
        Ok(out)
    })?
}

/// Parses a frame's header and the reducer that expands its values.
fn open(frame: &[u8]) -> Result<(Header, Reducer)> {
    let header = Header::parse(frame)?;
    let window = window_from_top(
        header.window_top,
        header.target.exp_bits,
        header.target.dtype,
    );
    let reducer = Reducer::new(&header.target, window);
    Ok((header, reducer))
}

/// Decodes a frame into `out`, which must be exactly the array's bytes; returns the header.
///
/// # Errors
/// [`Error::Decode`] when the frame is corrupt, truncated or not a frame; [`Error::InvalidArgument`]
/// when `out` has the wrong size.
pub fn decode_into(frame: &[u8], out: &mut [u8], threads: Option<usize>) -> Result<Header> {
    let (header, reducer) = open(frame)?;
    let size = header.target.dtype.size();
    if out.len() != header.len() * size {
        return Err(Error::invalid(format!(
            "output buffer has {} bytes, the frame holds {} values of {} ({} bytes)",
            out.len(),
            header.len(),
            header.target.dtype.name(),
            header.len() * size
        )));
    }
    let ranges = header.chunk_ranges();
    let t = &header.target;
    threads::run(threads, || {
        out.par_chunks_mut((header.chunk_size * size).max(1))
            .zip(ranges.par_iter())
            .zip(header.chunks.par_iter())
            .enumerate()
            .try_for_each(|(c, ((dst, range), &(_, sum)))| {
                let bytes = &frame[range.clone()];
                if xxh3_64(bytes) != sum {
                    return Err(Error::decode(format!(
                        "checksum mismatch in chunk {c}: the data is corrupt"
                    )));
                }
                chunk::decode(&reducer, t.exp_bits, t.man_bits, bytes, dst)
                    .map_err(|e| Error::decode(format!("chunk {c}: {e}")))
            })
    })??;
    Ok(header)
}

/// Reduces `src` to `format` as an array of the same type (the fake quantization of training);
/// `decode(encode(x, f))` equals it bit for bit.
///
/// # Errors
/// [`Error::InvalidArgument`] when the format does not fit `dtype` or the buffers differ in size.
pub fn quantize(
    src: &[u8],
    out: &mut [u8],
    dtype: DType,
    format: &Format,
    threads: Option<usize>,
) -> Result<()> {
    if src.len() != out.len() || src.len() % dtype.size() != 0 {
        return Err(Error::invalid(format!(
            "quantize needs equal whole buffers of {}: got {} and {} bytes",
            dtype.name(),
            src.len(),
            out.len()
        )));
    }
    let target = format.resolve(dtype)?;
    let size = dtype.size();
    threads::run(threads, || {
        let reducer = Reducer::new(&target, window_for(&target, src, DEFAULT_CHUNK)?);
        let step = DEFAULT_CHUNK / 16 * size;
        out.par_chunks_mut(step)
            .zip(src.par_chunks(step))
            .enumerate()
            .for_each(|(c, (dst, part))| {
                let first = (c * step / size) as u64;
                for i in 0..part.len() / size {
                    store(
                        dst,
                        size,
                        i,
                        reducer.quantize(load(part, size, i), first + i as u64),
                    );
                }
            });
        Ok(())
    })?
}

/// [`quantize`] in place.
///
/// # Errors
/// As [`quantize`].
pub fn quantize_in_place(
    buf: &mut [u8],
    dtype: DType,
    format: &Format,
    threads: Option<usize>,
) -> Result<()> {
    if buf.len() % dtype.size() != 0 {
        return Err(Error::invalid(format!(
            "{} bytes is not a whole number of {}",
            buf.len(),
            dtype.name()
        )));
    }
    let target = format.resolve(dtype)?;
    let size = dtype.size();
    threads::run(threads, || {
        let reducer = Reducer::new(&target, window_for(&target, buf, DEFAULT_CHUNK)?);
        let step = DEFAULT_CHUNK / 16 * size;
        buf.par_chunks_mut(step).enumerate().for_each(|(c, part)| {
            let first = (c * step / size) as u64;
            for i in 0..part.len() / size {
                store(
                    part,
                    size,
                    i,
                    reducer.quantize(load(part, size, i), first + i as u64),
                );
            }
        });
        Ok(())
    })?
}

/// What a frame holds, read without decoding its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// The validated header.
    pub header: Header,
    /// Unbiased exponent of the window's top binade, when the exponent is reduced.
    pub window_top: Option<i32>,
    /// Stream sizes per chunk.
    pub chunks: Vec<ChunkLayout>,
}

/// Describes a frame: header, window and per-chunk stream sizes. Checksums are not verified.
///
/// # Errors
/// [`Error::Decode`] when the header or a chunk's layout is malformed.
pub fn inspect(frame: &[u8]) -> Result<FrameInfo> {
    let (header, reducer) = open(frame)?;
    let t: Target = header.target;
    let chunks = header
        .chunk_ranges()
        .into_iter()
        .enumerate()
        .map(|(c, range)| {
            chunk::layout(&reducer, t.man_bits, &frame[range], header.chunk_values(c))
        })
        .collect::<Result<Vec<_>>>()?;
    let window_top = t
        .has_window()
        .then(|| i32::from(header.window_top) - t.dtype.bias());
    Ok(FrameInfo {
        header,
        window_top,
        chunks,
    })
}
