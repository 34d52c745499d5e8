//! The hot loops: quantize, field splitting and expansion, window search. Each is one scalar body over
//! blocks of [`LANES`] elements in the element's own word type, branch-free in the common path, and
//! compiled per SIMD level by [`multiversion!`]; they agree bit for bit with the per-element reference
//! in [`crate::reduce::Reducer`] (tests below and in `tests/simd_parity.rs`).
//!
//! The reduced magnitude `r` of an element carries everything: without a window it is the rounded
//! magnitude; with one it is saturated to the window's largest value above it, flushed to zero below
//! it (the zero code keeps subnormals when the window reaches field 1), so the stored fields are
//! `code = max(field(r) - (bottom - 1), 0)` and `mant = mantissa(r) >> drop`.

use std::ops::{Add, BitAnd, BitOr, Not, Shl, Shr, Sub};

use crate::coding::bitpack::low_mask;
use crate::reduce::{Reducer, Window};
use crate::runtime::rng::{random_bits, MANTISSA_STREAM};
use crate::simd::multiversion;

/// Elements per block: signs pack into one `u64` and `w`-bit fields into exactly `w` words.
pub(crate) const LANES: usize = 64;

/// Rounding mode constants for the kernels' `M` parameter.
pub(crate) const TRUNCATE: u8 = 0;
/// Round to nearest, ties to even.
pub(crate) const NEAREST: u8 = 1;
/// Stochastic rounding with the counter-based generator.
pub(crate) const STOCHASTIC: u8 = 2;

/// The unsigned word holding one element's bits (`u16`, `u32` or `u64`).
pub(crate) trait Word:
    Copy
    + Default
    + Send
    + Sync
    + PartialOrd
    + Ord
    + Add<Output = Self>
    + Sub<Output = Self>
    + BitAnd<Output = Self>
    + BitOr<Output = Self>
    + Not<Output = Self>
    + Shl<u32, Output = Self>
    + Shr<u32, Output = Self>
    + 'static
{
    /// Bytes per element.
    const SIZE: usize;
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// All bits set.
    const MAX: Self;
    /// The low bits of `v`.
    fn from_u64(v: u64) -> Self;
    /// Zero-extends to `u64`.
    fn to_u64(self) -> u64;
    /// Reads a little-endian element from exactly `SIZE` bytes.
    fn load(bytes: &[u8]) -> Self;
    /// Writes the element as `SIZE` little-endian bytes.
    fn store(self, bytes: &mut [u8]);
    /// `self - rhs` modulo 2^bits, for branch-free selects that compute both sides.
    fn wrapping_sub(self, rhs: Self) -> Self;
    /// The little-endian representation (a no-op on little-endian targets).
    fn to_le(self) -> Self;
    /// The word a kernel computes an element in: `u32` for `u16` elements, whose 16-bit lanes LLVM
    /// leaves scalar in [`split`] (the widening to its `u64` fields blocks the vectoriser).
    type Lane: Word;
    /// Zero-extends to [`Self::Lane`].
    fn lane(self) -> Self::Lane;
}

macro_rules! word {
    ($t:ty, $n:literal, $l:ty) => {
        impl Word for $t {
            type Lane = $l;
            #[inline(always)]
            fn lane(self) -> $l {
                <$l>::from(self)
            }
            const SIZE: usize = $n;
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const MAX: Self = <$t>::MAX;
            #[inline(always)]
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_u64(self) -> u64 {
                u64::from(self)
            }
            #[inline(always)]
            fn load(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().unwrap_or([0; $n]))
            }
            #[inline(always)]
            fn store(self, bytes: &mut [u8]) {
                bytes.copy_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn wrapping_sub(self, rhs: Self) -> Self {
                <$t>::wrapping_sub(self, rhs)
            }
            #[inline(always)]
            fn to_le(self) -> Self {
                <$t>::to_le(self)
            }
        }
    };
}
word!(u16, 2, u32);
word!(u32, 4, u32);
word!(u64, 8, u64);

