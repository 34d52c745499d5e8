//! The per-element reduction: source bits -> (sign, exponent code, kept mantissa) and back.
//!
//! `quantize` is `expand(reduce(x))`, and a frame stores exactly what `reduce` returns, so
//! `decode(encode(x)) == quantize(x)` holds by construction.

use rayon::prelude::*;

use crate::bitpack::low_mask;
use crate::dtype::{load, DType};
use crate::error::Result;
use crate::format::{Rounding, Target, Underflow};
use crate::rng::{random_bits, MANTISSA_STREAM, UNDERFLOW_STREAM};

/// One reduced value as the streams store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// An in-band value.
    Value { sign: bool, code: u16, mant: u64 },
    /// NaN or infinity of the source in a reduced format: kept out of band, bit-exact.
    Special,
}

/// The exponent window of a reduced format: biased source fields `bottom..=top`, coded `1..=top-bottom+1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub bottom: u64,
    pub top: u64,
}

/// Everything needed to reduce and expand elements of one array.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reducer {
    size: usize,
    src_m: u32,
    sign_shift: u32,
    mag_mask: u64,
    src_man_mask: u64,
    inf_field: u64,
    man_bits: u32,
    drop: u32,
    rounding: Rounding,
    underflow: Underflow,
    seed: u64,
    lossless: bool,
    window: Option<Window>,
}

impl Reducer {
    /// A reducer for `target` with the given window (required exactly when the target has one).
    pub(crate) fn new(target: &Target, window: Option<Window>) -> Self {
        let dtype = target.dtype;
        let (src_e, src_m) = (dtype.exp_bits(), dtype.man_bits());
        Self {
            size: dtype.size(),
            src_m,
            sign_shift: src_e + src_m,
            mag_mask: low_mask(src_e + src_m),
            src_man_mask: low_mask(src_m),
            inf_field: low_mask(src_e),
            man_bits: target.man_bits,
            drop: src_m - target.man_bits,
            rounding: target.format.rounding,
            underflow: target.format.underflow,
            seed: target.format.seed,
            lossless: target.is_lossless(),
            window,
        }
    }

    /// Whether a frame of this reducer may hold out-of-band specials.
    pub(crate) fn has_exceptions(&self) -> bool {
        !self.lossless
    }

    /// Rounds a finite magnitude (sign cleared) to the kept mantissa bits.
    #[inline(always)]
    fn round_magnitude(&self, mag: u64, index: u64) -> u64 {
        if self.drop == 0 {
            return mag;
        }
        let dropped = low_mask(self.drop);
        let add = match self.rounding {
            Rounding::Truncate => 0,
            Rounding::Nearest => (dropped >> 1) + ((mag >> self.drop) & 1),
            Rounding::Stochastic => random_bits(self.seed, index, MANTISSA_STREAM) & dropped,
        };
        (mag + add) & !dropped
    }

    /// The biased exponent field a finite magnitude has after rounding, capped at the largest finite one.
    #[inline(always)]
    fn rounded_field(&self, bits: u64, index: u64) -> Option<u64> {
        let mag = bits & self.mag_mask;
        if mag >> self.src_m == self.inf_field {
            return None;
        }
        Some((self.round_magnitude(mag, index) >> self.src_m).min(self.inf_field - 1))
    }

    /// Reduces the element with raw bits `bits` at flat index `index`.
    #[inline(always)]
    pub(crate) fn reduce(&self, bits: u64, index: u64) -> Slot {
        let sign = (bits >> self.sign_shift) & 1 == 1;
        let mag = bits & self.mag_mask;
        if self.lossless {
            let code = (mag >> self.src_m) as u16;
            return Slot::Value {
                sign,
                code,
                mant: mag & self.src_man_mask,
            };
        }
        if mag >> self.src_m == self.inf_field {
            return Slot::Special;
        }
        let rounded = self.round_magnitude(mag, index);
        let field = rounded >> self.src_m;
        let mant = (rounded & self.src_man_mask) >> self.drop;
        let Some(w) = self.window else {
            // Raw exponent: a carry out of the largest binade is IEEE overflow to infinity.
            return Slot::Value {
                sign,
                code: field as u16,
                mant,
            };
        };
        if field > w.top {
            let code = (w.top - w.bottom + 1) as u16;
            return Slot::Value {
                sign,
                code,
                mant: low_mask(self.man_bits),
            };
        }
        if field >= w.bottom {
            return Slot::Value {
                sign,
                code: (field - w.bottom + 1) as u16,
                mant,
            };
        }
        if field == 0 && w.bottom == 1 {
            // The zero code stands for field 0: subnormals survive when the window reaches them.
            return Slot::Value {
                sign,
                code: 0,
                mant,
            };
        }
        let up = self.underflow == Underflow::Stochastic
            && rounded != 0
            && self.underflow_rounds_up(rounded, w.bottom, index);
        Slot::Value {
            sign,
            code: u16::from(up),
            mant: 0,
        }
    }

