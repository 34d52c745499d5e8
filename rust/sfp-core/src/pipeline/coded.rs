//! Frames of coded chunks, whose sizes are known only once they are encoded.
//!
//! The chunks are encoded in waves of one per thread, each into a buffer that is reused from wave
//! to wave and from call to call, and every wave is copied into the frame behind the waves before
//! it. The frame's memory is therefore written once, in order, into a buffer asked for at about
//! the size the frame can reach: fresh memory costs a page fault per page on first touch, most of
//! the cost of filling it on virtual machines, so encoding each chunk into fresh memory of its own
//! and then copying it into a fresh frame paid those faults twice.

use rayon::prelude::*;

use super::Job;
use crate::chunk;
use crate::codec::FrameBuffer;
use crate::error::{Error, Result};
use crate::format::Target;
use crate::frame::checksum::checksum;
use crate::frame::Header;
use crate::kernel::{self, Params, Word};
use crate::narrow;
use crate::pipeline::window::window_top_field;
use crate::reduce::{Reducer, Window};
use crate::runtime::memory::{self, with_reused};
use crate::runtime::threads;

thread_local! {
    /// The calling thread's wave buffers, one per thread of a wave.
    static WAVE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes `job` (its window found) into the buffers `alloc` returns: one of about the size the
/// frame can reach, and a larger one in the rare case that the frame outgrows it.
///
/// # Errors
/// As [`narrow::with_widened`], [`threads::run_tasks`] and `alloc`.
pub(crate) fn encode<B: FrameBuffer>(
    job: &Job<'_>,
    window: Option<Window>,
    alloc: &mut impl FnMut(usize) -> Result<B>,
) -> Result<B> {
    let t = job.target;
    let reducer = Reducer::new(t, window);
    let element = if t.dtype.is_narrow() {
        1
    } else {
        t.dtype.word_size()
    };
    let values = job.src.len() / element;
    let n_chunks = values.div_ceil(job.chunk);
    let header = |chunks: Vec<(u64, u64)>| {
        Header {
            target: *t,
            window_top: window_top_field(window),
            shape: job.shape.to_vec(),
            chunk_size: job.chunk,
            chunks,
            header_len: 0,
        }
        .to_bytes()
    };
    let header_len = header(vec![(0, 0); n_chunks]).len();
    let mut frame = Writer::new(
        alloc,
        header_len + capacity(t, values, n_chunks),
        header_len,
    )?;
    let width = match job.threads {
        Some(n) => n,
        None => rayon::current_num_threads(),
    }
    .clamp(1, n_chunks.max(1));
    let mut table = Vec::with_capacity(n_chunks);
    with_reused(&WAVE, |bufs| -> Result<()> {
        bufs.resize_with(width, Vec::new);
        for first_chunk in (0..n_chunks).step_by(width) {
            let wave = &mut bufs[..width.min(n_chunks - first_chunk)];
            let sums = threads::run_tasks(job.threads, wave.len(), || {
                crate::by_word!(
                    t.dtype.word_size(),
                    kernel::mode(&reducer),
                    encode_wave(job, &reducer, element, first_chunk, wave)
                )
            })??;
            table.extend(wave.iter().zip(sums).map(|(b, sum)| (b.len() as u64, sum)));
            frame.append(wave, alloc, job.threads)?;
        }
        Ok(())
    })?;
    frame.finish(&header(table))
}

/// Bytes the chunks of `values` values of `t` take at most, but for chunks that code to more than
/// their stored bits (specials kept raw, or tables larger than what they save): the stored bits,
/// an eighth more, and 64 bytes per chunk.
fn capacity(t: &Target, values: usize, n_chunks: usize) -> usize {
    let bits = (1 + t.exp_bits + t.man_bits) as usize;
    let stored = values.saturating_mul(bits).div_ceil(8);
    stored
        .saturating_add(stored / 8)
        .saturating_add(n_chunks.saturating_mul(64))
}

/// Encodes the chunks `first_chunk..` of `job`, one into each buffer of `wave`, in parallel;
/// returns their checksums.
///
/// # Errors
/// As [`narrow::with_widened`].
fn encode_wave<W: Word, const M: u8>(
    job: &Job<'_>,
    r: &Reducer,
    element: usize,
    first_chunk: usize,
    wave: &mut [Vec<u8>],
) -> Result<Vec<u64>> {
    let p = Params::<W>::new(r);
    let t = job.target;
    let step = job.chunk * element;
    wave.par_iter_mut()
        .enumerate()
        .map(|(i, out)| {
            let c = first_chunk + i;
            let part = &job.src[c * step..job.src.len().min((c + 1) * step)];
            let first = (c * job.chunk) as u64;
            out.clear();
            let mut encode = |words: &[u8]| {
                chunk::encode::<W, M>(
                    job.level,
                    r,
                    &p,
                    t.exp_bits,
                    t.man_bits,
                    (t.format.exponent_coding, t.format.level),
                    words,
                    first,
                    out,
                );
            };
            if t.dtype.is_narrow() {
                narrow::with_widened(part, t.dtype, first, encode)?;
            } else {
                encode(part);
            }
            Ok(checksum(out))
        })
        .collect()
}

/// A frame being written: its buffer, the room kept for its header, and the bytes written so far.
struct Writer<B> {
    out: B,
    header_len: usize,
    len: usize,
}

impl<B: FrameBuffer> Writer<B> {
    fn new(
        alloc: &mut impl FnMut(usize) -> Result<B>,
        capacity: usize,
        header_len: usize,
    ) -> Result<Self> {
        let mut out = alloc(capacity)?;
        memory::advise_huge_pages(out.memory().as_ptr().cast(), capacity);
        Ok(Self {
            out,
            header_len,
            len: header_len,
        })
    }

    /// Copies the chunks of a wave behind the frame's bytes, in parallel, moving the frame to a
    /// larger buffer first when they do not fit.
    fn append(
        &mut self,
        chunks: &[Vec<u8>],
        alloc: &mut impl FnMut(usize) -> Result<B>,
        threads: Option<usize>,
    ) -> Result<()> {
        let end = chunks
            .iter()
            .try_fold(self.len, |a, c| a.checked_add(c.len()))
            .ok_or_else(|| Error::invalid("the frame's size overflows"))?;
        let capacity = self.out.memory().len();
        if end > capacity {
            let mut larger = alloc(end.max(capacity.saturating_add(capacity / 2)))?;
            let dst = larger.memory();
            memory::advise_huge_pages(dst.as_ptr().cast(), dst.len());
            let written = self.header_len..self.len;
            let old = &self.out.memory()[written.clone()];
            // SAFETY: the chunks behind the header's room were written.
            let old = unsafe { std::slice::from_raw_parts(old.as_ptr().cast::<u8>(), old.len()) };
            copy(&mut dst[written], old);
            self.out = larger;
        }
        let mut rest = &mut self.out.memory()[self.len..end];
        let mut pieces = Vec::with_capacity(chunks.len());
        for c in chunks {
            let (dst, tail) = rest.split_at_mut(c.len());
            pieces.push((dst, &c[..]));
            rest = tail;
        }
        threads::run_tasks(threads, pieces.len(), || {
            pieces.into_par_iter().for_each(|(dst, src)| copy(dst, src));
        })?;
        self.len = end;
        Ok(())
    }

    /// Writes the header in the room kept for it and ends the frame.
    fn finish(mut self, header: &[u8]) -> Result<B> {
        let room = self
            .out
            .memory()
            .get_mut(..header.len())
            .ok_or_else(|| Error::invalid("the frame's buffer is shorter than its header"))?;
        copy(room, header);
        // SAFETY: the header and every chunk behind it were written: `self.len` bytes.
        unsafe { self.out.set_len(self.len) };
        Ok(self.out)
    }
}

/// Copies `src` into `dst`, of the same length.
pub(crate) fn copy(dst: &mut [std::mem::MaybeUninit<u8>], src: &[u8]) {
    debug_assert_eq!(dst.len(), src.len());
    let n = dst.len().min(src.len());
    // SAFETY: both are valid for `n` bytes and the borrows keep them from overlapping;
    // `MaybeUninit<u8>` has the layout of `u8`.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast(), n) };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::{decode_into, encode, encode_with, DType, Format, Options};

    /// Encodes with buffers of exactly the capacity asked for; returns the frame and the
    /// capacities.
    fn encode_counting(src: &[u8], fmt: &Format, options: &Options) -> (Vec<u8>, Vec<usize>) {
        let mut asked = Vec::new();
        let n = (src.len() / 4) as u64;
        let frame = encode_with(src, DType::F32, &[n], fmt, options, |capacity| {
            asked.push(capacity);
            Ok(Vec::with_capacity(capacity))
        })
        .unwrap();
        (frame, asked)
    }

    #[test]
    fn a_frame_that_outgrows_its_first_buffer_moves_to_a_larger_one_intact() {
        // Infinities and NaNs kept raw beside 8-bit codes take 9 bytes each where the first
        // buffer allows about one per value.
        let values: Vec<f32> = (0..300_000)
            .map(|i| match i % 3 {
                0 => f32::INFINITY,
                1 => f32::from_bits(0x7fc0_0000 | i),
                _ => i as f32,
            })
            .collect();
        let src: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let fmt = Format {
            exp_bits: Some(4),
            man_bits: Some(3),
            ..Format::LOSSLESS
        };
        for threads in [Some(1), Some(2)] {
            let options = Options {
                chunk_size: Some(1 << 16),
                threads,
            };
            let (frame, asked) = encode_counting(&src, &fmt, &options);
            assert!(asked.len() >= 2 && asked[1] > asked[0], "{asked:?}");
            assert!(frame.len() > asked[0], "{} {asked:?}", frame.len());
            assert_eq!(
                frame,
                encode(&src, DType::F32, &[values.len() as u64], &fmt, &options).unwrap()
            );
            let mut back = vec![0u8; src.len()];
            decode_into(&frame, &mut back, threads).unwrap();
            let mut expected = vec![0u8; src.len()];
            crate::quantize(&src, &mut expected, DType::F32, &fmt, None).unwrap();
            assert!(back == expected);
        }
    }

    #[test]
    fn waves_of_any_width_write_the_frame_one_thread_writes() {
        let src: Vec<u8> = (0..700_001u32)
            .flat_map(|i| ((i.wrapping_mul(2_654_435_761) >> 9) as f32 * 1e-7).to_le_bytes())
            .collect();
        let n = (src.len() / 4) as u64;
        let one = Options {
            chunk_size: Some(1 << 17),
            threads: Some(1),
        };
        let (frame, asked) = encode_counting(&src, &Format::LOSSLESS, &one);
        assert_eq!(asked.len(), 1, "{asked:?}");
        for threads in [Some(2), Some(3), Some(7), None] {
            let options = Options { threads, ..one };
            let other = encode(&src, DType::F32, &[n], &Format::LOSSLESS, &options).unwrap();
            assert!(other == frame, "{threads:?}");
        }
        let mut back = vec![0u8; src.len()];
        decode_into(&frame, &mut back, None).unwrap();
        assert!(back == src);
    }
}
