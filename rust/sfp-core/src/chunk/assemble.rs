//! Elements rebuilt from joint symbols in one pass: each symbol (`((code << top) | top bits) << 1 |
//! sign`, without the parts a chunk leaves out) fixes an element's sign, exponent field and top
//! mantissa bits, so a table gives its bits with the low mantissa bits clear, and an element is
//! that prefix OR its low bits. This replaces separate passes that split the sign, then the top
//! bits, then repacked the mantissas for the expand kernel.

use crate::coding::bitpack::{self, low_mask};
use crate::error::{Error, Result};
use crate::kernel::Word;
use crate::reduce::Reducer;
use crate::simd::Level;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod blocks;

pub(crate) use blocks::assemble_blocks;

/// How a chunk's symbols are laid out and where the rest of each mantissa is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// Top mantissa bits in each symbol.
    pub top: u32,
    /// The sign is the symbol's lowest bit.
    pub joint_sign: bool,
    /// Zero-code values have no stored low bits (they are all zero).
    pub zero_skip: bool,
}

/// The low mantissa bits of the chunk's values.
pub(crate) enum Low<'a> {
    /// One value per stored element (every element, or every nonzero-code one under zero skip).
    Values(&'a [u64]),
    /// Flat packed, `bits` per element, for every element.
    Packed { bytes: &'a [u8], bits: u32 },
}

/// Table flag: the symbol's exponent code is 0.
const CODE_ZERO: u8 = 1;
/// Table flag: the symbol stands for a signed zero, so its mantissa must be zero.
const MUST_BE_ZERO: u8 = 2;

/// Reused tables of [`assemble`].
#[derive(Default)]
pub(crate) struct Tables {
    prefix: Vec<u64>,
    /// The prefixes as 32-bit words, for the vector loops of elements up to 32 bits.
    prefix32: Vec<u32>,
    flags: Vec<u8>,
}

/// The number of symbols whose exponent code is 0 (their low bits are skipped under zero skip).
pub(crate) fn zero_codes(syms: &[u16], layout: Layout) -> usize {
    let shift = layout.top + u32::from(layout.joint_sign);
    // Counted in 32-bit lanes per block (a block's count fits them), which the compiler
    // vectorises eight or sixteen at a time.
    syms.chunks(1 << 16)
        .map(|b| b.iter().map(|&s| u32::from(s >> shift == 0)).sum::<u32>() as usize)
        .sum()
}

/// Writes the elements of `syms` (each below `2^width`) into `out` (`W` words, little-endian).
///
/// # Errors
/// [`Error::Decode`] when a value that must be a signed zero has mantissa bits, or the low values do
/// not match the symbols in number.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble<W: Word>(
    r: &Reducer,
    man_bits: u32,
    syms: &[u16],
    width: u32,
    layout: Layout,
    low: Low<'_>,
    signs: Option<&[u8]>,
    tables: &mut Tables,
    out: &mut [u8],
) -> Result<()> {
    let t = Table::new::<W>(r, man_bits, width, layout, signs, tables)?;
    let check = r.zero_code_is_zero();
    let stray = match low {
        Low::Values(values) => t.stored::<W>(layout.zero_skip, check, syms, values, out)?,
        Low::Packed { bytes, bits } => t.packed_low::<W>(check, syms, bytes, bits, out),
    };
    no_stray(stray)
}

/// The error for a value with the zero exponent code whose mantissa bits are not all zero.
fn no_stray(stray: u64) -> Result<()> {
    if stray != 0 {
        return Err(Error::decode(
            "a value with the zero exponent code has a nonzero mantissa",
        ));
    }
    Ok(())
}

/// The tables of one chunk, borrowed for its element loops.
#[derive(Clone, Copy)]
struct Table<'a> {
    level: Level,
    prefix: &'a [u64],
    /// [`Table::prefix`] as 32-bit words when the elements have at most 32 bits (else empty).
    prefix32: &'a [u32],
    /// Shift of a symbol down to its exponent code.
    code_shift: u32,
    flags: &'a [u8],
    /// `2^width - 1`: a masked symbol indexes both tables (each `2^width` long).
    mask: usize,
    drop: u32,
    magnitude: u64,
    sign_shift: u32,
    /// A sign stream beside the symbols (one bit per element), when the sign is not in them.
    signs: Option<&'a [u8]>,
    /// Every prefix is the symbol's bits moved into place ([`Linear`]), as in lossless chunks,
    /// whose exponent codes are the exponent fields: the vector loop then computes the prefixes
    /// instead of gathering them.
    linear: Option<Linear>,
}

