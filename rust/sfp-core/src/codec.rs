//! The public operations: encode, decode, quantize, inspect.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::chunk::{self, ChunkLayout};
use crate::coding::exponent::ExponentCoding;
use crate::container::{ops, Container};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::{Format, Target};
use crate::frame::container::{is_container, ContainerHeader};
use crate::frame::{Header, MAX_CHUNK, MAX_NDIM};
use crate::kernel::{self, TRUNCATE};
use crate::narrow;
use crate::pipeline::window::window_for;
use crate::pipeline::{self, decode_chunks, quantize_chunks};
use crate::reduce::Reducer;
use crate::runtime::memory::Stores;
use crate::runtime::threads;
use crate::simd;

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
/// an option is out of range, or `SFP_SIMD` names a level this CPU lacks.
pub fn encode(
    src: &[u8],
    dtype: DType,
    shape: &[u64],
    format: &Format,
    options: &Options,
) -> Result<Vec<u8>> {
    let mut frame = encode_with(src, dtype, shape, format, options, |capacity| {
        Ok(Vec::with_capacity(capacity))
    })?;
    frame.shrink_to_fit();
    Ok(frame)
}

/// Memory a frame is written into, which [`encode_with`] asks its caller for (a `Vec`, or an
/// object of the caller's language, such as a Python `bytes`).
pub trait FrameBuffer {
    /// The buffer's memory, uninitialised until the encoder writes it.
    fn memory(&mut self) -> &mut [MaybeUninit<u8>];

    /// Ends the frame after its first `len` bytes; the memory beyond them is not part of it.
    ///
    /// # Safety
    /// The first `len` bytes of [`FrameBuffer::memory`] have been written, and `len` is at most
    /// its length.
    unsafe fn set_len(&mut self, len: usize);
}

/// A vector's spare capacity; a frame's vector starts empty.
impl FrameBuffer for Vec<u8> {
    fn memory(&mut self) -> &mut [MaybeUninit<u8>] {
        self.spare_capacity_mut()
    }

    unsafe fn set_len(&mut self, len: usize) {
        // SAFETY: the caller's contract, for a vector that was empty.
        unsafe { Vec::set_len(self, len) };
    }
}

/// [`encode`] into buffers the caller allocates: `alloc(capacity)` returns one of at least
/// `capacity` bytes, which the frame is written into and ended in ([`FrameBuffer::set_len`]).
///
/// Memory: a frame whose size follows from a scan (`exponent_coding="raw"`) asks for exactly its
/// size. Coded frames ask for about the most the frame can take (its stored bits and an eighth),
/// of which only the frame's own bytes are ever written, and for a larger buffer in the rare case
/// that the frame outgrows it; the chunks are encoded in waves of one per thread into reused
/// buffers, so the peak is the frame plus a chunk per thread.
///
/// # Errors
/// As [`encode`], and whatever `alloc` returns.
pub fn encode_with<B: FrameBuffer>(
    src: &[u8],
    dtype: DType,
    shape: &[u64],
    format: &Format,
    options: &Options,
    mut alloc: impl FnMut(usize) -> Result<B>,
) -> Result<B> {
    check_len(src.len(), dtype, shape)?;
    let target = format.resolve(dtype)?;
    let chunk = options.chunk()?;
    let level = simd::current()?;
    if format.container != Container::Window {
        let frame = ops::encode(src, dtype, shape, format, options)?;
        let mut out = alloc(frame.len())?;
        let memory = out.memory();
        if memory.len() < frame.len() {
            return Err(Error::invalid("the buffer is shorter than the frame"));
        }
        pipeline::coded::copy(&mut memory[..frame.len()], &frame);
        // SAFETY: the frame's bytes were written.
        unsafe { out.set_len(frame.len()) };
        return Ok(out);
    }
    // Coded chunks of a narrow type are widened one at a time, in the chunk coders' scratch; the
    // flat plan scans the whole array's words.
    let widened;
    let src = if dtype.is_narrow() && target.format.exponent_coding == ExponentCoding::Raw {
        widened = threads::run(options.threads, || narrow::widen(src, dtype))??;
        &widened[..]
    } else {
        src
    };
    let job = pipeline::Job {
        src,
        target: &target,
        shape,
        chunk,
        level,
        threads: options.threads,
    };
    pipeline::encode(&job, alloc)
}

