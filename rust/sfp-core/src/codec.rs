//! The public operations: encode, decode, quantize, inspect.

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

use crate::chunk::{self, ChunkLayout};
use crate::coding::exponent::ExponentCoding;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::{Format, Target};
use crate::frame::{Header, MAX_CHUNK, MAX_NDIM};
use crate::kernel::{self, Params, Word, TRUNCATE};
use crate::pipeline::window::{window_for, window_from_top, window_top_field};
use crate::reduce::Reducer;
use crate::runtime::memory;
use crate::runtime::threads;
use crate::simd::{self, Level};

use crate::pipeline::flat;

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

/// An encoded frame, ready to be laid into one buffer the caller allocates once:
/// [`EncodedFrame::write_to`] (the Python binding writes straight into `bytes`).
///
/// Flat frames (`exponent_coding="raw"`) have a size known in advance and are encoded by `write_to`
/// itself, straight into the buffer ([`flat`]). Other frames are encoded chunk by chunk into one
/// huge-page-backed arena, each chunk at the start of its own slot (see [`crate::runtime::memory`]); a chunk
/// that outgrew its slot has a buffer of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame<'a>(Body<'a>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Body<'a> {
    Flat(flat::Plan<'a>),
    Pieces {
        /// The serialised header with its chunk table.
        header: Vec<u8>,
        arena: Vec<u8>,
        pieces: Vec<Piece>,
    },
}

/// Where one chunk's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// `arena[start..start + len]`.
    Arena(usize, usize),
    /// Its own buffer.
    Own(Vec<u8>),
}

/// The chunks of an arena-encoded frame, in order.
fn chunks<'f>(arena: &'f [u8], pieces: &'f [Piece]) -> impl Iterator<Item = &'f [u8]> + 'f {
    pieces.iter().map(move |p| match p {
        Piece::Arena(start, len) => arena.get(*start..*start + *len).unwrap_or(&[]),
        Piece::Own(v) => v.as_slice(),
    })
}

impl EncodedFrame<'_> {
    /// Total bytes of the frame.
    pub fn len(&self) -> usize {
        match &self.0 {
            Body::Flat(plan) => plan.len(),
            Body::Pieces {
                header,
                arena,
                pieces,
            } => header.len() + chunks(arena, pieces).map(<[u8]>::len).sum::<usize>(),
        }
    }

    /// True when the frame has no bytes (never: a header is always there).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the frame into `out`, which must be exactly [`EncodedFrame::len`] bytes (a flat frame
    /// is encoded here, on the operation's threads).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `out` has the wrong length.
    pub fn write_to(&self, out: &mut [u8]) -> Result<()> {
        let (header, arena, pieces) = match &self.0 {
            Body::Flat(plan) => return plan.write_to(out),
            Body::Pieces {
                header,
                arena,
                pieces,
            } => (header, arena, pieces),
        };
        if out.len() != self.len() {
            return Err(Error::invalid(format!(
                "frame is {} bytes, the buffer {}",
                self.len(),
                out.len()
            )));
        }
        let (head, mut rest) = out.split_at_mut(header.len());
        head.copy_from_slice(header);
        for c in chunks(arena, pieces) {
            let (dst, tail) = rest.split_at_mut(c.len());
            dst.copy_from_slice(c);
            rest = tail;
        }
        Ok(())
    }

    /// The frame as one vector.
    ///
    /// # Errors
    /// As [`EncodedFrame::write_to`] (never in practice: the length matches by construction).
    pub fn into_vec(self) -> Result<Vec<u8>> {
        let mut out = memory::zeroed(self.len());
        self.write_to(&mut out)?;
        Ok(out)
    }
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
    encode_parts(src, dtype, shape, format, options)?.into_vec()
}

/// [`encode`], returning the frame in pieces so the caller can place it without a second copy.
///
/// # Errors
/// As [`encode`].
pub fn encode_parts<'a>(
    src: &'a [u8],
    dtype: DType,
    shape: &[u64],
    format: &Format,
    options: &Options,
) -> Result<EncodedFrame<'a>> {
    check_len(src.len(), dtype, shape)?;
    let target = format.resolve(dtype)?;
    let chunk = options.chunk()?;
    let level = simd::current()?;
    threads::run(options.threads, || {
        let window = window_for(&target, src, chunk, level)?;
        if format.exponent_coding == ExponentCoding::Raw {
            let plan = flat::Plan::new(src, target, window, shape, chunk, level, options.threads)?;
            return Ok(EncodedFrame(Body::Flat(plan)));
        }
        let reducer = Reducer::new(&target, window);
        let (arena, pieces) = crate::by_word!(
            dtype.size(),
            kernel::mode(&reducer),
            encode_chunks(level, &reducer, &target, src, chunk)
        );
        let header = Header {
            target,
            window_top: window_top_field(window),
            shape: shape.to_vec(),
            chunk_size: chunk,
            chunks: chunks(&arena, &pieces)
                .map(|c| (c.len() as u64, xxh3_64(c)))
                .collect(),
            header_len: 0,
        }
        .to_bytes();
        Ok(EncodedFrame(Body::Pieces {
            header,
            arena,
            pieces,
        }))
    })?
}

