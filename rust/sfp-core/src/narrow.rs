//! The narrow types (one byte per element) in the pipeline's 16-bit words: widened before an encode,
//! narrowed after a decode, so every coder and frame layout serves them unchanged. Planes chunks,
//! the lossless levels' chunks, are decoded straight into the bytes instead (the 16-bit staging
//! and the narrowing pass were half of their decoding time).

use std::cell::RefCell;

use rayon::prelude::*;

use crate::chunk;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::frame::Header;
use crate::kernel::{Params, TRUNCATE};
use crate::reduce::Reducer;
use crate::runtime::memory::{self, Stores};
use crate::simd::Level;

thread_local! {
    /// One chunk's 16-bit words, reused across the chunks a thread encodes or decodes.
    static WORDS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Bytes per parallel task.
const STEP: usize = 1 << 16;

/// Checks that no element of `src` (one byte per element of `dtype`, the first at flat index
/// `first`) has bits set above the type's width.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the first such element (a 4- or 6-bit type held in a byte
/// keeps its high bits zero, as ml_dtypes does).
fn check_width(src: &[u8], dtype: DType, first: u64) -> Result<()> {
    let unused = !((1u16 << dtype.bits()) - 1) as u8;
    if unused == 0 {
        return Ok(());
    }
    match src.iter().position(|&b| b & unused != 0) {
        Some(i) => Err(Error::invalid(format!(
            "element {} of the {} array is 0x{:02x}: bits above its {} are set",
            first + i as u64,
            dtype.name(),
            src[i],
            dtype.bits()
        ))),
        None => Ok(()),
    }
}

/// The low bytes of the little-endian 16-bit words `out` set to `src`, the high ones to 0.
fn widen_into(src: &[u8], out: &mut [u8]) {
    for (w, &b) in out.chunks_exact_mut(2).zip(src) {
        w[0] = b;
        w[1] = 0;
    }
}

/// `src` (one byte per element of `dtype`) as little-endian 16-bit words.
///
/// # Errors
/// As [`check_width`].
pub(crate) fn widen(src: &[u8], dtype: DType) -> Result<Vec<u8>> {
    check_width(src, dtype, 0)?;
    let mut out = memory::zeroed(src.len() * 2);
    out.par_chunks_mut(2 * STEP)
        .zip(src.par_chunks(STEP))
        .for_each(|(d, s)| widen_into(s, d));
    Ok(out)
}

/// Runs `f` with `part` (one byte per element of `dtype`, the first at flat index `first`) as
/// little-endian 16-bit words in this thread's reused buffer: an encode widens a chunk at a time
/// instead of the whole array into fresh memory.
///
/// # Errors
/// As [`check_width`] (then `f` does not run).
pub(crate) fn with_widened<R>(
    part: &[u8],
    dtype: DType,
    first: u64,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R> {
    check_width(part, dtype, first)?;
    Ok(memory::with_reused(&WORDS, |words| {
        words.resize(part.len() * 2, 0);
        widen_into(part, words);
        f(words)
    }))
}

/// The low bytes of little-endian 16-bit `words` into `out` (half their length).
///
/// # Errors
/// [`Error::Decode`] when a word does not fit the type (a corrupt frame can hold one).
pub(crate) fn narrow(words: &[u8], dtype: DType, out: &mut [u8]) -> Result<()> {
    let limit = 1u16 << dtype.bits();
    out.par_chunks_mut(STEP)
        .zip(words.par_chunks(2 * STEP))
        .try_for_each(|(d, w)| {
            let mut bad = false;
            for (b, pair) in d.iter_mut().zip(w.chunks_exact(2)) {
                let word = u16::from_le_bytes([pair[0], pair[1]]);
                bad |= word >= limit;
                *b = word as u8;
            }
            if bad {
                return Err(Error::decode(format!(
                    "a decoded {} element does not fit its {} bits: the data is corrupt",
                    dtype.name(),
                    dtype.bits()
                )));
            }
            Ok(())
        })
}

/// Decodes every chunk of a narrow-type frame into `out` (one byte per element), each checked
/// against its checksum: a planes chunk straight into its bytes, any other into this thread's
/// 16-bit words, narrowed while they are in cache.
///
/// # Errors
/// [`Error::Decode`] naming the first bad chunk.
pub(crate) fn decode_chunks(
    level: Level,
    r: &Reducer,
    header: &Header,
    frame: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let p = Params::<u16>::new(r);
    let t = &header.target;
    let ranges = header.chunk_ranges();
    out.par_chunks_mut(header.chunk_size.max(1))
        .zip(ranges.par_iter())
        .zip(header.chunks.par_iter())
        .enumerate()
        .try_for_each(|(c, ((dst, range), &(_, sum)))| {
            crate::pipeline::decode_checked(&frame[range.clone()], sum, c, |bytes| {
                if chunk::decode_planes_bytes(level, r, bytes, dst)? {
                    return Ok(());
                }
                memory::with_reused(&WORDS, |words| {
                    // Zeroed, so the decode never depends on what an earlier chunk left here.
                    words.clear();
                    words.resize(dst.len() * 2, 0);
                    chunk::decode::<u16, TRUNCATE>(level, r, &p, t, bytes, words, Stores::Cached)
                        .and_then(|()| narrow(words, t.dtype, dst))
                })
            })
        })
}