/// Decodes a frame into `out`, which must be exactly the array's bytes; returns the header.
///
/// # Errors
/// [`Error::Decode`] when the frame is corrupt, truncated or not a frame; [`Error::InvalidArgument`]
/// when `out` has the wrong size or `SFP_SIMD` names a level this CPU lacks.
pub fn decode_into(frame: &[u8], out: &mut [u8], threads: Option<usize>) -> Result<Header> {
    decode_with(frame, threads, None, |_| Ok(out)).map(|(header, _)| header)
}

/// Decodes a frame into the buffer `alloc` returns for its parsed header (exactly
/// `header.nbytes()` bytes: a fresh allocation or the caller's own), parsing the frame once.
///
/// # Errors
/// [`Error::Decode`] when the frame is corrupt, truncated or not a frame, or its array is larger
/// than `max_nbytes`; [`Error::InvalidArgument`] when the buffer has the wrong size or `SFP_SIMD`
/// names a level this CPU lacks; whatever `alloc` returns.
pub fn decode_with<B: AsMut<[u8]>>(
    frame: &[u8],
    threads: Option<usize>,
    max_nbytes: Option<u64>,
    alloc: impl FnOnce(&Header) -> Result<B>,
) -> Result<(Header, B)> {
    threads::check(threads)?;
    let level = simd::current()?;
    if is_container(frame) {
        let container = ContainerHeader::parse(frame)?;
        let header = ops::summary(&container);
        let mut out = alloc_checked(&header, max_nbytes, alloc)?;
        ops::decode_into(frame, &container, threads, out.as_mut())?;
        return Ok((header, out));
    }
    let (header, reducer) = pipeline::open(frame)?;
    let mut out = alloc_checked(&header, max_nbytes, alloc)?;
    let buf = out.as_mut();
    let dtype = header.target.dtype;
    threads::run_tasks(threads, header.chunks.len(), || {
        if !dtype.is_narrow() {
            return crate::by_word!(
                dtype.word_size(),
                TRUNCATE,
                decode_chunks(
                    level,
                    &reducer,
                    &header,
                    frame,
                    Stores::for_output(buf.len()),
                    buf
                )
            );
        }
        narrow::decode_chunks(level, &reducer, &header, frame, buf)
    })??;
    Ok((header, out))
}

/// The buffer `alloc` returns for a frame's array, checked against `max_nbytes` first and against
/// the array's size after.
fn alloc_checked<B: AsMut<[u8]>>(
    header: &Header,
    max_nbytes: Option<u64>,
    alloc: impl FnOnce(&Header) -> Result<B>,
) -> Result<B> {
    let nbytes = header.nbytes();
    let name = header.target.dtype.name();
    if let Some(limit) = max_nbytes.filter(|&m| nbytes as u64 > m) {
        return Err(Error::decode(format!(
            "the frame holds {nbytes} bytes of {name}, more than max_nbytes={limit}"
        )));
    }
    let mut out = alloc(header)?;
    let len = out.as_mut().len();
    if len != nbytes {
        return Err(Error::invalid(format!(
            "output buffer has {len} bytes, the frame holds {} values of {name} ({nbytes} bytes)",
            header.len(),
        )));
    }
    Ok(out)
}

/// Reduces `src` to `format` as an array of the same type (the fake quantization of training);
/// `decode(encode(x, f))` equals it bit for bit. Block formats need the array's shape
/// ([`quantize_shaped`]).
///
/// # Errors
/// [`Error::InvalidArgument`] when the format does not fit `dtype` or is a block format, the
/// buffers differ in size, or `SFP_SIMD` names a level this CPU lacks.
pub fn quantize(
    src: &[u8],
    out: &mut [u8],
    dtype: DType,
    format: &Format,
    threads: Option<usize>,
) -> Result<()> {
    if let Container::Block(b) = format.container {
        return Err(needs_shape(b));
    }
    quantize_shaped(
        src,
        out,
        dtype,
        &[(src.len() / dtype.size()) as u64],
        format,
        threads,
    )
}