/// A prefix table that is a shift of the symbol: `((s >> joint_sign) << low_bits) | (s & joint_sign)
/// << sign_shift`.
#[derive(Clone, Copy, Debug)]
struct Linear {
    joint_sign: u32,
    low_bits: u32,
}

impl Linear {
    fn prefix(self, s: u64, sign_shift: u32) -> u64 {
        ((s >> self.joint_sign) << self.low_bits) | ((s & u64::from(self.joint_sign)) << sign_shift)
    }
}

impl<'a> Table<'a> {
    /// Builds `tables` for symbols of `width` bits laid out as `layout` and borrows them.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for an unusable `SFP_SIMD`.
    fn new<W: Word>(
        r: &Reducer,
        man_bits: u32,
        width: u32,
        layout: Layout,
        signs: Option<&'a [u8]>,
        tables: &'a mut Tables,
    ) -> Result<Self> {
        let level = crate::simd::current()?;
        let low_bits = man_bits - layout.top;
        build(r, width, low_bits, layout, tables);
        let linear = Linear {
            joint_sign: u32::from(layout.joint_sign),
            low_bits,
        };
        let linear = tables
            .prefix
            .iter()
            .enumerate()
            .all(|(s, &p)| p == linear.prefix(s as u64, r.sign_shift))
            .then_some(linear);
        if W::SIZE <= 4 {
            tables.prefix32.clear();
            tables
                .prefix32
                .extend(tables.prefix.iter().map(|&p| p as u32));
        }
        Ok(Table {
            level,
            prefix: &tables.prefix,
            prefix32: &tables.prefix32,
            code_shift: layout.top + u32::from(layout.joint_sign),
            flags: &tables.flags,
            mask: (1usize << width) - 1,
            drop: r.drop,
            magnitude: r.mag_mask,
            sign_shift: r.sign_shift,
            signs,
            linear,
        })
    }

    /// Elements from stored low values ([`Table::values`]), checking they match the elements in
    /// number; returns the stray bits.
    ///
    /// # Errors
    /// [`Error::Decode`] when the count of stored values is not the count the elements need.
    fn stored<W: Word>(
        &self,
        skip: bool,
        check: bool,
        syms: &[u16],
        values: &[u64],
        out: &mut [u8],
    ) -> Result<u64> {
        let (k, stray) = match (skip, check) {
            (true, true) => self.values::<W, true, true>(syms, values, out),
            (true, false) => self.values::<W, true, false>(syms, values, out),
            (false, true) => self.values::<W, false, true>(syms, values, out),
            (false, false) => self.values::<W, false, false>(syms, values, out),
        };
        if k != values.len() {
            return Err(Error::decode(format!(
                "{} stored mantissas for {k} values that need one",
                values.len()
            )));
        }
        Ok(stray)
    }
    /// The sign bits of group `g` (64 elements) from the sign stream, 0 without one.
    #[inline(always)]
    fn sign_word(&self, g: usize) -> u64 {
        sign_word(self.signs, g)
    }

    /// The prefix and flags of symbol `s`.
    #[inline(always)]
    fn entry(&self, s: u16) -> (u64, u8) {
        let i = usize::from(s) & self.mask;
        (
            self.prefix.get(i).copied().unwrap_or(0),
            self.flags.get(i).copied().unwrap_or(0),
        )
    }

    /// One element's bits, and the magnitude bits it has but must not (a signed zero's).
    #[inline(always)]
    fn element<const CHECK: bool>(&self, p: u64, f: u8, v: u64) -> (u64, u64) {
        let stray = if CHECK && f & MUST_BE_ZERO != 0 {
            v | (p & self.magnitude)
        } else {
            0
        };
        (p | (v << self.drop), stray)
    }

