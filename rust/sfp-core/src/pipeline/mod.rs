//! The typed pipeline behind the public operations: the window search, the chunks encoded and
//! decoded in parallel, and the frame laid out around them.
//!
//! An encode sizes its frame in one of two ways: flat chunks (`exponent_coding="raw"`) have a size
//! that one read-only scan predicts, so they are encoded straight into their place in the output
//! ([`flat`]); coded chunks are encoded in waves of one per thread and copied into the output behind
//! the ones before them ([`coded`]).

pub(crate) mod coded;
pub(crate) mod flat;
pub(crate) mod window;

use crate::frame::checksum::checksum;
use rayon::prelude::*;

use crate::chunk;
use crate::codec::FrameBuffer;
use crate::coding::exponent::ExponentCoding;
use crate::error::{Error, Result};
use crate::format::Target;
use crate::frame::Header;
use crate::kernel::{self, Params, Word};
use crate::reduce::Reducer;
use crate::runtime::memory::{self, Stores};
use crate::runtime::threads;
use crate::simd::Level;
use window::{window_for, window_from_top};

/// What an encode works on: the source bytes (one byte per element for a narrow type, two-byte
/// words for a flat frame of one) and how the frame is cut and run.
pub(crate) struct Job<'a> {
    pub(crate) src: &'a [u8],
    pub(crate) target: &'a Target,
    pub(crate) shape: &'a [u64],
    pub(crate) chunk: usize,
    pub(crate) level: Level,
    pub(crate) threads: Option<usize>,
}

/// Encodes `job` into the buffers `alloc` returns (uninitialised; see [`FrameBuffer`]): the
/// window search, then flat chunks straight into a buffer of the frame's exact size (their sizes
/// follow from a scan) or coded chunks as [`coded`] describes.
///
/// # Errors
/// [`Error::InvalidArgument`] when a size overflows or the threads cannot start; whatever `alloc`
/// returns.
pub(crate) fn encode<B: FrameBuffer>(
    job: &Job<'_>,
    mut alloc: impl FnMut(usize) -> Result<B>,
) -> Result<B> {
    let element = job.target.dtype.size();
    // The window search and the scan run one task per chunk.
    let tasks = (job.src.len() / element).div_ceil(job.chunk);
    let window = threads::run_tasks(job.threads, tasks, || {
        window_for(job.target, job.src, job.chunk, job.level)
    })??;
    if job.target.format.exponent_coding != ExponentCoding::Raw {
        return coded::encode(job, window, &mut alloc);
    }
    let plan = threads::run_tasks(job.threads, tasks, || {
        flat::Plan::new(
            job.src,
            *job.target,
            window,
            job.shape,
            job.chunk,
            job.level,
            job.threads,
        )
    })??;
    let len = plan.len();
    let mut out = alloc(len)?;
    let memory = out.memory();
    if memory.len() < len {
        return Err(Error::invalid(format!(
            "the frame is {len} bytes, the buffer {}",
            memory.len()
        )));
    }
    memory::advise_huge_pages(memory.as_ptr().cast(), len);
    plan.write_to(&mut memory[..len])?;
    // SAFETY: all `len` bytes were written.
    unsafe { out.set_len(len) };
    Ok(out)
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

/// Decodes every chunk of a parsed frame into its place in `out` with `stores`, each checked
/// against its checksum.
///
/// # Errors
/// [`Error::Decode`] naming the first bad chunk.
pub(crate) fn decode_chunks<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    header: &Header,
    frame: &[u8],
    stores: Stores,
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
            decode_checked(&frame[range.clone()], sum, c, |bytes| {
                chunk::decode::<W, M>(level, r, &p, t, bytes, dst, stores)
            })
        })
}

/// Chunk bytes from which a chunk is decoded before its checksum is checked.
const DECODE_FIRST_FROM: usize = 64 << 10;

/// Decodes chunk `c`, `bytes`, with `decode` and checks the bytes against their checksum `sum`.
///
/// A large chunk is decoded first: its bytes are then read from memory while there is decoding
/// work to overlap the reads with, and the check finds them in the cache (checked first, reading
/// them took a sixth of a bfloat16 decode). The decoders take any bytes without harm (they are
/// fuzzed as such), and their output counts only once the checksum matches. A small chunk is
/// checked first, so that a corrupt small frame never reaches a decoder's fixed-size tables (up to
/// 512 KiB), many times its own size.
///
/// # Errors
/// [`Error::Decode`] naming the chunk: a checksum mismatch (the data is corrupt), whether or not
/// the bytes decoded, or else the decoder's error.
pub(crate) fn decode_checked(
    bytes: &[u8],
    sum: u64,
    c: usize,
    decode: impl FnOnce(&[u8]) -> Result<()>,
) -> Result<()> {
    let corrupt = || {
        Error::decode(format!(
            "checksum mismatch in chunk {c}: the data is corrupt"
        ))
    };
    if bytes.len() < DECODE_FIRST_FROM && checksum(bytes) != sum {
        return Err(corrupt());
    }
    let decoded = decode(bytes);
    if bytes.len() >= DECODE_FIRST_FROM && checksum(bytes) != sum {
        return Err(corrupt());
    }
    decoded.map_err(|e| Error::decode(format!("chunk {c}: {e}")))
}