/// Encodes every chunk into its slot of one arena; returns the arena and where each chunk lies.
fn encode_chunks<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    t: &Target,
    src: &[u8],
    chunk: usize,
) -> (Vec<u8>, Vec<Piece>) {
    let p = Params::<W>::new(r);
    let step = chunk * W::SIZE;
    let mut slot = chunk::slot_len(chunk, W::SIZE, t.exp_bits, t.man_bits);
    let n_chunks = src.len().div_ceil(step.max(1));
    // Several large slots start on huge-page boundaries, so a chunk touches only the huge pages its
    // bytes need (each touched one is zeroed whole by the kernel).
    let huge = n_chunks > 1 && slot >= memory::HUGE_PAGE / 2;
    if huge {
        slot = slot.div_ceil(memory::HUGE_PAGE) * memory::HUGE_PAGE;
    }
    let lead = if huge { memory::HUGE_PAGE } else { 0 };
    let mut arena = memory::zeroed(slot.saturating_mul(n_chunks).saturating_add(lead));
    let skip = if huge {
        arena.as_ptr().align_offset(memory::HUGE_PAGE).min(lead)
    } else {
        0
    };
    let pieces = arena[skip..]
        .par_chunks_mut(slot.max(1))
        .zip(src.par_chunks(step.max(1)))
        .enumerate()
        .map(|(c, (dst, part))| {
            let placed = chunk::encode::<W, M>(
                level,
                r,
                &p,
                t.exp_bits,
                t.man_bits,
                t.format.exponent_coding,
                part,
                (c * chunk) as u64,
                dst,
            );
            match placed {
                chunk::Placed::InSlot(len) => Piece::Arena(skip + c * slot, len),
                chunk::Placed::Own(v) => Piece::Own(v),
            }
        })
        .collect();
    (arena, pieces)
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
/// when `out` has the wrong size or `SFP_SIMD` names a level this CPU lacks.
pub fn decode_into(frame: &[u8], out: &mut [u8], threads: Option<usize>) -> Result<Header> {
    let level = simd::current()?;
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
    threads::run(threads, || {
        crate::by_word!(
            size,
            TRUNCATE,
            decode_chunks(level, &reducer, &header, frame, out)
        )
    })??;
    Ok(header)
}

fn decode_chunks<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    header: &Header,
    frame: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let p = Params::<W>::new(r);
    let t = &header.target;
    let ranges = header.chunk_ranges();
    out.par_chunks_mut((header.chunk_size * W::SIZE).max(1))
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
            chunk::decode::<W, M>(level, r, &p, t.exp_bits, t.man_bits, bytes, dst)
                .map_err(|e| Error::decode(format!("chunk {c}: {e}")))
        })
}

/// Elements per parallel task of `quantize` (a multiple of the kernels' block).
const QUANTIZE_STEP: usize = 1 << 16;

/// Reduces `src` to `format` as an array of the same type (the fake quantization of training);
/// `decode(encode(x, f))` equals it bit for bit.
///
/// # Errors
/// [`Error::InvalidArgument`] when the format does not fit `dtype`, the buffers differ in size, or
/// `SFP_SIMD` names a level this CPU lacks.
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
    let level = simd::current()?;
    threads::run(threads, || {
        let reducer = Reducer::new(&target, window_for(&target, src, DEFAULT_CHUNK, level)?);
        if target.is_lossless() {
            out.par_chunks_mut(QUANTIZE_STEP)
                .zip(src.par_chunks(QUANTIZE_STEP))
                .for_each(|(d, s)| d.copy_from_slice(s));
            return Ok(());
        }
        crate::by_word!(
            dtype.size(),
            kernel::mode(&reducer),
            quantize_chunks(level, &reducer, Some(src), out)
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
    if buf.len() % dtype.size() != 0 {
        return Err(Error::invalid(format!(
            "{} bytes is not a whole number of {}",
            buf.len(),
            dtype.name()
        )));
    }
    let target = format.resolve(dtype)?;
    let level = simd::current()?;
    if target.is_lossless() {
        return Ok(());
    }
    threads::run(threads, || {
        let reducer = Reducer::new(&target, window_for(&target, buf, DEFAULT_CHUNK, level)?);
        crate::by_word!(
            dtype.size(),
            kernel::mode(&reducer),
            quantize_chunks(level, &reducer, None, buf)
        );
        Ok(())
    })?
}

fn quantize_chunks<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    src: Option<&[u8]>,
    out: &mut [u8],
) {
    let p = Params::<W>::new(r);
    let step = QUANTIZE_STEP * W::SIZE;
    match src {
        Some(src) => out
            .par_chunks_mut(step)
            .zip(src.par_chunks(step))
            .enumerate()
            .for_each(|(c, (d, s))| {
                kernel::quantize_into::run::<W, M>(level, &p, s, d, (c * QUANTIZE_STEP) as u64)
            }),
        None => out.par_chunks_mut(step).enumerate().for_each(|(c, d)| {
            kernel::quantize_in_place::run::<W, M>(level, &p, d, (c * QUANTIZE_STEP) as u64)
        }),
    }
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