    /// Elements from stored low values (one per element, or per nonzero-code element with `SKIP`);
    /// returns how many values were used and the stray bits.
    fn values<W: Word, const SKIP: bool, const CHECK: bool>(
        &self,
        syms: &[u16],
        values: &[u64],
        out: &mut [u8],
    ) -> (usize, u64) {
        let (first, mut k) = self.values_simd::<W, SKIP, CHECK>(syms, values, out);
        let mut stray = 0u64;
        // Under zero skip, every element loads the next stored value (clamped to the last one) and
        // masks it away when skipped: a branch on the zero code mispredicts on activations, where
        // zeros and nonzeros interleave at random. Too few stored values are caught by the caller
        // from the returned count.
        let values = if values.is_empty() { &[0][..] } else { values };
        let last = values.len() - 1;
        let rest = syms.get(first..).unwrap_or_default();
        let outs = out.get_mut(first * W::SIZE..).unwrap_or_default();
        for (g, (group, outs)) in rest
            .chunks(64)
            .zip(outs.chunks_mut(64 * W::SIZE))
            .enumerate()
        {
            let signs = self.sign_word(first / 64 + g);
            for (j, (&s, o)) in group.iter().zip(outs.chunks_exact_mut(W::SIZE)).enumerate() {
                let (p, f) = self.entry(s);
                let skipped = SKIP && f & CODE_ZERO != 0;
                let keep = u64::from(!skipped).wrapping_neg();
                let v = values[k.min(last)] & keep;
                k += usize::from(!skipped);
                let (bits, bad) = self.element::<CHECK>(p, f, v);
                stray |= bad;
                let sign = ((signs >> j) & 1) << self.sign_shift;
                W::from_u64(bits | sign).store(o);
            }
        }
        (k, stray)
    }

