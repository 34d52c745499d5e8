//! The typed pipeline behind the public operations: the window search, the chunks encoded and
//! decoded in parallel, and the frame laid out around them.
//!
//! An encode sizes its frame in one of two ways: flat chunks (`exponent_coding="raw"`) have a size
//! that one read-only scan predicts, so they are encoded straight into their place in the output
//! ([`flat`]); coded chunks are encoded first, each into a buffer of its exact length, and copied
//! into the output once its length is known.

pub(crate) mod flat;
pub(crate) mod window;

use crate::frame::checksum::checksum;
use rayon::prelude::*;

use crate::chunk;
use crate::coding::exponent::ExponentCoding;
use crate::error::{Error, Result};
use crate::format::Target;
use crate::frame::Header;
use crate::kernel::{self, Params, Word};
use crate::reduce::Reducer;
use crate::simd::Level;
use window::{window_for, window_from_top, window_top_field};

/// An encoded or sized frame, waiting for its output buffer.
pub(crate) enum Prepared<'a> {
    /// Sized by a scan; encoded by [`Prepared::write_to`].
    Flat(flat::Plan<'a>),
    /// Encoded: the serialised header and each chunk's bytes.
    Coded {
        header: Vec<u8>,
        chunks: Vec<Vec<u8>>,
    },
}

impl Prepared<'_> {
    /// Total bytes of the frame.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Flat(plan) => plan.len(),
            Self::Coded { header, chunks } => {
                header.len() + chunks.iter().map(Vec::len).sum::<usize>()
            }
        }
    }

    /// Writes the frame into `out`, exactly [`Prepared::len`] bytes; coded chunks are freed as they
    /// are copied, so the frame is never held twice.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `out` has the wrong length.
    pub(crate) fn write_to(self, out: &mut [u8]) -> Result<()> {
        if out.len() != self.len() {
            return Err(Error::invalid(format!(
                "the frame is {} bytes, the buffer {}",
                self.len(),
                out.len()
            )));
        }
        match self {
            Self::Flat(plan) => plan.write_to(out),
            Self::Coded { header, chunks } => {
                let (head, mut rest) = out.split_at_mut(header.len());
                head.copy_from_slice(&header);
                for c in chunks {
                    let (dst, tail) = rest.split_at_mut(c.len());
                    dst.copy_from_slice(&c);
                    rest = tail;
                }
                Ok(())
            }
        }
    }
}

/// Finds the window and encodes (or, for flat chunks, sizes) the frame of `src`; runs on the
/// operation's threads.
///
/// # Errors
/// [`Error::InvalidArgument`] when a size overflows.
pub(crate) fn prepare<'a>(
    src: &'a [u8],
    target: &Target,
    shape: &[u64],
    chunk: usize,
    level: Level,
    threads: Option<usize>,
) -> Result<Prepared<'a>> {
    let window = window_for(target, src, chunk, level)?;
    if target.format.exponent_coding == ExponentCoding::Raw {
        let plan = flat::Plan::new(src, *target, window, shape, chunk, level, threads)?;
        return Ok(Prepared::Flat(plan));
    }
    let reducer = Reducer::new(target, window);
    let chunks = crate::by_word!(
        target.dtype.word_size(),
        kernel::mode(&reducer),
        encode_chunks(level, &reducer, target, src, chunk)
    );
    let header = Header {
        target: *target,
        window_top: window_top_field(window),
        shape: shape.to_vec(),
        chunk_size: chunk,
        chunks: chunks
            .iter()
            .map(|c| (c.len() as u64, checksum(c)))
            .collect(),
        header_len: 0,
    }
    .to_bytes();
    Ok(Prepared::Coded { header, chunks })
}

/// Encodes every chunk in parallel, each into a buffer of its exact length.
fn encode_chunks<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    t: &Target,
    src: &[u8],
    chunk: usize,
) -> Vec<Vec<u8>> {
    let p = Params::<W>::new(r);
    src.par_chunks((chunk * W::SIZE).max(1))
        .enumerate()
        .map(|(c, part)| {
            chunk::encode::<W, M>(
                level,
                r,
                &p,
                t.exp_bits,
                t.man_bits,
                (t.format.exponent_coding, t.format.level),
                part,
                (c * chunk) as u64,
            )
        })
        .collect()
}

/// Parses a frame's header and the reducer that expands its values.
pub(crate) fn open(frame: &[u8]) -> Result<(Header, Reducer)> {
    let header = Header::parse(frame)?;
    let window = window_from_top(
        header.window_top,
        header.target.exp_bits,
        header.target.dtype,
    );
    let reducer = Reducer::new(&header.target, window);
    Ok((header, reducer))
}

/// Decodes every chunk of a parsed frame into its place in `out`, checksums first.
///
/// # Errors
/// [`Error::Decode`] naming the first bad chunk.
pub(crate) fn decode_chunks<W: Word, const M: u8>(
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
            let bytes = checked_chunk(frame, range, sum, c)?;
            chunk::decode::<W, M>(level, r, &p, t.exp_bits, t.man_bits, bytes, dst)
                .map_err(|e| Error::decode(format!("chunk {c}: {e}")))
        })
}

/// Chunk `c`'s bytes, `frame[range]`, once their checksum matches `sum`.
///
/// # Errors
/// [`Error::Decode`] when it does not: the data is corrupt.
pub(crate) fn checked_chunk<'a>(
    frame: &'a [u8],
    range: &std::ops::Range<usize>,
    sum: u64,
    c: usize,
) -> Result<&'a [u8]> {
    let bytes = &frame[range.clone()];
    if checksum(bytes) != sum {
        return Err(Error::decode(format!(
            "checksum mismatch in chunk {c}: the data is corrupt"
        )));
    }
    Ok(bytes)
}

/// Elements per parallel task of `quantize` (a multiple of the kernels' block).
pub(crate) const QUANTIZE_STEP: usize = 1 << 16;

/// Quantizes `src` into `out`, or `out` in place, in parallel steps.
pub(crate) fn quantize_chunks<W: Word, const M: u8>(
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