/// Calls the generic `$f::<W, M>(args)` for the element word of `$size` bytes and the mode `$mode`.
#[macro_export]
#[doc(hidden)]
macro_rules! by_word {
    ($size:expr, $mode:expr, $f:ident($($a:expr),* $(,)?)) => {{
        use $crate::kernel::{NEAREST as N, STOCHASTIC as S, TRUNCATE as T};
        match ($size, $mode) {
            (2, T) => $f::<u16, T>($($a),*),
            (2, N) => $f::<u16, N>($($a),*),
            (2, S) => $f::<u16, S>($($a),*),
            (4, T) => $f::<u32, T>($($a),*),
            (4, N) => $f::<u32, N>($($a),*),
            (4, S) => $f::<u32, S>($($a),*),
            (8, N) => $f::<u64, N>($($a),*),
            (8, S) => $f::<u64, S>($($a),*),
            _ => $f::<u64, T>($($a),*),
        }
    }};
}

/// `bytes` as a slice of elements when it is aligned for them and holds whole elements. Loops over
/// such a slice vectorise where ones over `chunks_exact_mut(W::SIZE)` of the bytes do not always.
#[inline(always)]
pub(crate) fn words_mut<W: Word>(bytes: &mut [u8]) -> Option<&mut [W]> {
    // SAFETY: `Word` is crate-private and implemented only for u16, u32 and u64: plain integers
    // without padding for which every bit pattern is valid; `align_to_mut` hands out only the
    // aligned middle of `bytes`, in bounds.
    let (head, words, tail) = unsafe { bytes.align_to_mut::<W>() };
    (head.is_empty() && tail.is_empty()).then_some(words)
}

/// `if c { a } else { b }` written so the compiler emits a select.
#[inline(always)]
fn pick<W: Word>(c: bool, a: W, b: W) -> W {
    if c {
        a
    } else {
        b
    }
}

/// A [`Reducer`] lowered to constants in the element's word type.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params<W> {
    sign: W,
    mag: W,
    /// Magnitudes at or above this are NaN/inf kept out of band (`W::MAX` when lossless: never).
    special: W,
    dropped: W,
    half: W,
    drop: u32,
    src_m: u32,
    sign_shift: u32,
    man_mask: W,
    /// Reduced magnitudes at or above this saturate to `sat` (`W::MAX`: no window).
    top_lim: W,
    sat: W,
    /// Reduced magnitudes below this flush (0 when the window reaches the subnormals or is absent).
    bottom: W,
    /// Field offset between codes and biased fields: `bottom - 1`, 0 without a window.
    offset: W,
    seed: u64,
    /// Stochastic underflow: flushed elements are fixed up with the reference.
    fixup: bool,
    reducer: Reducer,
}

impl<W: Word> Params<W> {
    /// Lowers `r` (whose element word must be `W`).
    pub(crate) fn new(r: &Reducer) -> Self {
        let w = r.window;
        let src_m = r.src_m;
        let field = |f: u64| W::from_u64(f << src_m);
        let (top_lim, sat, bottom, offset) = match w {
            Some(Window { bottom, top }) => (
                field(top + 1),
                W::from_u64((top << src_m) | (low_mask(r.man_bits) << r.drop)),
                if bottom == 1 { W::ZERO } else { field(bottom) },
                W::from_u64(bottom - 1),
            ),
            None => (W::MAX, W::ZERO, W::ZERO, W::ZERO),
        };
        Self {
            sign: W::ONE << r.sign_shift,
            mag: W::from_u64(r.mag_mask),
            special: if r.lossless {
                W::MAX
            } else {
                field(r.inf_field)
            },
            dropped: W::from_u64(low_mask(r.drop)),
            half: W::from_u64(low_mask(r.drop) >> 1),
            drop: r.drop,
            src_m,
            sign_shift: r.sign_shift,
            man_mask: W::from_u64(r.src_man_mask),
            top_lim,
            sat,
            bottom,
            offset,
            seed: r.seed,
            fixup: w.is_some() && r.underflow == crate::format::Underflow::Stochastic,
            reducer: *r,
        }
    }