    /// What the vector loops need of the table.
    #[cfg(target_arch = "x86_64")]
    fn lookup(&self) -> avx2::Lookup<'a> {
        avx2::Lookup {
            prefix: self.prefix32,
            mask: self.mask as u32,
            drop: self.drop,
            code_shift: self.code_shift,
            sign_shift: self.sign_shift,
            signs: self.signs,
            joint_sign: self.linear.map_or(0, |l| l.joint_sign),
            low_bits: self.linear.map_or(0, |l| l.low_bits),
        }
    }

    /// The leading whole groups of [`Table::values`] with the vector loop where the level has one
    /// (elements of 16 or 32 bits, nothing to check); returns the elements written (a multiple
    /// of 64) and the stored values read.
    #[allow(unused_variables)]
    fn values_simd<W: Word, const SKIP: bool, const CHECK: bool>(
        &self,
        syms: &[u16],
        values: &[u64],
        out: &mut [u8],
    ) -> (usize, usize) {
        #[cfg(target_arch = "x86_64")]
        if !CHECK
            && matches!(self.level, Level::Avx2 | Level::Avx512)
            && self.prefix32.len() == self.mask + 1
        {
            let t = self.lookup();
            // SAFETY: the level is active only on a CPU with its features (checked by
            // `simd::current`); the prefix table has `mask + 1` entries (checked above).
            let done = match (self.level, W::SIZE, self.linear.is_some()) {
                (Level::Avx512, 2, false) => unsafe {
                    avx512::values::<2, SKIP, false>(&t, syms, values, out)
                },
                (Level::Avx512, 2, true) => unsafe {
                    avx512::values::<2, SKIP, true>(&t, syms, values, out)
                },
                (Level::Avx512, 4, false) => unsafe {
                    avx512::values::<4, SKIP, false>(&t, syms, values, out)
                },
                (Level::Avx512, 4, true) => unsafe {
                    avx512::values::<4, SKIP, true>(&t, syms, values, out)
                },
                (_, 2, false) => unsafe { avx2::values::<2, SKIP, false>(&t, syms, values, out) },
                (_, 2, true) => unsafe { avx2::values::<2, SKIP, true>(&t, syms, values, out) },
                (_, 4, false) => unsafe { avx2::values::<4, SKIP, false>(&t, syms, values, out) },
                (_, 4, true) => unsafe { avx2::values::<4, SKIP, true>(&t, syms, values, out) },
                _ => return (0, 0),
            };
            return (done.elements, done.values);
        }
        (0, 0)
    }

    /// [`Table::packed`], checking signed zeros when `check` says so.
    fn packed_low<W: Word>(
        &self,
        check: bool,
        syms: &[u16],
        bytes: &[u8],
        bits: u32,
        out: &mut [u8],
    ) -> u64 {
        if check {
            self.packed::<W, true>(syms, bytes, bits, out)
        } else {
            self.packed::<W, false>(syms, bytes, bits, out)
        }
    }

    /// The leading whole groups of [`Table::packed`] with the vector loop where the level has one
    /// (fields of 1-8 bits, elements of 16 or 32 bits, nothing to check); returns the elements
    /// written.
    #[allow(unused_variables)]
    fn packed_simd<W: Word>(&self, syms: &[u16], bytes: &[u8], bits: u32, out: &mut [u8]) -> usize {
        #[cfg(target_arch = "x86_64")]
        if matches!(self.level, Level::Avx2 | Level::Avx512)
            && (1..=8).contains(&bits)
            && self.prefix32.len() == self.mask + 1
        {
            let t = self.lookup();
            // SAFETY: the level is active only on a CPU with its features (checked by
            // `simd::current`); the prefix table has `mask + 1` entries (checked above).
            return match (self.level, W::SIZE, self.linear.is_some()) {
                (Level::Avx512, 2, false) => unsafe {
                    avx512::packed::<2, false>(&t, syms, bytes, bits, out)
                },
                (Level::Avx512, 2, true) => unsafe {
                    avx512::packed::<2, true>(&t, syms, bytes, bits, out)
                },
                (Level::Avx512, 4, false) => unsafe {
                    avx512::packed::<4, false>(&t, syms, bytes, bits, out)
                },
                (Level::Avx512, 4, true) => unsafe {
                    avx512::packed::<4, true>(&t, syms, bytes, bits, out)
                },
                (_, 2, false) => unsafe { avx2::packed::<2, false>(&t, syms, bytes, bits, out) },
                (_, 2, true) => unsafe { avx2::packed::<2, true>(&t, syms, bytes, bits, out) },
                (_, 4, false) => unsafe { avx2::packed::<4, false>(&t, syms, bytes, bits, out) },
                (_, 4, true) => unsafe { avx2::packed::<4, true>(&t, syms, bytes, bits, out) },
                _ => 0,
            };
        }
        0
    }

    /// Elements from low values packed flat at `bits`, one per element; returns the stray bits.
    fn packed<W: Word, const CHECK: bool>(
        &self,
        syms: &[u16],
        bytes: &[u8],
        bits: u32,
        out: &mut [u8],
    ) -> u64 {
        if !CHECK {
            let done = self.packed_simd::<W>(syms, bytes, bits, out);
            if done > 0 {
                // Whole groups of 64, so the rest starts on a byte of the fields and of the signs.
                let rest = Table {
                    signs: self.signs.map(|s| s.get(done / 8..).unwrap_or_default()),
                    ..*self
                };
                let from = done * bits as usize / 8;
                return rest.packed::<W, CHECK>(
                    &syms[done..],
                    bytes.get(from..).unwrap_or_default(),
                    bits,
                    &mut out[done * W::SIZE..],
                );
            }
            if let Some(words) = crate::kernel::words_mut::<W>(out) {
                self.packed_words(syms, bytes, bits, words);
                return 0;
            }
        }
        let unpack = bitpack::unpacker(bits);
        let mut vals = [0u64; 64];
        let mut stray = 0u64;
        for (b, (group, outs)) in syms
            .chunks(64)
            .zip(out.chunks_mut(64 * W::SIZE))
            .enumerate()
        {
            bitpack::unpack_group(unpack, bits, bytes, b, &mut vals);
            let signs = self.sign_word(b);
            for (j, ((&s, o), &v)) in group
                .iter()
                .zip(outs.chunks_exact_mut(W::SIZE))
                .zip(&vals)
                .enumerate()
            {
                let (p, f) = self.entry(s);
                let (e, bad) = self.element::<CHECK>(p, f, v);
                stray |= bad;
                let sign = ((signs >> j) & 1) << self.sign_shift;
                W::from_u64(e | sign).store(o);
            }
        }
        stray
    }

    /// [`Table::packed`] into aligned words, with no zero to check: the common case (lossless and
    /// most windows), kept to a load, a shift and two ORs per element.
    fn packed_words<W: Word>(&self, syms: &[u16], bytes: &[u8], bits: u32, out: &mut [W]) {
        let unpack = bitpack::unpacker(bits);
        let mut vals = [0u64; 64];
        let (prefix, mask, drop, shift) = (self.prefix, self.mask, self.drop, self.sign_shift);
        for (b, (group, outs)) in syms.chunks(64).zip(out.chunks_mut(64)).enumerate() {
            bitpack::unpack_group(unpack, bits, bytes, b, &mut vals);
            let signs = self.sign_word(b);
            for (j, ((&s, o), &v)) in group.iter().zip(outs.iter_mut()).zip(&vals).enumerate() {
                let p = prefix.get(usize::from(s) & mask).copied().unwrap_or(0);
                let sign = ((signs >> j) & 1) << shift;
                *o = W::from_u64(p | (v << drop) | sign).to_le();
            }
        }
    }
}

