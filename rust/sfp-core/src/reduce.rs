//! The per-element reduction: source bits -> (sign, exponent code, kept mantissa) and back.
//!
//! `quantize` is `expand(reduce(x))`, and a frame stores exactly what `reduce` returns, so
//! `decode(encode(x)) == quantize(x)` holds by construction.

use crate::coding::bitpack::low_mask;
use crate::format::{Rounding, Target, Underflow};
use crate::runtime::rng::{random_bits, MANTISSA_STREAM, UNDERFLOW_STREAM};

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
    pub(crate) size: usize,
    /// Bits of an element (below the word's for the one-byte types).
    pub(crate) value_bits: u32,
    pub(crate) src_m: u32,
    pub(crate) sign_shift: u32,
    pub(crate) mag_mask: u64,
    pub(crate) src_man_mask: u64,
    pub(crate) inf_field: u64,
    pub(crate) man_bits: u32,
    pub(crate) drop: u32,
    pub(crate) rounding: Rounding,
    pub(crate) underflow: Underflow,
    pub(crate) seed: u64,
    pub(crate) lossless: bool,
    pub(crate) window: Option<Window>,
}

impl Reducer {
    /// A reducer for `target` with the given window (required exactly when the target has one).
    pub(crate) fn new(target: &Target, window: Option<Window>) -> Self {
        let dtype = target.dtype;
        let (src_e, src_m) = (dtype.exp_bits(), dtype.man_bits());
        Self {
            size: dtype.word_size(),
            value_bits: dtype.bits(),
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
    pub(crate) fn rounded_field(&self, bits: u64, index: u64) -> Option<u64> {
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

    /// True when the zero code can only stand for a signed zero (the window lies above the
    /// subnormals), so a value with that code and nonzero magnitude bits is malformed.
    pub(crate) fn zero_code_is_zero(&self) -> bool {
        self.window.is_some_and(|w| w.bottom > 1)
    }

    /// True when `bits` has nonzero magnitude bits (sign ignored).
    pub(crate) fn is_nonzero(&self, bits: u64) -> bool {
        bits & self.mag_mask != 0
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
