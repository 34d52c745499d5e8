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

use crate::bitpack::{low_mask, Packer, Unpacker};
use crate::reduce::{Reducer, Window};
use crate::rng::{random_bits, MANTISSA_STREAM};
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
}

macro_rules! word {
    ($t:ty, $n:literal) => {
        impl Word for $t {
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
        }
    };
}
word!(u16, 2);
word!(u32, 4);
word!(u64, 8);

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

    /// Stochastic underflow: recomputes with the reference the elements that were flushed.
    #[inline(always)]
    fn fix_block(&self, inp: &[W], out: &mut [W], first: u64) {
        for (i, (&b, q)) in inp.iter().zip(out.iter_mut()).enumerate() {
            let mag = b & self.mag;
            if (*q & self.mag) == W::ZERO && mag != W::ZERO && mag < self.special {
                *q = W::from_u64(self.reducer.quantize(b.to_u64(), first + i as u64));
            }
        }
    }

    /// Expands stored fields to source bits.
    #[inline(always)]
    fn expand(&self, sign: u64, code: u16, mant: u64) -> W {
        let code = W::from_u64(u64::from(code));
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

/// Loads up to [`LANES`] elements; returns how many.
#[inline(always)]
fn load_block<W: Word>(bytes: &[u8], block: &mut [W; LANES]) -> usize {
    let n = bytes.len() / W::SIZE;
    for (x, e) in block.iter_mut().zip(bytes.chunks_exact(W::SIZE)) {
        *x = W::load(e);
    }
    n
}

/// Stores the first `bytes.len() / SIZE` elements of `block`.
#[inline(always)]
fn store_block<W: Word>(block: &[W; LANES], bytes: &mut [u8]) {
    for (x, e) in block.iter().zip(bytes.chunks_exact_mut(W::SIZE)) {
        x.store(e);
    }
}

/// Quantizes one block in registers.
#[inline(always)]
fn quantize_block<W: Word, const M: u8>(p: &Params<W>, inp: &[W; LANES], first: u64) -> [W; LANES] {
    let mut out = [W::ZERO; LANES];
    for (i, (q, &b)) in out.iter_mut().zip(inp.iter()).enumerate() {
        *q = p.quantize::<M>(b, first + i as u64);
    }
    if p.fixup {
        p.fix_block(inp, &mut out, first);
    }
    out
}

multiversion! {
    /// Quantizes `src` into `dst` (equal lengths, whole elements); `first` is the flat index of the first.
    fn quantize_into(p: &Params<W>, src: &[u8], dst: &mut [u8], first: u64) {
        let step = LANES * W::SIZE;
        for (k, (s, d)) in src.chunks(step).zip(dst.chunks_mut(step)).enumerate() {
            let base = first + (k * LANES) as u64;
            let mut inp = [W::ZERO; LANES];
            load_block(s, &mut inp);
            store_block(&quantize_block::<W, M>(p, &inp, base), d);
        }
    }
}

multiversion! {
    /// Quantizes `buf` in place; `first` is the flat index of its first element.
    fn quantize_in_place(p: &Params<W>, buf: &mut [u8], first: u64) {
        let step = LANES * W::SIZE;
        for (k, d) in buf.chunks_mut(step).enumerate() {
            let base = first + (k * LANES) as u64;
            let mut inp = [W::ZERO; LANES];
            load_block(d, &mut inp);
            store_block(&quantize_block::<W, M>(p, &inp, base), d);
        }
    }
}

/// What [`split`] writes besides the packed streams.
pub(crate) struct Split<'a> {
    /// One bit per element, LSB first: `n.div_ceil(8)` bytes.
    pub signs: &'a mut [u8],
    /// One exponent code per element.
    pub codes: &'a mut [u16],
    /// Mantissas packed at `man_bits`: exactly `packed_len(n, man_bits)` bytes.
    pub mants: &'a mut [u8],
    /// Out-of-band specials: `u32` index in the chunk, then the raw element bytes.
    pub exceptions: &'a mut Vec<u8>,
    /// The packer for `man_bits`.
    pub pack: Packer,
    /// The mantissa width.
    pub man_bits: u32,
}