/// Fills the prefix and flag tables for every symbol of `width` bits.
fn build(r: &Reducer, width: u32, low_bits: u32, layout: Layout, tables: &mut Tables) {
    let js = u32::from(layout.joint_sign);
    let must_be_zero = r.zero_code_is_zero();
    tables.prefix.clear();
    tables.flags.clear();
    for s in 0..1usize << width {
        let rest = (s >> js) as u64;
        let code = (rest >> layout.top) as u16;
        let top = rest & low_mask(layout.top);
        let sign = layout.joint_sign && s & 1 == 1;
        tables.prefix.push(r.expand(sign, code, top << low_bits));
        tables.flags.push(match (code, must_be_zero) {
            (0, true) => CODE_ZERO | MUST_BE_ZERO,
            (0, false) => CODE_ZERO,
            _ => 0,
        });
    }
}

/// The sign bits of group `g` (of 64 elements) from a sign stream, one bit per element, the bytes
/// past its end read as 0 (no stream: all 0).
#[inline(always)]
fn sign_word(signs: Option<&[u8]>, g: usize) -> u64 {
    let Some(signs) = signs else { return 0 };
    let mut w = [0u8; 8];
    let part = signs.get(g * 8..).unwrap_or_default();
    let len = part.len().min(8);
    w[..len].copy_from_slice(&part[..len]);
    u64::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{Layout, Table, Tables};
    use crate::dtype::DType;
    use crate::format::Format;
    use crate::reduce::{Reducer, Window};

    /// Whether the table of `format`'s chunks of bfloat16 with `top` bits in the symbol (and the
    /// sign in it when `joint_sign`) is found linear.
    fn linear(format: Format, window: Option<Window>, top: u32, joint_sign: bool) -> bool {
        let target = format.resolve(DType::BF16).unwrap();
        let r = Reducer::new(&target, window);
        let layout = Layout {
            top,
            joint_sign,
            zero_skip: false,
        };
        let width = target.exp_bits + top + u32::from(joint_sign);
        let mut tables = Tables::default();
        Table::new::<u16>(&r, target.man_bits, width, layout, None, &mut tables)
            .unwrap()
            .linear
            .is_some()
    }

    #[test]
    fn lossless_tables_are_computed_and_window_tables_looked_up() {
        for (top, joint_sign) in [(0, false), (3, true), (2, false), (1, true)] {
            assert!(linear(Format::LOSSLESS, None, top, joint_sign));
            let window = Format {
                exp_bits: Some(5),
                ..Format::LOSSLESS
            };
            let w = Window {
                bottom: 110,
                top: 140,
            };
            assert!(
                !linear(window, Some(w), top, joint_sign),
                "{top} {joint_sign}"
            );
        }
    }
}
