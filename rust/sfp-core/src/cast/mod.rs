//! Casts between float types, bit for bit as ml_dtypes (and numpy, for float16) cast: round to
//! nearest, ties to even, subnormals kept, overflow to what the target type does with it (infinity,
//! NaN, or its largest value for the types that have neither), or saturating (`satfinite`: finite
//! overflow and infinities to the largest finite value, as CUDA's `__NV_SATFINITE`).
//!
//! Every type's value is `significand * 2^q` with an integer significand, so one integer rounding
//! step serves every pair of types; NaN payloads follow the rules ml_dtypes and numpy apply, which
//! differ by pair (see [`nan_bits`]).

use crate::dtype::{DType, Specials};

/// What a cast does with finite values beyond the target's range and with infinities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overflow {
    /// As the target type does: infinity (IEEE types), NaN (float8_e4m3fn), the largest value
    /// (types without infinity or NaN).
    #[default]
    AsType,
    /// To the largest finite value of the same sign; NaN stays NaN.
    Saturate,
}

/// A source value taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    /// `significand * 2^exp` (the significand is 0 for zeros).
    Finite {
        significand: u64,
        exp: i32,
    },
    Infinity,
    /// NaN with its fraction field (the payload, quiet bit included).
    Nan {
        fraction: u64,
    },
}

/// The field layout of a type, as the cast needs it.
#[derive(Clone, Copy, Debug)]
struct Layout {
    man_bits: u32,
    sign_shift: u32,
    /// Exponent of the smallest subnormal's unit: `1 - bias - man_bits`.
    q_min: i32,
    bias: i32,
    specials: Specials,
    has_sign: bool,
    /// float8_e8m0fnu has no zero and no subnormals: field 0 is 2^-127.
    has_zero: bool,
}

impl Layout {
    fn of(t: DType) -> Self {
        let man_bits = t.man_bits();
        Self {
            man_bits,
            sign_shift: t.exp_bits() + man_bits,
            q_min: 1 - t.bias() - man_bits as i32,
            bias: t.bias(),
            specials: t.specials(),
            has_sign: t.has_sign(),
            has_zero: t != DType::F8E8M0,
        }
    }

    fn mag_mask(&self) -> u64 {
        (1u64 << self.sign_shift) - 1
    }

    fn inf(&self) -> u64 {
        self.mag_mask() & !((1u64 << self.man_bits) - 1)
    }

    /// The largest finite magnitude's bits.
    fn max_finite(&self) -> u64 {
        match self.specials {
            Specials::Ieee => self.inf() - 1,
            Specials::NanOnly => self.mag_mask() - 1,
            Specials::None => self.mag_mask(),
        }
    }

    fn split(&self, bits: u64) -> (bool, Value) {
        let negative = self.has_sign && (bits >> self.sign_shift) & 1 == 1;
        let mag = bits & self.mag_mask();
        let field = mag >> self.man_bits;
        let fraction = mag & ((1u64 << self.man_bits) - 1);
        let special = match self.specials {
            Specials::Ieee if mag >= self.inf() => Some(if fraction == 0 {
                Value::Infinity
            } else {
                Value::Nan { fraction }
            }),
            Specials::NanOnly if mag == self.mag_mask() => Some(Value::Nan { fraction }),
            _ => None,
        };
        let value = special.unwrap_or(if field == 0 && self.has_zero {
            Value::Finite {
                significand: fraction,
                exp: self.q_min,
            }
        } else {
            Value::Finite {
                significand: fraction | (1u64 << self.man_bits),
                exp: field as i32 - self.bias - self.man_bits as i32,
            }
        });
        (negative, value)
    }

    fn sign(&self, negative: bool) -> u64 {
        u64::from(self.has_sign && negative) << self.sign_shift
    }
}

/// The bits of `bits` (an element of `src`) cast to `dst`.
pub fn cast_bits(bits: u64, src: DType, dst: DType, overflow: Overflow) -> u64 {
    let (s, d) = (Layout::of(src), Layout::of(dst));
    let (negative, value) = s.split(bits);
    let sign = d.sign(negative);
    match value {
        Value::Nan { .. } if src == dst => bits,
        Value::Nan { fraction } => nan_bits(src, dst, negative, fraction),
        Value::Infinity => match (overflow, d.specials) {
            (Overflow::AsType, Specials::Ieee) => sign | d.inf(),
            (Overflow::AsType, Specials::NanOnly) => sign | d.mag_mask(),
            _ => sign | d.max_finite(),
        },
        Value::Finite { significand, exp } => {
            let mag = round(significand, exp, &d);
            if mag <= d.max_finite() {
                return sign | mag;
            }
            match (overflow, d.specials) {
                (Overflow::AsType, Specials::Ieee) => sign | d.inf(),
                (Overflow::AsType, Specials::NanOnly) => sign | d.mag_mask(),
                _ => sign | d.max_finite(),
            }
        }
    }
}

/// The magnitude bits of `significand * 2^exp` rounded to nearest-even in `d`, possibly beyond its
/// largest finite value (the caller handles overflow). Saturates at `u64::MAX` for huge values.
fn round(significand: u64, exp: i32, d: &Layout) -> u64 {
    if significand == 0 {
        return 0;
    }
    let top = exp + 63 - significand.leading_zeros() as i32;
    // The unit of the result: the last kept mantissa bit, never below the smallest subnormal.
    let unit = (top - d.man_bits as i32).max(d.q_min);
    let shift = unit - exp;
    let n = if shift <= 0 {
        significand << (-shift) as u32
    } else if shift >= 64 {
        0
    } else {
        let rem = significand & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        let n = significand >> shift;
        n + u64::from(rem > half || (rem == half && n & 1 == 1))
    };
    // Binades are contiguous in the bits: `(unit - q_min) << m` counts the binades below, and a
    // carry of `n` into 2^(m+1) lands on the next binade's first value.
    let binades = (unit - d.q_min) as u64;
    if binades >= 1u64 << (63 - d.man_bits) {
        return u64::MAX;
    }
    (binades << d.man_bits) + n
}

/// The NaN a cast of a NaN yields, as ml_dtypes and numpy produce it: numpy's float16 conversions
/// keep the payload (truncated to float16, nonzero), hardware conversions between float32 and
/// float64 keep it and set the quiet bit, widening bfloat16 to float32 keeps it, everything else
/// gives the canonical quiet NaN of the sign; the types without NaN give a zero whose sign is the
/// NaN's flipped (what ml_dtypes does).
fn nan_bits(src: DType, dst: DType, negative: bool, fraction: u64) -> u64 {
    let (s, d) = (Layout::of(src), Layout::of(dst));
    let sign = d.sign(negative);
    let moved = if s.man_bits >= d.man_bits {
        fraction >> (s.man_bits - d.man_bits)
    } else {
        fraction << (d.man_bits - s.man_bits)
    };
    let quiet = 1u64 << d.man_bits.saturating_sub(1);
    match (d.specials, src, dst) {
        (Specials::None, _, _) => d.sign(!negative),
        (Specials::NanOnly, _, _) => sign | d.mag_mask(),
        (_, DType::F32 | DType::F64, DType::F16) => sign | d.inf() | moved.max(1),
        (_, DType::F16, DType::F32 | DType::F64) | (_, DType::BF16, DType::F32) => {
            sign | d.inf() | moved
        }
        (_, DType::F32 | DType::BF16, DType::F64) | (_, DType::F64, DType::F32) => {
            sign | d.inf() | moved | quiet
        }
        _ => sign | d.inf() | quiet,
    }
}

#[cfg(test)]
mod tests;