    /// Stochastic underflow: up to the smallest window value `2^bottom` with probability `|x| / 2^bottom`.
    fn underflow_rounds_up(&self, rounded: u64, bottom: u64, index: u64) -> bool {
        let field = rounded >> self.src_m;
        let significand =
            (rounded & self.src_man_mask) | if field == 0 { 0 } else { 1 << self.src_m };
        let shift = field.max(1) as i32 - bottom as i32 - self.src_m as i32;
        let p = significand as f64 * 2f64.powi(shift);
        let u = (random_bits(self.seed, index, UNDERFLOW_STREAM) >> 11) as f64
            * (1.0 / (1u64 << 53) as f64);
        u < p
    }

    /// The source bits of an in-band slot.
    #[inline(always)]
    pub(crate) fn expand(&self, sign: bool, code: u16, mant: u64) -> u64 {
        let code = u64::from(code);
        let field = match self.window {
            Some(w) if code != 0 => w.bottom + code - 1,
            _ => code,
        };
        (u64::from(sign) << self.sign_shift) | (field << self.src_m) | (mant << self.drop)
    }

    /// True for the bits of a NaN or infinity.
    pub(crate) fn is_special(&self, bits: u64) -> bool {
        (bits & self.mag_mask) >> self.src_m == self.inf_field
    }

    /// The bits `quantize` produces for the element `bits` at flat index `index`.
    #[inline(always)]
    pub(crate) fn quantize(&self, bits: u64, index: u64) -> u64 {
        match self.reduce(bits, index) {
            Slot::Value { sign, code, mant } => self.expand(sign, code, mant),
            Slot::Special => bits,
        }
    }

    /// Element size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

/// The exponent window of `target` over the whole array `src` (little-endian elements), or `None`
/// when the target keeps the source exponent. Computed once per array, never per chunk.
///
/// # Errors
/// None today; kept fallible so callers treat it like the rest of the pipeline.
pub(crate) fn window_for(target: &Target, src: &[u8], chunk: usize) -> Result<Option<Window>> {
    if !target.has_window() {
        return Ok(None);
    }
    let dtype = target.dtype;
    let span = (1u64 << target.exp_bits) - 2;
    let top = match target.format.window_top {
        Some(top) => (top + dtype.bias()) as u64,
        None => largest_rounded_field(target, src, chunk).max(span + 1),
    };
    Ok(Some(Window {
        bottom: top - span,
        top,
    }))
}

/// The largest finite exponent field after mantissa rounding (0 when there is none).
fn largest_rounded_field(target: &Target, src: &[u8], chunk: usize) -> u64 {
    let reducer = Reducer::new(target, None);
    let size = target.dtype.size();
    let field_of = |i: usize| {
        reducer
            .rounded_field(load(src, size, i), i as u64)
            .unwrap_or(0)
    };
    let n = src.len() / size;
    if target.format.rounding == Rounding::Stochastic {
        return (0..n.div_ceil(chunk.max(1)))
            .into_par_iter()
            .map(|c| {
                (c * chunk..((c + 1) * chunk).min(n))
                    .map(field_of)
                    .max()
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
    }
    // Truncation and nearest rounding are monotone in the magnitude: round the largest one.
    let mask = reducer.mag_mask;
    let inf = reducer.inf_field << reducer.src_m;
    let largest = src
        .par_chunks(chunk.max(1) * size)
        .map(|part| {
            part.chunks_exact(size)
                .map(|e| load(e, size, 0) & mask)
                .filter(|&m| m < inf)
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    reducer.rounded_field(largest, 0).unwrap_or(0)
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