    /// The same constants in the lane word. Every constant is a value below 2^16 for `u16` elements or
    /// the `W::MAX` sentinel that no magnitude reaches, and no `u16` step wraps, so the kernels give
    /// the same results in the wider word.
    #[inline(always)]
    pub(crate) fn lane(&self) -> Params<W::Lane> {
        Params {
            sign: self.sign.lane(),
            mag: self.mag.lane(),
            special: self.special.lane(),
            dropped: self.dropped.lane(),
            half: self.half.lane(),
            drop: self.drop,
            src_m: self.src_m,
            sign_shift: self.sign_shift,
            man_mask: self.man_mask.lane(),
            top_lim: self.top_lim.lane(),
            sat: self.sat.lane(),
            bottom: self.bottom.lane(),
            offset: self.offset.lane(),
            seed: self.seed,
            fixup: self.fixup,
            reducer: self.reducer,
        }
    }

    /// The rounded magnitude (mantissa rounding only).
    #[inline(always)]
    fn round<const M: u8>(&self, mag: W, index: u64) -> W {
        let add = match M {
            NEAREST => self.half + ((mag >> self.drop) & W::ONE),
            STOCHASTIC => {
                W::from_u64(random_bits(self.seed, index, MANTISSA_STREAM)) & self.dropped
            }
            _ => W::ZERO,
        };
        (mag + add) & !self.dropped
    }

    /// The reduced magnitude of a finite magnitude (flushing below the window).
    #[inline(always)]
    fn reduce<const M: u8>(&self, mag: W, index: u64) -> W {
        let r = self.round::<M>(mag, index);
        let kept = pick(r >= self.bottom, r, W::ZERO);
        pick(r >= self.top_lim, self.sat, kept)
    }

    /// The quantized bits of `b`, flushing below the window.
    #[inline(always)]
    fn quantize<const M: u8>(&self, b: W, index: u64) -> W {
        let mag = b & self.mag;
        let q = (b & self.sign) | self.reduce::<M>(mag, index);
        pick(mag >= self.special, b, q)
    }

    /// Stochastic underflow: the reference's result for an element `b` that [`Self::quantize`]
    /// flushed to `q` (`None`: `q` stands).
    #[inline(always)]
    fn fix(&self, b: W, q: W, index: u64) -> Option<W> {
        let mag = b & self.mag;
        ((q & self.mag) == W::ZERO && mag != W::ZERO && mag < self.special)
            .then(|| W::from_u64(self.reducer.quantize(b.to_u64(), index)))
    }

    /// Expands stored fields to source bits.
    #[inline(always)]
    fn expand(&self, sign: u64, code: u64, mant: u64) -> W {
        let code = W::from_u64(code);
        let field = pick(code == W::ZERO, W::ZERO, code + self.offset);
        (W::from_u64(sign) << self.sign_shift)
            | (field << self.src_m)
            | (W::from_u64(mant) << self.drop)
    }
}

/// The kernel mode for a reducer's rounding (truncation when nothing is dropped).
pub(crate) fn mode(r: &Reducer) -> u8 {
    match r.rounding {
        _ if r.drop == 0 => TRUNCATE,
        crate::format::Rounding::Truncate => TRUNCATE,
        crate::format::Rounding::Nearest => NEAREST,
        crate::format::Rounding::Stochastic => STOCHASTIC,
    }
}

/// Quantizes whole elements of `src` into `dst` straight from memory, one element at a time, so the
/// compiler keeps the values in vector registers (a block staged through stack arrays spilled and
/// stalled on store forwarding); stochastic underflow then fixes the flushed elements in a second
/// pass over the same, still cached, bytes.
#[inline(always)]
fn quantize_slice<W: Word, const M: u8>(p: &Params<W>, src: &[u8], dst: &mut [u8], first: u64) {
    let pairs = src.chunks_exact(W::SIZE).zip(dst.chunks_exact_mut(W::SIZE));
    for (i, (s, d)) in pairs.enumerate() {
        p.quantize::<M>(W::load(s), first + i as u64).store(d);
    }
    if p.fixup {
        let pairs = src.chunks_exact(W::SIZE).zip(dst.chunks_exact_mut(W::SIZE));
        for (i, (s, d)) in pairs.enumerate() {
            let (b, q) = (W::load(s), W::load(d));
            if let Some(fixed) = p.fix(b, q, first + i as u64) {
                fixed.store(d);
            }
        }
    }
}