/// The error of a block format given no shape.
fn needs_shape(b: crate::block::BlockFormat) -> Error {
    Error::invalid(format!(
        "{} scales blocks along the last axis: quantize it with its shape",
        b.name()
    ))
}

/// [`quantize`] of an array of `shape` (which only block formats look at).
///
/// # Errors
/// As [`quantize`], and [`Error::InvalidArgument`] when `shape` does not match the buffer.
pub fn quantize_shaped(
    src: &[u8],
    out: &mut [u8],
    dtype: DType,
    shape: &[u64],
    format: &Format,
    threads: Option<usize>,
) -> Result<()> {
    if src.len() != out.len() || !src.len().is_multiple_of(dtype.size()) {
        return Err(Error::invalid(format!(
            "quantize needs equal whole buffers of {}: got {} and {} bytes",
            dtype.name(),
            src.len(),
            out.len()
        )));
    }
    let target = format.resolve(dtype)?;
    let level = simd::current()?;
    if format.container != Container::Window {
        check_len(src.len(), dtype, shape)?;
        return threads::run(threads, || {
            ops::quantize(src, out, dtype, format.container, shape)
        })?;
    }
    let n = src.len() / dtype.size();
    // One thread quantizes in one task (see `quantize_step`), the window search included.
    let step = pipeline::quantize_step(threads, n);
    threads::run_tasks(threads, n.div_ceil(step), || {
        let window = window_for(&target, src, step.max(DEFAULT_CHUNK), level)?;
        let reducer = Reducer::new(&target, window);
        if target.is_lossless() {
            let bytes = step * dtype.size();
            out.par_chunks_mut(bytes)
                .zip(src.par_chunks(bytes))
                .for_each(|(d, s)| d.copy_from_slice(s));
            return Ok(());
        }
        crate::by_word!(
            dtype.word_size(),
            kernel::mode(&reducer),
            quantize_chunks(level, &reducer, step, Some(src), out)
        );
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
    if let Container::Block(b) = format.container {
        return Err(needs_shape(b));
    }
    let n = (buf.len() / dtype.size()) as u64;
    quantize_in_place_shaped(buf, dtype, &[n], format, threads)
}

/// [`quantize_shaped`] in place.
///
/// # Errors
/// As [`quantize_shaped`].
pub fn quantize_in_place_shaped(
    buf: &mut [u8],
    dtype: DType,
    shape: &[u64],
    format: &Format,
    threads: Option<usize>,
) -> Result<()> {
    if !buf.len().is_multiple_of(dtype.size()) {
        return Err(Error::invalid(format!(
            "{} bytes is not a whole number of {}",
            buf.len(),
            dtype.name()
        )));
    }
    let target = format.resolve(dtype)?;
    let level = simd::current()?;
    if format.container != Container::Window {
        // A block's scale depends on all of its values: work from a copy.
        let src = buf.to_vec();
        return quantize_shaped(&src, buf, dtype, shape, format, threads);
    }
    if target.is_lossless() {
        return Ok(());
    }
    let n = buf.len() / dtype.size();
    // One thread quantizes in one task (see `quantize_step`), the window search included.
    let step = pipeline::quantize_step(threads, n);
    threads::run_tasks(threads, n.div_ceil(step), || {
        let window = window_for(&target, buf, step.max(DEFAULT_CHUNK), level)?;
        let reducer = Reducer::new(&target, window);
        crate::by_word!(
            dtype.word_size(),
            kernel::mode(&reducer),
            quantize_chunks(level, &reducer, step, None, buf)
        );
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
    if is_container(frame) {
        return Err(Error::decode(
            "a container frame holds parts: inspect it with inspect_container",
        ));
    }
    let (header, reducer) = pipeline::open(frame)?;
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
