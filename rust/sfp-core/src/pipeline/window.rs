//! The exponent window of a reduced format: searched once over the whole array (never per chunk), and
//! rebuilt from the top field a frame stores.

use rayon::prelude::*;

use crate::dtype::DType;
use crate::error::Result;
use crate::format::{Rounding, Target};
use crate::kernel::{self, Params, Word, STOCHASTIC, TRUNCATE};
use crate::reduce::{Reducer, Window};
use crate::simd::Level;

/// The exponent window of `target` over the whole array `src` (little-endian elements), or `None`
/// when the target keeps the source exponent. Computed once per array, never per chunk.
///
/// # Errors
/// None today; kept fallible so callers treat it like the rest of the pipeline.
pub(crate) fn window_for(
    target: &Target,
    src: &[u8],
    chunk: usize,
    level: Level,
) -> Result<Option<Window>> {
    if !target.has_window() {
        return Ok(None);
    }
    let dtype = target.dtype;
    let span = (1u64 << target.exp_bits) - 2;
    let top = match target.format.window_top {
        Some(top) => (top + dtype.bias()) as u64,
        None => largest_rounded_field(target, src, chunk, level).max(span + 1),
    };
    Ok(Some(Window {
        bottom: top - span,
        top,
    }))
}

/// The largest finite exponent field after mantissa rounding (0 when there is none).
fn largest_rounded_field(target: &Target, src: &[u8], chunk: usize, level: Level) -> u64 {
    let reducer = Reducer::new(target, None);
    let size = target.dtype.word_size();
    let step = chunk.max(1) * size;
    if target.format.rounding == Rounding::Stochastic && reducer.drop > 0 {
        return crate::by_word!(
            size,
            STOCHASTIC,
            max_field_stochastic(level, &reducer, src, step)
        );
    }
    // Truncation and nearest rounding are monotone in the magnitude: round the largest one.
    let largest = crate::by_word!(size, TRUNCATE, max_magnitude(level, &reducer, src, step));
    reducer.rounded_field(largest, 0).unwrap_or(0)
}

fn max_field_stochastic<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    src: &[u8],
    step: usize,
) -> u64 {
    let p = Params::<W>::new(r);
    src.par_chunks(step)
        .enumerate()
        .map(|(c, part)| {
            kernel::max_rounded_field::run::<W, M>(level, &p, part, (c * step / W::SIZE) as u64)
                .to_u64()
        })
        .max()
        .unwrap_or(0)
}

fn max_magnitude<W: Word, const M: u8>(level: Level, r: &Reducer, src: &[u8], step: usize) -> u64 {
    let p = Params::<W>::new(r);
    src.par_chunks(step)
        .map(|part| kernel::max_finite::run::<W, M>(level, &p, part).to_u64())
        .max()
        .unwrap_or(0)
}

/// The dtype-independent description of a window for frame headers: the top field, 0 for none.
pub(crate) fn window_top_field(window: Option<Window>) -> u16 {
    window.map_or(0, |w| w.top as u16)
}

/// Rebuilds a window from the top field stored in a frame.
pub(crate) fn window_from_top(top: u16, exp_bits: u32, dtype: DType) -> Option<Window> {
    if exp_bits >= dtype.exp_bits() {
        return None;
    }
    let span = (1u64 << exp_bits) - 2;
    Some(Window {
        bottom: u64::from(top) - span,
        top: u64::from(top),
    })
}
