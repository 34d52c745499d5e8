//! Frames of flat chunks (`exponent_coding="raw"`), whose size is known before encoding: one
//! read-only pass finds each chunk's size ([`crate::chunk::flat_len`]), and [`Plan::write_to`] then
//! encodes every chunk straight into its place in the caller's buffer, with no arena and no copy.
//! Each chunk's place is zeroed just before the chunk is written, on the thread that writes it: the
//! fresh pages fault there, and the zeroed lines are still in the cache when they are overwritten.
//! The bytes are the ones the chunk-by-chunk encoder writes.

use crate::frame::checksum::checksum;
use rayon::prelude::*;

use crate::chunk;
use crate::error::{Error, Result};
use crate::format::Target;
use crate::frame::Header;
use crate::kernel::{self, Params, Word};
use crate::pipeline::window::window_top_field;
use crate::reduce::{Reducer, Window};
use crate::runtime::{memory, threads};
use crate::simd::Level;
use std::mem::MaybeUninit;

/// A flat frame, sized but not yet encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan<'a> {
    src: &'a [u8],
    target: Target,
    window: Option<Window>,
    shape: Vec<u64>,
    chunk: usize,
    level: Level,
    threads: Option<usize>,
    /// Per chunk: its bytes and whether it has a sign stream.
    chunks: Vec<(usize, bool)>,
    header_len: usize,
}

impl<'a> Plan<'a> {
    /// Sizes the frame of `src` (run on the operation's threads).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a size overflows.
    pub(crate) fn new(
        src: &'a [u8],
        target: Target,
        window: Option<Window>,
        shape: &[u64],
        chunk: usize,
        level: Level,
        threads: Option<usize>,
    ) -> Result<Self> {
        let reducer = Reducer::new(&target, window);
        let size = target.dtype.word_size();
        let scans = crate::by_word!(
            size,
            kernel::mode(&reducer),
            scan_chunks(level, &reducer, src, chunk)
        );
        let bits = (target.exp_bits, target.man_bits);
        let chunks = src
            .chunks((chunk * size).max(1))
            .zip(scans)
            .map(|(part, (negative, specials))| {
                chunk::flat_len(part.len() / size, size, bits, negative, specials)
                    .map(|len| (len, negative))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut plan = Self {
            src,
            target,
            window,
            shape: shape.to_vec(),
            chunk,
            level,
            threads,
            chunks,
            header_len: 0,
        };
        plan.header_len = plan.header(vec![(0, 0); plan.chunks.len()]).len();
        Ok(plan)
    }

    /// Total bytes of the frame.
    pub(crate) fn len(&self) -> usize {
        self.chunks
            .iter()
            .fold(self.header_len, |a, &(len, _)| a.saturating_add(len))
    }

    /// The serialised header with the chunk table `chunks` (length, checksum).
    fn header(&self, chunks: Vec<(u64, u64)>) -> Vec<u8> {
        Header {
            target: self.target,
            window_top: window_top_field(self.window),
            shape: self.shape.clone(),
            chunk_size: self.chunk,
            chunks,
            header_len: 0,
        }
        .to_bytes()
    }

    /// Encodes the frame into `out` (uninitialised), exactly [`Plan::len`] bytes, on the
    /// operation's threads.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `out` has the wrong length.
    pub(crate) fn write_to(&self, out: &mut [MaybeUninit<u8>]) -> Result<()> {
        if out.len() != self.len() {
            return Err(Error::invalid(format!(
                "frame is {} bytes, the buffer {}",
                self.len(),
                out.len()
            )));
        }
        let reducer = Reducer::new(&self.target, self.window);
        threads::run_tasks(self.threads, self.chunks.len(), || {
            crate::by_word!(
                self.target.dtype.word_size(),
                kernel::mode(&reducer),
                write_chunks(self, &reducer, out)
            )
        })?
    }
}

/// Each chunk's `(any value negative, specials)`.
fn scan_chunks<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    src: &[u8],
    chunk: usize,
) -> Vec<(bool, usize)> {
    let p = Params::<W>::new(r);
    src.par_chunks((chunk * W::SIZE).max(1))
        .map(|part| kernel::scan_flat::run::<W, M>(level, &p, part))
        .collect()
}

/// Encodes every chunk of `plan` into its place in `out` (in parallel), then the header.
fn write_chunks<W: Word, const M: u8>(
    plan: &Plan<'_>,
    r: &Reducer,
    out: &mut [MaybeUninit<u8>],
) -> Result<()> {
    let p = Params::<W>::new(r);
    let bits = (plan.target.exp_bits, plan.target.man_bits);
    let short = || Error::invalid("the buffer is shorter than the frame");
    let (head, mut rest) = out
        .split_at_mut_checked(plan.header_len)
        .ok_or_else(short)?;
    let mut slots = Vec::with_capacity(plan.chunks.len());
    for &(len, negative) in &plan.chunks {
        let (slot, tail) = rest.split_at_mut_checked(len).ok_or_else(short)?;
        slots.push((slot, negative));
        rest = tail;
    }
    let table = slots
        .into_par_iter()
        .zip(plan.src.par_chunks((plan.chunk * W::SIZE).max(1)))
        .enumerate()
        .map(|(c, ((dst, negative), part))| {
            let first = (c * plan.chunk) as u64;
            let dst = memory::zero(dst);
            chunk::encode_flat::<W, M>(plan.level, &p, bits, part, first, negative, dst)?;
            Ok((dst.len() as u64, checksum(dst)))
        })
        .collect::<Result<Vec<_>>>()?;
    let header = plan.header(table);
    if header.len() != head.len() {
        return Err(short());
    }
    memory::zero(head).copy_from_slice(&header);
    Ok(())
}