/// Elements per parallel task of `quantize` (a multiple of the kernels' block).
pub(crate) const QUANTIZE_STEP: usize = 1 << 16;

/// Elements per task of a `quantize` of `n` elements on `threads` threads: [`QUANTIZE_STEP`], or
/// all of them on one thread (tasks there only split one loop, and one task needs no pool).
pub(crate) fn quantize_step(threads: Option<usize>, n: usize) -> usize {
    if threads == Some(1) {
        n.max(1)
    } else {
        QUANTIZE_STEP
    }
}

/// Quantizes `src` into `out`, or `out` in place, in parallel tasks of `step` elements, each in
/// pieces of at most [`QUANTIZE_STEP`] (the stochastic underflow's second pass finds a piece in
/// the cache).
pub(crate) fn quantize_chunks<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    step: usize,
    src: Option<&[u8]>,
    out: &mut [u8],
) {
    let p = Params::<W>::new(r);
    let piece = QUANTIZE_STEP * W::SIZE;
    let task = step.max(1) * W::SIZE;
    let first = |c: usize, k: usize| ((c * task + k * piece) / W::SIZE) as u64;
    match src {
        Some(src) => out
            .par_chunks_mut(task)
            .zip(src.par_chunks(task))
            .enumerate()
            .for_each(|(c, (d, s))| {
                for (k, (d, s)) in d.chunks_mut(piece).zip(s.chunks(piece)).enumerate() {
                    kernel::quantize_into::run::<W, M>(level, &p, s, d, first(c, k));
                }
            }),
        None => out.par_chunks_mut(task).enumerate().for_each(|(c, d)| {
            for (k, d) in d.chunks_mut(piece).enumerate() {
                kernel::quantize_in_place::run::<W, M>(level, &p, d, first(c, k));
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_checksum_mismatch_is_reported_whether_the_chunk_is_decoded_first_or_not() {
        for len in [
            100,
            DECODE_FIRST_FROM - 1,
            DECODE_FIRST_FROM,
            3 * DECODE_FIRST_FROM,
        ] {
            let bytes = vec![7u8; len];
            let sum = checksum(&bytes);
            let mut decoded = false;
            decode_checked(&bytes, sum, 3, |b| {
                decoded = b.len() == len;
                Ok(())
            })
            .unwrap();
            assert!(decoded, "{len}");
            // A decoder that fails or succeeds on a corrupt chunk: the mismatch is what is reported.
            for result in [Ok(()), Err(Error::decode("bad stream"))] {
                let err = decode_checked(&bytes, sum ^ 1, 3, |_| result.clone()).unwrap_err();
                assert!(
                    err.to_string().contains("checksum mismatch in chunk 3"),
                    "{len}: {err}"
                );
            }
            let err = decode_checked(&bytes, sum, 3, |_| Err(Error::decode("bad stream")));
            assert!(err.unwrap_err().to_string().contains("chunk 3: "), "{len}");
        }
    }

    #[test]
    fn a_flipped_byte_in_a_large_chunk_is_a_checksum_mismatch() {
        use crate::{decode_into, encode, DType, Format, Options};
        let n = 1 << 20;
        let mut state = 0x9e37_79b9_u32;
        let src: Vec<u8> = (0..n)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                // bfloat16 weights: exponents near 2^-5, random signs and mantissas.
                let bits = (state & 0x807f) as u16 | (0x3c00 + (state >> 20 & 0x3) as u16 * 0x80);
                bits.to_le_bytes()
            })
            .collect();
        let frame = encode(
            &src,
            DType::BF16,
            &[n as u64],
            &Format::LOSSLESS,
            &Options::default(),
        )
        .unwrap();
        let header = Header::parse(&frame).unwrap();
        let ranges = header.chunk_ranges();
        assert!(ranges[0].len() >= DECODE_FIRST_FROM, "{:?}", ranges[0]);
        let mut out = vec![0u8; src.len()];
        decode_into(&frame, &mut out, Some(1)).unwrap();
        assert!(out == src);
        // A symbol byte, a stream length, the flat bits: each flipped is a mismatch.
        for at in [
            ranges[0].start + 8,
            ranges[0].start + ranges[0].len() / 2,
            ranges[0].end - 1,
        ] {
            let mut bad = frame.clone();
            bad[at] ^= 0x10;
            let err = decode_into(&bad, &mut out, Some(1)).unwrap_err();
            assert!(
                err.to_string().contains("checksum mismatch in chunk 0"),
                "{at}: {err}"
            );
        }
    }
}