multiversion! {
    /// Splits the elements of `src` (flat index of the first: `first`) into signs, codes, packed
    /// mantissas and exceptions; returns whether any in-band value is negative.
    fn split(p: &Params<W>, src: &[u8], first: u64, s: &mut Split<'_>) -> bool {
        let step = LANES * W::SIZE;
        let mant_step = 8 * s.man_bits as usize;
        let mut negative = 0u64;
        let mut packed = [0u8; 8 * LANES];
        for (k, part) in src.chunks(step).enumerate() {
            let base = first + (k * LANES) as u64;
            let mut inp = [W::ZERO; LANES];
            let n = load_block(part, &mut inp);
            let mut q = quantize_block::<W, M>(p, &inp, base);
            let mut signs = 0u64;
            let mut specials = 0u64;
            let mut mants = [0u64; LANES];
            let codes = &mut s.codes[k * LANES..k * LANES + n];
            for (i, ((x, &b), m)) in q.iter_mut().zip(inp.iter()).zip(mants.iter_mut()).enumerate() {
                let special = (b & p.mag) >= p.special;
                specials |= u64::from(special) << i;
                // Specials are stored as a positive zero in-band.
                let v = pick(special, W::ZERO, *x);
                signs |= (v >> p.sign_shift).to_u64() << i;
                let r = v & p.mag;
                let field = r >> p.src_m;
                *x = pick(field > p.offset, field.wrapping_sub(p.offset), W::ZERO);
                *m = ((r & p.man_mask) >> p.drop).to_u64();
            }
            if let Some(whole) = codes.get_mut(..LANES) {
                for (c, x) in whole.iter_mut().zip(q.iter()) {
                    *c = x.to_u64() as u16;
                }
            } else {
                for (c, x) in codes.iter_mut().zip(q.iter()) {
                    *c = x.to_u64() as u16;
                }
            }
            if n < LANES {
                let keep = low_mask(n as u32);
                signs &= keep;
                specials &= keep;
            }
            negative |= signs;
            let sign_bytes = signs.to_le_bytes();
            let at = k * 8;
            if let Some(dst) = s.signs.get_mut(at..at + 8) {
                dst.copy_from_slice(&sign_bytes);
            } else {
                let take = (s.signs.len() - at).min(8);
                s.signs[at..at + take].copy_from_slice(&sign_bytes[..take]);
            }
            let at = k * mant_step;
            if n == LANES {
                (s.pack)(&mants, &mut s.mants[at..at + mant_step]);
            } else {
                (s.pack)(&mants, &mut packed[..mant_step]);
                let len = s.mants.len() - at;
                s.mants[at..].copy_from_slice(&packed[..len]);
            }
            while specials != 0 {
                let i = specials.trailing_zeros() as usize;
                specials &= specials - 1;
                let index = (k * LANES + i) as u32;
                s.exceptions.extend_from_slice(&index.to_le_bytes());
                s.exceptions.extend_from_slice(&part[i * W::SIZE..(i + 1) * W::SIZE]);
            }
        }
        negative != 0
    }
}

multiversion! {
    /// Expands stored fields into `out` (whole elements): `signs` as [`split`] wrote them (`None`: all
    /// positive), one code per element, mantissas packed at the width of `unpack`.
    fn expand(
        p: &Params<W>,
        signs: Option<&[u8]>,
        codes: &[u16],
        mants: &[u8],
        unpack: (Unpacker, u32),
        out: &mut [u8],
    ) {
        let (unpack, man_bits) = unpack;
        let step = LANES * W::SIZE;
        let mant_step = 8 * man_bits as usize;
        let mut padded = [0u8; 8 * LANES];
        for (k, dst) in out.chunks_mut(step).enumerate() {
            let n = dst.len() / W::SIZE;
            let mut m = [0u64; LANES];
            let at = k * mant_step;
            if n == LANES {
                unpack(&mants[at..at + mant_step], &mut m);
            } else {
                let tail = &mants[at..];
                padded[..tail.len()].copy_from_slice(tail);
                padded[tail.len()..mant_step].fill(0);
                unpack(&padded[..mant_step], &mut m);
            }
            let mut sign_word = [0u8; 8];
            if let Some(s) = signs {
                if let Some(whole) = s.get(k * 8..k * 8 + 8) {
                    sign_word.copy_from_slice(whole);
                } else {
                    let tail = &s[k * 8..(k * 8 + 8).min(s.len())];
                    sign_word[..tail.len()].copy_from_slice(tail);
                }
            }
            let sign_word = u64::from_le_bytes(sign_word);
            let mut c = [0u16; LANES];
            if n == LANES {
                c.copy_from_slice(&codes[k * LANES..k * LANES + LANES]);
            } else {
                c[..n].copy_from_slice(&codes[k * LANES..k * LANES + n]);
            }
            let mut block = [W::ZERO; LANES];
            for (i, ((x, &code), &mant)) in block.iter_mut().zip(c.iter()).zip(m.iter()).enumerate() {
                *x = p.expand((sign_word >> i) & 1, code, mant);
            }
            store_block(&block, dst);
        }
    }
}

multiversion! {
    /// The largest finite magnitude in `src` (0 when none): the window search of the monotone modes.
    fn max_finite(p: &Params<W>, src: &[u8]) -> W {
        let mut best = [W::ZERO; LANES];
        for part in src.chunks(LANES * W::SIZE) {
            let mut inp = [W::ZERO; LANES];
            load_block(part, &mut inp);
            for (m, &b) in best.iter_mut().zip(inp.iter()) {
                let mag = b & p.mag;
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
            let mut inp = [W::ZERO; LANES];
            let n = load_block(part, &mut inp);
            for (i, (m, &b)) in best.iter_mut().zip(inp.iter()).enumerate().take(n) {
                let mag = b & p.mag;
                let r = p.round::<M>(mag, base + i as u64);
                let r = pick(r > cap, cap, r);
                let v = pick(mag >= p.special, W::ZERO, r);
                *m = pick(v > *m, v, *m);
            }
        }
        best.iter().copied().max().unwrap_or(W::ZERO) >> p.src_m
    }
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