multiversion! {
    /// Quantizes `src` into `dst` (equal lengths, whole elements); `first` is the flat index of the first.
    fn quantize_into(p: &Params<W>, src: &[u8], dst: &mut [u8], first: u64) {
        quantize_slice::<W, M>(p, src, dst, first);
    }
}

multiversion! {
    /// Quantizes `buf` in place; `first` is the flat index of its first element.
    fn quantize_in_place(p: &Params<W>, buf: &mut [u8], first: u64) {
        if !p.fixup {
            for (i, d) in buf.chunks_exact_mut(W::SIZE).enumerate() {
                p.quantize::<M>(W::load(d), first + i as u64).store(d);
            }
            return;
        }
        // The fix-up needs the original elements: keep a copy of one block at a time.
        let step = LANES * W::SIZE;
        let mut copy = [0u8; 8 * LANES];
        for (k, d) in buf.chunks_mut(step).enumerate() {
            let s = &mut copy[..d.len()];
            s.copy_from_slice(d);
            quantize_slice::<W, M>(p, s, d, first + (k * LANES) as u64);
        }
    }
}

multiversion! {
    /// The largest finite magnitude in `src` (0 when none): the window search of the monotone modes.
    fn max_finite(p: &Params<W>, src: &[u8]) -> W {
        // One accumulator per lane of a block, so the maximum vectorises.
        let mut best = [W::ZERO; LANES];
        for part in src.chunks(LANES * W::SIZE) {
            for (m, e) in best.iter_mut().zip(part.chunks_exact(W::SIZE)) {
                let mag = W::load(e) & p.mag;
                let v = pick(mag >= p.special, W::ZERO, mag);
                *m = pick(v > *m, v, *m);
            }
        }
        best.iter().copied().max().unwrap_or(W::ZERO)
    }
}

multiversion! {
    /// The largest exponent field after stochastic rounding, capped at the largest finite one.
    fn max_rounded_field(p: &Params<W>, src: &[u8], first: u64) -> W {
        let cap = p.special - (W::ONE << p.src_m);
        let mut best = [W::ZERO; LANES];
        for (k, part) in src.chunks(LANES * W::SIZE).enumerate() {
            let base = first + (k * LANES) as u64;
            for (i, (m, e)) in best.iter_mut().zip(part.chunks_exact(W::SIZE)).enumerate() {
                let mag = W::load(e) & p.mag;
                let r = p.round::<M>(mag, base + i as u64);
                let r = pick(r > cap, cap, r);
                let v = pick(mag >= p.special, W::ZERO, r);
                *m = pick(v > *m, v, *m);
            }
        }
        best.iter().copied().max().unwrap_or(W::ZERO) >> p.src_m
    }
}

multiversion! {
    /// Whether any in-band element of `src` is negative, and how many are specials kept out of band:
    /// what a flat chunk's size depends on besides its length.
    fn scan_flat(p: &Params<W>, src: &[u8]) -> (bool, usize) {
        let (mut negative, mut specials) = (W::ZERO, 0usize);
        for e in src.chunks_exact(W::SIZE) {
            let b = W::load(e);
            let special = (b & p.mag) >= p.special;
            negative = negative | pick(special, W::ZERO, b & p.sign);
            specials += usize::from(special);
        }
        (negative != W::ZERO, specials)
    }
}

mod fields;
mod mask;
#[cfg(target_arch = "x86_64")]
mod spread;
pub(crate) use fields::{expand, expand_flat, split, Codes, Split};
#[cfg(target_arch = "x86_64")]
pub(crate) use spread::SPREAD;

#[cfg(test)]
mod tests;
